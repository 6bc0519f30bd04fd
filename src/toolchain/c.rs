//! `CProject`: C (and C++) built per platform, either from a list of sources
//! compiled and linked by xarch, or by the project's own build command (make,
//! cmake, a script) run once per platform with buildx's variable names and the
//! target's `CC`/`CXX`/`AR`/`RANLIB`/`STRIP` in the environment.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};

use super::cc::{CcSet, Libc};
use super::{Artifact, Job};
use crate::ui;

#[derive(Debug, Clone)]
pub enum CBuild {
    /// Compile and link these sources into one binary named `output`.
    Sources {
        sources: Vec<String>,
        output: String,
        cflags: Vec<String>,
    },
    /// Run `command` with `sh -c`; `artifacts` are paths under `$OUT`.
    Command {
        command: String,
        artifacts: Vec<String>,
    },
}

pub struct CProject {
    pub dir: PathBuf,
    pub name: String,
    pub build: CBuild,
    /// Toolchain recipe (default `zig`).
    pub toolchain: String,
    pub libc: Libc,
    pub ldflags: Vec<String>,
    /// Extra compiler flags (with `command`: added to `CFLAGS`).
    pub cflags: Vec<String>,
}

impl CProject {
    pub fn bins(&self) -> Vec<String> {
        match &self.build {
            CBuild::Sources { output, .. } => vec![output.clone()],
            CBuild::Command { artifacts, .. } => artifacts.iter().map(|a| file_name(a)).collect(),
        }
    }

    /// Builds for one platform into `out/<platform>/`.
    pub fn build(&self, job: &Job, out: &Path, wrappers: &Path) -> Result<Vec<Artifact>> {
        let t = job.target;
        let tool = job.toolchain.as_deref().unwrap_or(&self.toolchain);
        let cc = CcSet::prepare(tool, t, &self.libc, wrappers)?;
        let dir = std::path::absolute(out.join(t.platform.slug()))?;
        std::fs::create_dir_all(&dir)?;
        match &self.build {
            CBuild::Sources {
                sources,
                output,
                cflags,
            } => self.compile(job, &cc, &dir, sources, output, cflags),
            CBuild::Command { command, artifacts } => {
                self.run_command(job, &cc, &dir, command, artifacts)
            }
        }
    }

    fn compile(
        &self,
        job: &Job,
        cc: &CcSet,
        dir: &Path,
        sources: &[String],
        output: &str,
        cflags: &[String],
    ) -> Result<Vec<Artifact>> {
        let t = job.target;
        let path = dir.join(output);
        let mut args: Vec<String> = vec!["-O2".into(), self.prefix_map()];
        if self.libc == Libc::Musl {
            args.push("-static".into());
        }
        args.extend(cflags.iter().cloned());
        args.extend(sources.iter().cloned());
        args.extend(self.ldflags.iter().cloned());
        args.extend(job.ldflags.iter().cloned());
        // Unchanged sources, flags and compiler: nothing to do.
        let stamp = self.stamp(cc, &args)?;
        let stamp_path = dir.join(format!(".{output}.xarch-stamp"));
        if path.is_file() && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
            ui::status("Fresh", &format!("{} for {}", output, t.platform));
            return Ok(vec![Artifact {
                name: output.to_string(),
                path,
            }]);
        }
        ui::status(
            "Compiling",
            &format!(
                "{output} for {} ({} {})",
                t.platform, cc.toolchain, cc.target_name
            ),
        );
        let tmp = dir.join(format!(".{output}.tmp"));
        // C++ sources compile and link with the C++ driver (its headers, libc++).
        let cxx = sources.iter().any(|f| {
            matches!(
                Path::new(f).extension().and_then(|x| x.to_str()),
                Some("cc" | "cpp" | "cxx" | "C" | "c++")
            )
        });
        let mut cmd = Command::new(if cxx { &cc.cxx } else { &cc.cc });
        cmd.current_dir(&self.dir).args(&args).arg("-o").arg(&tmp);
        cmd.envs(job.env.iter().map(|(k, v)| (k, v)));
        super::run_captured(cmd, &format!("cc for {}", t.platform))?;
        std::fs::rename(&tmp, &path)?;
        std::fs::write(&stamp_path, stamp)?;
        Ok(vec![Artifact {
            name: output.to_string(),
            path,
        }])
    }

    /// Maps the project directory to `/build` in debug info and `__FILE__`, so
    /// binaries do not depend on where the checkout lives.
    fn prefix_map(&self) -> String {
        let dir = std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone());
        format!("-ffile-prefix-map={}=/build", dir.display())
    }

    /// A hash of what the binary depends on: compiler wrapper, arguments, and
    /// the bytes of every C-family file in the project (headers included).
    fn stamp(&self, cc: &CcSet, args: &[String]) -> Result<String> {
        let mut h = Sha256::new();
        h.update(std::fs::read(&cc.cc)?);
        h.update(cc.version.as_bytes());
        for a in args {
            h.update(a.as_bytes());
            h.update([0]);
        }
        let walk = walkdir::WalkDir::new(&self.dir)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                e.depth() == 0 || !matches!(e.file_name().to_str(), Some("target" | ".git"))
            });
        for e in walk {
            let e = e?;
            if e.file_type().is_file() && is_c_family(e.path()) {
                h.update(e.path().to_string_lossy().as_bytes());
                let bytes = std::fs::read(e.path())
                    .with_context(|| format!("cannot read {}", e.path().display()))?;
                h.update(bytes);
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    fn run_command(
        &self,
        job: &Job,
        cc: &CcSet,
        dir: &Path,
        command: &str,
        artifacts: &[String],
    ) -> Result<Vec<Artifact>> {
        let t = job.target;
        ui::status(
            "Running",
            &format!(
                "`{command}` for {} ({} {})",
                t.platform, cc.toolchain, cc.target_name
            ),
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command).current_dir(&self.dir);
        cmd.envs(cc.env());
        cmd.envs(t.buildx_env());
        cmd.env("BUILDPLATFORM", build_platform())
            .env("XARCH_TRIPLE", &cc.target_name)
            .env("XARCH_RUST_TRIPLE", &t.rust)
            .env("OUT", dir)
            .env("XARCH_OUT", dir);
        let mut cflags = if self.libc == Libc::Musl {
            vec!["-static".to_string()]
        } else {
            vec![]
        };
        cflags.extend(self.ldflags.iter().chain(&job.ldflags).cloned());
        cmd.env("LDFLAGS", cflags.join(" "));
        let mut compile = vec!["-O2".to_string(), self.prefix_map()];
        compile.extend(self.cflags.iter().cloned());
        cmd.env("CFLAGS", compile.join(" "));
        cmd.envs(job.env.iter().map(|(k, v)| (k, v)));
        super::run_captured(cmd, &format!("`{command}` for {}", t.platform))?;
        artifacts
            .iter()
            .map(|a| {
                let path = dir.join(a);
                if !path.is_file() {
                    bail!(
                        "`{command}` for {} did not produce {a} (looked for {}; write artifacts under $OUT)",
                        t.platform,
                        path.display()
                    );
                }
                Ok(Artifact {
                    name: file_name(a),
                    path,
                })
            })
            .collect()
    }
}

fn is_c_family(p: &Path) -> bool {
    let ext = p.extension().and_then(|x| x.to_str()).unwrap_or_default();
    matches!(
        ext,
        "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh" | "inc" | "s" | "S"
    )
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| p.to_string())
}

/// The machine xarch runs on, as an OCI platform (buildx's BUILDPLATFORM).
pub fn build_platform() -> String {
    crate::platform::Platform::host().to_string()
}
