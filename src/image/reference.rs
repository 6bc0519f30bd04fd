//! `ImageRef`: everything that names an image — a registry reference
//! (`REGISTRY/REPO[:TAG][@DIGEST]`), a local OCI layout (`oci:DIR[:TAG]`) or an
//! OCI archive (`oci-archive:FILE[:TAG]`) — and the one default-tag rule:
//!
//! - a registry reference with neither tag nor digest means `latest`
//!   (`registry::Reference` fills it in when parsed, as docker and crane do);
//! - a layout or archive named without a tag means, when read, its image tagged
//!   `latest`, else its only image (as skopeo does); when written, `latest`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::oci::DEFAULT_TAG;
use crate::registry::reference::{BadReference, Reference, check_tag, split_name_tag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Registry(Reference),
    Layout { dir: PathBuf, tag: Option<String> },
    Archive { file: PathBuf, tag: Option<String> },
}

impl ImageRef {
    /// The tag to write under: the one given, else `latest` (None for a
    /// registry reference pinned by digest only).
    pub fn write_tag(&self) -> Option<String> {
        match self {
            ImageRef::Registry(r) => r.tag.clone(),
            ImageRef::Layout { tag, .. } | ImageRef::Archive { tag, .. } => {
                Some(tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string()))
            }
        }
    }

    /// The registry reference, when this names one.
    pub fn registry(&self) -> Option<&Reference> {
        match self {
            ImageRef::Registry(r) => Some(r),
            _ => None,
        }
    }

    /// The same image under another tag (a layout or archive keeps its path).
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        match self {
            ImageRef::Registry(r) => ImageRef::Registry(r.with_tag(tag)),
            ImageRef::Layout { dir, .. } => ImageRef::Layout {
                dir: dir.clone(),
                tag: Some(tag.to_string()),
            },
            ImageRef::Archive { file, .. } => ImageRef::Archive {
                file: file.clone(),
                tag: Some(tag.to_string()),
            },
        }
    }

    /// `NAME@DIGEST`: the repository, layout or archive pinned to one manifest.
    pub fn pinned(&self, digest: &crate::oci::Digest) -> String {
        match self {
            ImageRef::Registry(r) => r.with_digest(digest).to_string(),
            ImageRef::Layout { dir, .. } => format!("oci:{}@{digest}", dir.display()),
            ImageRef::Archive { file, .. } => format!("oci-archive:{}@{digest}", file.display()),
        }
    }
}

fn local(s: &str, scheme: &str, rest: &str) -> Result<(PathBuf, Option<String>), BadReference> {
    let bad = |reason: String| BadReference {
        input: s.to_string(),
        reason,
    };
    let (path, tag) = split_name_tag(rest);
    if path.is_empty() {
        return Err(bad(format!("no path after `{scheme}:`")));
    }
    if let Some(t) = tag {
        check_tag(t).map_err(bad)?;
    }
    if path.chars().any(char::is_control) {
        return Err(bad("control characters in the path".into()));
    }
    Ok((Path::new(path).to_path_buf(), tag.map(String::from)))
}

impl FromStr for ImageRef {
    type Err = BadReference;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = local(s, "oci-archive", rest)?;
            return Ok(ImageRef::Archive { file, tag });
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = local(s, "oci", rest)?;
            return Ok(ImageRef::Layout { dir, tag });
        }
        let r = s.strip_prefix("docker://").unwrap_or(s);
        Ok(ImageRef::Registry(r.parse()?))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, path, tag) = match self {
            ImageRef::Registry(r) => return write!(f, "{r}"),
            ImageRef::Layout { dir, tag } => ("oci", dir, tag),
            ImageRef::Archive { file, tag } => ("oci-archive", file, tag),
        };
        write!(f, "{scheme}:{}", path.display())?;
        match tag {
            Some(t) => write!(f, ":{t}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_archives_and_registries() {
        assert_eq!(
            "oci:out:1.0".parse::<ImageRef>().unwrap(),
            ImageRef::Layout {
                dir: "out".into(),
                tag: Some("1.0".into())
            }
        );
        assert_eq!(
            "oci:/tmp/a:b/out".parse::<ImageRef>().unwrap(),
            ImageRef::Layout {
                dir: "/tmp/a:b/out".into(),
                tag: None
            }
        );
        assert_eq!(
            "oci-archive:/tmp/x.tar:v2".parse::<ImageRef>().unwrap(),
            ImageRef::Archive {
                file: "/tmp/x.tar".into(),
                tag: Some("v2".into())
            }
        );
        assert!(matches!(
            "docker://busybox".parse::<ImageRef>().unwrap(),
            ImageRef::Registry(_)
        ));
        assert!("oci:".parse::<ImageRef>().is_err());
        assert!("oci:out:-bad".parse::<ImageRef>().is_err());
        assert!("oci:o\u{0}ut".parse::<ImageRef>().is_err());
    }

    #[test]
    fn one_default_tag_rule() {
        let r: ImageRef = "reg.io/app".parse().unwrap();
        assert_eq!(r.write_tag().as_deref(), Some("latest"));
        assert_eq!(r.to_string(), "reg.io/app:latest");
        let l: ImageRef = "oci:out".parse().unwrap();
        assert_eq!(l.write_tag().as_deref(), Some("latest"));
        assert_eq!(l.to_string(), "oci:out");
        let d = crate::oci::Digest::of(b"x");
        let pinned: ImageRef = format!("reg.io/app@{d}").parse().unwrap();
        assert_eq!(pinned.write_tag(), None);
    }
}
