//! `xarch push SOURCE TARGET…`: an image or index, read from a layout or a
//! registry, delivered to registries and/or layouts — the whole tree, with its
//! attestations, byte for byte (so the digest stays the same).

use anyhow::{Result, bail};

use crate::image::{Ctx, Homes, ImageRef, Source};
use crate::oci::Descriptor;
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
        let mut referrers = Vec::new();
        gather(&source, &root, 0, &mut homes, &mut referrers).await?;
        let mut out = Pushed {
            digest: root.digest.clone(),
            pinned: vec![],
            stats: None,
        };
        for d in &dests {
            let done = sink::deliver_with(&ctx, &root, &referrers, &homes, d, jobs).await?;
            out.pinned.extend(done.pinned);
            out.stats = done.push.or(out.stats.take());
        }
        Ok(out)
    })?
}

/// The whole tree under `desc` — platform images, attestations, nested
/// indexes — with each manifest read (bounded, verified) and each blob's home
/// recorded; and the referrers of every manifest in it (signatures, SBOMs,
/// and their own referrers), in `referrers`.
async fn gather(
    source: &Source<'_>,
    desc: &Descriptor,
    depth: usize,
    homes: &mut Homes,
    referrers: &mut Vec<Descriptor>,
) -> Result<()> {
    if depth > 4 {
        bail!("manifests nest deeper than 4 levels at {}", desc.digest);
    }
    let doc = source.manifest(desc).await?;
    homes.add(&source.home(), [desc]);
    if doc.is_index() {
        for child in &doc.index()?.manifests {
            Box::pin(gather(source, child, depth + 1, homes, referrers)).await?;
        }
    } else {
        homes.add(&source.home(), doc.manifest()?.blobs());
    }
    for r in source.referrers(&desc.digest).await? {
        if !referrers.iter().any(|x| x.digest == r.digest) {
            referrers.push(r.clone());
            Box::pin(gather(source, &r, depth + 1, homes, referrers)).await?;
        }
    }
    Ok(())
}
