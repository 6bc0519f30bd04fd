//! `Report`: what a build wrote, for the summary and `--json`.

use std::path::PathBuf;

use serde::Serialize;

use crate::sink::PushStats;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The registry repository pushed to, if any.
    pub repository: Option<String>,
    /// The index's entries (for the metadata file).
    #[serde(skip)]
    pub entries: Vec<crate::oci::Descriptor>,
    /// The index's annotations (for the metadata file).
    #[serde(skip)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `name:tag` for each tag.
    pub refs: Vec<String>,
    /// The OCI layout written, if any.
    pub layout: Option<PathBuf>,
    pub index: Written,
    pub images: Vec<PlatformImage>,
    /// `ref@digest` for each pushed tag.
    pub pushed: Vec<String>,
    pub push: Option<PushStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformImage {
    pub platform: String,
    pub digest: String,
    pub size: u64,
    pub binaries: Vec<String>,
    pub base: String,
}

impl Report {
    /// The metadata file's contents; None when nothing was pushed.
    pub fn metadata(&self) -> Option<crate::image::Metadata> {
        Some(crate::image::Metadata {
            repository: self.repository.clone()?,
            digest: self.index.digest.clone(),
            media_type: self.index.media_type.clone(),
            size: self.index.size,
            annotations: self.annotations.clone(),
            manifests: self.entries.iter().map(|e| e.json.clone()).collect(),
            referrers: vec![],
        })
    }

    /// The pushed index pinned by digest in its repository
    /// (`REGISTRY/REPO@sha256:…`), when the image was pushed.
    pub fn pinned_index(&self) -> Option<String> {
        let first = self.pushed.first()?;
        let (name, _) = first.split_once('@')?;
        let r: crate::registry::Reference = name.parse().ok()?;
        let d: crate::oci::Digest = self.index.digest.parse().ok()?;
        Some(r.with_digest(&d).to_string())
    }
}
