//! `Homes`: where each blob's bytes can be had — local stores (the cache,
//! layouts read from, the store an image was just written to), searched in
//! order, and for blobs only a registry holds, the repository that has them
//! (which a push can mount from, on the same registry).

use std::collections::HashMap;

use anyhow::{Result, bail};

use super::document::{Config, Document, MAX_MANIFEST};
use super::source::Home;
use super::{Ctx, Image};
use crate::oci::{BlobStore, Corrupt, Descriptor, Digest};
use crate::registry::Reference;
use crate::ui;

#[derive(Debug, Clone, Default)]
pub struct Homes {
    local: Vec<BlobStore>,
    remote: HashMap<Digest, Reference>,
}

impl Homes {
    /// Homes with `first` searched first (where new blobs were written), then
    /// the cache.
    pub fn new(first: &BlobStore, ctx: &Ctx) -> Homes {
        let mut h = Homes::default();
        h.add_local(first);
        h.add_local(ctx.cache.blobs());
        h
    }

    /// A local store, searched after those already known (each once).
    pub fn add_local(&mut self, store: &BlobStore) {
        if !self.local.iter().any(|s| s.dir() == store.dir()) {
            self.local.push(store.clone());
        }
    }

    /// Records that `blobs` are at `home`.
    pub fn add<'d>(&mut self, home: &Home, blobs: impl IntoIterator<Item = &'d Descriptor>) {
        match home {
            Home::Local(s) => self.add_local(s),
            Home::Remote(r) => {
                for d in blobs {
                    self.remote
                        .entry(d.digest.clone())
                        .or_insert_with(|| r.clone());
                }
            }
        }
    }

    pub fn remote(&self, d: &Digest) -> Option<&Reference> {
        self.remote.get(d)
    }

    /// A local store holding the blob intact. A corrupt local copy is an error
    /// (naming the file and both digests) unless a registry can give the blob.
    pub fn local(&self, desc: &Descriptor) -> Result<Option<&BlobStore>> {
        let mut corrupt = None;
        for s in &self.local {
            if !s.has(&desc.digest) {
                continue;
            }
            match s.verify(&desc.digest, Some(desc.size)) {
                Ok(()) => return Ok(Some(s)),
                Err(e) if e.downcast_ref::<Corrupt>().is_some() => {
                    corrupt.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        match corrupt {
            Some(e) if self.remote(&desc.digest).is_none() => Err(e),
            _ => Ok(None),
        }
    }

    /// The store's first (where new blobs go).
    pub fn first(&self) -> &BlobStore {
        &self.local[0]
    }

    /// A manifest from the local stores, bounded and verified.
    pub fn manifest(&self, desc: &Descriptor) -> Result<Document> {
        if desc.size > MAX_MANIFEST {
            bail!(
                "manifest {} is {} bytes, more than the 4 MiB allowed",
                desc.digest,
                desc.size
            );
        }
        let Some(store) = self.local(desc)? else {
            bail!("manifest {} is in no local store", desc.digest);
        };
        let bytes = store.read_bounded(&desc.digest, desc.size)?;
        Ok(Document::new(
            bytes,
            desc.digest.clone(),
            Some(&desc.media_type),
        ))
    }

    /// An image whose manifest and config are in the local stores (one just
    /// written), named by its index entry.
    pub fn image(&self, entry: &Descriptor) -> Result<Image> {
        let document = self.manifest(entry)?;
        let manifest = document.manifest()?;
        let Some(store) = self.local(&manifest.config)? else {
            bail!("config {} is in no local store", manifest.config.digest);
        };
        let bytes = store.read_bounded(&manifest.config.digest, manifest.config.size)?;
        let config = Config::parse(bytes, manifest.config.digest.clone())?;
        let Some(platform) = entry.platform.clone().or_else(|| config.platform()) else {
            bail!("image {} names no platform", entry.digest);
        };
        Ok(Image {
            platform,
            descriptor: entry.clone(),
            document,
            manifest,
            config,
        })
    }

    /// A store holding the blob: a local one, else the cache after fetching it
    /// from its registry (verified).
    pub async fn ensure_local(&self, ctx: &Ctx, desc: &Descriptor) -> Result<BlobStore> {
        if let Some(s) = self.local(desc)? {
            return Ok(s.clone());
        }
        let Some(r) = self.remote(&desc.digest) else {
            bail!(
                "blob {} is in no layout, cache or registry xarch knows of",
                desc.digest
            );
        };
        ui::status(
            "Fetching",
            &format!("{} from {}", desc.digest.short(), r.name()),
        );
        ctx.cached_or_fetch(r, desc).await?;
        Ok(ctx.cache.blobs().clone())
    }

    /// Puts the blob into `dest` (unless it holds it already): copied from a
    /// local store, else fetched from its registry straight into `dest`.
    pub async fn copy_into(&self, ctx: &Ctx, desc: &Descriptor, dest: &BlobStore) -> Result<()> {
        if dest.holds(&desc.digest, Some(desc.size)) {
            return Ok(());
        }
        if let Some(s) = self.local(desc)? {
            return dest.copy_from(s, &desc.digest, Some(desc.size));
        }
        let Some(r) = self.remote(&desc.digest) else {
            bail!(
                "blob {} is in no layout, cache or registry xarch knows of",
                desc.digest
            );
        };
        if ctx.offline {
            bail!(
                "blob {} of {} is not in the cache and --offline forbids fetching it",
                desc.digest,
                r.name()
            );
        }
        ui::status(
            "Fetching",
            &format!("{} from {}", desc.digest.short(), r.name()),
        );
        ctx.fetch_blob(r, desc, dest, None).await
    }
}
