//! `Metadata`: the file one shard of a build split over machines writes
//! (`xarch build --push-by-digest --metadata-file FILE`) and the merge reads
//! (`xarch manifest create TAG --from-metadata FILE…`).

use serde::{Deserialize, Serialize};

/// What one shard of a build split over machines hands to the merge
/// (`xarch manifest create TAG --from-metadata FILE…`): where it was pushed,
/// the index, and each platform's manifest entry exactly as the index has it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    pub repository: String,
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    pub manifests: Vec<serde_json::Value>,
    /// Attestations and signatures attached to the images (descriptors).
    #[serde(default)]
    pub referrers: Vec<serde_json::Value>,
}
