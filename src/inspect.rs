//! `xarch inspect`: what an image or index holds — per platform its manifest,
//! config and layers — read from a registry or an OCI layout; or one
//! platform's config; or the manifest's bytes exactly as stored.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::Value;

use crate::image::document::offered;
use crate::image::{Ctx, Document, Image as ImageRead, ImageRef, Source};
use crate::oci::annotations as ann;
use crate::oci::{Descriptor, Digest, media};
use crate::platform::Platform;
use crate::registry::Options;
use crate::runtime;

/// What to show.
pub struct Request {
    pub image: ImageRef,
    /// One platform of an index (its manifest, or with `config` its config).
    pub platform: Option<Platform>,
    pub config: bool,
    pub raw: bool,
}

pub enum Shown {
    /// Bytes to print as they are.
    Raw(Vec<u8>),
    Tree(Inspection),
    Config(ConfigView),
}

/// The tree: the manifest or index, and each image under it.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// Whether `images` come from an index (else the one image is the manifest).
    pub index: bool,
    pub annotations: BTreeMap<String, String>,
    pub images: Vec<Image>,
}

#[derive(Debug, Serialize)]
pub struct Image {
    /// Normalized `os/arch[/variant]`, from the index entry or else the config.
    pub platform: Option<String>,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// Manifest, config and layers together (compressed).
    pub total_size: u64,
    pub created: Option<String>,
    pub base: Option<BaseRef>,
    pub annotations: BTreeMap<String, String>,
    pub config: Option<Blob>,
    pub layers: Vec<Blob>,
    /// Why the entry is shown without its contents (a nested index).
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BaseRef {
    pub name: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Blob {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// One platform's image config.
pub struct ConfigView {
    pub reference: String,
    pub platform: Platform,
    pub manifest: Digest,
    pub config: Blob,
    pub bytes: Vec<u8>,
    pub json: Value,
}

pub fn run(req: &Request, opts: Options) -> Result<Shown> {
    let ctx = Ctx::new(opts, false)?;
    runtime::block_on(async {
        let src = Source::open(&req.image, &ctx)?;
        show(&src, req).await
    })?
}

async fn show(src: &Source<'_>, req: &Request) -> Result<Shown> {
    let root = src.root().await?;
    if req.config {
        let view = config(src, &root, req.platform.as_ref()).await?;
        return Ok(match req.raw {
            true => Shown::Raw(view.bytes),
            false => Shown::Config(view),
        });
    }
    let (shown, name) = match &req.platform {
        Some(p) => (
            select(src, &root, p).await?.document,
            format!("{} ({p})", src.name()),
        ),
        None => (root, src.name().to_string()),
    };
    if req.raw {
        return Ok(Shown::Raw(shown.bytes));
    }
    Ok(Shown::Tree(tree(src, &shown, name).await?))
}

/// The image for `platform`: an index's entry for it, or a single manifest
/// whose config says it is that platform.
async fn select(src: &Source<'_>, root: &Document, platform: &Platform) -> Result<ImageRead> {
    if root.is_index() {
        let index = root.index()?;
        return src
            .image(index.select(platform, &src.name().to_string())?)
            .await;
    }
    let img = src.image(&root.descriptor()).await?;
    if img.platform != *platform {
        bail!(
            "{} is a single-platform image for {}, not {platform}",
            src.name(),
            img.platform
        );
    }
    Ok(img)
}

/// The config of one platform; on an index `platform` may be left out only
/// when the index holds a single image.
async fn config(
    src: &Source<'_>,
    root: &Document,
    platform: Option<&Platform>,
) -> Result<ConfigView> {
    let img = match platform {
        Some(p) => select(src, root, p).await?,
        None if root.is_index() => {
            let index = root.index()?;
            let (images, _) = index.images()?;
            match images.as_slice() {
                [one] => src.image(one).await?,
                _ => bail!(
                    "{} is an index of {} images; choose one with --platform ({})",
                    src.name(),
                    images.len(),
                    offered(&images)
                ),
            }
        }
        None => src.image(&root.descriptor()).await?,
    };
    Ok(ConfigView {
        reference: src.name().to_string(),
        platform: img.platform.clone(),
        manifest: img.document.digest.clone(),
        config: blob(&img.manifest.config),
        bytes: img.config.bytes.clone(),
        json: img.config.json.clone(),
    })
}

async fn tree(src: &Source<'_>, top: &Document, name: String) -> Result<Inspection> {
    let (images, annotations) = if top.is_index() {
        let index = top.index()?;
        let mut out = Vec::new();
        for e in &index.manifests {
            out.push(entry_image(src, e).await?);
        }
        (out, index.annotations())
    } else {
        let img = src.image(&top.descriptor()).await?;
        (vec![image(&img)], BTreeMap::new())
    };
    Ok(Inspection {
        reference: name,
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        size: top.bytes.len() as u64,
        index: top.is_index(),
        annotations,
        images,
    })
}

/// An index entry: an image, or a nested index shown but not opened.
async fn entry_image(src: &Source<'_>, e: &Descriptor) -> Result<Image> {
    if media::is_index(&e.media_type) {
        return Ok(Image {
            platform: e.platform.as_ref().map(|p| p.to_string()),
            digest: e.digest.to_string(),
            media_type: e.media_type.clone(),
            size: e.size,
            total_size: e.size,
            created: None,
            base: None,
            annotations: string_map(&e.json["annotations"]),
            config: None,
            layers: vec![],
            note: Some("nested index, not expanded".into()),
        });
    }
    Ok(image(&src.image(e).await?))
}

/// One image: its layers from the manifest, platform and `created` from the
/// config (the index entry's platform wins when there is one).
fn image(img: &ImageRead) -> Image {
    let layers: Vec<Blob> = img.manifest.layers.iter().map(blob).collect();
    let annotations = img.manifest.annotations();
    let base = match (
        annotations.get(ann::BASE_NAME),
        annotations.get(ann::BASE_DIGEST),
    ) {
        (None, None) => None,
        (n, d) => Some(BaseRef {
            name: n.cloned(),
            digest: d.cloned(),
        }),
    };
    let created = img.config.json["created"]
        .as_str()
        .or(annotations.get(ann::CREATED).map(String::as_str))
        .map(String::from);
    let size = img.document.bytes.len() as u64;
    let config = blob(&img.manifest.config);
    Image {
        platform: Some(img.platform.to_string()),
        digest: img.document.digest.to_string(),
        media_type: img.document.media_type.clone(),
        size,
        total_size: size + config.size + layers.iter().map(|l| l.size).sum::<u64>(),
        created,
        base,
        annotations,
        config: Some(config),
        layers,
        note: None,
    }
}

fn blob(d: &Descriptor) -> Blob {
    Blob {
        digest: d.digest.to_string(),
        media_type: d.media_type.clone(),
        size: d.size,
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}
