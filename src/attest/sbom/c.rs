//! C builds: the project's sources (or its build command), the compiler that
//! made the binaries (zig or gcc, with its version) and the libc they link
//! (musl, statically; glibc, dynamically) — plus the helpers the Rust and Go
//! builds share for compilers and libcs.

use anyhow::Result;

use super::inputs::{CBuild, PlatformInputs, Tool};
use super::{Document, Kind, Package, Rel, Scope};
use crate::toolchain::cc::Libc;

pub fn add(doc: &mut Document, image: &str, c: &CBuild, inputs: &PlatformInputs) -> Result<()> {
    let source_id = format!("c-source:{}", c.name);
    let fallback = doc.get(image).and_then(|p| p.supplier.clone());
    let mut src = Package::new(source_id.clone(), c.name.clone(), Kind::Source)
        .property("xarch:target", c.target.clone());
    src.version = inputs.revision.clone().or_else(|| inputs.version.clone());
    src.supplier = fallback;
    if let Some(s) = &inputs.source {
        src.download = Some(match &inputs.revision {
            Some(r) => format!("git+{s}@{r}"),
            None => format!("git+{s}"),
        });
    }
    for s in &c.sources {
        src = src.property("xarch:source-file", s.clone());
    }
    if let Some(cmd) = &c.command {
        src = src.property("xarch:build-command", cmd.clone());
    }
    for f in &c.flags {
        src = src.property("xarch:flag", f.clone());
    }
    doc.add(src);
    let tool = tool_package(&c.compiler);
    let tool_id = tool.id.clone();
    doc.add(tool);
    let (link, libc) = libc_package(&c.libc, c.libc_version.clone());
    let libc_id = libc.id.clone();
    doc.add(libc);
    for bin in &c.binaries {
        let id = format!("bin:{}:{}", c.target, bin.name);
        let mut p = Package::new(id.clone(), bin.name.clone(), Kind::Application)
            .property("xarch:target", c.target.clone());
        p.version = doc.get(&source_id).and_then(|s| s.version.clone());
        p.supplier = doc.get(&source_id).and_then(|s| s.supplier.clone());
        p.sha256 = Some(super::sha256_file(&bin.path)?);
        doc.add(p);
        doc.relate(image, Rel::Contains, &id);
        doc.relate(&id, Rel::GeneratedFrom, &source_id);
        doc.relate(&id, Rel::BuiltWith, &tool_id);
        doc.relate(&id, link, &libc_id);
    }
    Ok(())
}

/// A compiler as a build-only package.
pub fn tool_package(t: &Tool) -> Package {
    let version = short_version(&t.version);
    let supplier = match t.name.as_str() {
        "zig" => "Organization: Zig Software Foundation",
        "go" => "Organization: The Go Authors",
        "gcc" => "Organization: GNU Project",
        _ => "NOASSERTION",
    };
    Package::new(
        format!("tool:{} {version}", t.name),
        t.name.clone(),
        Kind::Tool,
    )
    .version(&version)
    .purl(format!(
        "pkg:generic/{}@{}",
        t.name,
        super::inputs::percent(&version)
    ))
    .supplier(supplier)
    .scope(Scope::Build)
    .property("xarch:version", t.version.clone())
}

/// The libc package and how binaries link it (musl statically, glibc
/// dynamically: the image must bring it).
pub fn libc_package(libc: &Libc, version: Option<String>) -> (Rel, Package) {
    let (name, supplier, license, rel) = match libc {
        Libc::Musl => ("musl", "Organization: musl libc", "MIT", Rel::StaticLink),
        Libc::Glibc(_) => (
            "glibc",
            "Organization: GNU Project",
            "LGPL-2.1-or-later",
            Rel::DynamicLink,
        ),
    };
    let v = version.clone().unwrap_or_else(|| "unknown".into());
    let mut p = Package::new(format!("libc:{name} {v}"), name, Kind::Library).supplier(supplier);
    p.license = Some(license.into());
    if let Some(v) = version {
        p.purl = Some(format!("pkg:generic/{name}@{}", super::inputs::percent(&v)));
        p.version = Some(v);
    }
    (rel, p)
}

/// `zig 0.14.0` / `gcc (Debian 12.2.0-14) 12.2.0` / `0.14.0` → the version number.
fn short_version(v: &str) -> String {
    v.split_whitespace()
        .rev()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or(v)
        .trim()
        .to_string()
}

/// musl's version string (`__libc_version`, e.g. `1.2.5`) inside a libc.a.
pub fn musl_version_in(bytes: &[u8]) -> Option<String> {
    // NUL-separated strings of the form D.D.D; musl's version.o has exactly one.
    bytes
        .split(|b| *b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .find(|s| {
            let parts: Vec<&str> = s.split('.').collect();
            parts.len() == 3
                && parts[0] == "1"
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(String::from)
}

/// zig's library directory, from `zig env` (JSON in older zigs, ZON since 0.15:
/// both have a `lib_dir` string).
pub fn zig_lib_dir(zig: &[String]) -> Option<std::path::PathBuf> {
    let (prog, args) = zig.split_first()?;
    let out = std::process::Command::new(prog)
        .args(args)
        .arg("env")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = &text[text.find("lib_dir")? + "lib_dir".len()..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(rest[start..end].into())
}

/// The musl version zig bundles: `<zig lib dir>/libc/musl/src/internal/version.h`.
pub fn zig_musl_version(zig_lib_dir: &std::path::Path) -> Option<String> {
    let text =
        std::fs::read_to_string(zig_lib_dir.join("libc/musl/src/internal/version.h")).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("#define VERSION"))
        .map(|v| v.trim().trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(short_version("0.14.0"), "0.14.0");
        assert_eq!(short_version("gcc (Debian 12.2.0-14) 12.2.0"), "12.2.0");
        assert_eq!(
            musl_version_in(b"junk\0abc\x001.2.5\0more\0"),
            Some("1.2.5".into())
        );
        assert_eq!(musl_version_in(b"1.2\0"), None);
    }
}
