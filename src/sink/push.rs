//! Delivery to a registry: every blob once (HEAD, then mount, upload from a
//! local store, or copy from another registry through the cache; several at a
//! time), child manifests by digest before their parents, then every tag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use futures_util::stream::{self, TryStreamExt};
use serde::Serialize;

use super::walk::Walk;
use crate::image::{Ctx, Homes};
use crate::oci::Descriptor;
use crate::registry::Reference;
use crate::registry::remote::push_scope;
use crate::ui::{self, Progress};

/// What a push did, for the summary.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PushStats {
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    pub mounted: u64,
    pub existing: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    /// Manifests (images and the index) put, and those already there.
    pub manifests: u64,
    pub manifests_existing: u64,
    /// Wall time of the push.
    pub seconds: f64,
}

#[derive(Default)]
struct Counters {
    uploaded: AtomicU64,
    uploaded_bytes: AtomicU64,
    mounted: AtomicU64,
    existing: AtomicU64,
    copied: AtomicU64,
    copied_bytes: AtomicU64,
    manifests: AtomicU64,
    manifests_existing: AtomicU64,
}

/// Pushes the walked image to `refs` (one repository: one tag each, or a
/// digest).
pub async fn deliver(
    ctx: &Ctx,
    homes: &Homes,
    w: &Walk,
    refs: &[Reference],
    jobs: usize,
) -> Result<PushStats> {
    let started = Instant::now();
    let Some(first) = refs.first() else {
        bail!("nothing to push to")
    };
    let (root, _) = w.manifests.last().expect("a walk holds its root");
    if let Some(d) = refs
        .iter()
        .find_map(|r| r.digest.as_ref())
        .filter(|d| *d != &root.digest)
    {
        bail!(
            "the destination names digest {d}, but the image is {}; name a tag, or its own digest",
            root.digest
        );
    }
    ui::status(
        "Pushing",
        &format!("{} to {}", root.digest.short(), first.name()),
    );
    let c = Counters::default();
    let progress = Progress::new();
    stream::iter(w.blobs.iter().map(Ok::<&Descriptor, anyhow::Error>))
        .try_for_each_concurrent(jobs.max(1), |b| {
            push_blob(ctx, homes, first, b, &c, &progress)
        })
        .await?;
    push_manifests(ctx, refs, w, &c).await?;
    for (desc, doc, subject) in &w.referrers {
        push_referrer(ctx, first, desc, doc, subject).await?;
        c.manifests.fetch_add(1, Ordering::Relaxed);
    }
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let stats = PushStats {
        uploaded: n(&c.uploaded),
        uploaded_bytes: n(&c.uploaded_bytes),
        mounted: n(&c.mounted),
        existing: n(&c.existing),
        copied: n(&c.copied),
        copied_bytes: n(&c.copied_bytes),
        manifests: n(&c.manifests),
        manifests_existing: n(&c.manifests_existing),
        seconds: started.elapsed().as_secs_f64(),
    };
    progress.done("Pushed", &summary(&stats));
    Ok(stats)
}

/// `12 blobs (3 uploaded 4.2 MiB, 5 mounted, 4 present) and 3 manifests in 1.2s`:
/// every blob once, under what happened to it; empty kinds left out.
fn summary(s: &PushStats) -> String {
    let blobs = s.uploaded + s.copied + s.mounted + s.existing;
    let mut kinds = Vec::new();
    if s.uploaded > 0 {
        kinds.push(format!(
            "{} uploaded {}",
            s.uploaded,
            ui::size(s.uploaded_bytes)
        ));
    }
    if s.copied > 0 {
        kinds.push(format!("{} copied {}", s.copied, ui::size(s.copied_bytes)));
    }
    if s.mounted > 0 {
        kinds.push(format!("{} mounted", s.mounted));
    }
    if s.existing > 0 {
        kinds.push(format!("{} present", s.existing));
    }
    let mut out = count(blobs, "blob");
    if !kinds.is_empty() {
        out.push_str(&format!(" ({})", kinds.join(", ")));
    }
    let manifests = s.manifests + s.manifests_existing;
    out.push_str(&format!(" and {}", count(manifests, "manifest")));
    if s.manifests_existing > 0 {
        out.push_str(&format!(" ({} present)", s.manifests_existing));
    }
    out.push_str(&format!(" in {:.1}s", s.seconds));
    out
}

fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Children before parents: manifests by digest, then the root under each tag
/// (or by digest). Nothing is tagged until every blob is in place.
async fn push_manifests(ctx: &Ctx, refs: &[Reference], w: &Walk, c: &Counters) -> Result<()> {
    let client = &ctx.client;
    let first = &refs[0];
    let (children, root) = w.manifests.split_at(w.manifests.len() - 1);
    for (desc, doc) in children {
        let r = first.with_digest(&desc.digest);
        if client.head_manifest(&r).await?.as_ref() == Some(&desc.digest) {
            c.manifests_existing.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        client.put_manifest(&r, &doc.media_type, &doc.bytes).await?;
        c.manifests.fetch_add(1, Ordering::Relaxed);
    }
    let (root, doc) = &root[0];
    let mut put = false;
    for t in refs {
        let r = match &t.tag {
            Some(tag) => t.with_tag(tag),
            None => first.with_digest(&root.digest),
        };
        if r.tag.is_some() && client.head_manifest(&r).await?.as_ref() == Some(&root.digest) {
            continue;
        }
        client.put_manifest(&r, &doc.media_type, &doc.bytes).await?;
        put = true;
    }
    let counter = if put {
        &c.manifests
    } else {
        &c.manifests_existing
    };
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A referrer: its manifest by digest; when the registry does not acknowledge
/// the subject (no referrers API, no `OCI-Subject`), its descriptor is added
/// to the subject's fallback tag, an index read, changed and written again
/// until it holds it (another push may be changing the same tag).
async fn push_referrer(
    ctx: &Ctx,
    target: &Reference,
    desc: &Descriptor,
    doc: &crate::image::Document,
    subject: &crate::oci::Digest,
) -> Result<()> {
    let client = &ctx.client;
    let acked = client
        .put_manifest(
            &target.with_digest(&desc.digest),
            &doc.media_type,
            &doc.bytes,
        )
        .await?;
    if acked.as_ref() == Some(subject) {
        return Ok(());
    }
    let tag = target.with_tag(&crate::image::referrers::fallback_tag(subject));
    // The registry has no compare-and-swap: a push that read the tag just
    // before ours was written can overwrite it. So the entry must still be
    // there on two reads spread over a few hundred milliseconds — long after
    // any such racing write — and is written again whenever it is missing.
    let mut seen = 0;
    for attempt in 0..12u64 {
        let mut index = current_referrers(ctx, &tag).await?;
        let list = index["manifests"].as_array_mut().expect("an index");
        if list
            .iter()
            .any(|m| m["digest"].as_str() == Some(desc.digest.as_str()))
        {
            seen += 1;
            if seen == 2 {
                return Ok(());
            }
        } else {
            seen = 0;
            list.push(desc.json.clone());
            let bytes = crate::oci::json::to_vec(&index)?;
            client
                .put_manifest(&tag, crate::oci::media::OCI_INDEX, &bytes)
                .await?;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150 + 37 * (attempt % 5))).await;
    }
    bail!("the referrers tag {tag} kept changing under us; push again")
}

/// The fallback tag's index, or a new empty one.
async fn current_referrers(ctx: &Ctx, tag: &Reference) -> Result<serde_json::Value> {
    let empty = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::oci::media::OCI_INDEX,
        "manifests": [],
    });
    if ctx.client.head_manifest(tag).await?.is_none() {
        return Ok(empty);
    }
    let f = ctx.client.get_manifest(tag).await?;
    let mut v: serde_json::Value = serde_json::from_slice(&f.bytes)?;
    if !v["manifests"].is_array() {
        v = empty;
    }
    Ok(v)
}

async fn push_blob(
    ctx: &Ctx,
    homes: &Homes,
    target: &Reference,
    b: &Descriptor,
    c: &Counters,
    progress: &Progress,
) -> Result<()> {
    let client = &ctx.client;
    let (short, size) = (b.digest.short(), ui::size(b.size));
    if client
        .blob_exists(target, &b.digest, &[push_scope(target)])
        .await?
    {
        progress.done("Skipped", &format!("{short} ({size}), already present"));
        c.existing.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let remote = homes.remote(&b.digest);
    // A mount moves no bytes: preferred even when the blob is local too.
    if let Some(from) = remote.filter(|f| f.registry == target.registry)
        && client.mount_blob(target, &b.digest, from).await?
    {
        progress.done("Mounted", &format!("{short} ({size}) from {}", from.name()));
        c.mounted.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    // Uploaded from a local store (verified first), or downloaded into the
    // cache from its registry first (a copy).
    let local = homes.local(b)?.cloned();
    let copied_from = match (&local, remote) {
        (Some(_), _) => None,
        (None, Some(from)) => Some(from),
        (None, None) => bail!(
            "blob {} is in no layout, cache or registry xarch knows of",
            b.digest
        ),
    };
    let (store, bar) = match (local, copied_from) {
        (Some(s), _) => (s, progress.bar("Uploading", short, b.size)),
        (None, Some(from)) => {
            let bar = progress.bar("Fetching", short, b.size);
            let cache = ctx.cache.blobs();
            if !cache.holds(&b.digest, Some(b.size)) {
                if ctx.offline {
                    bail!(
                        "blob {} of {} is not in the cache and --offline forbids fetching it",
                        b.digest,
                        from.name()
                    );
                }
                ctx.fetch_blob(from, b, cache, bar.get()).await?;
            }
            bar.restart("Uploading");
            (cache.clone(), bar)
        }
        (None, None) => unreachable!("refused above"),
    };
    client
        .upload_blob(target, &b.digest, &store.path(&b.digest), b.size, bar.get())
        .await?;
    drop(bar);
    // A copied blob counts as copied only, so the counts add up to the blobs.
    if let Some(from) = copied_from {
        progress.done("Copied", &format!("{short} ({size}) from {}", from.name()));
        c.copied.fetch_add(1, Ordering::Relaxed);
        c.copied_bytes.fetch_add(b.size, Ordering::Relaxed);
    } else {
        progress.done("Uploaded", &format!("{short} ({size})"));
        c.uploaded.fetch_add(1, Ordering::Relaxed);
        c.uploaded_bytes.fetch_add(b.size, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::PushStats;

    #[test]
    fn push_summary_counts_each_blob_once() {
        let s = PushStats {
            uploaded: 3,
            uploaded_bytes: 4404019,
            mounted: 5,
            existing: 4,
            manifests: 3,
            seconds: 1.23,
            ..Default::default()
        };
        assert_eq!(
            super::summary(&s),
            "12 blobs (3 uploaded 4.2 MiB, 5 mounted, 4 present) and 3 manifests in 1.2s"
        );
        let again = PushStats {
            existing: 1,
            manifests_existing: 1,
            seconds: 0.04,
            ..Default::default()
        };
        assert_eq!(
            super::summary(&again),
            "1 blob (1 present) and 1 manifest (1 present) in 0.0s"
        );
    }
}
