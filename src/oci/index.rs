//! The image index (or Docker manifest list) over per-platform images.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use super::blobs::BlobStore;
use super::descriptor::Descriptor;
use super::json;
use super::media::Family;

/// Writes an index over `manifests` (their descriptors as given, every field
/// kept) and returns its descriptor. A Docker manifest list has no annotations.
pub fn write(
    family: Family,
    manifests: &[Descriptor],
    annotations: &BTreeMap<String, String>,
    store: &BlobStore,
) -> Result<Descriptor> {
    let mut doc = json!({
        "schemaVersion": 2,
        "mediaType": family.index(),
        "manifests": manifests,
    });
    if family == Family::Oci && !annotations.is_empty() {
        doc["annotations"] = json!(annotations);
    }
    let bytes = json::to_vec(&doc)?;
    let digest = store.put(&bytes)?;
    Ok(Descriptor::new(family.index(), &digest, bytes.len() as u64))
}
