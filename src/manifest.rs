//! `xarch manifest create`: an index made from images that already exist — in a
//! registry or a layout — pushed to a registry or written to a layout. Sources
//! that are indexes give their images; `--amend` starts from the target's index.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::image::{Ctx, Homes, Image, ImageRef, Metadata, Source};
use crate::oci::{BlobStore, Descriptor, Family, Layout, json, media};
use crate::platform::Platform;
use crate::registry::Options;
use crate::sink::{self, Destination, PushStats};
use crate::{runtime, ui};

/// A source image, `REF[#PLATFORM]`: from an index, only that platform's image;
/// for a single manifest, the platform to record instead of its config's.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub image: ImageRef,
    pub platform: Option<Platform>,
}

impl FromStr for SourceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (image, platform) = match s.rsplit_once('#') {
            Some((i, p)) => (i, Some(p.parse::<Platform>()?)),
            None => (s, None),
        };
        Ok(SourceSpec {
            image: image.parse()?,
            platform,
        })
    }
}

pub struct CreateRequest {
    pub target: ImageRef,
    pub sources: Vec<SourceSpec>,
    /// Shards' metadata files (`build --metadata-file`): their images, in order,
    /// with their index entries exactly as the shards wrote them.
    pub from_metadata: Vec<std::path::PathBuf>,
    pub annotations: Vec<(String, String)>,
    /// Start from the index already at the target (same platforms replaced).
    pub amend: bool,
    pub jobs: usize,
}

/// What was made, for the summary and `--json`.
#[derive(Debug, Serialize)]
pub struct Created {
    /// `TARGET@DIGEST`.
    pub pinned: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub manifests: Vec<Member>,
    pub push: Option<PushStats>,
}

/// One image of the new index.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub platform: String,
    pub digest: String,
    /// The source it came from, pinned: `REF@DIGEST`.
    pub source: String,
    /// Its entry in the new index (every field of the source's entry kept).
    #[serde(skip)]
    entry: Descriptor,
    #[serde(skip)]
    key: Platform,
}

pub fn create(req: &CreateRequest, opts: Options) -> Result<Created> {
    if matches!(&req.target, ImageRef::Registry(r) if r.digest.is_some()) {
        bail!(
            "the target {} names a digest; give it a tag instead",
            req.target
        );
    }
    let dest = Destination::group(std::slice::from_ref(&req.target))?.remove(0);
    let target = req
        .target
        .with_tag(&req.target.write_tag().unwrap_or_default());
    let ctx = Ctx::new(opts, false)?;
    runtime::block_on(make(req, &target, &dest, &ctx))?
}

async fn make(
    req: &CreateRequest,
    target: &ImageRef,
    dest: &Destination,
    ctx: &Ctx,
) -> Result<Created> {
    let mut homes = Homes::new(ctx.cache.blobs(), ctx);
    let mut annotations = BTreeMap::new();
    let mut members = match req.amend {
        true => existing(target, ctx, &mut homes, &mut annotations).await?,
        false => vec![],
    };
    let mut added = Vec::new();
    let mut shard_annotations: Option<BTreeMap<String, String>> = None;
    for file in &req.from_metadata {
        let meta = read_metadata(file)?;
        added.extend(members_of_shard(&meta, ctx, &mut homes).await?);
        // Annotations every shard agrees on go on the merged index.
        shard_annotations = Some(match shard_annotations {
            None => meta.annotations,
            Some(mut a) => {
                a.retain(|k, v| meta.annotations.get(k) == Some(v));
                a
            }
        });
    }
    annotations.extend(shard_annotations.unwrap_or_default());
    for spec in &req.sources {
        let src = Source::open(&spec.image, ctx)?;
        added.extend(members_of(&src, spec.platform.as_ref(), &mut homes).await?);
    }
    merge(&mut members, added)?;
    annotations.extend(req.annotations.iter().cloned());
    // The new index goes into the cache, beside the manifests the sources gave.
    let root = write_index(&members, &annotations, ctx.cache.blobs())?;
    let done = sink::deliver(ctx, &root, &homes, dest, req.jobs).await?;
    Ok(Created {
        pinned: format!("{target}@{}", root.digest),
        digest: root.digest.to_string(),
        media_type: root.media_type.clone(),
        size: root.size,
        manifests: members,
        push: done.push,
    })
}

/// `--amend`: the images of the index at the target, if there is one.
async fn existing(
    target: &ImageRef,
    ctx: &Ctx,
    homes: &mut Homes,
    annotations: &mut BTreeMap<String, String>,
) -> Result<Vec<Member>> {
    let present = match target {
        ImageRef::Registry(r) => ctx.client.head_manifest(r).await?.is_some(),
        ImageRef::Layout { dir, tag } => Layout::open(dir).is_ok_and(|l| {
            l.find(tag.as_deref().unwrap_or_default())
                .ok()
                .flatten()
                .is_some()
        }),
        ImageRef::Archive { .. } => false,
    };
    if !present {
        ui::status("Creating", &format!("{target}: nothing there to amend yet"));
        return Ok(vec![]);
    }
    let src = Source::open(target, ctx)?;
    let root = src.root().await?;
    if root.is_index() {
        annotations.extend(root.index()?.annotations());
    }
    let members = members_of(&src, None, homes).await?;
    for m in &members {
        ui::status("Keeping", &format!("{} {}", m.platform, m.digest));
    }
    Ok(members)
}

/// The images a source gives: an index's images (all, or the one for
/// `platform`), or the single manifest with its platform. Each image's
/// manifest is made local and its blobs' home recorded.
async fn members_of(
    src: &Source<'_>,
    platform: Option<&Platform>,
    homes: &mut Homes,
) -> Result<Vec<Member>> {
    let root = src.root().await?;
    let images = if root.is_index() {
        let index = root.index()?;
        // Attestations describe images of their own index; they are not copied.
        let (entries, _) = index.images()?;
        let chosen: Vec<&Descriptor> = match platform {
            None => entries,
            Some(p) => vec![index.select(p, &src.name().to_string())?],
        };
        let mut out = Vec::new();
        for e in chosen {
            out.push(src.image(e).await?);
        }
        out
    } else {
        vec![single(src, &root, platform).await?]
    };
    let mut out = Vec::new();
    for img in images {
        // Manifests and configs are local now (the layout, or the cache);
        // layers stay where the source has them.
        homes.add(&src.home(), img.manifest.blobs());
        out.push(Member {
            platform: img.platform.to_string(),
            digest: img.document.digest.to_string(),
            source: src.pinned(&img.document.digest),
            entry: entry(&img),
            key: img.platform,
        });
    }
    Ok(out)
}

/// A shard's metadata file, bounded and parsed.
fn read_metadata(file: &std::path::Path) -> Result<Metadata> {
    use std::io::Read;
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut bytes = Vec::new();
    f.take(4 << 20).read_to_end(&mut bytes)?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a metadata file from `xarch build --metadata-file`",
            file.display()
        )
    })
}

/// A shard's images: each entry as the shard's index had it, its manifest
/// fetched by digest from the shard's repository (digest and size checked).
async fn members_of_shard(meta: &Metadata, ctx: &Ctx, homes: &mut Homes) -> Result<Vec<Member>> {
    let repo: crate::registry::Reference = meta
        .repository
        .parse()
        .with_context(|| format!("metadata repository `{}`", meta.repository))?;
    let image = ImageRef::Registry(repo);
    let src = Source::open(&image, ctx)?;
    let mut out = Vec::new();
    for e in &meta.manifests {
        let entry = Descriptor::from_json(e).context("a metadata manifest entry")?;
        if entry.platform.is_none() {
            bail!("the metadata entry {} names no platform", entry.digest);
        }
        let img = src.image(&entry).await?;
        homes.add(&src.home(), img.manifest.blobs());
        out.push(Member {
            platform: img.platform.to_string(),
            digest: img.document.digest.to_string(),
            source: src.pinned(&img.document.digest),
            entry: entry.clone(),
            key: img.platform,
        });
    }
    Ok(out)
}

/// The index entry for an image: its source entry with the media type the
/// manifest really has.
fn entry(img: &Image) -> Descriptor {
    let mut e = img.descriptor.clone();
    e.json["mediaType"] = json!(img.document.media_type);
    e.media_type = img.document.media_type.clone();
    e
}

/// A single manifest: its platform is what its config says, unless given.
async fn single(
    src: &Source<'_>,
    root: &crate::image::Document,
    platform: Option<&Platform>,
) -> Result<Image> {
    let Some(p) = platform else {
        return src.image(&root.descriptor()).await.with_context(|| {
            format!(
                "{}: give the platform as {}#OS/ARCH",
                src.name(),
                src.name()
            )
        });
    };
    let img = src.image(&root.descriptor().with_platform(p)).await?;
    if let Some(own) = img.config.platform().filter(|own| own != p) {
        ui::warn(&format!(
            "the config of {} says {own}; recording {p} as asked",
            src.name()
        ));
    }
    Ok(img)
}

/// Adds `added` to `members`: an index holds one image per platform, so two
/// sources giving one platform is an error, while a platform already there
/// (from `--amend`) is replaced in place.
fn merge(members: &mut Vec<Member>, added: Vec<Member>) -> Result<()> {
    let mut given: HashMap<Platform, String> = HashMap::new();
    for m in added {
        if let Some(first) = given.get(&m.key) {
            bail!(
                "{} is given twice, by {first} and by {}; an index holds one image per platform",
                m.key,
                m.source
            );
        }
        given.insert(m.key.clone(), m.source.clone());
        match members.iter_mut().find(|x| x.key == m.key) {
            Some(slot) => {
                ui::status(
                    "Replacing",
                    &format!("{} {} with {}", m.platform, slot.digest, m.source),
                );
                *slot = m;
            }
            None => {
                ui::status("Adding", &format!("{} {}", m.platform, m.source));
                members.push(m);
            }
        }
    }
    if members.is_empty() {
        bail!("no images to put in the index");
    }
    Ok(())
}

/// The index: a Docker manifest list when every image is Docker schema 2 and
/// nothing carries annotations (a list has no place for them), else OCI.
fn write_index(
    members: &[Member],
    annotations: &BTreeMap<String, String>,
    store: &BlobStore,
) -> Result<Descriptor> {
    let docker = members.iter().all(|m| {
        m.entry.media_type == media::DOCKER_MANIFEST && m.entry.json.get("annotations").is_none()
    }) && annotations.is_empty();
    let family = if docker { Family::Docker } else { Family::Oci };
    let entries: Vec<Value> = members.iter().map(|m| m.entry.json.clone()).collect();
    let mut doc = json!({
        "schemaVersion": 2,
        "mediaType": family.index(),
        "manifests": entries,
    });
    if !annotations.is_empty() {
        doc["annotations"] = json!(annotations);
    }
    let bytes = json::to_vec(&doc)?;
    let digest = store.put(&bytes)?;
    Ok(Descriptor::new(family.index(), &digest, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_take_an_optional_platform_after_a_hash() {
        let s: SourceSpec = "reg.io/app@sha256:0000000000000000000000000000000000000000000000000000000000000000#arm64/v8"
            .parse()
            .unwrap();
        assert_eq!(s.platform.unwrap().to_string(), "linux/arm64");
        assert!(matches!(s.image, ImageRef::Registry(r) if r.repository == "app"));
        let s: SourceSpec = "oci:out:1.0".parse().unwrap();
        assert!(s.platform.is_none());
        assert!("reg.io/app:1#linux/".parse::<SourceSpec>().is_err());
    }
}
