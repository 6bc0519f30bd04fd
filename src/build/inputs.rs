//! The digest of a platform image's inputs: the project's sources, the
//! configuration and flags that shape the image, the toolchains' versions,
//! the platform and its base. Builds are reproducible, so equal inputs give an
//! equal image — which is what lets `--reuse-from` take an image built before
//! (on any machine, from any clone) instead of compiling it again. Every image
//! carries it as the `dev.xarch.inputs` annotation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::bases::Bases;
use super::project::Builder;
use super::{BuildRequest, Plan};
use crate::oci::Digest;
use crate::platform::Platform;

/// The annotation each image's manifest carries its inputs' digest in.
pub const ANNOTATION: &str = "dev.xarch.inputs";

/// The inputs' digest of every platform of the plan.
pub fn digests(
    req: &BuildRequest,
    cfg: &crate::config::ImageConfig,
    plan: &Plan,
    builders: &[Builder],
    bases: &Bases,
    cache: &Path,
) -> Result<BTreeMap<Platform, Digest>> {
    // What xarch itself writes is never an input, even inside the project:
    // else a cache or an output layout there changes the next build's inputs.
    let mut outputs = vec![plan.target_dir.clone(), cache.to_path_buf()];
    outputs.extend(plan.oci_layout.clone());
    outputs.extend(req.outputs.iter().filter_map(|o| match o {
        crate::image::ImageRef::Layout { dir, .. } => Some(dir.clone()),
        crate::image::ImageRef::Archive { file, .. } => Some(file.clone()),
        crate::image::ImageRef::Registry(_) => None,
    }));
    // The configuration as parsed, not `xarch.toml`'s bytes: a change under
    // `[platform."linux/arm64"]` then changes only that platform's inputs.
    let mut shared_cfg = cfg.clone();
    shared_cfg.platform = None;
    let common = json!({
        "xarch": env!("CARGO_PKG_VERSION"),
        "sources": sources(&plan.project_dir, &outputs)?.as_str(),
        "config": format!("{shared_cfg:?}"),
        "request": request(req),
        "epoch": plan.epoch,
        "bin_dir": plan.bin_dir,
        "files": format!("{:?}", plan.files),
        "annotations": plan.annotations,
        "toolchains": builders.iter().map(|b| toolchain(b, plan)).collect::<Vec<_>>(),
    });
    let mut out = BTreeMap::new();
    for t in &plan.targets {
        let p = &t.platform;
        let base = match (&plan.bases[p], bases.get(p)) {
            (_, Some(b)) => json!(b.base.digest.as_ref().map(|d| d.as_str())),
            (spec, None) => json!(spec.to_string()),
        };
        let one = json!({
            "common": common,
            "platform": p.to_string(),
            "override": format!("{:?}", plan.overrides.get(p)),
            "edits": format!("{:?}", plan.edits_for(p)),
            "base": base,
        });
        out.insert(p.clone(), Digest::of(&crate::oci::json::to_vec(&one)?));
    }
    Ok(out)
}

/// What on the command line shapes the images (not where they go).
fn request(req: &BuildRequest) -> Value {
    json!({
        "package": req.package, "bins": req.bins, "features": req.features,
        "all_features": req.all_features, "no_default_features": req.no_default_features,
        "profile": req.profile, "env": req.env, "labels": req.labels,
        "annotations": req.annotations, "user": req.user, "base": req.base,
        "compression": req.compression, "compression_level": req.compression_level,
    })
}

/// The toolchain a build uses, as its versions say.
fn toolchain(b: &Builder, plan: &Plan) -> Value {
    match b {
        Builder::Rust { project, .. } => {
            let dir = project
                .package
                .manifest_path
                .parent()
                .map(|d| d.as_std_path().to_path_buf())
                .unwrap_or_default();
            // The toolchain's own rustc (not rustup's proxy, whose bytes stay
            // the same across toolchain updates), as cargo picks it here.
            let rustc = crate::toolchain::rust::sysroot(&dir)
                .map(|s| s.join("bin/rustc").display().to_string())
                .unwrap_or_else(|_| "rustc".into());
            let mut v = json!({"rustc": version(&[&rustc, "-vV"], &dir)});
            if project.compiles_c() {
                v["cc"] = json!(c_version("zig", plan));
            }
            v
        }
        Builder::Go(g) => json!({"go": g.version()}),
        Builder::C(c) => json!({"cc": c_version(&c.toolchain, plan)}),
    }
}

fn c_version(recipe: &str, plan: &Plan) -> String {
    let Some(t) = plan.targets.first() else {
        return String::new();
    };
    match crate::toolchain::cc::find(recipe, t) {
        Ok((_, Ok(found))) => format!("{recipe} {}", found.version),
        _ => format!("{recipe} (not found)"),
    }
}

/// A tool's version output, remembered on disk while the program is unchanged.
fn version(argv: &[&str], dir: &Path) -> String {
    use crate::toolchain::versions;
    let (prog, args): (Vec<String>, Vec<String>) = (
        vec![argv[0].to_string()],
        argv[1..].iter().map(|s| s.to_string()).collect(),
    );
    if let Some(v) = versions::remembered(&prog, &args) {
        return v;
    }
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).replace('\n', " "),
        _ => format!("{} (not found)", argv[0]),
    };
    let text = text.trim().to_string();
    versions::remember(&prog, &args, &text);
    text
}

/// The project's files: `git ls-files` (tracked and untracked, not ignored)
/// in a git work tree, else every file but the target and VCS directories;
/// each path with its executable bit and its contents' hash. Files under
/// `outputs` or in an OCI layout (a directory holding `oci-layout`) are left
/// out: they are what builds write, not what they read.
fn sources(dir: &Path, outputs: &[PathBuf]) -> Result<Digest> {
    let dir = absolute(dir);
    let outputs: Vec<PathBuf> = outputs
        .iter()
        .filter_map(|o| absolute(o).strip_prefix(&dir).ok().map(Path::to_path_buf))
        .collect();
    let mut files = git_files(&dir).unwrap_or_else(|| walk_files(&dir, &outputs));
    let layouts: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.strip_suffix("/oci-layout").map(PathBuf::from))
        .collect();
    files.retain(|f| {
        let f = Path::new(f);
        !outputs.iter().chain(&layouts).any(|o| f.starts_with(o))
    });
    files.sort();
    files.dedup();
    let mut h = Sha256::new();
    // xarch.toml is hashed as parsed (see `digests`), not as bytes.
    for rel in files.into_iter().filter(|f| f != "xarch.toml") {
        let path = dir.join(&rel);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // deleted but still listed by git
        };
        h.update(rel.as_bytes());
        h.update([0]);
        if meta.file_type().is_symlink() {
            h.update(b"link:");
            h.update(std::fs::read_link(&path)?.to_string_lossy().as_bytes());
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            h.update([u8::from(meta.permissions().mode() & 0o111 != 0)]);
            let mut f = std::fs::File::open(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut fh = Sha256::new();
            std::io::copy(&mut f, &mut fh)?;
            h.update(fh.finalize());
        }
        h.update([0]);
    }
    Ok(Digest::of(&h.finalize()))
}

fn git_files(dir: &Path) -> Option<Vec<String>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            ".",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(
        out.stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).to_string())
            .collect(),
    )
}

/// `p` made absolute without touching the disk (an output may not exist yet).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Every file under `dir` but VCS directories, `target` and `outputs`
/// (relative to `dir`).
fn walk_files(dir: &Path, outputs: &[PathBuf]) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
            !outputs.iter().any(|o| rel == o)
                && !matches!(name.as_ref(), ".git" | "target" | ".hg" | ".jj")
        })
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| {
            e.path()
                .strip_prefix(dir)
                .ok()
                .map(|p| p.to_string_lossy().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_xarch_writes_into_the_project_is_not_an_input() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("main.c"), "int main(void) { return 0; }\n").unwrap();
        let cache = dir.join("xarch-cache");
        let before = sources(dir, std::slice::from_ref(&cache)).unwrap();

        std::fs::create_dir_all(cache.join("blobs")).unwrap();
        std::fs::write(cache.join("blobs/x"), "cached").unwrap();
        std::fs::create_dir_all(dir.join("out/blobs")).unwrap();
        std::fs::write(dir.join("out/oci-layout"), "{}").unwrap();
        std::fs::write(dir.join("out/blobs/y"), "layer").unwrap();
        assert_eq!(sources(dir, std::slice::from_ref(&cache)).unwrap(), before);

        std::fs::write(dir.join("lib.c"), "int f(void);\n").unwrap();
        assert_ne!(
            sources(dir, &[cache]).unwrap(),
            before,
            "a new source file is an input"
        );
    }
}
