//! Pushing an image or index: every blob once (HEAD, then mount or upload,
//! several at a time), child manifests before the index, then every tag.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use futures_util::stream::{self, TryStreamExt};
use serde::Serialize;
use serde_json::Value;

use super::client::Client;
use super::reference::Reference;
use super::remote::push_scope;
use crate::cache::Cache;
use crate::oci::{BlobStore, Digest, media};
use crate::ui;

/// Where a blob's bytes are: in a local store, or in a repository of a registry.
#[derive(Debug, Clone)]
pub enum Source {
    Local,
    Remote(Reference),
}

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
}

struct Blob {
    digest: Digest,
    size: u64,
    source: Source,
}

#[derive(Default)]
struct Counters {
    uploaded: AtomicU64,
    uploaded_bytes: AtomicU64,
    mounted: AtomicU64,
    existing: AtomicU64,
    copied: AtomicU64,
    copied_bytes: AtomicU64,
}

/// Pushes the set to `targets` (same repository, one tag each, or digests).
pub async fn push(
    client: &Client,
    set: &PushSet<'_>,
    targets: &[Reference],
    jobs: usize,
) -> Result<PushStats> {
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
    let counters = Arc::new(Counters::default());
    stream::iter(blobs.into_iter().map(Ok::<Blob, anyhow::Error>))
        .try_for_each_concurrent(jobs.max(1), |b| {
            let counters = counters.clone();
            async move { push_blob(client, set, first, b, &counters).await }
        })
        .await?;
    // Children before parents: manifests by digest, then the root by each tag.
    for (digest, media_type) in &manifests {
        let r = first.with_digest(digest);
        if client.head_manifest(&r).await?.as_ref() != Some(digest) {
            client
                .put_manifest(&r, media_type, &set.store.read(digest)?)
                .await?;
        }
    }
    let root_bytes = set.store.read(&set.root)?;
    let root_type = media::of_document(&root_bytes);
    for t in targets {
        let r = match (&t.tag, &t.digest) {
            (Some(_), _) => t.clone(),
            (None, _) => first.with_digest(&set.root),
        };
        if r.tag.is_some() && client.head_manifest(&r).await?.as_ref() == Some(&set.root) {
            continue;
        }
        client.put_manifest(&r, &root_type, &root_bytes).await?;
    }
    let c = &counters;
    Ok(PushStats {
        uploaded: c.uploaded.load(Ordering::Relaxed),
        uploaded_bytes: c.uploaded_bytes.load(Ordering::Relaxed),
        mounted: c.mounted.load(Ordering::Relaxed),
        existing: c.existing.load(Ordering::Relaxed),
        copied: c.copied.load(Ordering::Relaxed),
        copied_bytes: c.copied_bytes.load(Ordering::Relaxed),
    })
}

async fn push_blob(
    client: &Client,
    set: &PushSet<'_>,
    target: &Reference,
    b: Blob,
    c: &Counters,
) -> Result<()> {
    if client
        .blob_exists(target, &b.digest, &[push_scope(target)])
        .await?
    {
        c.existing.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let (path, from) = match &b.source {
        Source::Local => (set.store.path(&b.digest), None),
        Source::Remote(from) => {
            if from.registry == target.registry
                && client.mount_blob(target, &b.digest, from).await?
            {
                ui::status(
                    "Mounted",
                    &format!("{} from {}", b.digest.short(), from.name()),
                );
                c.mounted.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            // Another registry, or one that would not mount: download, upload.
            let p = fetch_to_cache(client, set, from, &b.digest).await?;
            (p, Some(from))
        }
    };
    client.upload_blob(target, &b.digest, &path, b.size).await?;
    let size = ui::size(b.size);
    // A copied blob counts as copied only, so the counts add up to the blobs.
    if let Some(from) = from {
        let msg = format!("{} ({size}) from {}", b.digest.short(), from.name());
        ui::status("Copied", &msg);
        c.copied.fetch_add(1, Ordering::Relaxed);
        c.copied_bytes.fetch_add(b.size, Ordering::Relaxed);
    } else {
        ui::status("Uploaded", &format!("{} ({size})", b.digest.short()));
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
) -> Result<std::path::PathBuf> {
    let store = set.cache.blobs();
    if !store.has(d) {
        client.fetch_blob(from, d, store).await?;
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
            let source = if set.store.has(&digest) {
                Source::Local
            } else if let Some(r) = set.remote.get(&digest) {
                Source::Remote(r.clone())
            } else {
                bail!("blob {digest} of manifest {d} is neither local nor in a known repository");
            };
            blobs.entry(digest.clone()).or_insert(Blob {
                digest,
                size,
                source,
            });
        }
    }
    Ok((children, blobs.into_values().collect()))
}
