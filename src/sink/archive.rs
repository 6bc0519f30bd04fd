//! Delivery into an OCI archive: the image delivered into a temp layout beside
//! the file, a docker `manifest.json` for one platform (the host's, unless
//! another is asked for), then one tar written and renamed into place.

use std::path::Path;

use anyhow::Result;

use super::LayoutTag;
use super::walk::Walk;
use crate::image::{Ctx, Homes};
use crate::oci::archive::{self, DockerEntry};
use crate::platform::Platform;
use crate::ui;

pub async fn deliver(
    ctx: &Ctx,
    homes: &Homes,
    w: &Walk,
    file: &Path,
    tag: &LayoutTag,
    platform: Option<&Platform>,
) -> Result<()> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".xarch-archive-layout-")
        .tempdir_in(parent)?;
    let dir = staging.path().join("layout");
    super::layout::deliver(ctx, homes, w, &dir, std::slice::from_ref(tag)).await?;
    let docker = docker_entry(homes, w, tag, platform)?;
    archive::pack(&dir, file, docker.as_ref())
}

/// The one image `docker load` gets: `platform` (or this machine's) from an
/// index, or the single image.
fn docker_entry(
    homes: &Homes,
    w: &Walk,
    tag: &LayoutTag,
    platform: Option<&Platform>,
) -> Result<Option<DockerEntry>> {
    let (_, root) = w.manifests.last().expect("a walk holds its root");
    let want = platform.cloned().unwrap_or_else(Platform::host);
    let manifest = if root.is_index() {
        let index = root.index()?;
        let (images, _) = index.images()?;
        let Some(entry) = images
            .iter()
            .find(|e| e.platform.as_ref() == Some(&want))
            .or(images.first())
        else {
            return Ok(None);
        };
        if entry.platform.as_ref() != Some(&want) {
            ui::warn(&format!(
                "the image has no {want}; `docker load` will get {}",
                entry
                    .platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            ));
        }
        homes.manifest(entry)?.manifest()?
    } else {
        root.manifest()?
    };
    let path = |d: &crate::oci::Digest| format!("blobs/sha256/{}", d.hex());
    let name = tag
        .name
        .clone()
        .unwrap_or_else(|| format!("xarch:{}", tag.tag));
    Ok(Some(DockerEntry {
        repo_tags: vec![name],
        config: path(&manifest.config.digest),
        layers: manifest.layers.iter().map(|l| path(&l.digest)).collect(),
    }))
}
