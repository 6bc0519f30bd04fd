//! `xarch rebase`: move an image, or every platform of an index, from the base
//! it was built on to a new one. Per platform the old base's layers must be the
//! start of the image; they are replaced by the new base's layers for that
//! platform, the config's diff_ids and history follow, and the app layers stay
//! byte for byte. Every check runs before anything is written or pushed.

pub mod image;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::image::{Ctx, Homes, ImageRef, Source, Tree};
use crate::oci::{BlobStore, Descriptor, Digest, json as canonical};
use crate::platform::Platform;
use crate::registry::{Options, Reference};
use crate::sink::{self, Destination, PushStats};
use crate::{runtime, ui};
use image::{NamedBase, Rebased};

/// `xarch rebase IMAGE --base NEWBASE [--old-base OLDBASE] [-t TARGET …]`.
pub struct Request {
    pub image: String,
    pub base: String,
    pub old_base: Option<String>,
    /// Registry references (pushed) or `oci:DIR:TAG`; empty: IMAGE's own tag.
    pub targets: Vec<String>,
    pub registry: Options,
    pub jobs: usize,
}

/// What a rebase wrote, for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub digest: String,
    pub media_type: String,
    pub images: Vec<PlatformReport>,
    /// `REF@DIGEST` (or `oci:DIR:TAG@DIGEST`) for each target.
    pub targets: Vec<String>,
    pub push: Option<PushStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    pub platform: String,
    pub digest: String,
    pub old_base: String,
    pub new_base: String,
    pub old_base_layers: usize,
    pub new_base_layers: usize,
    pub app_layers: usize,
}

/// The rebased images and index, written into the cache.
struct Output {
    root: Descriptor,
    digests: Vec<Digest>,
}

pub fn run(req: &Request) -> Result<Report> {
    let image: ImageRef = req.image.parse()?;
    let new_spec: ImageRef = req.base.parse()?;
    let old_spec: Option<ImageRef> = req.old_base.as_deref().map(str::parse).transpose()?;
    let ctx = Ctx::new(req.registry.clone(), false)?;
    runtime::block_on(rebase(&ctx, req, &image, &new_spec, old_spec.as_ref()))?
}

async fn rebase(
    ctx: &Ctx,
    req: &Request,
    image: &ImageRef,
    new_spec: &ImageRef,
    old_spec: Option<&ImageRef>,
) -> Result<Report> {
    let src = Source::open(image, ctx)?;
    let tree = src.tree().await?;
    let dests = targets(&req.targets, image, &src)?;
    if tree.other > 0 {
        ui::warn(&format!(
            "{} index entries that are not platform images (attestations) are left out: they describe the old images",
            tree.other
        ));
    }
    let platforms: Vec<Platform> = tree.images.iter().map(|i| i.platform.clone()).collect();
    let mut homes = Homes::new(ctx.cache.blobs(), ctx);
    for img in &tree.images {
        homes.add(&src.home(), img.manifest.blobs());
    }
    ui::status(
        "Resolving",
        &format!("new base {new_spec} for {}", join(&platforms)),
    );
    let new = bases(ctx, new_spec, &platforms, Some(&mut homes)).await?;
    let old = match old_spec {
        Some(s) => bases(ctx, s, &platforms, None).await?,
        None => annotated_bases(ctx, &tree, image).await?,
    };
    let rebased = tree
        .images
        .iter()
        .map(|img| image::rebase(img, &old[&img.platform], &new[&img.platform]))
        .collect::<Result<Vec<_>>>()?;
    let out = write(&tree, &rebased, ctx.cache.blobs())?;
    let images = report_images(&tree, &rebased, &out, &old, &new);
    let mut done = Vec::new();
    let mut push = None;
    for d in &dests {
        let delivered = sink::deliver(ctx, &out.root, &homes, d, req.jobs).await?;
        done.extend(delivered.pinned);
        push = delivered.push.or(push);
    }
    Ok(Report {
        digest: out.root.digest.to_string(),
        media_type: out.root.media_type.clone(),
        images,
        targets: done,
        push,
    })
}

/// The targets as given, or IMAGE's own tag (overwritten, as `crane rebase`
/// does); registry targets share one repository (checked now, before anything
/// moves).
fn targets(given: &[String], image: &ImageRef, src: &Source) -> Result<Vec<Destination>> {
    let mut refs = given
        .iter()
        .map(|t| t.parse::<ImageRef>().map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    if refs.is_empty() {
        let Some(tag) = src.tag()? else {
            bail!("{image} names no tag to overwrite; say where the result goes with -t TARGET");
        };
        refs.push(image.with_tag(&tag));
    }
    for r in &refs {
        if let ImageRef::Registry(x) = r
            && x.tag.is_none()
        {
            bail!("target `{r}` names a digest, not a tag; give it a tag");
        }
    }
    Destination::group(&refs)
}

/// A base for each of `platforms`, recording where its layers are when
/// `homes` is given (the new base's must be found; the old base's are dropped).
async fn bases(
    ctx: &Ctx,
    spec: &ImageRef,
    platforms: &[Platform],
    homes: Option<&mut Homes>,
) -> Result<BTreeMap<Platform, NamedBase>> {
    let src = Source::open(spec, ctx)?;
    let found = src.for_platforms(platforms).await?;
    // `base.name` names a registry image; a layout path names nothing portable.
    let name = spec.registry().map(|r| r.to_string());
    if let Some(h) = homes {
        for img in found.values() {
            h.add(&src.home(), &img.manifest.layers);
        }
    }
    Ok(found
        .into_iter()
        .map(|(p, img)| {
            let base = img.as_base(name.clone());
            (
                p,
                NamedBase {
                    base,
                    label: spec.to_string(),
                },
            )
        })
        .collect())
}

/// Each platform's old base: the one its manifest names in its
/// `base.name`/`base.digest` annotations, pinned by that digest.
async fn annotated_bases(
    ctx: &Ctx,
    tree: &Tree,
    image: &ImageRef,
) -> Result<BTreeMap<Platform, NamedBase>> {
    use crate::oci::annotations::{BASE_DIGEST, BASE_NAME};
    let mut out = BTreeMap::new();
    for img in &tree.images {
        let p = &img.platform;
        let m = &img.manifest;
        let (Some(name), Some(digest)) = (m.annotation(BASE_NAME), m.annotation(BASE_DIGEST))
        else {
            let why = match m.family() {
                crate::oci::Family::Docker => {
                    " (a Docker schema 2 manifest carries no annotations)"
                }
                crate::oci::Family::Oci => "",
            };
            bail!(
                "{p}: {image} does not name its base: no {BASE_NAME} and {BASE_DIGEST} annotations{why}; \
                 give the base it was built on with --old-base REF"
            );
        };
        let r: Reference = name
            .parse()
            .with_context(|| format!("{p}: the image's {BASE_NAME} annotation"))?;
        let d: Digest = digest
            .parse()
            .with_context(|| format!("{p}: the image's {BASE_DIGEST} annotation"))?;
        // The digest is what is fetched; the tag stays for messages.
        let pinned = ImageRef::Registry(Reference {
            digest: Some(d),
            ..r
        });
        let mut found = bases(ctx, &pinned, std::slice::from_ref(p), None).await?;
        let b = found.remove(p).context("the base resolved to no image")?;
        out.insert(p.clone(), b);
    }
    Ok(out)
}

/// Stores each config and manifest, then the index (keeping its media type,
/// annotations and entries' fields; entries that were left out stay out).
fn write(tree: &Tree, rebased: &[Rebased], store: &BlobStore) -> Result<Output> {
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    for (img, r) in tree.images.iter().zip(rebased) {
        let config = canonical::to_vec(&r.config)?;
        let mut manifest = r.manifest.clone();
        manifest["config"]["digest"] = json!(store.put(&config)?.as_str());
        manifest["config"]["size"] = json!(config.len());
        let bytes = canonical::to_vec(&manifest)?;
        let d = store.put(&bytes)?;
        let media = img.document.media_type.clone();
        entries.push(
            img.descriptor
                .clone()
                .retarget(&media, &d, bytes.len() as u64),
        );
        digests.push(d);
    }
    let root = match &tree.index {
        Some(index) => {
            let mut doc = index.json.clone();
            doc["manifests"] = Value::Array(entries.into_iter().map(|e| e.json).collect());
            let bytes = canonical::to_vec(&doc)?;
            let d = store.put(&bytes)?;
            Descriptor::new(&index.media_type, &d, bytes.len() as u64)
        }
        None => {
            let e = &entries[0];
            Descriptor::new(&e.media_type, &e.digest, e.size)
        }
    };
    Ok(Output { root, digests })
}

fn report_images(
    tree: &Tree,
    rebased: &[Rebased],
    out: &Output,
    old: &BTreeMap<Platform, NamedBase>,
    new: &BTreeMap<Platform, NamedBase>,
) -> Vec<PlatformReport> {
    let mut images = Vec::new();
    for ((img, r), d) in tree.images.iter().zip(rebased).zip(&out.digests) {
        let (o, n) = (&old[&img.platform], &new[&img.platform]);
        ui::status(
            "Rebased",
            &format!(
                "{} {}: {} of {} → {} of {}, {} kept",
                img.platform,
                d.short(),
                count(o.base.layers.len(), "base layer"),
                o.label,
                n.base.layers.len(),
                n.label,
                count(r.app_layers, "app layer"),
            ),
        );
        images.push(PlatformReport {
            platform: img.platform.to_string(),
            digest: d.to_string(),
            old_base: o.label.clone(),
            new_base: n.label.clone(),
            old_base_layers: o.base.layers.len(),
            new_base_layers: n.base.layers.len(),
            app_layers: r.app_layers,
        });
    }
    images
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn join(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
