//! `Reference`: a Docker-compatible image reference — `[registry/]repo[:tag][@digest]`
//! with `docker.io`, `library/` and (when neither tag nor digest is given) the
//! tag `latest` filled in as the docker CLI does.

use std::fmt;
use std::str::FromStr;

use crate::oci::{DEFAULT_TAG, Digest};

pub const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{input}`: {reason}")]
pub struct BadReference {
    pub input: String,
    pub reason: String,
}

impl Reference {
    /// The tag or digest to put in `/v2/<repo>/manifests/<reference>`: the digest
    /// when there is one, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.into(),
        }
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Host to connect to: Docker Hub's API lives on registry-1.docker.io.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = BadReference;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| BadReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|e| bad(&e.to_string()))?),
            ),
            None => (input, None),
        };
        let (name, tag) = split_name_tag(rest);
        if let Some(t) = tag {
            check_tag(t).map_err(|r| bad(&r))?;
        }
        let (registry, repository) = split_domain(name);
        let repository = match (registry.as_str(), repository.contains('/')) {
            (DOCKER_HUB, false) => format!("library/{repository}"),
            _ => repository.to_string(),
        };
        check_repository(&repository).map_err(|r| bad(&r))?;
        // The one default-tag rule: neither tag nor digest means `latest`.
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// The first component is a registry when it looks like a host: it has a dot or a
/// port, or is `localhost` (the docker CLI's rule).
fn split_domain(name: &str) -> (String, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.starts_with('[') =>
        {
            (hub_alias(first).to_string(), rest)
        }
        _ => (DOCKER_HUB.to_string(), name),
    }
}

/// Docker Hub's other names (`index.docker.io`, `registry-1.docker.io`) → `docker.io`.
fn hub_alias(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        h => h,
    }
}

/// The registry named by a `login`/`logout` argument: a host[:port], or a URL as
/// docker writes them (`https://index.docker.io/v1/`); Docker Hub is `docker.io`.
pub fn registry_host(arg: &str) -> String {
    let a = arg
        .strip_prefix("https://")
        .or_else(|| arg.strip_prefix("http://"))
        .unwrap_or(arg);
    hub_alias(a.split('/').next().unwrap_or(a)).to_string()
}

/// Splits `name[:tag]` at the last colon that comes after the last slash, so a
/// registry port (`host:5000/app`) or a path (`oci:/a:b/dir`) is not a tag.
pub fn split_name_tag(s: &str) -> (&str, Option<&str>) {
    let last_slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], Some(&s[last_slash + i + 1..])),
        None => (s, None),
    }
}

/// A tag as the distribution grammar allows it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !t.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag `{t}` must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"
        ))
    }
}

fn check_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() || repo.len() > 255 {
        return Err("repository name must be 1-255 characters".into());
    }
    for part in repo.split('/') {
        let ok = !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && part.as_bytes()[0].is_ascii_alphanumeric()
            && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric();
        if !ok {
            return Err(format!(
                "repository component `{part}` must be lowercase letters, digits and . _ - (not at the ends)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn docker_defaults() {
        assert_eq!(r("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r("busybox").manifest_ref(), "latest");
        let d = Digest::of(b"x");
        assert_eq!(r(&format!("busybox@{d}")).tag, None);
        assert_eq!(r("team/app:1").to_string(), "docker.io/team/app:1");
        assert_eq!(r("index.docker.io/library/x").registry, "docker.io");
        assert_eq!(r("busybox").api_host(), "registry-1.docker.io");
    }

    #[test]
    fn login_arguments_name_registries() {
        for hub in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "https://index.docker.io/v1/",
        ] {
            assert_eq!(registry_host(hub), DOCKER_HUB, "{hub}");
        }
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            registry_host("https://reg.example.com/v2/"),
            "reg.example.com"
        );
    }

    #[test]
    fn hosts_ports_tags_digests() {
        let d = Digest::of(b"x");
        let x = r(&format!("127.0.0.1:5000/team/app:1.0@{d}"));
        assert_eq!(x.registry, "127.0.0.1:5000");
        assert_eq!(x.repository, "team/app");
        assert_eq!(x.tag.as_deref(), Some("1.0"));
        assert_eq!(x.manifest_ref(), d.to_string());
        assert_eq!(r("localhost/app").registry, "localhost");
        assert_eq!(r("localhost:5000/app").repository, "app");
        assert_eq!(r("reg.example.com/a/b/c").repository, "a/b/c");
    }

    #[test]
    fn invalid_ones_say_why() {
        for bad in [
            "",
            "Upper/case",
            "app:",
            "app:-x",
            "app@sha256:123",
            "a//b",
            "reg.io/-a",
        ] {
            let e = bad.parse::<Reference>().unwrap_err();
            assert!(
                e.to_string().contains("invalid image reference"),
                "{bad}: {e}"
            );
        }
    }
}
