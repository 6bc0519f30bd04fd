//! Media types, in the two families a manifest may use (never mixed in one).

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// True for an OCI index or a Docker manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// A manifest's media type from the document itself (its `mediaType`, else an
/// index when it lists `manifests`), for documents stored or served without one.
pub fn of_document(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match v["mediaType"].as_str() {
        Some(m) => m.to_string(),
        None if v.get("manifests").is_some() => OCI_INDEX.into(),
        None => OCI_MANIFEST.into(),
    }
}

/// Which family of media types an image (and so everything added to it) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Oci,
    Docker,
}

impl Family {
    /// The family of a manifest or index media type; unknown types count as OCI.
    pub fn of(media_type: &str) -> Family {
        if media_type.starts_with("application/vnd.docker.") {
            Family::Docker
        } else {
            Family::Oci
        }
    }

    pub fn index(self) -> &'static str {
        match self {
            Family::Oci => OCI_INDEX,
            Family::Docker => DOCKER_LIST,
        }
    }

    pub fn manifest(self) -> &'static str {
        match self {
            Family::Oci => OCI_MANIFEST,
            Family::Docker => DOCKER_MANIFEST,
        }
    }

    pub fn config(self) -> &'static str {
        match self {
            Family::Oci => OCI_CONFIG,
            Family::Docker => DOCKER_CONFIG,
        }
    }

    pub fn layer_gzip(self) -> &'static str {
        match self {
            Family::Oci => OCI_LAYER_GZIP,
            Family::Docker => DOCKER_LAYER_GZIP,
        }
    }
}

pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const OCI_FOREIGN_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
const DOCKER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// True for a layer that holds a tar, plain or compressed with gzip or zstd
/// (OCI, OCI non-distributable, or Docker schema 2 types).
pub fn is_tar_layer(media_type: &str) -> bool {
    let rest = media_type
        .strip_prefix("application/vnd.oci.image.layer.v1.")
        .or_else(|| {
            media_type.strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.")
        });
    match rest {
        Some(r) => matches!(r, "tar" | "tar+gzip" | "tar+zstd"),
        None => matches!(
            media_type,
            DOCKER_LAYER_TAR | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_GZIP
        ),
    }
}

/// True for a zstd-compressed layer.
pub fn is_zstd_layer(media_type: &str) -> bool {
    media_type.ends_with("+zstd")
}

/// The same layer bytes, typed for `family`: a layer moved into an image of the
/// other family keeps its compression and gets that family's name for it. Layer
/// types with no counterpart (zstd, foreign layers) are an error, since the
/// image would mix families.
pub fn layer_in(family: Family, media_type: &str) -> Result<String, String> {
    const PAIRS: [(&str, &str); 3] = [
        (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP),
        (OCI_LAYER_TAR, DOCKER_LAYER_TAR),
        (OCI_FOREIGN_GZIP, DOCKER_FOREIGN_GZIP),
    ];
    if Family::of(media_type) == family {
        return Ok(media_type.to_string());
    }
    let found = PAIRS.iter().find_map(|(oci, docker)| match family {
        Family::Oci if *docker == media_type => Some(*oci),
        Family::Docker if *oci == media_type => Some(*docker),
        _ => None,
    });
    let target = match family {
        Family::Oci => "an OCI",
        Family::Docker => "a Docker schema 2",
    };
    found
        .map(String::from)
        .ok_or_else(|| format!("a layer of type {media_type} has no equivalent in {target} image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_change_family_keeping_compression() {
        assert_eq!(
            layer_in(Family::Oci, DOCKER_LAYER_GZIP).unwrap(),
            OCI_LAYER_GZIP
        );
        assert_eq!(
            layer_in(Family::Docker, OCI_LAYER_GZIP).unwrap(),
            DOCKER_LAYER_GZIP
        );
        assert_eq!(
            layer_in(Family::Docker, OCI_LAYER_TAR).unwrap(),
            DOCKER_LAYER_TAR
        );
        assert_eq!(
            layer_in(Family::Oci, OCI_LAYER_GZIP).unwrap(),
            OCI_LAYER_GZIP
        );
        assert_eq!(
            layer_in(Family::Oci, DOCKER_FOREIGN_GZIP).unwrap(),
            OCI_FOREIGN_GZIP
        );
        let zstd = OCI_LAYER_ZSTD;
        assert_eq!(layer_in(Family::Oci, zstd).unwrap(), zstd);
        let e = layer_in(Family::Docker, zstd).unwrap_err();
        assert!(
            e.contains("no equivalent in a Docker schema 2 image"),
            "{e}"
        );
    }

    #[test]
    fn tar_layers_are_known_by_type() {
        for t in [
            OCI_LAYER_TAR,
            OCI_LAYER_GZIP,
            OCI_LAYER_ZSTD,
            DOCKER_LAYER_TAR,
            DOCKER_LAYER_GZIP,
            OCI_FOREIGN_GZIP,
            DOCKER_FOREIGN_GZIP,
        ] {
            assert!(is_tar_layer(t), "{t}");
        }
        for t in [
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            "application/vnd.oci.image.config.v1+json",
            "application/octet-stream",
        ] {
            assert!(!is_tar_layer(t), "{t}");
        }
    }
}
