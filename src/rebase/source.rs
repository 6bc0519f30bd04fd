//! `Source`: the image or index to rebase, read from a registry (manifests and
//! configs fetched into the cache; layers stay in the registry) or from an OCI
//! layout, plus the bases and `Homes`, where each blob's bytes can be had.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};
use oci_spec::image::Descriptor;
use serde_json::Value;

use super::image::{Image, NamedBase};
use crate::cache::Cache;
use crate::oci::image::{Base, parse_config};
use crate::oci::{BlobStore, Digest, Family, Layout, media};
use crate::platform::Platform;
use crate::registry::{Client, ImageRef, Reference, pull};

/// An image (one manifest) or an index of them, with its manifests and
/// configs in `store`.
pub struct Source {
    pub store: BlobStore,
    /// The index, or the image's manifest.
    pub root: Value,
    pub images: Vec<Image>,
    /// Index entries that are not platform images (attestations), left out.
    pub dropped: usize,
    /// The tag it was read under: what is overwritten when no -t is given.
    pub tag: Option<String>,
}

/// Where blobs are: local stores (the cache first, then layouts read from)
/// and, for blobs only a registry holds, the repository that has them.
pub struct Homes {
    pub local: Vec<BlobStore>,
    pub remote: HashMap<Digest, Reference>,
    /// The descriptor size of each blob in `remote`, which bounds its fetch.
    pub sizes: HashMap<Digest, u64>,
}

impl Source {
    pub fn is_index(&self) -> bool {
        self.root.get("manifests").is_some()
    }

    pub fn platforms(&self) -> Vec<Platform> {
        self.images.iter().map(|i| i.platform.clone()).collect()
    }
}

impl Homes {
    pub fn new(cache: &Cache) -> Homes {
        Homes {
            local: vec![cache.blobs().clone()],
            remote: HashMap::new(),
            sizes: HashMap::new(),
        }
    }

    /// Records where `layers` live; a new local store is searched after those
    /// already known (each store once: its scratch directory is its identity).
    fn add(&mut self, layers: &[Descriptor], home: &Home) -> Result<()> {
        match home {
            Home::Remote(r) => {
                for l in layers {
                    let d: Digest = l.digest().to_string().parse()?;
                    self.sizes.insert(d.clone(), l.size());
                    self.remote.insert(d, r.clone());
                }
            }
            Home::Local(s) => {
                if !self.local.iter().any(|l| l.temp_dir() == s.temp_dir()) {
                    self.local.push(s.clone());
                }
            }
        }
        Ok(())
    }
}

/// Where a base's or an image's layers are.
enum Home {
    Remote(Reference),
    Local(BlobStore),
}

/// Reads `image`, recording where its layers are.
pub async fn load(
    client: &Client,
    image: &ImageRef,
    cache: &Cache,
    homes: &mut Homes,
) -> Result<Source> {
    let (src, home) = match image {
        ImageRef::Registry(r) => {
            let root = fetch(client, r, cache).await?;
            let mut src = from_store(cache.blobs(), &root)?;
            src.tag = r.tag.clone();
            (src, Home::Remote(r.clone()))
        }
        ImageRef::Layout { dir, tag } => {
            let layout = Layout::open(dir)?;
            let src = from_layout(&layout, tag.as_deref())?;
            (src, Home::Local(layout.blobs().clone()))
        }
    };
    for img in &src.images {
        homes.add(&layers(&img.manifest, image)?, &home)?;
    }
    Ok(src)
}

/// A base for each of `platforms`, recording where its layers are when
/// `homes` is given (the new base's must be found; the old base's are dropped).
pub async fn bases(
    client: &Client,
    spec: &ImageRef,
    platforms: &[Platform],
    cache: &Cache,
    homes: Option<&mut Homes>,
) -> Result<BTreeMap<Platform, NamedBase>> {
    let (found, home) = match spec {
        ImageRef::Registry(r) => (
            pull::resolve(client, r, platforms, cache, false).await?,
            Home::Remote(r.clone()),
        ),
        ImageRef::Layout { dir, tag } => {
            let layout = Layout::open(dir)?;
            let src = from_layout(&layout, tag.as_deref())?;
            (
                layout_bases(&src, spec, platforms)?,
                Home::Local(layout.blobs().clone()),
            )
        }
    };
    if let Some(h) = homes {
        for b in found.values() {
            h.add(&b.layers, &home)?;
        }
    }
    Ok(found
        .into_iter()
        .map(|(p, base)| {
            let label = base.name.clone().unwrap_or_else(|| spec.to_string());
            (p, NamedBase { base, label })
        })
        .collect())
}

/// The base an image names in its `base.name`/`base.digest` annotations,
/// pinned by that digest.
pub async fn annotated_base(
    client: &Client,
    img: &Image,
    cache: &Cache,
    image: &ImageRef,
) -> Result<NamedBase> {
    use crate::oci::annotations::{BASE_DIGEST, BASE_NAME};
    let p = &img.platform;
    let a = &img.manifest["annotations"];
    let (Some(name), Some(digest)) = (a[BASE_NAME].as_str(), a[BASE_DIGEST].as_str()) else {
        let why = match img.family() {
            Family::Docker => " (a Docker schema 2 manifest carries no annotations)",
            Family::Oci => "",
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
    let pinned = Reference {
        digest: Some(d),
        ..r
    };
    let mut found = bases(
        client,
        &ImageRef::Registry(pinned),
        std::slice::from_ref(p),
        cache,
        None,
    )
    .await?;
    found.remove(p).context("the base resolved to no image")
}

/// Fetches the root manifest, and under an index every platform image's
/// manifest and config, into the cache; returns the root's digest.
async fn fetch(client: &Client, r: &Reference, cache: &Cache) -> Result<Digest> {
    let top = pull::manifest(client, r, cache, false).await?;
    let root: Value =
        serde_json::from_slice(&top.bytes).with_context(|| format!("{r} is not JSON"))?;
    let manifests = if media::is_index(&top.media_type) {
        let mut out = Vec::new();
        for (_, entry) in image_entries(&root)?.0 {
            let child = r.with_digest(&entry.digest);
            let m = pull::manifest(client, &child, cache, false).await?;
            out.push(serde_json::from_slice::<Value>(&m.bytes)?);
        }
        out
    } else {
        vec![root]
    };
    for m in &manifests {
        let c = config_digest(m)?;
        if !cache.blobs().has(&c) {
            let size = m["config"]["size"]
                .as_u64()
                .context("manifest config has no size")?;
            client.fetch_blob(r, &c, size, cache.blobs(), None).await?;
        }
    }
    Ok(top.digest)
}

/// The layout's image under `tag`, or its only image.
fn from_layout(layout: &Layout, tag: Option<&str>) -> Result<Source> {
    let dir = layout.root().display();
    let (desc, tag) = match tag {
        Some(t) => (
            layout
                .find(t)?
                .with_context(|| format!("{dir} has no image tagged `{t}`"))?,
            Some(t.to_string()),
        ),
        None => {
            let d = crate::publish::only_image(layout)?;
            let t = d
                .annotations()
                .as_ref()
                .and_then(|a| a.get(crate::oci::annotations::REF_NAME).cloned());
            (d, t)
        }
    };
    let mut src = from_store(layout.blobs(), &desc.digest().to_string().parse()?)?;
    src.tag = tag;
    Ok(src)
}

/// Reads an index (or a single manifest) and its images from `store`.
fn from_store(store: &BlobStore, root: &Digest) -> Result<Source> {
    let top: Value = read_json(store, root)?;
    let (images, dropped) = if top.get("manifests").is_some() {
        let (entries, dropped) = image_entries(&top)?;
        let mut images = Vec::new();
        for (platform, entry) in entries {
            images.push(image(store, platform, entry.digest, Some(entry.json))?);
        }
        (images, dropped)
    } else {
        let config = read_config(store, &top)?;
        let platform = Platform::new(
            config["os"].as_str().unwrap_or("linux"),
            config["architecture"].as_str().unwrap_or("amd64"),
            config["variant"].as_str(),
        );
        (vec![image(store, platform, root.clone(), None)?], 0)
    };
    Ok(Source {
        store: store.clone(),
        root: top,
        images,
        dropped,
        tag: None,
    })
}

fn image(
    store: &BlobStore,
    platform: Platform,
    digest: Digest,
    entry: Option<Value>,
) -> Result<Image> {
    let manifest = read_json(store, &digest)?;
    let config = read_config(store, &manifest)?;
    Ok(Image {
        platform,
        digest,
        entry,
        manifest,
        config,
    })
}

/// The index's platform images, and how many other entries it has
/// (attestations: `unknown/unknown`, or no platform). A nested index is refused.
fn image_entries(index: &Value) -> Result<(Vec<(Platform, crate::oci::index::Entry)>, usize)> {
    let mut out = Vec::new();
    let mut dropped = 0;
    for e in crate::oci::index::entries(index)? {
        if media::is_index(&e.media_type) {
            bail!("nested indexes are not supported ({})", e.digest);
        }
        match e.platform.clone().filter(|_| !e.is_attestation()) {
            Some(p) => out.push((p, e)),
            None => dropped += 1,
        }
    }
    Ok((out, dropped))
}

/// A base per platform from a layout's image (`Base.name` stays empty: a
/// layout path is no reference for `base.name`).
fn layout_bases(
    src: &Source,
    spec: &ImageRef,
    platforms: &[Platform],
) -> Result<BTreeMap<Platform, Base>> {
    let mut out = BTreeMap::new();
    for p in platforms {
        let Some(img) = src.images.iter().find(|i| i.platform == *p) else {
            let offered: Vec<String> = src.platforms().iter().map(|p| p.to_string()).collect();
            bail!("base {spec} has no {p}; it offers: {}", offered.join(", "));
        };
        let base = Base {
            family: img.family(),
            config: img.config.clone(),
            layers: layers(&img.manifest, spec)?,
            name: None,
            digest: Some(img.digest.clone()),
        };
        out.insert(p.clone(), base);
    }
    Ok(out)
}

fn layers(manifest: &Value, what: &ImageRef) -> Result<Vec<Descriptor>> {
    serde_json::from_value(manifest["layers"].clone())
        .with_context(|| format!("{what}: manifest layers are malformed"))
}

fn config_digest(manifest: &Value) -> Result<Digest> {
    Ok(manifest["config"]["digest"]
        .as_str()
        .context("manifest has no config")?
        .parse()?)
}

fn read_config(store: &BlobStore, manifest: &Value) -> Result<Value> {
    let d = config_digest(manifest)?;
    parse_config(&store.read(&d)?, &d)
}

fn read_json(store: &BlobStore, d: &Digest) -> Result<Value> {
    serde_json::from_slice(&store.read(d)?).with_context(|| format!("manifest {d} is not JSON"))
}
