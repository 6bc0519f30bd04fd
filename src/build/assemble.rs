//! The assemble step: per platform, the base plus the `[[files]]` layer and
//! the binaries layer, the edited config and the manifest; then the index over
//! them. Everything is written into one store (the output layout's, or the
//! cache when only pushing).

use std::collections::BTreeMap;

use anyhow::Result;

use super::Plan;
use super::bases::Bases;
use super::project::Artifacts;
use super::report::PlatformImage;
use crate::base::{self, BaseSpec};
use crate::cache::Cache;
use crate::oci::annotations as ann;
use crate::oci::image::{self, Base, ImageSpec, NewLayer};
use crate::oci::{BlobStore, Descriptor, Family, Layer, LayerBuilder, LayerOptions, index};
use crate::toolchain::Artifact;
use crate::ui;

/// The index written, and what each platform's image holds.
pub struct Assembled {
    pub index: Descriptor,
    /// The index's entries, as written.
    pub entries: Vec<Descriptor>,
    pub images: Vec<PlatformImage>,
}

pub fn assemble(
    plan: &Plan,
    bases: &Bases,
    artifacts: &Artifacts,
    cache: &Cache,
    store: &BlobStore,
) -> Result<Assembled> {
    let opts = LayerOptions {
        mtime: plan.epoch,
        level: 6,
    };
    let files = plan.files_layer()?;
    let mut files_layers: BTreeMap<&'static str, Layer> = BTreeMap::new();
    let mut builtins: BTreeMap<String, base::Builtin> = BTreeMap::new();
    let mut manifests = Vec::new();
    let mut images = Vec::new();
    let mut families = Vec::new();
    for target in &plan.targets {
        let platform = &target.platform;
        let bins = &artifacts[platform];
        let (base, label) = match bases.get(platform) {
            Some(b) => (b.base.clone(), b.label.clone()),
            None => {
                let BaseSpec::Builtin(name) = &plan.bases[platform] else {
                    unreachable!("image bases are resolved before assembling")
                };
                if !builtins.contains_key(name) {
                    builtins.insert(name.clone(), base::builtin(name, plan.epoch, store)?);
                }
                (builtins[name].for_platform(platform), name.clone())
            }
        };
        let media = base.family.layer_gzip();
        let mut layers = Vec::new();
        if let Some(f) = &files {
            let l = match files_layers.get(media) {
                Some(l) => l.clone(),
                None => {
                    let l = layer(cache, f, opts, media, store, "files")?;
                    files_layers.insert(media, l.clone());
                    l
                }
            };
            layers.push(NewLayer {
                layer: l,
                created_by: "xarch: files".into(),
            });
        }
        let what = format!("{} for {platform}", names(bins).join(", "));
        let bin_layer = layer(cache, &plan.bin_layer(bins)?, opts, media, store, &what)?;
        layers.push(NewLayer {
            layer: bin_layer,
            created_by: format!("xarch: {} → {}", names(bins).join(", "), plan.bin_dir),
        });
        let written = image::write(
            &ImageSpec {
                base: &base,
                platform,
                layers: &layers,
                edits: &plan.edits_for(platform),
                created: &crate::epoch::rfc3339(plan.epoch),
                annotations: &annotations(plan, &base),
            },
            store,
        )?;
        images.push(PlatformImage {
            platform: platform.to_string(),
            digest: written.descriptor.digest.to_string(),
            size: written.total_size,
            binaries: names(bins),
            base: label,
        });
        families.push(base.family);
        manifests.push(written.descriptor);
    }
    // A Docker manifest list only when every image is Docker schema 2.
    let family = if families.iter().all(|f| *f == Family::Docker) {
        Family::Docker
    } else {
        Family::Oci
    };
    let index = index::write(family, &manifests, &plan.annotations, store)?;
    Ok(Assembled {
        index,
        entries: manifests,
        images,
    })
}

/// The plan's annotations, plus the base's name and digest when it has both.
fn annotations(plan: &Plan, base: &Base) -> BTreeMap<String, String> {
    let mut a = plan.annotations.clone();
    if let (Some(n), Some(d)) = (&base.name, &base.digest) {
        a.insert(ann::BASE_NAME.into(), n.clone());
        a.insert(ann::BASE_DIGEST.into(), d.to_string());
    }
    a
}

/// Writes a layer into `store`, or reuses the one an identical earlier build
/// wrote (by fingerprint: entries, modes, and each file's size, mtime, inode;
/// the blob itself verified).
fn layer(
    cache: &Cache,
    b: &LayerBuilder,
    opts: LayerOptions,
    media: &str,
    store: &BlobStore,
    what: &str,
) -> Result<Layer> {
    let key = b.fingerprint(opts, media)?;
    if let Some(l) = cache.find_layer(&key, media, store) {
        ui::status("Fresh", what);
        return Ok(l);
    }
    ui::status("Layering", what);
    let l = b.write(opts, media, store)?;
    cache.remember_layer(&key, &l)?;
    Ok(l)
}

fn names(bins: &[Artifact]) -> Vec<String> {
    bins.iter().map(|b| b.name.clone()).collect()
}
