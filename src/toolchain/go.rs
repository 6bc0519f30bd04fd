//! `GoProject`: a Go module's main packages, each built per platform with
//! `GOOS`/`GOARCH`/`GOARM`/`GO386`, `CGO_ENABLED=0` unless cgo is asked for
//! (then `CC` is zig for the target), `-trimpath` and no build id, so the same
//! source gives the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::cc::{CcSet, Libc};
use super::recipe::{self, Found};
use super::{Artifact, Job};
use crate::ui;

#[derive(Debug, Clone, Default)]
pub struct GoOptions {
    /// Package patterns (default `./...`: every main package).
    pub packages: Vec<String>,
    /// `-ldflags`, templates already expanded.
    pub ldflags: Vec<String>,
    /// `-tags`.
    pub tags: Vec<String>,
    pub cgo: bool,
}

pub struct GoProject {
    pub dir: PathBuf,
    /// The module path from go.mod.
    pub module: String,
    /// (import path, binary name) of each main package.
    pub mains: Vec<(String, String)>,
    go: Found,
    pub opts: GoOptions,
}

impl GoProject {
    /// Finds `go`, reads go.mod and lists the main packages.
    pub fn open(dir: &Path, opts: GoOptions) -> Result<GoProject> {
        let go = find_go()?;
        let module = read_module(dir)?;
        let patterns = if opts.packages.is_empty() {
            vec!["./...".to_string()]
        } else {
            opts.packages.clone()
        };
        let mut cmd = Command::new(&go.argv[0]);
        cmd.args(&go.argv[1..])
            .args(["list", "-f", "{{.Name}} {{.ImportPath}}"])
            .args(&patterns)
            .current_dir(dir);
        let out = cmd
            .output()
            .with_context(|| format!("cannot run go list in {}", dir.display()))?;
        if !out.status.success() {
            bail!(
                "go list {} failed in {}:\n{}",
                patterns.join(" "),
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mains: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("main "))
            .map(|p| (p.to_string(), bin_name(p)))
            .collect();
        if mains.is_empty() {
            bail!(
                "no main package in {} ({}): nothing to put in an image",
                dir.display(),
                patterns.join(" ")
            );
        }
        Ok(GoProject {
            dir: dir.to_path_buf(),
            module,
            mains,
            go,
            opts,
        })
    }

    /// The last element of the module path: the image's default name.
    pub fn name(&self) -> String {
        bin_name(&self.module)
    }

    pub fn bins(&self) -> Vec<String> {
        self.mains.iter().map(|(_, b)| b.clone()).collect()
    }

    pub fn version(&self) -> &str {
        &self.go.version
    }

    /// Builds every main package for one platform into `out/<platform>/`.
    pub fn build(&self, job: &Job, out: &Path, wrappers: &Path) -> Result<Vec<Artifact>> {
        let t = job.target;
        let dir = out.join(t.platform.slug());
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(&self.go.argv[0]);
        cmd.args(&self.go.argv[1..]).current_dir(&self.dir).args([
            "build",
            "-trimpath",
            "-buildvcs=false",
        ]);
        let mut ldflags = vec!["-buildid=".to_string()];
        ldflags.extend(self.opts.ldflags.iter().cloned());
        ldflags.extend(job.ldflags.iter().cloned());
        cmd.arg(format!("-ldflags={}", ldflags.join(" ")));
        if !self.opts.tags.is_empty() {
            cmd.arg(format!("-tags={}", self.opts.tags.join(",")));
        }
        // `-o dir/` names each binary after its package, like `go build`. Into a
        // fresh directory first: an unchanged binary then keeps its file (and
        // mtime), so an unchanged image is not layered again.
        let fresh = dir.join(".xarch-new");
        let _ = std::fs::remove_dir_all(&fresh);
        std::fs::create_dir_all(&fresh)?;
        cmd.arg("-o").arg(format!("{}/", fresh.display()));
        cmd.args(self.mains.iter().map(|(p, _)| p));
        cmd.env("GOOS", &t.goos).env("GOARCH", &t.goarch);
        if let Some(arm) = &t.goarm {
            cmd.env("GOARM", arm);
        }
        if let Some(x) = &t.go386 {
            cmd.env("GO386", x);
        }
        if self.opts.cgo {
            let tool = job.toolchain.as_deref().unwrap_or("zig");
            let cc = CcSet::prepare(tool, t, &Libc::Musl, wrappers)?;
            cmd.env("CGO_ENABLED", "1")
                .env("CC", &cc.cc)
                .env("CXX", &cc.cxx)
                .env("CGO_LDFLAGS", "-static");
        } else {
            cmd.env("CGO_ENABLED", "0");
        }
        cmd.envs(job.env.iter().map(|(k, v)| (k, v)));
        ui::status("Compiling", &format!("{} for {}", self.name(), t.platform));
        super::run_captured(cmd, &format!("go build for {}", t.platform))?;
        self.mains
            .iter()
            .map(|(_, b)| {
                let new = fresh.join(b);
                if !new.is_file() {
                    bail!("go build wrote no {} for {}", new.display(), t.platform);
                }
                let path = dir.join(b);
                replace_if_changed(&new, &path)?;
                let _ = std::fs::remove_dir(&fresh);
                Ok(Artifact {
                    name: b.clone(),
                    path,
                })
            })
            .collect()
    }
}

/// Moves `new` over `old` unless both hold the same bytes.
fn replace_if_changed(new: &Path, old: &Path) -> Result<()> {
    let same = std::fs::read(old).is_ok_and(|o| std::fs::read(new).is_ok_and(|n| n == o));
    if same {
        std::fs::remove_file(new)?;
    } else {
        std::fs::rename(new, old)?;
    }
    Ok(())
}

/// `go` from `$XARCH_GO` or PATH; missing → the install command.
pub fn find_go() -> Result<Found> {
    recipe::get("go")?
        .find_tool(None)
        .map_err(|m| anyhow::anyhow!("Go toolchain: {m}"))
}

fn read_module(dir: &Path) -> Result<String> {
    let path = dir.join("go.mod");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("module "))
        .map(|m| m.trim().trim_matches('"').to_string())
        .with_context(|| format!("{}: no `module` line", path.display()))
}

/// What `go build` names a package's binary: its last path element, skipping a
/// major-version suffix (`example.com/tool/v2` → `tool`).
pub fn bin_name(import_path: &str) -> String {
    let mut parts = import_path.rsplit('/');
    let last = parts.next().unwrap_or(import_path);
    // Go's rule: a major-version suffix is v2 or higher, without a leading 0.
    let digits = last.strip_prefix('v').unwrap_or("");
    let is_version = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
        && digits != "1";
    match (is_version, parts.next()) {
        (true, Some(prev)) => prev.to_string(),
        _ => last.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_names() {
        assert_eq!(bin_name("example.com/hello"), "hello");
        assert_eq!(bin_name("example.com/tool/v2"), "tool");
        assert_eq!(bin_name("example.com/x/cmd/serve"), "serve");
        assert_eq!(bin_name("hello"), "hello");
        assert_eq!(bin_name("example.com/x/cmd/v1"), "v1");
        assert_eq!(bin_name("example.com/x/v01"), "v01");
    }
}
