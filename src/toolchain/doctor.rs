//! `Check`: is a (platform, language) ready to build on this machine, by which
//! route, and if not, the exact commands that fix it. Behind `xarch toolchain
//! list`, `doctor` and `install`. Checking never installs anything.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};
use serde::Serialize;

use super::{cc, go, recipe, rust};
use crate::targets::Target;
use crate::ui;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub platform: String,
    pub lang: &'static str,
    pub ready: bool,
    /// How it builds (ready) or what is missing.
    pub detail: String,
    /// Commands that make it ready, in order.
    pub fixes: Vec<String>,
}

pub const LANGS: &[&str] = &["rust", "go", "c"];

/// What `xarch toolchain` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Every platform × language, ready or not.
    List,
    /// The same, failing when anything is missing.
    Doctor,
    /// Install what is missing, then check.
    Install,
}

pub struct Request {
    pub action: Action,
    /// Platforms (comma lists, `all`); empty: all.
    pub platforms: Vec<String>,
    /// Languages (rust, go, c); empty: all.
    pub langs: Vec<String>,
    /// The C toolchain recipe (zig, gcc …).
    pub c_toolchain: String,
}

/// Runs the request: the checks (after installing, for `Install`) and the
/// languages they cover, in column order.
pub fn run(req: &Request) -> Result<(Vec<Check>, Vec<&'static str>)> {
    let tools = crate::cache::Cache::open_default()?
        .root()
        .join("toolchains");
    let platforms = if req.platforms.is_empty() {
        vec!["all".to_string()]
    } else {
        req.platforms.clone()
    };
    let targets = crate::targets::parse_list(&platforms)?;
    let langs: Vec<&'static str> = if req.langs.is_empty() {
        LANGS.to_vec()
    } else {
        req.langs
            .iter()
            .map(|l| {
                LANGS
                    .iter()
                    .find(|k| **k == l.as_str())
                    .copied()
                    .ok_or_else(|| anyhow::anyhow!("unknown language `{l}`; use rust, go or c"))
            })
            .collect::<Result<_>>()?
    };
    let checks = match req.action {
        Action::Install => install(&targets, &langs, &req.c_toolchain, &tools)?,
        Action::List | Action::Doctor => targets
            .iter()
            .flat_map(|t| langs.iter().map(|l| check(t, l, &req.c_toolchain, &tools)))
            .collect(),
    };
    Ok((checks, langs))
}

/// Checks one language for one target. `c_toolchain` is the C recipe (`zig`).
pub fn check(t: &Target, lang: &'static str, c_toolchain: &str, tools: &Path) -> Check {
    let (ready, detail, fixes) = match lang {
        "rust" => rust_state(t, tools),
        "go" => match go::find_go() {
            Ok(f) => (true, go_version(&f.version), vec![]),
            Err(_) => (false, "go not found".into(), vec![install_of("go", t)]),
        },
        _ => match cc::find(c_toolchain, t) {
            Ok((_, Ok(f))) => (
                true,
                format!(
                    "{c_toolchain} {} ({})",
                    short(&f.version),
                    c_target(c_toolchain, t)
                ),
                vec![],
            ),
            Ok((r, Err(m))) => (false, format!("{} not found", r.name), vec![m.install]),
            Err(e) => (false, e.to_string(), vec![]),
        },
    };
    Check {
        platform: t.platform.to_string(),
        lang,
        ready,
        detail,
        fixes,
    }
}

fn c_target(toolchain: &str, t: &Target) -> String {
    if toolchain == "zig" {
        cc::zig_target(t, &cc::Libc::Musl)
    } else {
        t.gcc.clone()
    }
}

/// The version number from a tool's version line (`gcc (Debian 12.2.0-14) 12.2.0`
/// → `12.2.0`, `0.17.1` → `0.17.1`).
fn short(version: &str) -> String {
    version
        .split_whitespace()
        .last()
        .unwrap_or(version)
        .to_string()
}

/// `go version go1.27.3 linux/amd64` → `go1.27.3`.
fn go_version(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("go1"))
        .unwrap_or(line)
        .to_string()
}

fn install_of(name: &str, t: &Target) -> String {
    recipe::get(name)
        .map(|r| recipe::expand(&r.install, Some(t), &[]))
        .unwrap_or_default()
}

fn rust_state(t: &Target, tools: &Path) -> (bool, String, Vec<String>) {
    let Ok(sysroot) = rust::sysroot(Path::new(".")) else {
        return (false, "rustc not found".into(), vec![install_of("rust", t)]);
    };
    if rust::has_std(&sysroot, &t.rust) {
        let link = if t.is_musl() { "rust-lld" } else { "cc" };
        return (true, format!("prebuilt std + {link}"), vec![]);
    }
    if !rust::no_prebuilt_std(&sysroot, &t.rust, tools) {
        // Not yet known whether rustup serves it: install asks rustup first and
        // falls back to std from source, so it is the one command that works.
        return (
            false,
            format!("no std for {} yet", t.rust),
            vec![format!(
                "xarch toolchain install --platform {} --lang rust",
                t.platform
            )],
        );
    }
    let mut fixes = vec![];
    if !rust::has_rust_src(&sysroot) {
        fixes.push("rustup component add rust-src".to_string());
    }
    if let Ok((_, Err(m))) = cc::find("zig", t) {
        fixes.push(m.install);
    }
    let detail = "std from source + zig".to_string();
    (fixes.is_empty(), detail, fixes)
}

/// Makes every (platform, language) ready that can be: rustup targets (or
/// rust-src where rustup has none), then each missing tool's install command,
/// once. Returns the checks afterwards.
pub fn install(
    targets: &[&Target],
    langs: &[&'static str],
    c_toolchain: &str,
    tools: &Path,
) -> Result<Vec<Check>> {
    if langs.contains(&"rust") {
        for t in targets {
            rust::ensure_target(&t.rust, true, Path::new("."), tools)?;
        }
    }
    let mut ran: Vec<String> = Vec::new();
    for t in targets {
        for lang in langs {
            for fix in check(t, lang, c_toolchain, tools).fixes {
                if ran.contains(&fix) {
                    continue;
                }
                ui::status("Installing", &fix);
                let ok = Command::new("sh").arg("-c").arg(&fix).status()?.success();
                if !ok {
                    bail!("`{fix}` failed");
                }
                ran.push(fix);
                recipe::forget_probes();
            }
        }
    }
    Ok(targets
        .iter()
        .flat_map(|t| langs.iter().map(|l| check(t, l, c_toolchain, tools)))
        .collect())
}
