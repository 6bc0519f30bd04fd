//! What the build hands the SBOM for one platform image: which image, which
//! platform, what was compiled (per language, with its package directory,
//! target triple, features, binaries and compiler), the base, the files layers.
//! The build fills these in; nothing here runs a compiler.

use std::path::PathBuf;

use super::{Document, Kind, Package, Rel, Scope};
use crate::oci::Digest;
use crate::platform::Platform;
use crate::toolchain::cc::Libc;

#[derive(Debug, Clone)]
pub struct PlatformInputs {
    /// The image's repository as it will be pushed, e.g.
    /// `reg.example.com/team/app` (or a bare name for a layout).
    pub image: String,
    /// The version to record for the image (the tag, or the package version).
    pub version: Option<String>,
    pub platform: Platform,
    /// The platform manifest's digest, when the image is already written.
    pub manifest_digest: Option<Digest>,
    /// The build's timestamp (SOURCE_DATE_EPOCH, else the commit time).
    pub epoch: u64,
    /// Who supplies the image (`Organization: …`), e.g. from the
    /// `org.opencontainers.image.vendor` annotation; else the registry.
    pub supplier: Option<String>,
    /// The source repository and commit (GitInfo).
    pub source: Option<String>,
    pub revision: Option<String>,
    pub builds: Vec<Compiled>,
    pub base: Option<BaseImage>,
    pub files_layers: Vec<FilesLayer>,
}

/// One build that put binaries into this platform's image.
#[derive(Debug, Clone)]
pub enum Compiled {
    Rust(RustBuild),
    Go(GoBuild),
    C(CBuild),
}

/// A binary as it was written on the build machine (hashed for the SBOM).
#[derive(Debug, Clone)]
pub struct Binary {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct RustBuild {
    /// The package's Cargo.toml.
    pub manifest_path: PathBuf,
    /// The package built (its name in the workspace).
    pub package: String,
    /// The Rust target triple it was built for.
    pub triple: String,
    /// Every feature passed (`--features`, with per-platform ones).
    pub features: Vec<String>,
    pub all_features: bool,
    pub no_default_features: bool,
    /// `rustc -V` of the toolchain that built it (`rustc 1.95.0 (… 2026-04-14)`).
    pub rustc: String,
    pub libc: Libc,
    /// The C compiler for crates with C code (zig) and its version, if used.
    pub c_compiler: Option<Tool>,
    pub binaries: Vec<Binary>,
}

#[derive(Debug, Clone)]
pub struct GoBuild {
    /// The `go` command that built the binaries (`go version -m` reads them).
    pub go: Vec<String>,
    /// `-ldflags` as passed (Go leaves them out of the build info with -trimpath).
    pub ldflags: Vec<String>,
    pub binaries: Vec<Binary>,
}

#[derive(Debug, Clone)]
pub struct CBuild {
    /// The project's name (its directory).
    pub name: String,
    /// The sources compiled, relative to the project (empty with a command).
    pub sources: Vec<String>,
    /// The project's own build command, when it has one.
    pub command: Option<String>,
    pub flags: Vec<String>,
    pub compiler: Tool,
    /// The compiler's target name (zig's `-target`, or the gcc prefix).
    pub target: String,
    pub libc: Libc,
    /// The libc's version where known (zig: read from its bundled musl).
    pub libc_version: Option<String>,
    pub binaries: Vec<Binary>,
}

/// A compiler: `zig` / `gcc` / `go` and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct BaseImage {
    /// As configured: `static`, `scratch` or a registry reference.
    pub name: String,
    /// `registry/repository` of a registry base (None for a built-in one).
    pub repository: Option<String>,
    /// The base's platform manifest digest.
    pub digest: Option<Digest>,
    /// The layers the image got from it.
    pub layers: Vec<Digest>,
}

#[derive(Debug, Clone)]
pub struct FilesLayer {
    pub digest: Digest,
    /// The paths it adds in the image.
    pub paths: Vec<String>,
}

/// The image package: named by the repository, versioned by the manifest
/// digest when known, else the tag.
pub fn image_package(i: &PlatformInputs) -> Package {
    let id = format!("image:{} {}", i.image, i.platform);
    let mut p = Package::new(id, i.image.clone(), Kind::Image)
        .supplier(
            i.supplier
                .clone()
                .unwrap_or_else(|| registry_supplier(&i.image)),
        )
        .property("xarch:platform", i.platform.to_string());
    p.version = i
        .manifest_digest
        .as_ref()
        .map(|d| d.to_string())
        .or_else(|| i.version.clone());
    if let Some(d) = &i.manifest_digest {
        p.purl = Some(oci_purl(&i.image, d, Some(&i.platform)));
    }
    if let Some(v) = &i.version {
        p = p.property("xarch:tag", v.clone());
    }
    if let Some(s) = &i.source {
        p.download = Some(format!("git+{s}"));
        p.homepage = Some(s.clone());
    }
    if let Some(r) = &i.revision {
        p = p.property("xarch:revision", r.clone());
    }
    p
}

pub fn add_base(doc: &mut Document, root: &str, base: &BaseImage) {
    let id = format!("base:{}", base.name);
    let mut p = Package::new(id.clone(), base.name.clone(), Kind::BaseImage);
    match (&base.repository, &base.digest) {
        (Some(repo), Some(d)) => {
            p = p
                .version(d.to_string())
                .purl(oci_purl(repo, d, None))
                .supplier(registry_supplier(repo));
            p.download = Some(format!("https://{repo}"));
        }
        _ => {
            // A built-in base is made by xarch itself.
            p = p
                .version(env!("CARGO_PKG_VERSION"))
                .supplier("Organization: xarch")
                .property("xarch:builtin-base", base.name.clone());
        }
    }
    for (i, l) in base.layers.iter().enumerate() {
        p = p.property(format!("xarch:layer:{i:03}"), l.to_string());
    }
    doc.add(p);
    doc.relate(root, Rel::DescendantOf, &id);
}

pub fn add_files(doc: &mut Document, root: &str, layer: &FilesLayer) {
    let id = format!("files:{}", layer.digest);
    let mut p = Package::new(id.clone(), "files", Kind::Files)
        .version(layer.digest.to_string())
        .supplier(super::inputs::registry_supplier(&doc.name));
    p.sha256 = Some(layer.digest.hex().to_string());
    for path in &layer.paths {
        p = p.property("xarch:file", path.clone());
    }
    doc.add(p.scope(Scope::Runtime));
    doc.relate(root, Rel::Contains, &id);
}

/// `pkg:oci/NAME@sha256:…?repository_url=REGISTRY/REPO[&arch=…&os=…]`.
pub fn oci_purl(repository: &str, digest: &Digest, platform: Option<&Platform>) -> String {
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let name = name.split([':', '@']).next().unwrap_or(name).to_lowercase();
    let mut purl = format!("pkg:oci/{}@{}?", percent(&name), percent(digest.as_str()));
    let mut q = Vec::new();
    if let Some(p) = platform {
        q.push(format!("arch={}", percent(&p.architecture)));
        q.push(format!("os={}", percent(&p.os)));
    }
    if repository.contains('/') {
        q.push(format!("repository_url={}", percent(repository)));
    }
    if let Some(p) = platform.and_then(|p| p.variant.as_deref()) {
        q.push(format!("variant={}", percent(p)));
    }
    q.sort();
    purl.push_str(&q.join("&"));
    purl.trim_end_matches('?').to_string()
}

/// An image's supplier when none is configured: its registry namespace.
pub fn registry_supplier(repository: &str) -> String {
    let ns = match repository.rsplit_once('/') {
        Some((ns, _)) => ns,
        None => repository,
    };
    format!("Organization: {ns}")
}

/// Percent-encoding for purl components: everything but unreserved
/// characters and `/` (as purl's reference implementations do).
pub fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_purls() {
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(
            oci_purl("reg.example.com/team/App", &d, Some(&p)),
            format!(
                "pkg:oci/app@sha256%3A{}?arch=arm&os=linux&repository_url=reg.example.com/team/App&variant=v7",
                "a".repeat(64)
            )
        );
        assert_eq!(
            oci_purl("app", &d, None),
            format!("pkg:oci/app@sha256%3A{}", "a".repeat(64))
        );
    }
}
