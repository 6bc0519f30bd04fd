//! SLSA v1 provenance: how an image was built — xarch's build type, the
//! parameters a user chose (config file, platforms, flags, tags), what the
//! build resolved (source commit, base image digests, toolchain versions), who
//! built it and when.
//!
//! The build type `https://github.com/xarch-dev/xarch/buildtypes/build/v1`
//! means: `xarch build` compiled the source at `resolvedDependencies[source]`
//! natively for each platform with the listed toolchains, and layered the
//! binaries onto the listed base image. Its `externalParameters` are:
//! - `config`: `{path, digest: {sha256}}` of xarch.toml / Cargo.toml read;
//! - `platforms`: the OCI platforms built (`linux/arm64` …);
//! - `tags`: the references the image was written or pushed to;
//! - `flags`: the command-line options that change what is built
//!   (features, profile, base, …), as given.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::sbom::inputs::Tool;
use crate::oci::Digest;

pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
pub const BUILD_TYPE: &str = "https://github.com/xarch-dev/xarch/buildtypes/build/v1";
/// The builder when the caller names none: xarch run by a person or a CI job
/// it does not know about.
pub const LOCAL_BUILDER: &str = "https://github.com/xarch-dev/xarch/builders/local";

/// What the build hands over for the provenance of one image.
#[derive(Debug, Clone, Default)]
pub struct ProvenanceInputs {
    /// The configuration file read, relative to the project, and its digest.
    pub config: Option<(String, Digest)>,
    pub platforms: Vec<String>,
    pub tags: Vec<String>,
    /// Command-line options that change the build, by long name.
    pub flags: BTreeMap<String, Value>,
    /// The source repository URL (credentials stripped) and its commit.
    pub source: Option<String>,
    pub revision: Option<String>,
    /// Base images: (reference as resolved `registry/repo`, manifest digest).
    pub bases: Vec<(String, Digest)>,
    pub toolchains: Vec<Tool>,
    /// The trusted builder's id (a CI's), else `LOCAL_BUILDER`.
    pub builder_id: Option<String>,
    /// A CI run's id, when there is one.
    pub invocation_id: Option<String>,
    /// Seconds since the epoch. The build passes SOURCE_DATE_EPOCH for both
    /// when it is set (reproducible documents), else the wall clock.
    pub started: u64,
    pub finished: u64,
}

/// The provenance predicate for an image (a platform image or the index).
pub fn for_image(i: &ProvenanceInputs) -> Value {
    let mut external = json!({
        "platforms": i.platforms,
        "tags": i.tags,
        "flags": i.flags,
    });
    if let Some((path, d)) = &i.config {
        external["config"] = json!({"path": path, "digest": {"sha256": d.hex()}});
    }
    let mut deps = Vec::new();
    if let Some(src) = &i.source {
        let mut d = json!({"uri": format!("git+{src}"), "name": "source"});
        if let Some(rev) = &i.revision {
            d["uri"] = format!("git+{src}@{rev}").into();
            d["digest"] = json!({"gitCommit": rev});
        }
        deps.push(d);
    } else if let Some(rev) = &i.revision {
        deps.push(json!({"name": "source", "digest": {"gitCommit": rev}}));
    }
    for (name, d) in &i.bases {
        deps.push(json!({
            "name": "base",
            "uri": super::sbom::inputs::oci_purl(name, d, None),
            "digest": {"sha256": d.hex()},
            "annotations": {"reference": name},
        }));
    }
    let mut tools: Vec<&Tool> = i.toolchains.iter().collect();
    tools.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    tools.dedup();
    for t in tools {
        deps.push(json!({
            "name": t.name,
            "uri": format!("pkg:generic/{}@{}", t.name, super::sbom::inputs::percent(&t.version)),
            "annotations": {"version": t.version},
        }));
    }
    let mut metadata = json!({
        "startedOn": crate::epoch::rfc3339(i.started),
        "finishedOn": crate::epoch::rfc3339(i.finished),
    });
    if let Some(id) = &i.invocation_id {
        metadata["invocationId"] = id.clone().into();
    }
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {"xarchVersion": env!("CARGO_PKG_VERSION")},
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {
                "id": i.builder_id.as_deref().unwrap_or(LOCAL_BUILDER),
                "version": {"xarch": env!("CARGO_PKG_VERSION")},
            },
            "metadata": metadata,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicate_records_inputs() {
        let base = Digest::of(b"base");
        let p = for_image(&ProvenanceInputs {
            config: Some(("xarch.toml".into(), Digest::of(b"cfg"))),
            platforms: vec!["linux/amd64".into()],
            tags: vec!["reg.example.com/app:1".into()],
            source: Some("https://example.com/o/app".into()),
            revision: Some("abc".into()),
            bases: vec![("reg.example.com/base".into(), base.clone())],
            toolchains: vec![Tool {
                name: "rustc".into(),
                version: "1.95.0".into(),
            }],
            started: 10,
            finished: 10,
            ..Default::default()
        });
        assert_eq!(p["buildDefinition"]["buildType"], BUILD_TYPE);
        let deps = p["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(deps[0]["digest"]["gitCommit"], "abc");
        assert_eq!(deps[1]["digest"]["sha256"], base.hex());
        assert_eq!(deps[2]["name"], "rustc");
        assert_eq!(
            p["runDetails"]["metadata"]["startedOn"],
            "1970-01-01T00:00:10Z"
        );
        assert_eq!(p["runDetails"]["builder"]["id"], LOCAL_BUILDER);
    }
}
