//! `sink`: the one delivery path. Whatever made an image — a build, a rebase, a
//! new index, or an image read from a layout or registry — hands its root
//! descriptor and its `Homes` (where every blob is) to `deliver`, which fills
//! the destination with every blob (HEAD, mount, local copy, fetched copy),
//! writes manifests children before parents, and tags last.

mod archive;
mod layout;
mod push;
#[cfg(test)]
mod tests;
mod walk;

use std::path::PathBuf;

use anyhow::{Result, bail};

pub use push::PushStats;
pub use walk::{Walk, walk};

use crate::image::{Ctx, Homes, ImageRef};
use crate::oci::Descriptor;
use crate::platform::Platform;
use crate::registry::Reference;

/// Where an image goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// An OCI layout; each tag may carry the image's full name
    /// (`io.containerd.image.name`, for `ctr import`).
    Layout { dir: PathBuf, tags: Vec<LayoutTag> },
    /// A registry repository, under each tag (or by digest when a reference
    /// names no tag).
    Registry { refs: Vec<Reference> },
    /// An OCI archive (one tar), with a docker `manifest.json` for `platform`
    /// (default: this machine's).
    Archive {
        file: PathBuf,
        tag: LayoutTag,
        platform: Option<Platform>,
    },
}

#[derive(Debug, Clone)]
pub struct LayoutTag {
    pub tag: String,
    pub name: Option<String>,
}

/// What one delivery did.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// `NAME@DIGEST` for each tag written.
    pub pinned: Vec<String>,
    pub push: Option<PushStats>,
}

impl Destination {
    /// Destinations for `targets`: every registry reference in one (they must
    /// name one repository), each layout directory in one. A target without a
    /// tag gets `latest`.
    pub fn group(targets: &[ImageRef]) -> Result<Vec<Destination>> {
        let mut out: Vec<Destination> = Vec::new();
        for t in targets {
            match t {
                ImageRef::Registry(r) => {
                    let refs = match out.iter_mut().find_map(|d| match d {
                        Destination::Registry { refs } => Some(refs),
                        _ => None,
                    }) {
                        Some(refs) => refs,
                        None => {
                            out.push(Destination::Registry { refs: vec![] });
                            let Some(Destination::Registry { refs }) = out.last_mut() else {
                                unreachable!("just pushed")
                            };
                            refs
                        }
                    };
                    if let Some(first) = refs.first()
                        && first.name() != r.name()
                    {
                        bail!(
                            "all registry targets must name the same repository ({} and {})",
                            first.name(),
                            r.name()
                        );
                    }
                    refs.push(r.clone());
                }
                ImageRef::Layout { dir, .. } => {
                    let tag = LayoutTag {
                        tag: t.write_tag().expect("a layout always has a tag to write"),
                        name: None,
                    };
                    match out.iter_mut().find_map(|d| match d {
                        Destination::Layout { dir: d, tags } if d == dir => Some(tags),
                        _ => None,
                    }) {
                        Some(tags) => tags.push(tag),
                        None => out.push(Destination::Layout {
                            dir: dir.clone(),
                            tags: vec![tag],
                        }),
                    }
                }
                ImageRef::Archive { file, .. } => out.push(Destination::Archive {
                    file: file.clone(),
                    tag: LayoutTag {
                        tag: t.write_tag().expect("an archive always has a tag to write"),
                        name: None,
                    },
                    platform: None,
                }),
            }
        }
        Ok(out)
    }

    /// For messages: the repository or the layout directory.
    pub fn name(&self) -> String {
        match self {
            Destination::Layout { dir, .. } => format!("oci:{}", dir.display()),
            Destination::Registry { refs } => refs.first().map(|r| r.name()).unwrap_or_default(),
            Destination::Archive { file, .. } => format!("oci-archive:{}", file.display()),
        }
    }
}

/// Delivers the image or index `root` (its manifests in `homes`' local stores,
/// its other blobs local or in a registry) to `dest`.
pub async fn deliver(
    ctx: &Ctx,
    root: &Descriptor,
    homes: &Homes,
    dest: &Destination,
    jobs: usize,
) -> Result<Delivered> {
    deliver_with(ctx, root, &[], homes, dest, jobs).await
}

/// `deliver`, with `referrers` (manifests whose subject is the root or one of
/// its images: attestations, signatures) delivered after their subjects.
pub async fn deliver_with(
    ctx: &Ctx,
    root: &Descriptor,
    referrers: &[Descriptor],
    homes: &Homes,
    dest: &Destination,
    jobs: usize,
) -> Result<Delivered> {
    let w = walk(homes, root, referrers)?;
    match dest {
        Destination::Layout { dir, tags } => {
            layout::deliver(ctx, homes, &w, dir, tags).await?;
            let pinned = tags
                .iter()
                .map(|t| format!("oci:{}:{}@{}", dir.display(), t.tag, root.digest))
                .collect();
            Ok(Delivered { pinned, push: None })
        }
        Destination::Archive {
            file,
            tag,
            platform,
        } => {
            archive::deliver(ctx, homes, &w, file, tag, platform.as_ref()).await?;
            let pinned = vec![format!(
                "oci-archive:{}:{}@{}",
                file.display(),
                tag.tag,
                root.digest
            )];
            Ok(Delivered { pinned, push: None })
        }
        Destination::Registry { refs } => {
            let stats = push::deliver(ctx, homes, &w, refs, jobs).await?;
            let pinned = refs
                .iter()
                .map(|r| format!("{r}@{}", root.digest))
                .collect();
            Ok(Delivered {
                pinned,
                push: Some(stats),
            })
        }
    }
}
