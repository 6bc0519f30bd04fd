//! `Source`: where existing images are read from — a registry repository
//! (through the `Client`, with manifests and configs kept in the cache) or a
//! local OCI layout. Every manifest and blob is checked against its digest.

use anyhow::{Context, Result, bail};

use crate::cache::Cache;
use crate::oci::{BlobStore, Digest, Layout, media};
use crate::registry::remote::Fetched;
use crate::registry::{Client, ImageRef, Reference, pull};

pub enum Source<'a> {
    Registry {
        reference: Reference,
        client: &'a Client,
        cache: &'a Cache,
    },
    Layout {
        layout: Layout,
        tag: Option<String>,
        /// `oci:DIR[:TAG]`, for messages.
        name: String,
    },
}

impl<'a> Source<'a> {
    pub fn open(image: &ImageRef, client: &'a Client, cache: &'a Cache) -> Result<Source<'a>> {
        Ok(match image {
            ImageRef::Registry(r) => Source::Registry {
                reference: r.clone(),
                client,
                cache,
            },
            ImageRef::Layout { dir, tag } => Source::Layout {
                layout: Layout::open(dir)?,
                tag: tag.clone(),
                name: image.to_string(),
            },
        })
    }

    /// The reference as given (a registry reference or `oci:DIR[:TAG]`).
    pub fn name(&self) -> String {
        match self {
            Source::Registry { reference, .. } => reference.to_string(),
            Source::Layout { name, .. } => name.clone(),
        }
    }

    /// `name` pinned to `digest`: `registry/repo@digest`, or `oci:DIR@digest`.
    pub fn pinned(&self, digest: &Digest) -> String {
        match self {
            Source::Registry { reference, .. } => reference.with_digest(digest).to_string(),
            Source::Layout { layout, .. } => format!("oci:{}@{digest}", layout.root().display()),
        }
    }

    /// The registry repository, when the source is one.
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            Source::Registry { reference, .. } => Some(reference),
            Source::Layout { .. } => None,
        }
    }

    /// The manifest or index the reference names, exactly as stored or served.
    pub async fn root(&self) -> Result<Fetched> {
        match self {
            Source::Registry {
                reference,
                client,
                cache,
            } => pull::manifest(client, reference, cache, false).await,
            Source::Layout { layout, tag, .. } => {
                let desc = layout.resolve(tag.as_deref())?;
                let digest: Digest = desc.digest().to_string().parse()?;
                read_manifest(layout.blobs(), &digest, Some(desc.media_type().to_string()))
            }
        }
    }

    /// A manifest of the same repository or layout, by digest.
    pub async fn manifest(&self, digest: &Digest) -> Result<Fetched> {
        match self {
            Source::Registry {
                reference,
                client,
                cache,
            } => pull::manifest(client, &reference.with_digest(digest), cache, false).await,
            Source::Layout { layout, .. } => read_manifest(layout.blobs(), digest, None),
        }
    }

    /// A small blob's bytes (a config) of its descriptor's `size`, verified.
    pub async fn blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        match self {
            Source::Registry {
                reference,
                client,
                cache,
            } => {
                if !cache.blobs().has(digest) {
                    client
                        .fetch_blob(reference, digest, size, cache.blobs(), None)
                        .await?;
                }
                cache.blobs().read(digest)
            }
            Source::Layout { layout, .. } => {
                let bytes = layout.blobs().read(digest)?;
                check(&bytes, digest, &self.name())?;
                Ok(bytes)
            }
        }
    }

    /// Copies a blob into `store` (verified), unless it is there already.
    pub async fn copy_blob(&self, digest: &Digest, size: u64, store: &BlobStore) -> Result<()> {
        if store.has(digest) {
            return Ok(());
        }
        match self {
            Source::Registry {
                reference,
                client,
                cache,
            } => {
                if cache.blobs().has(digest) {
                    store.copy_from(cache.blobs(), digest)
                } else {
                    client
                        .fetch_blob(reference, digest, size, store, None)
                        .await?;
                    Ok(())
                }
            }
            Source::Layout { layout, .. } => store.copy_from(layout.blobs(), digest),
        }
    }
}

/// A manifest from a layout's blob store: its bytes must hash to its name.
fn read_manifest(
    store: &BlobStore,
    digest: &Digest,
    media_type: Option<String>,
) -> Result<Fetched> {
    let bytes = store.read(digest)?;
    check(&bytes, digest, "the layout")?;
    let media_type = media_type
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| media::of_document(&bytes));
    Ok(Fetched {
        bytes,
        media_type,
        digest: digest.clone(),
    })
}

fn check(bytes: &[u8], digest: &Digest, whose: &str) -> Result<()> {
    let got = Digest::of(bytes);
    if &got != digest {
        bail!("blob {digest} in {whose} is corrupt: its bytes hash to {got}");
    }
    Ok(())
}

/// Parses a manifest or index, naming it in the error.
pub fn parse(f: &Fetched) -> Result<serde_json::Value> {
    serde_json::from_slice(&f.bytes).with_context(|| format!("manifest {} is not JSON", f.digest))
}
