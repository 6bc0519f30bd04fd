//! Go binaries: the build info the Go linker embeds in every binary (the main
//! module, each dependency module with its go.sum hash, the build settings),
//! read back with `go version -m -json` (or the text form on a Go without
//! `-json`), as `pkg:golang/…` packages.

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::inputs::{Binary, GoBuild, Tool};
use super::{Document, Kind, Package, Rel, Scope};
use crate::toolchain::cc::Libc;

/// `debug/buildinfo.BuildInfo`, as `go version -m -json` prints it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildInfo {
    pub go_version: String,
    pub path: String,
    pub main: Module,
    #[serde(default)]
    pub deps: Vec<Module>,
    #[serde(default)]
    pub settings: Vec<Setting>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Module {
    pub path: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub sum: String,
    #[serde(default)]
    pub replace: Option<Box<Module>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Setting {
    pub key: String,
    pub value: String,
}

impl BuildInfo {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }
}

/// Reads a binary's build info with the `go` that built it.
pub fn read(go: &[String], binary: &std::path::Path) -> Result<BuildInfo> {
    let (prog, args) = go.split_first().context("no go command")?;
    let run = |json: bool| {
        let mut c = Command::new(prog);
        c.args(args).args(["version", "-m"]);
        if json {
            c.arg("-json");
        }
        c.arg(binary).output()
    };
    let out = run(true).with_context(|| format!("cannot run {prog} version -m"))?;
    if out.status.success() {
        return serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "go version -m -json {}: unexpected output",
                binary.display()
            )
        });
    }
    // Go before 1.24 has no -json.
    let out = run(false).with_context(|| format!("cannot run {prog} version -m"))?;
    if !out.status.success() {
        bail!(
            "go version -m {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_text(&String::from_utf8_lossy(&out.stdout))
}

/// The text form of `go version -m`: `path`, `mod`, `dep`, `=>` and `build` lines.
pub fn parse_text(text: &str) -> Result<BuildInfo> {
    let mut lines = text.lines();
    let first = lines.next().context("go version -m printed nothing")?;
    let mut info = BuildInfo {
        go_version: first.rsplit(' ').next().unwrap_or_default().to_string(),
        ..BuildInfo::default()
    };
    for line in lines {
        let f: Vec<&str> = line.trim_start_matches('\t').split('\t').collect();
        let module = |f: &[&str]| Module {
            path: f.get(1).unwrap_or(&"").to_string(),
            version: f.get(2).unwrap_or(&"").to_string(),
            sum: f.get(3).unwrap_or(&"").to_string(),
            replace: None,
        };
        match f[0] {
            "path" => info.path = f.get(1).unwrap_or(&"").to_string(),
            "mod" => info.main = module(&f),
            "dep" => info.deps.push(module(&f)),
            "=>" => {
                if let Some(last) = info.deps.last_mut() {
                    last.replace = Some(Box::new(module(&f)));
                }
            }
            "build" => {
                let kv = f.get(1).unwrap_or(&"");
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                info.settings.push(Setting {
                    key: k.to_string(),
                    value: v.to_string(),
                });
            }
            _ => {}
        }
    }
    Ok(info)
}

pub fn add(doc: &mut Document, image: &str, g: &GoBuild) -> Result<()> {
    for bin in &g.binaries {
        let info = read(&g.go, &bin.path)?;
        add_binary(doc, image, bin, &info, &g.ldflags)?;
    }
    Ok(())
}

fn add_binary(
    doc: &mut Document,
    image: &str,
    bin: &Binary,
    info: &BuildInfo,
    ldflags: &[String],
) -> Result<()> {
    let fallback = doc.get(image).and_then(|p| p.supplier.clone());
    let main = module_package(&info.main, Kind::Source, &fallback);
    let main_id = main.id.clone();
    doc.add(main);
    let goos = info.setting("GOOS").unwrap_or("linux");
    let goarch = info.setting("GOARCH").unwrap_or("unknown");
    let id = format!("bin:{goos}-{goarch}:{}", bin.name);
    let mut p = Package::new(id.clone(), bin.name.clone(), Kind::Application);
    p.version = Some(info.main.version.clone());
    p.supplier = fallback.clone();
    p.sha256 = Some(super::sha256_file(&bin.path)?);
    p = p.property("go:path", info.path.clone());
    for s in &info.settings {
        if s.key != "DefaultGODEBUG" {
            p = p.property(format!("go:{}", s.key), s.value.clone());
        }
    }
    // -trimpath keeps -ldflags out of the build info; the build knows them.
    if info.setting("-ldflags").is_none() && !ldflags.is_empty() {
        p = p.property("go:-ldflags", ldflags.join(" "));
    }
    doc.add(p);
    doc.relate(image, Rel::Contains, &id);
    doc.relate(&id, Rel::GeneratedFrom, &main_id);
    for dep in &info.deps {
        let d = module_package(dep, Kind::Library, &None);
        let did = d.id.clone();
        doc.add(d);
        doc.relate(&id, Rel::DependsOn, &did);
    }
    let version = info.go_version.trim_start_matches("go").to_string();
    let go = "Organization: The Go Authors";
    let mut std = Package::new(format!("go-stdlib:{version}"), "stdlib", Kind::Library)
        .version(&version)
        .purl(format!(
            "pkg:golang/stdlib@{}",
            super::inputs::percent(&version)
        ))
        .supplier(go);
    std.license = Some("BSD-3-Clause".into());
    let tool = super::c::tool_package(&Tool {
        name: "go".into(),
        version: version.clone(),
    });
    doc.relate(&id, Rel::StaticLink, &std.id);
    doc.relate(&id, Rel::BuiltWith, &tool.id);
    doc.add(std);
    doc.add(tool.scope(Scope::Build));
    if info.setting("CGO_ENABLED") == Some("1") {
        let (rel, libc) = super::c::libc_package(&Libc::Musl, None);
        doc.relate(&id, rel, &libc.id);
        doc.add(libc);
    }
    Ok(())
}

fn module_package(m: &Module, kind: Kind, supplier: &Option<String>) -> Package {
    // A replaced module is built from its replacement.
    let used = m.replace.as_deref().unwrap_or(m);
    let version = if used.version.is_empty() {
        "(devel)".to_string()
    } else {
        used.version.clone()
    };
    let mut p = Package::new(format!("go:{}@{version}", m.path), m.path.clone(), kind)
        .version(&version)
        .supplier(supplier.clone().unwrap_or_else(|| module_supplier(&m.path)));
    let local = used.path.starts_with('.') || used.path.starts_with('/');
    if version != "(devel)" && !local {
        p.purl = Some(format!(
            "pkg:golang/{}@{}",
            super::inputs::percent(&used.path),
            super::inputs::percent(&version)
        ));
        p.download = Some(format!(
            "https://proxy.golang.org/{}/@v/{version}.zip",
            used.path
        ));
    }
    if !used.sum.is_empty() {
        p = p.property("go:sum", used.sum.clone());
    }
    if let Some(r) = &m.replace {
        p = p.property(
            "go:replaced-by",
            format!("{} {}", r.path, r.version).trim().to_string(),
        );
    }
    p
}

/// A module's supplier: its path up to the owner (`github.com/spf13`).
fn module_supplier(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let owner = if parts.len() >= 3 {
        parts[..2].join("/")
    } else {
        parts[0].to_string()
    };
    format!("Organization: {owner}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_parses_like_json() {
        let text = "hello: go1.22.1\n\tpath\texample.com/hello\n\tmod\texample.com/hello\t(devel)\t\n\tdep\texample.com/greet\tv1.2.0\th1:abc=\n\tdep\texample.com/old\tv0.1.0\n\t=>\t../old\t(devel)\t\n\tbuild\t-ldflags=\"-X main.v=1\"\n\tbuild\tGOARCH=arm\n\tbuild\tGOARM=7\n";
        let info = parse_text(text).unwrap();
        assert_eq!(info.go_version, "go1.22.1");
        assert_eq!(info.main.path, "example.com/hello");
        assert_eq!(info.deps.len(), 2);
        assert_eq!(info.deps[0].sum, "h1:abc=");
        assert_eq!(info.deps[1].replace.as_ref().unwrap().path, "../old");
        assert_eq!(info.setting("GOARM"), Some("7"));
        assert_eq!(info.setting("-ldflags"), Some("\"-X main.v=1\""));
    }
}
