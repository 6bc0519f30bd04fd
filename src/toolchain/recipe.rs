//! `Recipe`: one toolchain described as data (`toolchains/*.toml`): how to find
//! it, its version, the command that installs it, and the commands it provides
//! for a target. Built-in recipes are embedded; a user's file with the same name
//! replaces one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::config::ConfigError;
use crate::targets::Target;

const BUILTIN: &[(&str, &str)] = &[
    ("go", include_str!("../../toolchains/go.toml")),
    ("gcc", include_str!("../../toolchains/gcc.toml")),
    ("rust", include_str!("../../toolchains/rust.toml")),
    ("zig", include_str!("../../toolchains/zig.toml")),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    pub description: String,
    /// Candidates, first hit wins: a command line, or `$VAR` holding one.
    pub find: Vec<String>,
    /// Arguments that make the tool print its version (proves it runs).
    pub version: Vec<String>,
    /// The exact command that installs the tool.
    pub install: String,
    /// Commands the tool provides (`cc`, `ar` …), as templates.
    #[serde(default)]
    pub commands: BTreeMap<String, String>,
    /// Where the recipe came from (a user's file, or built in).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// A tool that was found and runs: its command line and version line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub argv: Vec<String>,
    pub version: String,
}

/// A tool that is not ready, with what was tried and the fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{tool} not found (tried {tried}); install it with: {install}")]
pub struct Missing {
    pub tool: String,
    pub tried: String,
    pub install: String,
}

/// The recipe named `name`: the user's file if there is one, else the built-in.
pub fn get(name: &str) -> Result<Recipe> {
    if let Some(dir) = user_dir() {
        let path = dir.join(format!("{name}.toml"));
        if path.is_file() {
            return parse_file(&path);
        }
    }
    let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name).with_context(|| {
        format!(
            "no toolchain recipe `{name}`; known: {}",
            names().join(", ")
        )
    })?;
    Ok(toml::from_str(text).expect("built-in recipes are valid"))
}

/// Every recipe name, built-in and the user's.
pub fn names() -> Vec<String> {
    let mut out: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    if let Some(Ok(rd)) = user_dir().map(std::fs::read_dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml")
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                && !out.iter().any(|n| n == stem)
            {
                out.push(stem.to_string());
            }
        }
    }
    out
}

fn parse_file(path: &Path) -> Result<Recipe> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut r: Recipe =
        toml::from_str(&text).map_err(|e| ConfigError::from_toml(path, &text, &e))?;
    r.source = Some(path.to_path_buf());
    Ok(r)
}

/// `$XARCH_TOOLCHAINS_DIR`, else `$XDG_CONFIG_HOME/xarch/toolchains`, else
/// `~/.config/xarch/toolchains`.
pub fn user_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XARCH_TOOLCHAINS_DIR") {
        return Some(d.into());
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("xarch").join("toolchains"))
}

impl Recipe {
    /// Finds the tool for `target` (None: target-independent), running each
    /// candidate's version command once per process.
    pub fn find_tool(&self, target: Option<&Target>) -> Result<Found, Missing> {
        let mut tried = Vec::new();
        for cand in &self.find {
            let line = match cand.strip_prefix('$') {
                Some(var) => match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => v,
                    _ => continue,
                },
                None => expand(cand, target, &[]),
            };
            let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
            if argv.is_empty() {
                continue;
            }
            match probe(&argv, &self.version) {
                Some(version) => return Ok(Found { argv, version }),
                None => tried.push(format!("`{line}`")),
            }
        }
        Err(Missing {
            tool: self.name.clone(),
            tried: if tried.is_empty() {
                "nothing".into()
            } else {
                tried.join(", ")
            },
            install: expand(&self.install, target, &[]),
        })
    }

    /// The command line for `name` (e.g. `cc`) with the target's columns filled in.
    pub fn command(
        &self,
        name: &str,
        tool: &Found,
        target: &Target,
        extra: &[(&str, &str)],
    ) -> Result<Vec<String>> {
        let Some(t) = self.commands.get(name) else {
            bail!("toolchain `{}` has no `{name}` command", self.name);
        };
        let tool_line = tool.argv.join(" ");
        let mut vars = vec![("tool", tool_line.as_str())];
        vars.extend_from_slice(extra);
        Ok(expand(t, Some(target), &vars)
            .split_whitespace()
            .map(String::from)
            .collect())
    }
}

/// Replaces `{column}` with the target's value from targets.toml and `{name}`
/// with `vars`; unknown names are left as they are.
pub fn expand(template: &str, target: Option<&Target>, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    if let Some(t) = target {
        for (k, v) in t.columns() {
            out = out.replace(&format!("{{{k}}}"), &v);
        }
    }
    out
}

type Probes = Mutex<BTreeMap<Vec<String>, Option<String>>>;

fn probes() -> &'static Probes {
    static SEEN: OnceLock<Probes> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// Forgets every probe (after installing a tool).
pub fn forget_probes() {
    probes().lock().expect("probe cache").clear();
}

/// The first line `argv + version_args` prints: asked once per process, and
/// remembered across runs for native programs (`versions`).
fn probe(argv: &[String], version_args: &[String]) -> Option<String> {
    let seen = probes();
    if let Some(v) = seen.lock().expect("probe cache").get(argv) {
        return v.clone();
    }
    let result = super::versions::remembered(argv, version_args).or_else(|| {
        let v = run_probe(argv, version_args)?;
        super::versions::remember(argv, version_args, &v);
        Some(v)
    });
    seen.lock()
        .expect("probe cache")
        .insert(argv.to_vec(), result.clone());
    result
}

/// Runs `argv + version_args`: the first line printed, when it succeeds.
fn run_probe(argv: &[String], version_args: &[String]) -> Option<String> {
    Command::new(&argv[0])
        .args(&argv[1..])
        .args(version_args)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_recipes_parse() {
        for (name, _) in BUILTIN {
            let r = get(name).unwrap();
            assert_eq!(&r.name, name);
            assert!(!r.install.is_empty());
        }
    }

    #[test]
    fn templates_use_target_columns() {
        let t = crate::targets::lookup("linux/s390x").unwrap();
        assert_eq!(
            expand("apt-get install -y gcc-{gcc}", Some(t), &[]),
            "apt-get install -y gcc-s390x-linux-gnu"
        );
    }

    #[test]
    fn missing_tool_names_the_install_command() {
        let r = Recipe {
            name: "nothere".into(),
            description: String::new(),
            find: vec!["xarch-no-such-tool-{gcc}".into()],
            version: vec!["--version".into()],
            install: "apt-get install -y gcc-{gcc}".into(),
            commands: BTreeMap::new(),
            source: None,
        };
        let t = crate::targets::lookup("linux/riscv64").unwrap();
        let e = r.find_tool(Some(t)).unwrap_err().to_string();
        assert!(e.contains("xarch-no-such-tool-riscv64-linux-gnu"), "{e}");
        assert!(
            e.contains("apt-get install -y gcc-riscv64-linux-gnu"),
            "{e}"
        );
    }
}
