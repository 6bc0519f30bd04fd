//! `xarch manifest create`: an index made from images that already exist — in a
//! registry or a layout — pushed to a registry or written to a layout. Sources
//! that are indexes give their images; `--amend` starts from the target's index.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::build::runtime;
use crate::cache::Cache;
use crate::oci::image::descriptor;
use crate::oci::{BlobStore, Digest, Family, Layout, index, json, media};
use crate::platform::Platform;
use crate::registry::push::{self, PushSet, PushStats};
use crate::registry::remote::Fetched;
use crate::registry::{Client, ImageRef, Options, Reference};
use crate::source::{self, Source};
use crate::ui;

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
    #[serde(skip)]
    entry: Value,
    #[serde(skip)]
    key: Platform,
    #[serde(skip)]
    manifest: Fetched,
    /// Which source (index into the list of opened sources) holds its blobs.
    #[serde(skip)]
    from: usize,
}

/// Where the index goes. A layout is created only once the index is known to
/// be good, so a refused merge leaves nothing behind.
enum Target {
    Registry(Reference),
    Layout { dir: PathBuf, tag: String },
}

impl Target {
    fn parse(image: &ImageRef) -> Result<Target> {
        match image {
            ImageRef::Registry(r) if r.digest.is_some() => {
                bail!("the target {r} names a digest; give it a tag instead")
            }
            ImageRef::Registry(r) if r.tag.is_none() => Ok(Target::Registry(r.with_tag("latest"))),
            ImageRef::Registry(r) => Ok(Target::Registry(r.clone())),
            ImageRef::Layout { tag: None, dir } => {
                bail!("the target oci:{} needs a tag: oci:DIR:TAG", dir.display())
            }
            ImageRef::Layout { dir, tag: Some(t) } => Ok(Target::Layout {
                dir: dir.clone(),
                tag: t.clone(),
            }),
        }
    }

    fn name(&self) -> String {
        match self {
            Target::Registry(r) => r.to_string(),
            Target::Layout { dir, tag } => format!("oci:{}:{tag}", dir.display()),
        }
    }
}

pub fn create(req: &CreateRequest, opts: Options) -> Result<Created> {
    let client = Client::new(opts)?;
    let cache = Cache::open_default()?;
    let target = Target::parse(&req.target)?;
    runtime()?.block_on(make(req, &target, &client, &cache))
}

async fn make(
    req: &CreateRequest,
    target: &Target,
    client: &Client,
    cache: &Cache,
) -> Result<Created> {
    let mut sources = Vec::new();
    let mut annotations = BTreeMap::new();
    // The target's current index, opened as the first source.
    let mut members = match req.amend {
        true => existing(target, client, cache, &mut sources, &mut annotations).await?,
        false => vec![],
    };
    let mut added = Vec::new();
    for spec in &req.sources {
        let src = Source::open(&spec.image, client, cache)?;
        let root = src.root().await?;
        added.extend(members_of(&src, sources.len(), root, spec.platform.as_ref()).await?);
        sources.push(src);
    }
    merge(&mut members, added)?;
    annotations.extend(req.annotations.iter().cloned());
    // What the index needs is put where it is delivered from: the cache (a push
    // sends from there), or the layout itself.
    let layout = match target {
        Target::Registry(_) => None,
        Target::Layout { dir, .. } => Some(Layout::open_or_create(dir)?),
    };
    let store = layout.as_ref().map_or(cache.blobs(), |l| l.blobs());
    let remote = stage(target, &members, &sources, store).await?;
    let (index_desc, family) = write_index(&members, &annotations, store)?;
    let digest: Digest = index_desc.digest().to_string().parse()?;
    let push = match (target, &layout) {
        (Target::Registry(r), _) => {
            let set = PushSet {
                store,
                root: digest.clone(),
                remote,
                cache,
            };
            ui::status("Pushing", &format!("{} to {}", digest.short(), r.name()));
            Some(push::push(client, &set, std::slice::from_ref(r), req.jobs).await?)
        }
        (Target::Layout { tag, .. }, Some(layout)) => {
            layout.set_refs(&index_desc, std::slice::from_ref(tag), &[])?;
            None
        }
        (Target::Layout { .. }, None) => unreachable!("opened above"),
    };
    Ok(Created {
        pinned: format!("{}@{digest}", target.name()),
        digest: digest.to_string(),
        media_type: family.index().to_string(),
        size: index_desc.size(),
        manifests: members,
        push,
    })
}

/// `--amend`: the images of the index at the target, if there is one.
async fn existing<'a>(
    target: &Target,
    client: &'a Client,
    cache: &'a Cache,
    sources: &mut Vec<Source<'a>>,
    annotations: &mut BTreeMap<String, String>,
) -> Result<Vec<Member>> {
    let image = match target {
        Target::Registry(r) => match client.head_manifest(r).await? {
            Some(_) => ImageRef::Registry(r.clone()),
            None => return Ok(absent(target)),
        },
        Target::Layout { dir, tag } => {
            let tagged = Layout::open(dir).is_ok_and(|l| l.find(tag).ok().flatten().is_some());
            if !tagged {
                return Ok(absent(target));
            }
            ImageRef::Layout {
                dir: dir.clone(),
                tag: Some(tag.clone()),
            }
        }
    };
    let src = Source::open(&image, client, cache)?;
    let root = src.root().await?;
    if media::is_index(&root.media_type) {
        annotations.extend(string_map(&source::parse(&root)?["annotations"]));
    }
    let members = members_of(&src, 0, root, None).await?;
    for m in &members {
        ui::status("Keeping", &format!("{} {}", m.platform, m.digest));
    }
    sources.push(src);
    Ok(members)
}

fn absent(target: &Target) -> Vec<Member> {
    ui::status(
        "Creating",
        &format!("{}: nothing there to amend yet", target.name()),
    );
    vec![]
}

/// The images a source gives: an index's images (all, or the one for
/// `platform`), or the single manifest with its platform.
async fn members_of(
    src: &Source<'_>,
    from: usize,
    root: Fetched,
    platform: Option<&Platform>,
) -> Result<Vec<Member>> {
    if !media::is_index(&root.media_type) {
        return Ok(vec![single(src, from, root, platform).await?]);
    }
    let entries = index::entries(&source::parse(&root)?)?;
    if let Some(nested) = entries.iter().find(|e| media::is_index(&e.media_type)) {
        bail!(
            "{} holds an index inside its index ({}); nested indexes are not supported: name the inner index itself as a source",
            src.name(),
            nested.digest
        );
    }
    // Attestations describe images of their own index; they are not copied.
    let images: Vec<_> = entries
        .into_iter()
        .filter(|e| !e.is_attestation())
        .collect();
    let chosen: Vec<_> = match platform {
        None => images.iter().collect(),
        Some(p) => {
            let one: Vec<_> = images
                .iter()
                .filter(|e| e.platform.as_ref() == Some(p))
                .collect();
            if one.is_empty() {
                let offered: Vec<String> = images
                    .iter()
                    .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
                    .collect();
                bail!(
                    "{} has no {p}; it offers: {}",
                    src.name(),
                    offered.join(", ")
                );
            }
            one
        }
    };
    let mut out = Vec::new();
    for e in chosen {
        out.push(from_entry(src, from, e).await?);
    }
    Ok(out)
}

/// An index entry, copied with every field it has.
async fn from_entry(src: &Source<'_>, from: usize, e: &index::Entry) -> Result<Member> {
    let key = e.platform.clone().with_context(|| {
        format!(
            "{}: the index entry {} has no platform",
            src.name(),
            e.digest
        )
    })?;
    let manifest = src.manifest(&e.digest).await?;
    if media::is_index(&manifest.media_type) {
        bail!(
            "{}: {} is an index, not an image; nested indexes are not supported",
            src.name(),
            e.digest
        );
    }
    if manifest.bytes.len() as u64 != e.size {
        bail!(
            "{}: the index says {} is {} bytes, but it is {}",
            src.name(),
            e.digest,
            e.size,
            manifest.bytes.len()
        );
    }
    let mut entry = e.json.clone();
    entry["mediaType"] = json!(manifest.media_type);
    Ok(Member {
        platform: key.to_string(),
        digest: e.digest.to_string(),
        source: src.pinned(&e.digest),
        entry,
        key,
        manifest,
        from,
    })
}

/// A single manifest: its platform is what its config says, unless given.
async fn single(
    src: &Source<'_>,
    from: usize,
    manifest: Fetched,
    platform: Option<&Platform>,
) -> Result<Member> {
    let doc = source::parse(&manifest)?;
    let config_digest: Digest = doc["config"]["digest"]
        .as_str()
        .with_context(|| format!("{} has no config", src.name()))?
        .parse()?;
    let config_size = doc["config"]["size"]
        .as_u64()
        .with_context(|| format!("{} has a config without a size", src.name()))?;
    let config: Value = serde_json::from_slice(&src.blob(&config_digest, config_size).await?)
        .with_context(|| format!("the config of {} is not JSON", src.name()))?;
    let declared = config_platform(&config);
    let (key, platform_json) = match platform {
        Some(p) => {
            if let Some((own, _)) = declared.as_ref().filter(|(own, _)| own != p) {
                ui::warn(&format!(
                    "the config of {} says {own}; recording {p} as asked",
                    src.name()
                ));
            }
            (p.clone(), platform_value(p))
        }
        None => declared.with_context(|| {
            format!(
                "the config of {} names no os and architecture; give the platform as {}#OS/ARCH",
                src.name(),
                src.name()
            )
        })?,
    };
    let entry = json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest.as_str(),
        "size": manifest.bytes.len(),
        "platform": platform_json,
    });
    Ok(Member {
        platform: key.to_string(),
        digest: manifest.digest.to_string(),
        source: src.pinned(&manifest.digest),
        entry,
        key,
        manifest,
        from,
    })
}

/// The platform an image config declares, with `os.version`/`os.features`
/// (Windows) kept as written.
fn config_platform(config: &Value) -> Option<(Platform, Value)> {
    let os = config["os"].as_str()?;
    let arch = config["architecture"].as_str()?;
    let key = Platform::new(os, arch, config["variant"].as_str());
    let mut v = platform_value(&key);
    for k in ["os.version", "os.features"] {
        if let Some(x) = config.get(k) {
            v[k] = x.clone();
        }
    }
    Some((key, v))
}

fn platform_value(p: &Platform) -> Value {
    let mut v = json!({"os": p.os, "architecture": p.architecture});
    if let Some(var) = &p.variant {
        v["variant"] = json!(var);
    }
    v
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

/// Puts each image's manifest in `store`, and makes its config and layers
/// reachable: for a registry target, blobs in a registry stay there (the push
/// mounts or copies them); everything else is copied into `store`.
async fn stage(
    target: &Target,
    members: &[Member],
    sources: &[Source<'_>],
    store: &BlobStore,
) -> Result<HashMap<Digest, Reference>> {
    let mut remote = HashMap::new();
    for m in members {
        store.put(&m.manifest.bytes)?;
        let src = &sources[m.from];
        let doc = source::parse(&m.manifest)?;
        let descs =
            std::iter::once(&doc["config"]).chain(doc["layers"].as_array().into_iter().flatten());
        for desc in descs {
            let d: Digest = desc["digest"]
                .as_str()
                .with_context(|| {
                    format!("manifest {} has a descriptor without a digest", m.digest)
                })?
                .parse()?;
            match (target, src.reference()) {
                (Target::Registry(_), Some(home)) => {
                    remote.insert(d, home.clone());
                }
                _ => {
                    let size = desc["size"].as_u64().with_context(|| {
                        format!("manifest {} has a descriptor without a size", m.digest)
                    })?;
                    src.copy_blob(&d, size, store).await?
                }
            }
        }
    }
    Ok(remote)
}

/// The index: a Docker manifest list when every image is Docker schema 2 and
/// nothing carries annotations (a list has no place for them), else OCI.
fn write_index(
    members: &[Member],
    annotations: &BTreeMap<String, String>,
    store: &BlobStore,
) -> Result<(oci_spec::image::Descriptor, Family)> {
    let docker = members.iter().all(|m| {
        m.manifest.media_type == media::DOCKER_MANIFEST && m.entry.get("annotations").is_none()
    }) && annotations.is_empty();
    let family = if docker { Family::Docker } else { Family::Oci };
    let entries: Vec<Value> = members.iter().map(|m| m.entry.clone()).collect();
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
    Ok((
        descriptor(family.index(), bytes.len() as u64, &digest)?,
        family,
    ))
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
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

    #[test]
    fn config_platforms_are_normalized_and_keep_os_version() {
        let (p, v) = config_platform(&json!({
            "os": "windows", "architecture": "x86_64", "os.version": "10.0.20348.1"
        }))
        .unwrap();
        assert_eq!(p.to_string(), "windows/amd64");
        assert_eq!(
            v,
            json!({"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.1"})
        );
        assert!(config_platform(&json!({"os": "linux"})).is_none());
    }
}
