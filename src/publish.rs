//! `xarch push SOURCE TARGET…`: an image or index, read from a layout or a
//! registry, delivered to registries and/or layouts — the whole tree, with its
//! attestations, byte for byte (so the digest stays the same).

use anyhow::{Result, bail};

use crate::image::{Ctx, Homes, ImageRef, Source};
use crate::oci::Digest;
use crate::registry::Options;
use crate::runtime;
use crate::sink::{self, Destination, PushStats};

/// What a push did.
pub struct Pushed {
    pub digest: Digest,
    /// `NAME@DIGEST` for each target.
    pub pinned: Vec<String>,
    pub stats: Option<PushStats>,
}

pub fn push(src: &ImageRef, targets: &[ImageRef], opts: Options, jobs: usize) -> Result<Pushed> {
    if targets.is_empty() {
        bail!("nothing to push to");
    }
    let dests = Destination::group(targets)?;
    let ctx = Ctx::new(opts, false)?;
    runtime::block_on(async {
        let source = Source::open(src, &ctx)?;
        let tree = source.tree().await?;
        let root = tree.root.descriptor();
        // The tree's manifests and configs are local now (the source's store,
        // or the cache); layers stay where the source has them.
        let mut homes = Homes::new(ctx.cache.blobs(), &ctx);
        let layers = tree.images.iter().flat_map(|i| &i.manifest.layers);
        homes.add(&source.home(), layers);
        if let Some(index) = &tree.index {
            fetch_other_entries(&source, index, &mut homes).await?;
        }
        let mut out = Pushed {
            digest: root.digest.clone(),
            pinned: vec![],
            stats: None,
        };
        for d in &dests {
            let done = sink::deliver(&ctx, &root, &homes, d, jobs).await?;
            out.pinned.extend(done.pinned);
            out.stats = done.push.or(out.stats.take());
        }
        Ok(out)
    })?
}

/// Index entries that are not platform images (attestations, artifacts) are
/// carried too: their manifests made local, their blobs found where they are.
async fn fetch_other_entries(
    source: &Source<'_>,
    index: &crate::image::Index,
    homes: &mut Homes,
) -> Result<()> {
    let (images, _) = index.images()?;
    for e in index.manifests.iter().filter(|e| !images.contains(e)) {
        let doc = source.manifest(e).await?;
        if !doc.is_index() {
            homes.add(&source.home(), doc.manifest()?.blobs());
        }
    }
    Ok(())
}
