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
use crate::oci::{BlobStore, Descriptor, Digest, Family, Layer, LayerBuilder, LayerOptions, index};
use crate::platform::Platform;
use crate::toolchain::Artifact;
use crate::ui;

/// The index written, and what each platform's image holds.
pub struct Assembled {
    pub index: Descriptor,
    /// The index's entries, as written.
    pub entries: Vec<Descriptor>,
    pub images: Vec<PlatformImage>,
}

/// What the images are made of: the bases, the compiled binaries, each
/// platform's inputs' digest, and the images `--reuse-from` found instead.
pub struct Parts<'a> {
    pub bases: &'a Bases,
    pub artifacts: &'a Artifacts,
    pub inputs: &'a BTreeMap<Platform, Digest>,
    pub reused: &'a BTreeMap<Platform, crate::image::Image>,
}

/// Layers shared between platforms: `[[files]]` per media type, built-in bases.
#[derive(Default)]
struct Shared {
    files: BTreeMap<&'static str, Layer>,
    builtins: BTreeMap<String, base::Builtin>,
}

pub fn assemble(plan: &Plan, parts: &Parts, cache: &Cache, store: &BlobStore) -> Result<Assembled> {
    let w = Writer {
        plan,
        cache,
        store,
        files: plan.files_layer()?,
    };
    let mut shared = Shared::default();
    let mut manifests = Vec::new();
    let mut images = Vec::new();
    let mut families = Vec::new();
    for target in &plan.targets {
        let platform = &target.platform;
        let (entry, image, family) = match parts.reused.get(platform) {
            Some(img) => reused(img),
            None => w.image(parts, platform, &mut shared)?,
        };
        images.push(image);
        families.push(family);
        manifests.push(entry);
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

/// A platform image `--reuse-from` found: its entry as it is.
fn reused(img: &crate::image::Image) -> (Descriptor, PlatformImage, Family) {
    let size = img.document.bytes.len() as u64 + img.manifest.blobs().map(|b| b.size).sum::<u64>();
    let image = PlatformImage {
        platform: img.platform.to_string(),
        digest: img.document.digest.to_string(),
        size,
        binaries: vec![],
        base: "reused".into(),
    };
    (img.descriptor.clone(), image, img.manifest.family())
}

/// Writes one platform's layers, config and manifest.
struct Writer<'a> {
    plan: &'a Plan,
    cache: &'a Cache,
    store: &'a BlobStore,
    files: Option<LayerBuilder>,
}

impl Writer<'_> {
    fn image(
        &self,
        parts: &Parts,
        platform: &Platform,
        shared: &mut Shared,
    ) -> Result<(Descriptor, PlatformImage, Family)> {
        let plan = self.plan;
        let bins = &parts.artifacts[platform];
        let (base, label) = self.base(parts.bases, platform, shared)?;
        // zstd layers need OCI media types: a Docker schema 2 base is retyped.
        let base = base.in_family(plan.compression.family_for(base.family))?;
        let media = plan.compression.media_type(base.family);
        let mut layers = Vec::new();
        if let Some(f) = &self.files {
            let l = match shared.files.get(media) {
                Some(l) => l.clone(),
                None => {
                    let l = self.layer(f, media, "files")?;
                    shared.files.insert(media, l.clone());
                    l
                }
            };
            layers.push(NewLayer {
                layer: l,
                created_by: "xarch: files".into(),
            });
        }
        let what = format!("{} for {platform}", names(bins).join(", "));
        layers.push(NewLayer {
            layer: self.layer(&plan.bin_layer(bins)?, media, &what)?,
            created_by: format!("xarch: {} → {}", names(bins).join(", "), plan.bin_dir),
        });
        let mut annotations = annotations(plan, &base);
        if let Some(d) = parts.inputs.get(platform) {
            annotations.insert(super::inputs::ANNOTATION.into(), d.to_string());
        }
        let written = image::write(
            &ImageSpec {
                base: &base,
                platform,
                layers: &layers,
                edits: &plan.edits_for(platform),
                created: &crate::epoch::rfc3339(plan.epoch),
                annotations: &annotations,
            },
            self.store,
        )?;
        let image = PlatformImage {
            platform: platform.to_string(),
            digest: written.descriptor.digest.to_string(),
            size: written.total_size,
            binaries: names(bins),
            base: label,
        };
        Ok((written.descriptor, image, base.family))
    }

    /// The platform's base: an image base as resolved, or a built-in one (its
    /// layer written once per build).
    fn base(
        &self,
        bases: &Bases,
        platform: &Platform,
        shared: &mut Shared,
    ) -> Result<(Base, String)> {
        if let Some(b) = bases.get(platform) {
            return Ok((b.base.clone(), b.label.clone()));
        }
        let BaseSpec::Builtin(name) = &self.plan.bases[platform] else {
            unreachable!("image bases are resolved before assembling")
        };
        if !shared.builtins.contains_key(name) {
            let write = |b: &LayerBuilder, opts, media: &str| {
                layer(
                    self.cache,
                    b,
                    opts,
                    media,
                    self.store,
                    &format!("{name} base"),
                )
            };
            let built = base::builtin_with(name, self.plan.epoch, write)?;
            shared.builtins.insert(name.clone(), built);
        }
        Ok((shared.builtins[name].for_platform(platform), name.clone()))
    }

    fn layer(&self, b: &LayerBuilder, media: &str, what: &str) -> Result<Layer> {
        let opts = LayerOptions {
            mtime: self.plan.epoch,
            compression: self.plan.compression,
            threads: self.plan.jobs,
        };
        layer(self.cache, b, opts, media, self.store, what)
    }
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
