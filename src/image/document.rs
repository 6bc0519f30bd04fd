//! The documents an image is made of, typed for what xarch reads and kept as
//! JSON for everything else: `Document` (a manifest or index exactly as stored
//! or served, its digest verified), `Index`, `Manifest` and `Config`.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::oci::{Descriptor, Digest, Family, media};
use crate::platform::Platform;

/// Manifests and indexes larger than this are refused (as containerd and ggcr do).
pub const MAX_MANIFEST: u64 = 4 << 20;

/// Image configs larger than this are refused.
pub const MAX_CONFIG: u64 = 16 << 20;

/// A manifest or index: the exact bytes (their sha256 is `digest`) and media type.
#[derive(Debug, Clone)]
pub struct Document {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl Document {
    /// Bytes already checked against `digest` by whoever read them; the media
    /// type from the descriptor, else from the document itself.
    pub fn new(bytes: Vec<u8>, digest: Digest, media_type: Option<&str>) -> Document {
        let media_type = match media_type {
            Some(m) if !m.is_empty() && m != "application/json" => m.to_string(),
            _ => media::of_document(&bytes),
        };
        Document {
            bytes,
            media_type,
            digest,
        }
    }

    pub fn is_index(&self) -> bool {
        media::is_index(&self.media_type)
    }

    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.bytes)
            .with_context(|| format!("manifest {} is not JSON", self.digest))
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(&self.media_type, &self.digest, self.bytes.len() as u64)
    }

    pub fn index(&self) -> Result<Index> {
        if !self.is_index() {
            bail!("{} is an image manifest, not an index", self.digest);
        }
        Index::parse(self.json()?, &self.media_type, &self.digest)
    }

    pub fn manifest(&self) -> Result<Manifest> {
        if self.is_index() {
            bail!("{} is an index, not an image manifest", self.digest);
        }
        Manifest::parse(self.json()?, &self.media_type, &self.digest)
    }
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone)]
pub struct Index {
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
    pub json: Value,
}

impl Index {
    pub fn parse(json: Value, media_type: &str, digest: &Digest) -> Result<Index> {
        let list = json["manifests"]
            .as_array()
            .with_context(|| format!("index {digest} has no manifests array"))?;
        let manifests = list
            .iter()
            .map(|m| Descriptor::from_json(m).with_context(|| format!("index {digest}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Index {
            media_type: media_type.to_string(),
            manifests,
            json,
        })
    }

    pub fn family(&self) -> Family {
        Family::of(&self.media_type)
    }

    /// The index's platform images, and how many other entries it has. The one
    /// rule for every command: attestations (`unknown/unknown`) and entries
    /// without a platform are not images; a nested index is refused.
    pub fn images(&self) -> Result<(Vec<&Descriptor>, usize)> {
        let mut images = Vec::new();
        let mut other = 0;
        for e in &self.manifests {
            if media::is_index(&e.media_type) {
                bail!(
                    "the index holds another index ({}); nested indexes are not supported: \
                     name the inner index itself",
                    e.digest
                );
            }
            match &e.platform {
                Some(_) if !e.is_attestation() => images.push(e),
                _ => other += 1,
            }
        }
        Ok((images, other))
    }

    /// The image for `platform`, or an error that lists what the index offers.
    pub fn select(&self, platform: &Platform, name: &str) -> Result<&Descriptor> {
        let (images, _) = self.images()?;
        images
            .iter()
            .find(|e| e.platform.as_ref() == Some(platform))
            .copied()
            .with_context(|| format!("{name} has no {platform}; it offers: {}", offered(&images)))
    }

    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        string_map(&self.json["annotations"])
    }
}

/// `linux/amd64, linux/arm64` for messages.
pub fn offered(images: &[&Descriptor]) -> String {
    let names: Vec<String> = images
        .iter()
        .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
        .collect();
    if names.is_empty() {
        "no platform images".into()
    } else {
        names.join(", ")
    }
}

/// An image manifest (OCI or Docker schema 2), or an artifact manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub json: Value,
}

impl Manifest {
    pub fn parse(json: Value, media_type: &str, digest: &Digest) -> Result<Manifest> {
        let config = Descriptor::from_json(&json["config"])
            .with_context(|| format!("manifest {digest}: its config"))?;
        let layers = json["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| Descriptor::from_json(l).with_context(|| format!("manifest {digest}")))
            .collect::<Result<Vec<_>>>()?;
        let subject = match json.get("subject") {
            Some(s) => Some(
                Descriptor::from_json(s).with_context(|| format!("manifest {digest}: subject"))?,
            ),
            None => None,
        };
        Ok(Manifest {
            media_type: media_type.to_string(),
            config,
            layers,
            subject,
            json,
        })
    }

    pub fn family(&self) -> Family {
        Family::of(&self.media_type)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.json["annotations"][key].as_str()
    }

    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        string_map(&self.json["annotations"])
    }

    /// The config and every layer: what the manifest needs to be complete.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// An image config: its exact bytes and the JSON, kept whole.
#[derive(Debug, Clone)]
pub struct Config {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub json: Value,
}

impl Config {
    pub fn parse(bytes: Vec<u8>, digest: Digest) -> Result<Config> {
        let json = serde_json::from_slice(&bytes)
            .with_context(|| format!("config {digest} is not valid JSON"))?;
        Ok(Config {
            bytes,
            digest,
            json,
        })
    }

    /// The platform the config declares (normalized), if it names one.
    pub fn platform(&self) -> Option<Platform> {
        platform_of(&self.json)
    }

    /// The platform as an index entry records it: normalized os/architecture/
    /// variant, plus `os.version` and `os.features` (Windows) as written.
    pub fn platform_json(&self) -> Option<Value> {
        let p = self.platform()?;
        let mut v = crate::oci::descriptor::platform_json(&p);
        for k in ["os.version", "os.features"] {
            if let Some(x) = self.json.get(k) {
                v[k] = x.clone();
            }
        }
        Some(v)
    }
}

/// The platform an image config declares.
pub fn platform_of(config: &Value) -> Option<Platform> {
    let os = config["os"].as_str()?;
    let arch = config["architecture"].as_str()?;
    Some(Platform::new(os, arch, config["variant"].as_str()))
}

fn string_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_rule_for_index_entries() {
        let d = Digest::of(b"x");
        let index = json!({"manifests": [
            {"digest": d.as_str(), "size": 1, "platform": {"os": "linux", "architecture": "aarch64", "variant": "v8"}},
            {"digest": d.as_str(), "size": 1, "platform": {"os": "linux", "architecture": "arm"}},
            {"digest": d.as_str(), "size": 1, "platform": {"os": "unknown", "architecture": "unknown"}},
            {"digest": d.as_str(), "size": 1},
        ]});
        let i = Index::parse(index, media::OCI_INDEX, &d).unwrap();
        let (images, other) = i.images().unwrap();
        let names: Vec<String> = images
            .iter()
            .map(|e| e.platform.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(names, ["linux/arm64", "linux/arm/v7"]);
        assert_eq!(other, 2);
        let e = i
            .select(&"linux/s390x".parse().unwrap(), "reg/x")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "reg/x has no linux/s390x; it offers: linux/arm64, linux/arm/v7"
        );
        let nested = json!({"manifests": [{"digest": d.as_str(), "size": 1, "mediaType": media::OCI_INDEX}]});
        let i = Index::parse(nested, media::OCI_INDEX, &d).unwrap();
        assert!(i.images().unwrap_err().to_string().contains("nested"));
        assert!(Index::parse(json!({"manifests": [{"size": 1}]}), media::OCI_INDEX, &d).is_err());
    }

    #[test]
    fn config_platforms_are_normalized_and_keep_os_version() {
        let c = Config::parse(
            br#"{"os":"windows","architecture":"x86_64","os.version":"10.0.20348.1"}"#.to_vec(),
            Digest::of(b"c"),
        )
        .unwrap();
        assert_eq!(c.platform().unwrap().to_string(), "windows/amd64");
        assert_eq!(
            c.platform_json().unwrap(),
            json!({"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.1"})
        );
        assert!(platform_of(&json!({"os": "linux"})).is_none());
    }
}
