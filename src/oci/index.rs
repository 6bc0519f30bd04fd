//! `Index`: the image index (or Docker manifest list) over per-platform images.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};
use serde_json::Value;

use super::blobs::BlobStore;
use super::digest::Digest;
use super::image::descriptor;
use super::json;
use super::media::{self, Family};
use crate::platform::Platform;

/// Writes an index over `manifests` and returns its descriptor.
pub fn write(
    family: Family,
    manifests: Vec<Descriptor>,
    annotations: &BTreeMap<String, String>,
    store: &BlobStore,
) -> Result<Descriptor> {
    let mut b = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::from(family.index()))
        .manifests(manifests);
    if family == Family::Oci && !annotations.is_empty() {
        b = b.annotations(annotations.clone().into_iter().collect::<HashMap<_, _>>());
    }
    let bytes = json::to_vec(&b.build()?)?;
    let digest = store.put(&bytes)?;
    descriptor(family.index(), bytes.len() as u64, &digest)
}

/// One entry of an index or manifest list: the JSON as written (every field
/// kept, for copying into another index) and the parts xarch reads.
#[derive(Debug, Clone)]
pub struct Entry {
    pub json: Value,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Normalized; None when the entry has no os and architecture.
    pub platform: Option<Platform>,
}

impl Entry {
    /// buildx's attestation manifests sit in the index as `unknown/unknown`.
    pub fn is_attestation(&self) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
    }
}

/// The entries of an index document, in order.
pub fn entries(index: &Value) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for m in index["manifests"].as_array().into_iter().flatten() {
        let digest: Digest = m["digest"]
            .as_str()
            .context("index entry without a digest")?
            .parse()?;
        let p = &m["platform"];
        let platform = match (p["os"].as_str(), p["architecture"].as_str()) {
            (Some(os), Some(arch)) => Some(Platform::new(os, arch, p["variant"].as_str())),
            _ => None,
        };
        out.push(Entry {
            json: m.clone(),
            media_type: m["mediaType"]
                .as_str()
                .unwrap_or(media::OCI_MANIFEST)
                .to_string(),
            size: m["size"].as_u64().context("index entry without a size")?,
            digest,
            platform,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_their_json_and_flag_attestations() {
        let d = Digest::of(b"x");
        let index = serde_json::json!({"manifests": [
            {"digest": d.as_str(), "size": 1, "platform": {"os": "linux", "architecture": "aarch64"},
             "annotations": {"k": "v"}},
            {"digest": d.as_str(), "size": 1, "mediaType": media::OCI_MANIFEST,
             "platform": {"os": "unknown", "architecture": "unknown"}},
            {"digest": d.as_str(), "size": 1, "mediaType": media::OCI_INDEX},
        ]});
        let e = entries(&index).unwrap();
        assert_eq!(e[0].platform.as_ref().unwrap().to_string(), "linux/arm64");
        assert_eq!(e[0].json["annotations"]["k"], "v");
        assert_eq!(e[0].media_type, media::OCI_MANIFEST);
        assert!(!e[0].is_attestation() && e[1].is_attestation());
        assert!(e[2].platform.is_none() && media::is_index(&e[2].media_type));
        assert!(entries(&serde_json::json!({"manifests": [{"size": 1}]})).is_err());
    }
}
