//! Pushing an image or index: every blob once (HEAD, then mount or upload,
//! several at a time), child manifests before the index, then every tag.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures_util::stream::{self, TryStreamExt};
use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::Value;

use super::client::Client;
use super::reference::Reference;
use super::remote::push_scope;
use crate::cache::Cache;
use crate::oci::{BlobStore, Digest, media};
use crate::ui::{self, Progress};

/// What to push: a root manifest or index in `store`, and remote homes for blobs
/// the store lacks (base layers that were never downloaded).
pub struct PushSet<'a> {
    pub store: &'a BlobStore,
    pub root: Digest,
    pub remote: HashMap<Digest, Reference>,
    pub cache: &'a Cache,
}

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

/// A blob to push, with where its bytes are: in the local store, and/or in a
/// repository (a base layer's home, which a mount can take it from).
struct Blob {
    digest: Digest,
    size: u64,
    local: bool,
    remote: Option<Reference>,
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

/// Pushes the set to `targets` (same repository, one tag each, or digests).
pub async fn push(
    client: &Client,
    set: &PushSet<'_>,
    targets: &[Reference],
    jobs: usize,
) -> Result<PushStats> {
    let started = Instant::now();
    let Some(first) = targets.first() else {
        bail!("nothing to push to")
    };
    for t in targets {
        if t.name() != first.name() {
            bail!(
                "all tags of one push must name the same repository ({} vs {})",
                first.name(),
                t.name()
            );
        }
    }
    let (manifests, blobs) = walk(set)?;
    let c = Counters::default();
    let progress = Progress::new();
    stream::iter(blobs.into_iter().map(Ok::<Blob, anyhow::Error>))
        .try_for_each_concurrent(jobs.max(1), |b| {
            push_blob(client, set, first, b, &c, &progress)
        })
        .await?;
    push_manifests(client, set, targets, &manifests, &c).await?;
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
async fn push_manifests(
    client: &Client,
    set: &PushSet<'_>,
    targets: &[Reference],
    children: &[ManifestRef],
    c: &Counters,
) -> Result<()> {
    let first = &targets[0];
    for (digest, media_type) in children {
        let r = first.with_digest(digest);
        if client.head_manifest(&r).await?.as_ref() == Some(digest) {
            c.manifests_existing.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        client
            .put_manifest(&r, media_type, &set.store.read(digest)?)
            .await?;
        c.manifests.fetch_add(1, Ordering::Relaxed);
    }
    let root_bytes = set.store.read(&set.root)?;
    let root_type = media::of_document(&root_bytes);
    let mut put = false;
    for t in targets {
        let r = match &t.tag {
            Some(_) => t.clone(),
            None => first.with_digest(&set.root),
        };
        if r.tag.is_some() && client.head_manifest(&r).await?.as_ref() == Some(&set.root) {
            continue;
        }
        client.put_manifest(&r, &root_type, &root_bytes).await?;
        put = true;
    }
    let root = if put {
        &c.manifests
    } else {
        &c.manifests_existing
    };
    root.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn push_blob(
    client: &Client,
    set: &PushSet<'_>,
    target: &Reference,
    b: Blob,
    c: &Counters,
    progress: &Progress,
) -> Result<()> {
    let (short, size) = (b.digest.short(), ui::size(b.size));
    if client
        .blob_exists(target, &b.digest, &[push_scope(target)])
        .await?
    {
        progress.done("Skipped", &format!("{short} ({size}), already present"));
        c.existing.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    // A mount moves no bytes: preferred even when the blob is local too.
    if let Some(from) = b.remote.as_ref().filter(|f| f.registry == target.registry)
        && client.mount_blob(target, &b.digest, from).await?
    {
        progress.done("Mounted", &format!("{short} ({size}) from {}", from.name()));
        c.mounted.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    // Uploaded from the store, or downloaded into the cache first (a copy).
    let from = b.remote.as_ref().filter(|_| !b.local);
    let (path, bar) = match from {
        None => (
            set.store.path(&b.digest),
            progress.bar("Uploading", short, b.size),
        ),
        Some(from) => {
            let bar = progress.bar("Fetching", short, b.size);
            let p = fetch_to_cache(client, set, from, &b.digest, b.size, bar.get()).await?;
            bar.restart("Uploading");
            (p, bar)
        }
    };
    client
        .upload_blob(target, &b.digest, &path, b.size, bar.get())
        .await?;
    drop(bar);
    // A copied blob counts as copied only, so the counts add up to the blobs.
    if let Some(from) = from {
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

/// A remote blob, downloaded (and verified) into the cache unless already there.
async fn fetch_to_cache(
    client: &Client,
    set: &PushSet<'_>,
    from: &Reference,
    d: &Digest,
    size: u64,
    bar: Option<&ProgressBar>,
) -> Result<std::path::PathBuf> {
    let store = set.cache.blobs();
    if !store.has(d) {
        client.fetch_blob(from, d, size, store, bar).await?;
    }
    Ok(store.path(d))
}

/// The manifests under the root (children first, root excluded) and every blob
/// they reference, each once, with where its bytes are.
/// (digest, media type) of a manifest to push.
type ManifestRef = (Digest, String);

fn walk(set: &PushSet<'_>) -> Result<(Vec<ManifestRef>, Vec<Blob>)> {
    let root: Value =
        serde_json::from_slice(&set.store.read(&set.root)?).context("root manifest is not JSON")?;
    let mut children = Vec::new();
    let image_digests: Vec<Digest> = match root.get("manifests") {
        Some(list) => {
            let mut ds = Vec::new();
            for m in list.as_array().into_iter().flatten() {
                let d: Digest = m["digest"]
                    .as_str()
                    .context("index entry without digest")?
                    .parse()?;
                let mt = m["mediaType"]
                    .as_str()
                    .unwrap_or(media::OCI_MANIFEST)
                    .to_string();
                if media::is_index(&mt) {
                    bail!("nested indexes are not supported ({d})");
                }
                children.push((d.clone(), mt));
                ds.push(d);
            }
            ds
        }
        None => vec![set.root.clone()],
    };
    let mut blobs: BTreeMap<Digest, Blob> = BTreeMap::new();
    for d in &image_digests {
        let m: Value = serde_json::from_slice(&set.store.read(d)?)
            .with_context(|| format!("manifest {d} is not JSON"))?;
        let descs =
            std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten());
        for desc in descs {
            let digest: Digest = desc["digest"]
                .as_str()
                .context("descriptor without digest")?
                .parse()?;
            let size = desc["size"].as_u64().context("descriptor without size")?;
            let local = set.store.has(&digest);
            let remote = set.remote.get(&digest).cloned();
            if !local && remote.is_none() {
                bail!("blob {digest} of manifest {d} is neither local nor in a known repository");
            }
            blobs.entry(digest.clone()).or_insert(Blob {
                digest,
                size,
                local,
                remote,
            });
        }
    }
    Ok((children, blobs.into_values().collect()))
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
