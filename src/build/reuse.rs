//! `--reuse-from REPO`: builds are reproducible, so an image whose inputs'
//! digest is already in the registry (under the tag `inputs-<hex>`) is that
//! image — reused instead of compiled. After a push, every newly built
//! platform image is tagged there for the next build to find.

use std::collections::BTreeMap;

use anyhow::Result;

use super::inputs::ANNOTATION;
use crate::image::{Ctx, Home, Homes, Image, ImageRef, Source};
use crate::oci::{Descriptor, Digest};
use crate::platform::Platform;
use crate::registry::Reference;
use crate::sink::{self, Destination};
use crate::ui;

/// The tag an image with these inputs is kept under.
pub fn tag(inputs: &Digest) -> String {
    format!("inputs-{}", inputs.hex())
}

/// The images `repo` already holds for these inputs, by platform. An image
/// that is not what its tag promises (another platform, other inputs) is not
/// taken.
pub async fn lookup(
    ctx: &Ctx,
    repo: &Reference,
    inputs: &BTreeMap<Platform, Digest>,
) -> Result<BTreeMap<Platform, Image>> {
    let mut out = BTreeMap::new();
    for (p, d) in inputs {
        let r = repo.with_tag(&tag(d));
        if ctx.client.head_manifest(&r).await?.is_none() {
            continue;
        }
        let src = Source::open(&ImageRef::Registry(r.clone()), ctx)?;
        let img = src.for_platform(p).await?;
        if img.manifest.annotation(ANNOTATION) != Some(d.as_str()) {
            ui::warn(&format!(
                "{r} does not carry its inputs' digest; not reused"
            ));
            continue;
        }
        ui::status(
            "Reusing",
            &format!("{p} {} from {}", img.document.digest.short(), repo.name()),
        );
        out.insert(p.clone(), img);
    }
    Ok(out)
}

/// Where the reused images' blobs are: in `repo`.
pub fn add_homes(repo: &Reference, reused: &BTreeMap<Platform, Image>, homes: &mut Homes) {
    let home = Home::Remote(repo.clone());
    for img in reused.values() {
        homes.add(&home, img.manifest.blobs());
    }
}

/// Tags each newly built platform image in `repo` as `inputs-<hex>`.
pub async fn remember(
    ctx: &Ctx,
    repo: &Reference,
    built: &[Descriptor],
    inputs: &BTreeMap<Platform, Digest>,
    homes: &Homes,
    jobs: usize,
) -> Result<()> {
    for entry in built {
        let Some(d) = entry.platform.as_ref().and_then(|p| inputs.get(p)) else {
            continue;
        };
        let dest = Destination::Registry {
            refs: vec![repo.with_tag(&tag(d))],
        };
        sink::deliver(ctx, entry, homes, &dest, jobs).await?;
    }
    Ok(())
}
