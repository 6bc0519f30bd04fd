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
        let root = source.root().await?.descriptor();
        // Every manifest under the root made local (the source's store, or
        // the cache); every blob found where the source has it.
        let mut homes = Homes::new(ctx.cache.blobs(), &ctx);
        gather(&source, &root, 0, &mut homes).await?;
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

/// The whole tree under `desc` — platform images, attestations, nested
/// indexes — with each manifest read (bounded, verified) and each blob's home
/// recorded.
async fn gather(
    source: &Source<'_>,
    desc: &crate::oci::Descriptor,
    depth: usize,
    homes: &mut Homes,
) -> Result<()> {
    if depth > 4 {
        bail!("indexes nest deeper than 4 levels at {}", desc.digest);
    }
    let doc = source.manifest(desc).await?;
    homes.add(&source.home(), [desc]);
    if doc.is_index() {
        for child in &doc.index()?.manifests {
            Box::pin(gather(source, child, depth + 1, homes)).await?;
        }
    } else {
        homes.add(&source.home(), doc.manifest()?.blobs());
    }
    Ok(())
}
