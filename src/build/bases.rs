//! The bases step: every platform's base, resolved before anything compiles
//! (so a missing platform costs no compile). Built-in bases are made when the
//! image is assembled; image bases (a registry or a layout) are read here
//! through the one `Source`, manifests and configs only.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};

use super::Plan;
use crate::base::BaseSpec;
use crate::image::{Ctx, Home, Homes, ImageRef, Source};
use crate::oci::Layout;
use crate::oci::image::Base;
use crate::platform::Platform;
use crate::ui;

/// A base read from an image, and where its layers are.
pub struct ImageBase {
    pub base: Base,
    pub home: Home,
    /// How the image names it in messages and the report.
    pub label: String,
}

/// The image bases, by platform (platforms on a built-in base are absent).
pub type Bases = BTreeMap<Platform, ImageBase>;

/// Resolves every image base, one `Source` per reference for all the
/// platforms that share it.
pub async fn resolve(ctx: &Ctx, plan: &Plan) -> Result<Bases> {
    let mut by_ref: BTreeMap<String, (ImageRef, Vec<Platform>)> = BTreeMap::new();
    for (p, spec) in &plan.bases {
        if let BaseSpec::Image(r) = spec {
            by_ref
                .entry(r.to_string())
                .or_insert_with(|| (r.clone(), vec![]))
                .1
                .push(p.clone());
        }
    }
    let mut out = BTreeMap::new();
    for (r, platforms) in by_ref.into_values() {
        ui::status("Resolving", &format!("base {r} for {}", join(&platforms)));
        let src = Source::open(&r, ctx)?;
        // `base.name` names a registry image; a layout path names nothing portable.
        let name = r.registry().map(|x| x.to_string());
        for (p, img) in src.for_platforms(&platforms).await? {
            let base = img.as_base(name.clone());
            out.insert(
                p,
                ImageBase {
                    base,
                    home: src.home(),
                    label: r.to_string(),
                },
            );
        }
    }
    Ok(out)
}

/// Where every base layer is.
pub fn add_homes(bases: &Bases, homes: &mut Homes) {
    for b in bases.values() {
        homes.add(&b.home, &b.base.layers);
    }
}

/// `--offline` never fetches, so a layout must get every registry base layer
/// from the cache or hold it already. Checked before compiling, to fail early.
pub fn check_offline(bases: &Bases, ctx: &Ctx, layout: Option<&Path>) -> Result<()> {
    let layout = layout.and_then(|d| Layout::open(d).ok());
    for b in bases.values() {
        let Home::Remote(r) = &b.home else { continue };
        for l in &b.base.layers {
            let held = layout.as_ref().is_some_and(|x| x.blobs().has(&l.digest));
            if !held && !ctx.cache.blobs().has(&l.digest) {
                bail!(
                    "base layer {} of {r} is in neither the cache nor the layout, and --offline \
                     forbids fetching it",
                    l.digest
                );
            }
        }
    }
    Ok(())
}

pub fn join(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
