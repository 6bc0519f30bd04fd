//! `xarch inspect`: what an image or index holds — per platform its manifest,
//! config and layers — read from a registry or an OCI layout; or one
//! platform's config; or the manifest's bytes exactly as stored.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

use crate::build::runtime;
use crate::cache::Cache;
use crate::oci::annotations as ann;
use crate::oci::{Digest, index, media};
use crate::platform::Platform;
use crate::registry::remote::Fetched;
use crate::registry::{Client, ImageRef, Options};
use crate::source::{self, Source};

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
    let client = Client::new(opts)?;
    let cache = Cache::open_default()?;
    let src = Source::open(&req.image, &client, &cache)?;
    runtime()?.block_on(show(&src, req))
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
            select(src, &root, p).await?,
            format!("{} ({p})", src.name()),
        ),
        None => (root, src.name()),
    };
    if req.raw {
        return Ok(Shown::Raw(shown.bytes));
    }
    Ok(Shown::Tree(tree(src, &shown, name).await?))
}

/// The image manifest for `platform`: an index's entry for it, or a single
/// manifest whose config says it is that platform.
async fn select(src: &Source<'_>, root: &Fetched, platform: &Platform) -> Result<Fetched> {
    if !media::is_index(&root.media_type) {
        let own = config_platform(&image_config(src, root).await?.1);
        if own != *platform {
            bail!(
                "{} is a single-platform image for {own}, not {platform}",
                src.name()
            );
        }
        return Ok(root.clone());
    }
    let entries = index::entries(&source::parse(root)?)?;
    let images: Vec<_> = entries.iter().filter(|e| !e.is_attestation()).collect();
    match images
        .iter()
        .find(|e| e.platform.as_ref() == Some(platform))
    {
        Some(e) => src.manifest(&e.digest).await,
        None => bail!(
            "{} has no {platform}; it offers: {}",
            src.name(),
            offered(&images)
        ),
    }
}

fn offered(entries: &[&index::Entry]) -> String {
    let names: Vec<String> = entries
        .iter()
        .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
        .collect();
    names.join(", ")
}

/// The config of one platform; on an index `platform` may be left out only
/// when the index holds a single image.
async fn config(
    src: &Source<'_>,
    root: &Fetched,
    platform: Option<&Platform>,
) -> Result<ConfigView> {
    let manifest = match platform {
        Some(p) => select(src, root, p).await?,
        None if media::is_index(&root.media_type) => {
            let entries = index::entries(&source::parse(root)?)?;
            let images: Vec<_> = entries.iter().filter(|e| !e.is_attestation()).collect();
            match images.as_slice() {
                [one] => src.manifest(&one.digest).await?,
                _ => bail!(
                    "{} is an index of {} images; choose one with --platform ({})",
                    src.name(),
                    images.len(),
                    offered(&images)
                ),
            }
        }
        None => root.clone(),
    };
    let (blob, json, bytes) = image_config(src, &manifest).await?;
    Ok(ConfigView {
        reference: src.name(),
        platform: config_platform(&json),
        manifest: manifest.digest,
        config: blob,
        bytes,
        json,
    })
}

/// A manifest's config: its descriptor, parsed JSON and exact bytes.
async fn image_config(src: &Source<'_>, manifest: &Fetched) -> Result<(Blob, Value, Vec<u8>)> {
    let m = source::parse(manifest)?;
    let desc = blob(&m["config"])
        .with_context(|| format!("manifest {} has no config", manifest.digest))?;
    let bytes = src.blob(&desc.digest.parse()?, desc.size).await?;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((desc, json, bytes))
}

fn config_platform(config: &Value) -> Platform {
    Platform::new(
        config["os"].as_str().unwrap_or("unknown"),
        config["architecture"].as_str().unwrap_or("unknown"),
        config["variant"].as_str(),
    )
}

async fn tree(src: &Source<'_>, top: &Fetched, name: String) -> Result<Inspection> {
    let doc = source::parse(top)?;
    let is_index = media::is_index(&top.media_type);
    let images = if is_index {
        let mut out = Vec::new();
        for e in index::entries(&doc)? {
            out.push(entry_image(src, &e).await?);
        }
        out
    } else {
        vec![image(src, top, None).await?]
    };
    Ok(Inspection {
        reference: name,
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        size: top.bytes.len() as u64,
        index: is_index,
        annotations: if is_index {
            annotations(&doc)
        } else {
            BTreeMap::new()
        },
        images,
    })
}

/// An index entry: an image, or a nested index shown but not opened.
async fn entry_image(src: &Source<'_>, e: &index::Entry) -> Result<Image> {
    if media::is_index(&e.media_type) {
        return Ok(Image {
            platform: e.platform.as_ref().map(|p| p.to_string()),
            digest: e.digest.to_string(),
            media_type: e.media_type.clone(),
            size: e.size,
            total_size: e.size,
            created: None,
            base: None,
            annotations: annotations(&e.json),
            config: None,
            layers: vec![],
            note: Some("nested index, not expanded".into()),
        });
    }
    let m = src.manifest(&e.digest).await?;
    image(src, &m, e.platform.as_ref()).await
}

/// One image: its layers from the manifest, platform and `created` from the
/// config (the index entry's platform wins when there is one).
async fn image(src: &Source<'_>, m: &Fetched, platform: Option<&Platform>) -> Result<Image> {
    let doc = source::parse(m)?;
    let (config, config_json, _) = image_config(src, m).await?;
    let layers = doc["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(blob)
        .collect::<Result<Vec<_>>>()?;
    let annotations = annotations(&doc);
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
    let created = config_json["created"]
        .as_str()
        .or(annotations.get(ann::CREATED).map(String::as_str))
        .map(String::from);
    let platform = platform
        .cloned()
        .unwrap_or_else(|| config_platform(&config_json));
    let size = m.bytes.len() as u64;
    Ok(Image {
        platform: Some(platform.to_string()),
        digest: m.digest.to_string(),
        media_type: m.media_type.clone(),
        size,
        total_size: size + config.size + layers.iter().map(|l| l.size).sum::<u64>(),
        created,
        base,
        annotations,
        config: Some(config),
        layers,
        note: None,
    })
}

fn blob(desc: &Value) -> Result<Blob> {
    Ok(Blob {
        digest: desc["digest"]
            .as_str()
            .context("descriptor without a digest")?
            .to_string(),
        media_type: desc["mediaType"].as_str().unwrap_or_default().to_string(),
        size: desc["size"].as_u64().context("descriptor without a size")?,
    })
}

fn annotations(doc: &Value) -> BTreeMap<String, String> {
    doc["annotations"]
        .as_object()
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
