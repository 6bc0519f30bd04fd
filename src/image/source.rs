//! `Source`: where an existing image is read from — a registry repository
//! (manifests and configs kept in the cache, layers left in the registry until
//! something needs their bytes) or a local OCI layout. Every command reads
//! images through it, so every read is the same: bounded by the size its
//! descriptor declares, hashed, and refused when corrupt.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use super::document::{Config, Document, Index, MAX_CONFIG, MAX_MANIFEST, Manifest};
use super::reference::ImageRef;
use super::{Ctx, Image};
use crate::oci::annotations::REF_NAME;
use crate::oci::{BlobStore, Corrupt, Descriptor, Digest, Layout};
use crate::platform::Platform;
use crate::registry::Reference;
use crate::ui;

pub struct Source<'a> {
    name: ImageRef,
    pub(super) kind: Kind<'a>,
}

pub(super) enum Kind<'a> {
    Registry { reference: Reference, ctx: &'a Ctx },
    Layout { layout: Layout, tag: Option<String> },
}

/// Where a source's blobs are: a local store, or a registry repository.
#[derive(Debug, Clone)]
pub enum Home {
    Local(BlobStore),
    Remote(Reference),
}

/// An image and everything under it: the root document and, for an index, each
/// platform image (attestations and other entries counted in `other`).
pub struct Tree {
    pub root: Document,
    pub index: Option<Index>,
    pub images: Vec<Image>,
    pub other: usize,
}

impl<'a> Source<'a> {
    pub fn open(image: &ImageRef, ctx: &'a Ctx) -> Result<Source<'a>> {
        let kind = match image {
            ImageRef::Registry(r) => Kind::Registry {
                reference: r.clone(),
                ctx,
            },
            ImageRef::Layout { dir, tag } => Kind::Layout {
                layout: Layout::open(dir)?,
                tag: tag.clone(),
            },
            ImageRef::Archive { file, tag } => Kind::Layout {
                layout: Layout::open(&unpacked(file, ctx)?)?,
                tag: tag.clone(),
            },
        };
        Ok(Source {
            name: image.clone(),
            kind,
        })
    }

    /// The reference as given.
    pub fn name(&self) -> &ImageRef {
        &self.name
    }

    /// `NAME@DIGEST`, for messages and reports.
    pub fn pinned(&self, digest: &Digest) -> String {
        self.name.pinned(digest)
    }

    pub fn home(&self) -> Home {
        match &self.kind {
            Kind::Registry { reference, .. } => Home::Remote(reference.clone()),
            Kind::Layout { layout, .. } => Home::Local(layout.blobs().clone()),
        }
    }

    /// The tag the image was read under (a layout's resolved entry's ref name).
    pub fn tag(&self) -> Result<Option<String>> {
        Ok(match &self.kind {
            Kind::Registry { reference, .. } => reference.tag.clone(),
            Kind::Layout { layout, tag } => match tag {
                Some(t) => Some(t.clone()),
                None => layout.resolve(None)?.annotation(REF_NAME).map(String::from),
            },
        })
    }

    /// The manifest or index the reference names, exactly as stored or served.
    pub async fn root(&self) -> Result<Document> {
        match &self.kind {
            Kind::Registry { reference, ctx } => registry_manifest(ctx, reference).await,
            Kind::Layout { layout, tag } => {
                let desc = layout.resolve(tag.as_deref())?;
                self.manifest(&desc).await
            }
        }
    }

    /// A manifest of the same repository or layout, by its descriptor: bounded
    /// by the descriptor's size (and 4 MiB), verified.
    pub async fn manifest(&self, desc: &Descriptor) -> Result<Document> {
        if desc.size > MAX_MANIFEST {
            bail!(
                "{}: manifest {} is {} bytes, more than the 4 MiB allowed",
                self.name,
                desc.digest,
                desc.size
            );
        }
        let doc = match &self.kind {
            Kind::Registry { reference, ctx } => {
                registry_manifest(ctx, &reference.with_digest(&desc.digest)).await?
            }
            Kind::Layout { layout, .. } => {
                let bytes = layout.blobs().read_bounded(&desc.digest, desc.size)?;
                Document::new(bytes, desc.digest.clone(), Some(&desc.media_type))
            }
        };
        if doc.bytes.len() as u64 != desc.size {
            bail!(
                "{}: manifest {} is {} bytes, but its descriptor says {}",
                self.name,
                desc.digest,
                doc.bytes.len(),
                desc.size
            );
        }
        Ok(doc)
    }

    /// A small blob's bytes (a config), bounded by its descriptor and verified.
    pub async fn blob(&self, desc: &Descriptor, max: u64) -> Result<Vec<u8>> {
        if desc.size > max {
            bail!(
                "{}: blob {} is {} bytes, more than the {max} allowed for it",
                self.name,
                desc.digest,
                desc.size
            );
        }
        let store = self.fetch(desc).await?;
        store.read_bounded(&desc.digest, desc.size)
    }

    /// Makes the blob local (a layout's own store, or the cache for a registry)
    /// and returns the store that holds it, verified.
    pub async fn fetch(&self, desc: &Descriptor) -> Result<BlobStore> {
        match &self.kind {
            Kind::Layout { layout, .. } => {
                layout.blobs().verify(&desc.digest, Some(desc.size))?;
                Ok(layout.blobs().clone())
            }
            Kind::Registry { reference, ctx } => {
                ctx.cached_or_fetch(reference, desc).await?;
                Ok(ctx.cache.blobs().clone())
            }
        }
    }

    /// An image's config, bounded and verified.
    pub async fn config(&self, m: &Manifest) -> Result<Config> {
        let bytes = self.blob(&m.config, MAX_CONFIG).await?;
        Config::parse(bytes, m.config.digest.clone())
    }

    /// The image a manifest descriptor names: manifest and config. Its platform
    /// is the descriptor's, else the config's.
    pub async fn image(&self, desc: &Descriptor) -> Result<Image> {
        let doc = self.manifest(desc).await?;
        self.image_of(doc, Some(desc.clone())).await
    }

    async fn image_of(&self, doc: Document, entry: Option<Descriptor>) -> Result<Image> {
        let manifest = doc.manifest()?;
        let config = self.config(&manifest).await?;
        let platform = match entry.as_ref().and_then(|e| e.platform.clone()) {
            Some(p) => p,
            None => config.platform().with_context(|| {
                format!(
                    "the config of {} names no os and architecture",
                    self.pinned(&doc.digest)
                )
            })?,
        };
        // An entry without a platform (or none at all) records the config's.
        let descriptor = match (entry, config.platform_json()) {
            (Some(e), _) if e.platform.is_some() => e,
            (e, Some(p)) => e.unwrap_or_else(|| doc.descriptor()).with_platform_json(p),
            (e, None) => e.unwrap_or_else(|| doc.descriptor()),
        };
        Ok(Image {
            platform,
            descriptor,
            document: doc,
            manifest,
            config,
        })
    }

    /// The root and every platform image under it.
    pub async fn tree(&self) -> Result<Tree> {
        let root = self.root().await?;
        if !root.is_index() {
            let image = self.image_of(root.clone(), None).await?;
            return Ok(Tree {
                root,
                index: None,
                images: vec![image],
                other: 0,
            });
        }
        let index = root.index()?;
        let (entries, other) = index.images()?;
        let mut images = Vec::new();
        for e in entries {
            images.push(self.image(e).await?);
        }
        Ok(Tree {
            root,
            index: Some(index),
            images,
            other,
        })
    }

    /// The image for each of `platforms`: from an index, its entry for each;
    /// a single manifest serves only its own platform.
    pub async fn for_platforms(&self, platforms: &[Platform]) -> Result<BTreeMap<Platform, Image>> {
        let root = self.root().await?;
        let mut out = BTreeMap::new();
        if root.is_index() {
            let index = root.index()?;
            for p in platforms {
                let e = index.select(p, &self.name.to_string())?;
                out.insert(p.clone(), self.image(e).await?);
            }
            return Ok(out);
        }
        let image = self.image_of(root, None).await?;
        for p in platforms {
            if *p != image.platform {
                bail!(
                    "{} is a single-platform image for {}; it cannot be used for {p}",
                    self.name,
                    image.platform
                );
            }
            out.insert(p.clone(), image.clone());
        }
        Ok(out)
    }

    /// The image for one platform (an index's entry, or a single manifest of
    /// that platform).
    pub async fn for_platform(&self, platform: &Platform) -> Result<Image> {
        let mut m = self.for_platforms(std::slice::from_ref(platform)).await?;
        m.remove(platform).context("no image for the platform")
    }
}

/// The layout inside an OCI archive, unpacked once into the cache (keyed by
/// the file's identity, so a changed file is unpacked again); its blobs are
/// verified on use like any layout's.
fn unpacked(file: &std::path::Path, ctx: &Ctx) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    let abs = std::path::absolute(file)?;
    let id = format!(
        "{}\0{}\0{}\0{}\0{}",
        abs.display(),
        m.len(),
        m.mtime_nsec() + m.mtime() * 1_000_000_000,
        m.ctime_nsec() + m.ctime() * 1_000_000_000,
        m.ino()
    );
    let key = Digest::of(id.as_bytes());
    let root = ctx.cache.root().join("archives");
    let dir = root.join(&key.hex()[..32]);
    if dir.join("oci-layout").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root)?;
    let tmp = tempfile::tempdir_in(&root)?;
    crate::oci::archive::unpack(file, tmp.path())?;
    match std::fs::rename(tmp.path(), &dir) {
        Ok(()) => {
            let _ = tmp.keep();
        }
        // Another run unpacked it first: use theirs.
        Err(_) if dir.join("oci-layout").is_file() => {}
        Err(e) => return Err(e).with_context(|| format!("cannot unpack into {}", dir.display())),
    }
    Ok(dir)
}

/// A manifest from a registry, through the cache: by digest from the cache
/// when known (a pinned reference needs no network, `--offline` uses what a tag
/// last resolved to), else fetched, verified and kept.
async fn registry_manifest(ctx: &Ctx, r: &Reference) -> Result<Document> {
    let known = r
        .digest
        .clone()
        .or_else(|| ctx.offline.then(|| ctx.cache.tag_digest(r)).flatten());
    if let Some(d) = &known
        && let Some(bytes) = ctx.cached(d, MAX_MANIFEST)?
    {
        return Ok(Document::new(bytes, d.clone(), None));
    }
    if ctx.offline {
        bail!("{r} is not in the cache and --offline forbids fetching it");
    }
    let f = ctx.client.get_manifest(r).await?;
    ctx.cache.blobs().put(&f.bytes)?;
    if r.digest.is_none() {
        ctx.cache.remember_tag(r, &f.digest)?;
    }
    Ok(Document::new(f.bytes, f.digest, Some(&f.media_type)))
}

impl Ctx {
    /// A cached blob's bytes when the cache holds it intact. A corrupt one is
    /// reported, removed, and treated as absent (so it is fetched again).
    pub fn cached(&self, d: &Digest, max: u64) -> Result<Option<Vec<u8>>> {
        let store = self.cache.blobs();
        if !store.has(d) {
            return Ok(None);
        }
        match store.read_bounded(d, max) {
            Ok(b) => Ok(Some(b)),
            Err(e) => self.evict(d, e).map(|()| None),
        }
    }

    /// Makes `desc` present and intact in the cache: a corrupt cached copy is
    /// removed and fetched again (online), a missing one fetched.
    pub async fn cached_or_fetch(&self, r: &Reference, desc: &Descriptor) -> Result<()> {
        let store = self.cache.blobs();
        if store.has(&desc.digest) {
            match store.verify(&desc.digest, Some(desc.size)) {
                Ok(()) => return Ok(()),
                Err(e) => self.evict(&desc.digest, e)?,
            }
        }
        if self.offline {
            bail!(
                "blob {} of {} is not in the cache and --offline forbids fetching it",
                desc.digest,
                r.name()
            );
        }
        self.fetch_blob(r, desc, store, None).await
    }

    /// Downloads a blob from `r` into `store`, bounded by its descriptor's size
    /// and verified.
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        store: &BlobStore,
        bar: Option<&indicatif::ProgressBar>,
    ) -> Result<()> {
        let got = self
            .client
            .fetch_blob(r, &desc.digest, desc.size, store, bar)
            .await?;
        if got != desc.size {
            bail!(
                "blob {} from {} is {got} bytes, but its descriptor says {}",
                desc.digest,
                r.name(),
                desc.size
            );
        }
        Ok(())
    }

    /// A corrupt cache file: said, removed (the cache is ours to repair).
    fn evict(&self, d: &Digest, e: anyhow::Error) -> Result<()> {
        if e.downcast_ref::<Corrupt>().is_none() {
            return Err(e);
        }
        ui::warn(&format!("{e:#}; removed from the cache"));
        let path = self.cache.blobs().path(d);
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        if self.offline {
            return Err(
                e.context("the cache held a corrupt copy and --offline forbids fetching it again")
            );
        }
        Ok(())
    }
}
