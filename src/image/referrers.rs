//! Referrers: the manifests whose `subject` is a given manifest (signatures,
//! SBOMs, provenance), found the way OCI 1.1 says — the registry's referrers
//! API, else the `sha256-<hex>` fallback tag (an index of them) — or, in a
//! layout, the untagged `index.json` entries whose manifest names the subject.

use anyhow::Result;

use super::document::{Document, MAX_MANIFEST};
use super::source::{Kind, Source};
use crate::oci::annotations::REF_NAME;
use crate::oci::{Descriptor, Digest};

/// The fallback tag for `digest`'s referrers: `sha256-<hex>`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("sha256-{}", digest.hex())
}

impl Source<'_> {
    /// The referrers of `subject`, optionally only those of `artifact_type`.
    pub async fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>> {
        match &self.kind {
            Kind::Registry { reference, ctx } => {
                if let Some(f) = ctx.client.referrers(reference, subject).await? {
                    let doc = Document::new(f.bytes, f.digest, Some(&f.media_type));
                    return Ok(doc.index()?.manifests);
                }
                let tagged = reference.with_tag(&fallback_tag(subject));
                match ctx.client.head_manifest(&tagged).await? {
                    None => Ok(vec![]),
                    Some(_) => {
                        let f = ctx.client.get_manifest(&tagged).await?;
                        let doc = Document::new(f.bytes, f.digest, Some(&f.media_type));
                        Ok(doc.index()?.manifests)
                    }
                }
            }
            Kind::Layout { layout, .. } => {
                let mut out = Vec::new();
                for e in layout.entries()? {
                    if e.annotation(REF_NAME).is_some() || e.size > MAX_MANIFEST {
                        continue;
                    }
                    let doc = self.manifest(&e).await?;
                    if doc.is_index() {
                        continue;
                    }
                    let m = doc.manifest()?;
                    if m.subject.as_ref().map(|s| &s.digest) == Some(subject) {
                        out.push(referrer_descriptor(&doc, &m));
                    }
                }
                Ok(out)
            }
        }
    }
}

/// A referrer's descriptor as referrers lists carry it: its `artifactType`
/// (the manifest's, else its config's media type) and its annotations.
pub fn referrer_descriptor(doc: &Document, m: &super::Manifest) -> Descriptor {
    let mut d = doc.descriptor();
    let artifact = m.json["artifactType"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| m.config.media_type.clone());
    d.json["artifactType"] = serde_json::json!(artifact);
    if let Some(a) = m.json.get("annotations") {
        d.json["annotations"] = a.clone();
    }
    d
}
