//! `xarch rebase`: move an image, or every platform of an index, from the base
//! it was built on to a new one. Per platform the old base's layers must be the
//! start of the image; they are replaced by the new base's layers for that
//! platform, the config's diff_ids and history follow, and the app layers stay
//! byte for byte. Every check runs before anything is written or pushed.

pub mod image;
pub mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::build::runtime;
use crate::cache::Cache;
use crate::oci::{BlobStore, Digest, Layout, json as canonical, media};
use crate::platform::Platform;
use crate::registry::push::{self, PushSet, PushStats};
use crate::registry::{Client, ImageRef, Options, Reference};
use crate::ui;
use image::{NamedBase, Rebased};
use source::{Homes, Source};

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

/// Where the result goes.
enum Target {
    Push(Reference),
    Layout { dir: PathBuf, tag: String },
}

/// The rebased images and index, written into the cache.
struct Output {
    root: Digest,
    media_type: String,
    size: u64,
    digests: Vec<Digest>,
    /// Every blob the result references, itself included.
    blobs: BTreeSet<Digest>,
}

pub fn run(req: &Request) -> Result<Report> {
    let image: ImageRef = req.image.parse()?;
    let new_spec: ImageRef = req.base.parse()?;
    let old_spec: Option<ImageRef> = req.old_base.as_deref().map(str::parse).transpose()?;
    let rt = runtime()?;
    let cache = Cache::open_default()?;
    let client = Client::new(req.registry.clone())?;
    let mut homes = Homes::new(&cache);
    let src = rt.block_on(source::load(&client, &image, &cache, &mut homes))?;
    let targets = targets(&req.targets, &image, &src)?;
    if src.dropped > 0 {
        ui::warn(&format!(
            "{} index entries that are not platform images (attestations) are left out: they describe the old images",
            src.dropped
        ));
    }
    let platforms = src.platforms();
    ui::status(
        "Resolving",
        &format!("new base {new_spec} for {}", join(&platforms)),
    );
    let new = rt.block_on(source::bases(
        &client,
        &new_spec,
        &platforms,
        &cache,
        Some(&mut homes),
    ))?;
    let old = rt.block_on(old_bases(&client, &src, old_spec.as_ref(), &image, &cache))?;
    let rebased = src
        .images
        .iter()
        .map(|img| image::rebase(img, &old[&img.platform], &new[&img.platform]))
        .collect::<Result<Vec<_>>>()?;
    let out = write(&src, &rebased, cache.blobs())?;
    let images = report_images(&src, &rebased, &out, &old, &new);
    let (targets, push) =
        rt.block_on(deliver(&client, &cache, &homes, &out, &targets, req.jobs))?;
    Ok(Report {
        digest: out.root.to_string(),
        media_type: out.media_type,
        images,
        targets,
        push,
    })
}

/// The targets as given, or IMAGE's own tag; registry targets share one
/// repository (checked now, before anything moves).
fn targets(given: &[String], image: &ImageRef, src: &Source) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for t in given {
        out.push(target(t)?);
    }
    if out.is_empty() {
        out.push(own_tag(image, src)?);
    }
    let repos: BTreeSet<String> = out
        .iter()
        .filter_map(|t| match t {
            Target::Push(r) => Some(r.name()),
            Target::Layout { .. } => None,
        })
        .collect();
    if repos.len() > 1 {
        let names: Vec<String> = repos.into_iter().collect();
        bail!(
            "all registry targets of one rebase must name the same repository ({})",
            names.join(", ")
        );
    }
    Ok(out)
}

fn target(t: &str) -> Result<Target> {
    Ok(match t.parse::<ImageRef>()? {
        ImageRef::Layout {
            dir,
            tag: Some(tag),
        } => Target::Layout { dir, tag },
        ImageRef::Layout { .. } => bail!("target `{t}` names no tag: write it as oci:DIR:TAG"),
        // A tag, never a digest, is what a push names (as crane and docker, latest by default).
        ImageRef::Registry(r) => {
            let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
            Target::Push(r.with_tag(&tag))
        }
    })
}

/// Without -t the image's own tag is overwritten, as `crane rebase` does.
fn own_tag(image: &ImageRef, src: &Source) -> Result<Target> {
    let Some(tag) = src.tag.clone() else {
        bail!("{image} names no tag to overwrite; say where the result goes with -t TARGET");
    };
    Ok(match image {
        ImageRef::Registry(r) => Target::Push(r.with_tag(&tag)),
        ImageRef::Layout { dir, .. } => Target::Layout {
            dir: dir.clone(),
            tag,
        },
    })
}

/// Each platform's old base: `--old-base` for all, else the one its
/// annotations name.
async fn old_bases(
    client: &Client,
    src: &Source,
    spec: Option<&ImageRef>,
    image: &ImageRef,
    cache: &Cache,
) -> Result<BTreeMap<Platform, NamedBase>> {
    if let Some(s) = spec {
        return source::bases(client, s, &src.platforms(), cache, None).await;
    }
    let mut out = BTreeMap::new();
    for img in &src.images {
        let b = source::annotated_base(client, img, cache, image).await?;
        out.insert(img.platform.clone(), b);
    }
    Ok(out)
}

/// Stores each config and manifest, then the index (keeping its media type,
/// annotations and entries' fields; entries that were left out stay out).
fn write(src: &Source, rebased: &[Rebased], store: &BlobStore) -> Result<Output> {
    let mut blobs = BTreeSet::new();
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    for (img, r) in src.images.iter().zip(rebased) {
        let config = canonical::to_vec(&r.config)?;
        let mut manifest = r.manifest.clone();
        manifest["config"]["digest"] = json!(store.put(&config)?.as_str());
        manifest["config"]["size"] = json!(config.len());
        let bytes = canonical::to_vec(&manifest)?;
        let d = store.put(&bytes)?;
        blobs.insert(Digest::of(&config));
        for l in manifest["layers"].as_array().into_iter().flatten() {
            blobs.insert(
                l["digest"]
                    .as_str()
                    .context("layer without digest")?
                    .parse()?,
            );
        }
        blobs.insert(d.clone());
        let mut entry = img.entry.clone().unwrap_or_else(|| json!({}));
        entry["digest"] = json!(d.as_str());
        entry["size"] = json!(bytes.len());
        entries.push(entry);
        digests.push(d);
    }
    let (bytes, media_type) = if src.is_index() {
        let mut index = src.root.clone();
        index["manifests"] = Value::Array(entries);
        let media = src.root["mediaType"].as_str().unwrap_or(media::OCI_INDEX);
        (canonical::to_vec(&index)?, media.to_string())
    } else {
        let m = store.read(&digests[0])?;
        (m.clone(), media::of_document(&m))
    };
    let root = store.put(&bytes)?;
    blobs.insert(root.clone());
    Ok(Output {
        root,
        media_type,
        size: bytes.len() as u64,
        digests,
        blobs,
    })
}

fn report_images(
    src: &Source,
    rebased: &[Rebased],
    out: &Output,
    old: &BTreeMap<Platform, NamedBase>,
    new: &BTreeMap<Platform, NamedBase>,
) -> Vec<PlatformReport> {
    let mut images = Vec::new();
    for ((img, r), d) in src.images.iter().zip(rebased).zip(&out.digests) {
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

/// Writes each layout target, then pushes to the registry targets.
async fn deliver(
    client: &Client,
    cache: &Cache,
    homes: &Homes,
    out: &Output,
    targets: &[Target],
    jobs: usize,
) -> Result<(Vec<String>, Option<PushStats>)> {
    let mut done = Vec::new();
    let mut refs = Vec::new();
    for t in targets {
        match t {
            Target::Layout { dir, tag } => {
                write_layout(client, homes, out, dir, tag).await?;
                done.push(format!("oci:{}:{tag}@{}", dir.display(), out.root));
            }
            Target::Push(r) => refs.push(r.clone()),
        }
    }
    if refs.is_empty() {
        return Ok((done, None));
    }
    // The push reads from the cache: blobs only a layout holds are copied in;
    // registry blobs are mounted (same registry) or copied by the push itself.
    fill(client, cache.blobs(), &out.blobs, homes, false).await?;
    let set = PushSet {
        store: cache.blobs(),
        root: out.root.clone(),
        remote: homes.remote.clone(),
        cache,
    };
    ui::status(
        "Pushing",
        &format!("{} to {}", out.root.short(), refs[0].name()),
    );
    let stats = push::push(client, &set, &refs, jobs).await?;
    done.extend(refs.iter().map(|r| format!("{r}@{}", out.root)));
    Ok((done, Some(stats)))
}

/// Every blob first, then the tag in `index.json`.
async fn write_layout(
    client: &Client,
    homes: &Homes,
    out: &Output,
    dir: &std::path::Path,
    tag: &str,
) -> Result<()> {
    let layout = Layout::open_or_create(dir)?;
    fill(client, layout.blobs(), &out.blobs, homes, true).await?;
    let desc = crate::oci::image::descriptor(&out.media_type, out.size, &out.root)?;
    layout.set_refs(&desc, &[tag.to_string()], &[])
}

/// Puts each of `blobs` into `store`: copied from a local store that has it,
/// else fetched from its registry (verified) when `fetch`, else left for the
/// push, which mounts or copies it.
async fn fill(
    client: &Client,
    store: &BlobStore,
    blobs: &BTreeSet<Digest>,
    homes: &Homes,
    fetch: bool,
) -> Result<()> {
    for d in blobs {
        if store.has(d) {
            continue;
        }
        if let Some(from) = homes.local.iter().find(|s| s.has(d)) {
            let mut w = store.writer()?;
            std::io::copy(&mut from.open_blob(d)?, &mut w)?;
            w.commit_expect(d)?;
            continue;
        }
        match homes.remote.get(d) {
            Some(r) if fetch => {
                ui::status("Fetching", &format!("{} from {}", d.short(), r.name()));
                let size = *homes
                    .sizes
                    .get(d)
                    .with_context(|| format!("no descriptor size is known for blob {d}"))?;
                client.fetch_blob(r, d, size, store, None).await?;
            }
            Some(_) => {}
            None => bail!("blob {d} is in no layout, cache or registry xarch knows of"),
        }
    }
    Ok(())
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
