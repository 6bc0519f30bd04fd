//! The build orchestrator: plan → compile → check → assemble → write.

pub mod git;
pub mod plan;
pub mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::base;
use crate::elf;
use crate::oci::annotations as ann;
use crate::oci::image::{self, ImageSpec, NewLayer};
use crate::oci::{LayerOptions, Layout, index};
use crate::toolchain::rust::Artifact;
use crate::ui;

pub use plan::{BuildRequest, Plan};

/// What a build wrote, for the summary and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub tags: Vec<String>,
    pub layout: PathBuf,
    pub index: Written,
    pub images: Vec<PlatformImage>,
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
}

/// Builds the project described by `req` into an OCI layout.
pub fn run(req: &BuildRequest) -> Result<Report> {
    let (plan, project) = plan::load(req)?;
    let artifacts = project.build(&plan.target_settings(), &plan.rust)?;
    check_artifacts(&plan, &artifacts)?;

    let layout_dir = plan.layout_dir(project.target_dir());
    let layout = Layout::open_or_create(&layout_dir)?;
    let opts = LayerOptions {
        mtime: plan.epoch,
        level: 6,
    };
    let files_layer = plan.files_layer()?;
    let files_layer = match files_layer {
        Some(b) => {
            ui::status("Layering", "files");
            let family = crate::oci::Family::Oci;
            Some(b.write(opts, family.layer_gzip(), layout.blobs())?)
        }
        None => None,
    };

    let mut manifests = Vec::new();
    let mut images = Vec::new();
    for target in &plan.targets {
        let platform = &target.platform;
        let bins = &artifacts[&target.rust];
        ui::status(
            "Layering",
            &format!("{} for {platform}", names(bins).join(", ")),
        );
        let base = base::builtin(&plan.base, platform, plan.epoch, layout.blobs())?;
        let mut layers = Vec::new();
        if let Some(l) = &files_layer {
            layers.push(NewLayer {
                layer: l.clone(),
                created_by: "xarch: files".into(),
            });
        }
        let bin_layer =
            plan.bin_layer(bins)?
                .write(opts, base.family.layer_gzip(), layout.blobs())?;
        layers.push(NewLayer {
            layer: bin_layer,
            created_by: format!("xarch: {} → {}", names(bins).join(", "), plan.bin_dir),
        });
        let edits = plan.edits_for(platform);
        let spec = ImageSpec {
            base: &base,
            platform,
            layers: &layers,
            edits: &edits,
            created: &time::rfc3339(plan.epoch),
            annotations: &plan.annotations,
        };
        let written = image::write(&spec, layout.blobs())?;
        images.push(PlatformImage {
            platform: platform.to_string(),
            digest: written.descriptor.digest().to_string(),
            size: written.total_size,
            binaries: names(bins),
        });
        manifests.push(written.descriptor);
    }
    let index_desc = index::write(
        crate::oci::Family::Oci,
        manifests,
        &plan.annotations,
        layout.blobs(),
    )?;
    for tag in &plan.tags {
        // containerd's import reads the full name; skopeo and umoci the ref name.
        let full = vec![(
            ann::CONTAINERD_NAME.to_string(),
            format!("{}:{tag}", plan.name),
        )];
        layout.set_refs(&index_desc, std::slice::from_ref(tag), &full)?;
    }
    Ok(Report {
        name: plan.name.clone(),
        tags: plan.tags.clone(),
        layout: absolute(&layout_dir),
        index: Written {
            digest: index_desc.digest().to_string(),
            media_type: index_desc.media_type().to_string(),
            size: index_desc.size(),
        },
        images,
    })
}

fn names(bins: &[Artifact]) -> Vec<String> {
    bins.iter().map(|b| b.name.clone()).collect()
}

/// Every binary must be an ELF for its platform before it is layered.
fn check_artifacts(plan: &Plan, artifacts: &BTreeMap<String, Vec<Artifact>>) -> Result<()> {
    for target in &plan.targets {
        let bins = artifacts
            .get(&target.rust)
            .with_context(|| format!("cargo produced no binaries for {}", target.rust))?;
        for b in bins {
            elf::check(&b.path, &target.elf(), &target.platform.to_string())?;
        }
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Annotations for the index and every manifest.
pub fn annotations(
    created: &str,
    version: Option<&str>,
    git: &git::GitInfo,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(ann::CREATED.to_string(), created.to_string());
    if let Some(v) = version {
        a.insert(ann::VERSION.to_string(), v.to_string());
    }
    if let Some(r) = &git.revision {
        a.insert(ann::REVISION.to_string(), r.clone());
    }
    if let Some(s) = &git.source {
        a.insert(ann::SOURCE.to_string(), s.clone());
    }
    a.extend(extra.clone());
    a
}
