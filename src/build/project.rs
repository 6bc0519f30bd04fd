//! `Builder`: one build of binaries in an image — a Rust package, a Go module,
//! or C — behind one interface: check toolchains, then compile for every
//! platform into artifacts keyed by platform.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::{Component, ImageConfig, Lang};
use crate::platform::Platform;
use crate::toolchain::c::{CBuild, CProject};
use crate::toolchain::cc::{self, Libc};
use crate::toolchain::go::{GoOptions, GoProject};
use crate::toolchain::rust::{self, RustOptions, RustProject, TargetSettings};
use crate::toolchain::{self, Artifact, Job};

use super::BuildRequest;

pub enum Builder {
    Rust {
        project: Box<RustProject>,
        opts: RustOptions,
    },
    Go(GoProject),
    C(CProject),
}

/// Artifacts of every builder, by platform.
pub type Artifacts = BTreeMap<Platform, Vec<Artifact>>;

impl Builder {
    /// Opens one `[[build]]` (or the top-level build) of the configuration.
    pub fn open(req: &BuildRequest, cfg: &ImageConfig, comp: &Component) -> Result<Builder> {
        let dir = match &comp.dir {
            Some(d) => req.project_dir.join(d),
            None => req.project_dir.clone(),
        };
        let lang = match comp.lang {
            Some(l) => l,
            None => detect(&dir, comp)?,
        };
        Ok(match lang {
            Lang::Rust => {
                let manifest = dir.join("Cargo.toml");
                if !manifest.is_file() {
                    bail!("no Cargo.toml in {} for a Rust build", dir.display());
                }
                let opts = rust_options(req, cfg, comp)?;
                let project = RustProject::open(&manifest, &opts)?;
                Builder::Rust {
                    project: Box::new(project),
                    opts,
                }
            }
            Lang::Go => Builder::Go(GoProject::open(
                &dir,
                GoOptions {
                    packages: comp.packages.clone().unwrap_or_default(),
                    ldflags: comp.ldflags.clone().unwrap_or_default(),
                    tags: vec![],
                    cgo: comp.cgo.unwrap_or(false),
                },
            )?),
            Lang::C => Builder::C(c_project(&dir, comp)?),
        })
    }

    pub fn lang(&self) -> &'static str {
        match self {
            Builder::Rust { .. } => "Rust",
            Builder::Go(_) => "Go",
            Builder::C(_) => "C",
        }
    }

    /// The name an image built from this alone gets by default.
    pub fn name(&self) -> String {
        match self {
            Builder::Rust { project, .. } => project.package.name.to_string(),
            Builder::Go(g) => g.name(),
            Builder::C(c) => c.name.clone(),
        }
    }

    pub fn version(&self) -> Option<String> {
        match self {
            Builder::Rust { project, .. } => Some(project.package.version.to_string()),
            _ => None,
        }
    }

    pub fn bins(&self) -> Vec<String> {
        match self {
            Builder::Rust { project, .. } => project.bins.clone(),
            Builder::Go(g) => g.bins(),
            Builder::C(c) => c.bins(),
        }
    }

    /// The binary an image runs when the configuration names no entrypoint.
    pub fn main_bin(&self) -> Option<String> {
        match self {
            Builder::Rust { project, .. } => project.main_bin().map(String::from),
            _ => {
                let b = self.bins();
                (b.len() == 1).then(|| b[0].clone())
            }
        }
    }

    pub fn target_dir(&self) -> Option<&Path> {
        match self {
            Builder::Rust { project, .. } => Some(project.target_dir()),
            _ => None,
        }
    }

    /// Expands `{{…}}` templates in linker flags.
    pub fn expand(&mut self, vars: &BTreeMap<String, String>) -> Result<()> {
        let flags = match self {
            Builder::Go(g) => &mut g.opts.ldflags,
            Builder::C(c) => &mut c.ldflags,
            Builder::Rust { .. } => return Ok(()),
        };
        for f in flags.iter_mut() {
            *f = crate::template::expand(f, vars).context("ldflags")?;
        }
        Ok(())
    }

    /// Checks (and, where allowed, installs) every toolchain this build needs
    /// for `jobs`, so a missing one fails before anything compiles.
    pub fn preflight(&self, jobs: &[Job], install: bool, tools: &Path) -> Result<()> {
        match self {
            Builder::Rust { project, opts } => {
                let opts = RustOptions {
                    install,
                    ..opts.clone()
                };
                project.routes(jobs.iter().map(|j| j.target), &opts, tools)?;
            }
            Builder::Go(g) if g.opts.cgo => {
                for j in jobs {
                    need_cc(j.toolchain.as_deref().unwrap_or("zig"), j)?;
                }
            }
            Builder::Go(_) => {}
            Builder::C(c) => {
                for j in jobs {
                    need_cc(j.toolchain.as_deref().unwrap_or(&c.toolchain), j)?;
                }
            }
        }
        Ok(())
    }

    /// Compiles for every job; `out` holds Go and C outputs, `tools` the
    /// toolchain wrappers.
    pub fn build(
        &self,
        jobs: &[Job],
        out: &Path,
        tools: &Path,
        parallel: usize,
    ) -> Result<Artifacts> {
        let results = match self {
            Builder::Rust { project, opts } => {
                let targets: Vec<_> = jobs
                    .iter()
                    .map(|j| {
                        let s = TargetSettings {
                            features: j.features.clone(),
                            rustflags: j.rustflags.clone(),
                        };
                        (j.target, s)
                    })
                    .collect();
                let mut by_triple = project.build(&targets, opts, tools)?;
                return jobs
                    .iter()
                    .map(|j| {
                        let triple = rust::triple(j.target, &opts.libc);
                        let a = by_triple
                            .remove(triple)
                            .with_context(|| format!("cargo produced no binaries for {triple}"))?;
                        Ok((j.target.platform.clone(), a))
                    })
                    .collect();
            }
            Builder::Go(g) => toolchain::parallel(parallel, jobs, |j| g.build(j, out, tools)),
            Builder::C(c) => toolchain::parallel(parallel, jobs, |j| c.build(j, out, tools)),
        };
        Ok(toolchain::collect(self.lang(), jobs, results)?
            .into_iter()
            .map(|(t, a)| (t.platform.clone(), a))
            .collect())
    }
}

fn need_cc(tool: &str, job: &Job) -> Result<()> {
    cc::find(tool, job.target)?
        .1
        .map(|_| ())
        .map_err(|m| anyhow::anyhow!("{}: C toolchain: {m}", job.target.platform))
}

/// Cargo.toml → Rust, go.mod → Go, `sources`/`command` → C.
fn detect(dir: &Path, comp: &Component) -> Result<Lang> {
    if comp.sources.is_some() || comp.command.is_some() {
        Ok(Lang::C)
    } else if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if dir.join("go.mod").is_file() {
        Ok(Lang::Go)
    } else {
        bail!(
            "nothing to build in {}: no Cargo.toml, no go.mod, and no C `sources` or `command` \
             in the xarch configuration (set `lang`)",
            dir.display()
        )
    }
}

fn c_project(dir: &Path, comp: &Component) -> Result<CProject> {
    let name = dir_name(dir);
    let build = match (&comp.sources, &comp.command) {
        (Some(sources), None) => CBuild::Sources {
            sources: sources.clone(),
            output: comp.output.clone().unwrap_or_else(|| name.clone()),
            cflags: comp.cflags.clone().unwrap_or_default(),
        },
        (None, Some(command)) => CBuild::Command {
            command: command.clone(),
            artifacts: match &comp.artifacts {
                Some(a) if !a.is_empty() => a.clone(),
                _ => bail!("a C build `command` needs `artifacts`: the files it writes under $OUT"),
            },
        },
        (Some(_), Some(_)) => bail!("a C build has either `sources` or `command`, not both"),
        (None, None) => bail!("a C build needs `sources` or a build `command`"),
    };
    let libc = libc(comp)?;
    Ok(CProject {
        dir: dir.to_path_buf(),
        name,
        build,
        toolchain: comp.toolchain.clone().unwrap_or_else(|| "zig".into()),
        libc,
        ldflags: comp.ldflags.clone().unwrap_or_default(),
        cflags: comp.cflags.clone().unwrap_or_default(),
    })
}

fn dir_name(dir: &Path) -> String {
    std::path::absolute(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "app".into())
}

fn rust_options(req: &BuildRequest, cfg: &ImageConfig, comp: &Component) -> Result<RustOptions> {
    let pick = |cli: &[String], conf: &Option<Vec<String>>| {
        if cli.is_empty() {
            conf.clone().unwrap_or_default()
        } else {
            cli.to_vec()
        }
    };
    Ok(RustOptions {
        libc: libc(comp)?,
        package: req.package.clone().or_else(|| comp.package.clone()),
        bins: pick(&req.bins, &comp.bins),
        features: pick(&req.features, &comp.features),
        all_features: req.all_features || cfg.all_features.unwrap_or(false),
        no_default_features: req.no_default_features || cfg.no_default_features.unwrap_or(false),
        profile: req
            .profile
            .clone()
            .or_else(|| cfg.profile.clone())
            .unwrap_or_else(|| "release".into()),
        rustflags: cfg.rustflags.clone().unwrap_or_default(),
        install: req.install,
        jobs: req.jobs,
    })
}

fn libc(comp: &Component) -> Result<Libc> {
    match &comp.libc {
        Some(l) => Libc::parse(l).map_err(anyhow::Error::msg),
        None => Ok(Libc::Musl),
    }
}

/// Where Go and C outputs go: `<target>/xarch/build/[<image>/]<n>-<lang>`.
pub fn out_dir(target_dir: &Path, image: Option<&str>, index: usize, b: &Builder) -> PathBuf {
    // Absolute: compilers run in the project's directory.
    let root = std::path::absolute(target_dir)
        .unwrap_or_else(|_| target_dir.to_path_buf())
        .join("xarch")
        .join("build");
    image
        .map(|k| root.join(k))
        .unwrap_or(root)
        .join(format!("{index}-{}", b.lang().to_ascii_lowercase()))
}
