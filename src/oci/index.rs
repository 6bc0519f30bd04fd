//! `Index`: the image index (or Docker manifest list) over per-platform images.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};

use super::blobs::BlobStore;
use super::image::descriptor;
use super::json;
use super::media::Family;

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
