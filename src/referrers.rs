//! `xarch referrers IMAGE`: what is attached to an image — signatures, SBOMs,
//! provenance — for the root and, for an index, each platform image: from the
//! registry's referrers API, else the `sha256-<hex>` fallback tag, or from a
//! layout's untagged `index.json` entries.

use anyhow::Result;
use serde::Serialize;

use crate::image::{Ctx, ImageRef, Source};
use crate::oci::Descriptor;
use crate::registry::Options;
use crate::runtime;

/// The referrers of one manifest.
#[derive(Debug, Serialize)]
pub struct Attached {
    /// The subject's digest, and its platform for an index's image.
    pub subject: String,
    pub platform: Option<String>,
    pub referrers: Vec<Referrer>,
}

#[derive(Debug, Serialize)]
pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: u64,
    pub annotations: std::collections::BTreeMap<String, String>,
}

pub fn list(image: &ImageRef, artifact_type: Option<&str>, opts: Options) -> Result<Vec<Attached>> {
    let ctx = Ctx::new(opts, false)?;
    runtime::block_on(async {
        let src = Source::open(image, &ctx)?;
        let root = src.root().await?;
        let mut subjects = vec![(root.descriptor(), None)];
        if root.is_index() {
            for e in root.index()?.manifests {
                let p = e.platform.as_ref().map(|p| p.to_string());
                subjects.push((e, p));
            }
        }
        let mut out = Vec::new();
        for (d, platform) in subjects {
            let referrers = src
                .referrers(&d.digest)
                .await?
                .iter()
                .filter(|r| artifact_type.is_none_or(|t| artifact(r).as_deref() == Some(t)))
                .map(referrer)
                .collect();
            out.push(Attached {
                subject: d.digest.to_string(),
                platform,
                referrers,
            });
        }
        Ok(out)
    })?
}

fn artifact(d: &Descriptor) -> Option<String> {
    d.json["artifactType"].as_str().map(String::from)
}

fn referrer(d: &Descriptor) -> Referrer {
    Referrer {
        digest: d.digest.to_string(),
        media_type: d.media_type.clone(),
        artifact_type: artifact(d),
        size: d.size,
        annotations: d.json["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
    }
}
