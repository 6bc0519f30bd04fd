//! A Rust binary's packages: the dependency graph cargo resolves for the
//! target triple and feature set (`cargo metadata --filter-platform`), walked
//! from the built package. Normal dependencies are linked in (runtime); build
//! dependencies and proc-macros, and everything only they pull in, run at
//! build time only; dev-dependencies are left out. Checksums come from
//! Cargo.lock, licenses from the manifests.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use cargo_metadata::{
    DependencyKind, Metadata, MetadataCommand, Package as CargoPackage, PackageId,
};

use super::inputs::{Binary, RustBuild};
use super::{Document, Kind, Package, Rel, Scope};
use crate::toolchain::cc::Libc;
use crate::toolchain::rust::cargo;

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// The resolved graph for one (package, triple, features).
pub struct Graph {
    pub root: PackageId,
    /// Every package reached, with whether it is linked in or build-only.
    pub scopes: BTreeMap<PackageId, Scope>,
    /// (from, to, linked): `linked` false for build dependencies and proc-macros.
    pub edges: BTreeSet<(PackageId, PackageId, bool)>,
    pub metadata: Metadata,
}

/// Runs `cargo metadata --filter-platform TRIPLE` with the build's features.
pub fn metadata(b: &RustBuild) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.cargo_path(cargo()).manifest_path(&b.manifest_path);
    let mut opts = vec!["--filter-platform".to_string(), b.triple.clone()];
    if !b.features.is_empty() {
        opts.push("--features".into());
        opts.push(b.features.join(","));
    }
    if b.all_features {
        opts.push("--all-features".into());
    }
    if b.no_default_features {
        opts.push("--no-default-features".into());
    }
    cmd.other_options(opts);
    cmd.exec().with_context(|| {
        format!(
            "cargo metadata --filter-platform {} failed for {}",
            b.triple,
            b.manifest_path.display()
        )
    })
}

/// The graph reachable from `b.package` without dev-dependencies.
pub fn graph(b: &RustBuild) -> Result<Graph> {
    let metadata = metadata(b)?;
    let root = metadata
        .workspace_packages()
        .into_iter()
        .find(|p| p.name.as_str() == b.package)
        .with_context(|| format!("no package `{}` in the workspace", b.package))?
        .id
        .clone();
    let resolve = metadata
        .resolve
        .as_ref()
        .context("cargo metadata returned no dependency graph")?;
    let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let proc_macro = |id: &PackageId| {
        metadata[id]
            .targets
            .iter()
            .any(|t| t.kind.contains(&cargo_metadata::TargetKind::ProcMacro))
    };
    // Each edge once, as (linked into the binary, or only used to build).
    let mut edges = BTreeSet::new();
    let mut queue = VecDeque::from([root.clone()]);
    let mut seen = BTreeSet::from([root.clone()]);
    while let Some(id) = queue.pop_front() {
        let node = nodes
            .get(&id)
            .with_context(|| format!("{id} is missing from cargo's graph"))?;
        for dep in &node.deps {
            let normal = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Normal);
            let build = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Build);
            if !normal && !build {
                continue; // dev-dependency only
            }
            edges.insert((id.clone(), dep.pkg.clone(), normal && !proc_macro(&dep.pkg)));
            if seen.insert(dep.pkg.clone()) {
                queue.push_back(dep.pkg.clone());
            }
        }
    }
    // Linked in: reachable from the root over linked edges only.
    let mut runtime = BTreeSet::from([root.clone()]);
    let mut queue = VecDeque::from([root.clone()]);
    while let Some(id) = queue.pop_front() {
        for (_, to, _) in edges.iter().filter(|(f, _, l)| *f == id && *l) {
            if runtime.insert(to.clone()) {
                queue.push_back(to.clone());
            }
        }
    }
    let scopes = seen
        .into_iter()
        .map(|id| {
            let s = if runtime.contains(&id) {
                Scope::Runtime
            } else {
                Scope::Build
            };
            (id, s)
        })
        .collect();
    Ok(Graph {
        root,
        scopes,
        edges,
        metadata,
    })
}

/// Adds the crates, the toolchain and the binaries of one Rust build.
pub fn add(doc: &mut Document, image: &str, b: &RustBuild) -> Result<()> {
    let g = graph(b)?;
    let lock = lock_checksums(g.metadata.workspace_root.as_std_path())?;
    let fallback = doc.get(image).and_then(|p| p.supplier.clone());
    let mut ids = BTreeMap::new();
    for (pid, scope) in &g.scopes {
        let p = crate_package(&g.metadata[pid], *scope, &lock, pid == &g.root, &fallback);
        ids.insert(pid.clone(), p.id.clone());
        doc.add(p);
    }
    for (from, to, linked) in &g.edges {
        let rel = if *linked {
            Rel::DependsOn
        } else {
            Rel::BuildDependsOn
        };
        doc.relate(&ids[from], rel, &ids[to]);
    }
    let dir = b.manifest_path.parent().unwrap_or(Path::new("."));
    let rustc = rustc_version(dir, &b.rustc)?;
    let tools = toolchain(doc, &rustc, b, dir);
    // The binary statically links every crate its package needs at run time
    // (the rest follow from the crates' own DEPENDS_ON edges), so all linked
    // code is reachable from the image over composition relations.
    let linked: Vec<&String> = g
        .edges
        .iter()
        .filter(|(from, _, linked)| *from == g.root && *linked)
        .map(|(_, to, _)| &ids[to])
        .collect();
    for bin in &b.binaries {
        let id = binary(doc, image, bin, &b.triple, &ids[&g.root])?;
        for (rel, tool) in &tools {
            doc.relate(&id, *rel, tool);
        }
        for dep in &linked {
            doc.relate(&id, Rel::StaticLink, dep);
        }
    }
    Ok(())
}

fn binary(
    doc: &mut Document,
    image: &str,
    bin: &Binary,
    triple: &str,
    source: &str,
) -> Result<String> {
    let id = format!("bin:{triple}:{}", bin.name);
    let version = doc.get(source).and_then(|p| p.version.clone());
    let mut p = Package::new(id.clone(), bin.name.clone(), Kind::Application)
        .property("xarch:target", triple);
    p.version = version;
    p.supplier = doc.get(source).and_then(|s| s.supplier.clone());
    p.license = doc.get(source).and_then(|s| s.license.clone());
    p.sha256 = Some(super::sha256_file(&bin.path)?);
    doc.add(p);
    doc.relate(image, Rel::Contains, &id);
    doc.relate(&id, Rel::GeneratedFrom, source);
    Ok(id)
}

/// rustc (build tool), Rust's std (linked in) and the libc; the relations
/// each binary gets to them.
fn toolchain(doc: &mut Document, rustc: &str, b: &RustBuild, dir: &Path) -> Vec<(Rel, String)> {
    let version = rustc
        .split_whitespace()
        .nth(1)
        .unwrap_or("unknown")
        .to_string();
    let rust = "Organization: The Rust Project";
    let tool = Package::new(format!("tool:rustc {version}"), "rustc", Kind::Tool)
        .version(&version)
        .purl(format!("pkg:generic/rust-lang/rustc@{version}"))
        .supplier(rust)
        .scope(Scope::Build)
        .property("xarch:version", rustc)
        .property("xarch:target", &b.triple);
    let mut std = Package::new(
        format!("rust-std:{version} {}", b.triple),
        "std",
        Kind::Library,
    )
    .version(&version)
    .purl(format!("pkg:generic/rust-lang/std@{version}"))
    .supplier(rust)
    .property("xarch:target", &b.triple);
    std.license = Some("MIT OR Apache-2.0".into());
    let mut out = vec![
        (Rel::BuiltWith, tool.id.clone()),
        (Rel::StaticLink, std.id.clone()),
    ];
    doc.add(tool);
    doc.add(std);
    if let Some(cc) = &b.c_compiler {
        let p = super::c::tool_package(cc);
        out.push((Rel::BuiltWith, p.id.clone()));
        doc.add(p);
    }
    let libc_version = match &b.libc {
        Libc::Musl => rust_musl_version(dir, &b.triple),
        Libc::Glibc(v) => v.clone(),
    };
    let (rel, p) = super::c::libc_package(&b.libc, libc_version);
    out.push((rel, p.id.clone()));
    doc.add(p);
    out
}

fn crate_package(
    c: &CargoPackage,
    scope: Scope,
    lock: &BTreeMap<(String, String, String), String>,
    root: bool,
    fallback_supplier: &Option<String>,
) -> Package {
    let source = c.source.as_ref().map(|s| s.repr.clone());
    let name = c.name.to_string();
    let version = c.version.to_string();
    let suffix = match source.as_deref() {
        Some(CRATES_IO) => String::new(),
        Some(s) => format!(" ({})", s.split('#').next().unwrap_or(s)),
        None => " (path)".to_string(),
    };
    let mut p = Package::new(
        format!("cargo:{name}@{version}{suffix}"),
        &name,
        if root { Kind::Source } else { Kind::Library },
    )
    .version(&version)
    .scope(scope);
    p.license = c.license.as_deref().map(spdx_license);
    p.description = c.description.clone();
    p.homepage = c.homepage.clone().or_else(|| c.repository.clone());
    p.supplier = c
        .authors
        .first()
        .map(|a| person(a))
        .or_else(|| source.as_deref().and_then(source_supplier))
        .or_else(|| fallback_supplier.clone());
    match source.as_deref() {
        Some(s) => {
            if let Some(sum) = lock.get(&(name.clone(), version.clone(), s.to_string())) {
                p.sha256 = Some(sum.clone());
            }
            p.purl = Some(purl(&name, &version, s));
            p.download = download(&name, &version, s);
            p = p.property("cargo:source", s);
        }
        None => {
            // A path dependency: not on any registry, so no purl that a
            // scanner could confuse with a published crate of the same name.
            p = p.property("cargo:source", "path");
        }
    }
    p
}

/// `pkg:cargo/NAME@VERSION`, with where it came from when not crates.io.
pub fn purl(name: &str, version: &str, source: &str) -> String {
    let base = format!(
        "pkg:cargo/{}@{}",
        super::inputs::percent(name),
        super::inputs::percent(version)
    );
    if source == CRATES_IO {
        return base;
    }
    if let Some(git) = source.strip_prefix("git+") {
        let (url, rev) = git.split_once('#').unwrap_or((git, ""));
        let url = url.split('?').next().unwrap_or(url);
        let vcs = if rev.is_empty() {
            format!("git+{url}")
        } else {
            format!("git+{url}@{rev}")
        };
        return format!("{base}?vcs_url={}", super::inputs::percent(&vcs));
    }
    let repo = source.split_once('+').map_or(source, |(_, u)| u);
    format!("{base}?repository_url={}", super::inputs::percent(repo))
}

fn download(name: &str, version: &str, source: &str) -> Option<String> {
    if source == CRATES_IO {
        return Some(format!(
            "https://crates.io/api/v1/crates/{name}/{version}/download"
        ));
    }
    let git = source.strip_prefix("git+")?;
    let (url, rev) = git.split_once('#').unwrap_or((git, ""));
    let url = url.split('?').next().unwrap_or(url);
    Some(if rev.is_empty() {
        format!("git+{url}")
    } else {
        format!("git+{url}@{rev}")
    })
}

fn source_supplier(source: &str) -> Option<String> {
    if source == CRATES_IO {
        return Some("Organization: crates.io".into());
    }
    let url = source.split_once('+').map(|(_, u)| u)?;
    let host = url.split("://").nth(1)?.split(['/', '?', '#']).next()?;
    Some(format!("Organization: {host}"))
}

/// Cargo's `Name <email>` as SPDX's `Person: Name (email)`.
fn person(author: &str) -> String {
    match author.split_once('<') {
        Some((name, rest)) => format!(
            "Person: {} ({})",
            name.trim(),
            rest.trim_end_matches('>').trim()
        ),
        None => format!("Person: {}", author.trim()),
    }
}

/// Old manifests write `MIT/Apache-2.0`; SPDX says `MIT OR Apache-2.0`.
pub fn spdx_license(l: &str) -> String {
    if l.contains('/') && !l.contains(" OR ") && !l.contains(" AND ") {
        l.split('/').map(str::trim).collect::<Vec<_>>().join(" OR ")
    } else {
        l.trim().to_string()
    }
}

/// (name, version, source) → sha256 of the .crate, from Cargo.lock.
pub fn lock_checksums(workspace: &Path) -> Result<BTreeMap<(String, String, String), String>> {
    let path = workspace.join("Cargo.lock");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let lock: toml::Value =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
    let mut out = BTreeMap::new();
    for p in lock
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let field = |k: &str| p.get(k).and_then(|v| v.as_str()).map(String::from);
        if let (Some(n), Some(v), Some(s), Some(c)) = (
            field("name"),
            field("version"),
            field("source"),
            field("checksum"),
        ) {
            out.insert((n, v, s), c);
        }
    }
    Ok(out)
}

/// `rustc -V` in the package directory (its rust-toolchain file applies), unless
/// the build already said.
fn rustc_version(dir: &Path, given: &str) -> Result<String> {
    if !given.is_empty() {
        return Ok(given.to_string());
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-V")
        .current_dir(dir)
        .output()
        .context("cannot run rustc -V")?;
    if !out.status.success() {
        bail!(
            "rustc -V failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The musl rustc links a `*-musl` target against: its self-contained libc.a
/// carries the version string (musl's `__libc_version`).
fn rust_musl_version(dir: &Path, triple: &str) -> Option<String> {
    let sysroot = crate::toolchain::rust::sysroot(dir).ok()?;
    let archive = sysroot
        .join("lib/rustlib")
        .join(triple)
        .join("lib/self-contained/libc.a");
    super::c::musl_version_in(&std::fs::read(archive).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_and_licenses() {
        assert_eq!(purl("serde", "1.0.0", CRATES_IO), "pkg:cargo/serde@1.0.0");
        assert_eq!(
            purl(
                "x",
                "0.1.0",
                "git+https://github.com/o/x?branch=main#abc123"
            ),
            "pkg:cargo/x@0.1.0?vcs_url=git%2Bhttps%3A//github.com/o/x%40abc123"
        );
        assert_eq!(spdx_license("MIT/Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(spdx_license("MIT OR Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(
            person("Jane Doe <jane@example.com>"),
            "Person: Jane Doe (jane@example.com)"
        );
    }
}
