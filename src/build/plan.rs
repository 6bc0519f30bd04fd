//! `Plan`: the build request (CLI flags) merged over the project configuration —
//! what to build, for which platforms, into which image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::base::BaseSpec;
use crate::config::{FileEntry, ImageConfig, PlatformOverride};
use crate::oci::LayerBuilder;
use crate::oci::image::ConfigEdits;
use crate::platform::Platform;
use crate::registry::reference::{self, split_name_tag};
use crate::targets::{self, Target};
use crate::toolchain::{Artifact, Job};

use super::project::Builder;

/// Platforms built when neither flags nor configuration name any.
pub const DEFAULT_PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];

/// What the user asked for on the command line; everything optional falls back
/// to the project configuration, then to defaults.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub project_dir: PathBuf,
    pub platforms: Vec<String>,
    /// `name[:tag]` references (`-t`).
    pub tags: Vec<String>,
    pub oci_layout: Option<PathBuf>,
    /// `--output`: layouts (`oci:DIR`) and archives (`oci-archive:FILE`).
    pub outputs: Vec<crate::image::ImageRef>,
    pub base: Option<String>,
    pub package: Option<String>,
    pub bins: Vec<String>,
    pub features: Vec<String>,
    pub all_features: bool,
    pub no_default_features: bool,
    pub profile: Option<String>,
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub user: Option<String>,
    pub install: bool,
    pub jobs: Option<usize>,
    /// `--compression` and `--compression-level`.
    pub compression: Option<String>,
    pub compression_level: Option<i32>,
    /// Push to the registry named by the tags.
    pub push: bool,
    /// Push by digest only (no tag): one shard of a build split over machines.
    pub push_by_digest: bool,
    pub registry: crate::registry::Options,
    /// Never touch the network for bases: use the cache only.
    pub offline: bool,
    /// `--image`: which of the configuration's `[images.NAME]` to build (all
    /// when empty).
    pub images: Vec<String>,
    /// `--smoke ARGS`: run every platform's image with these arguments first.
    pub smoke: Option<String>,
    /// `--reuse-from REPO`: take each platform image whose inputs this
    /// repository already holds instead of compiling it.
    pub reuse_from: Option<crate::registry::Reference>,
    /// What a smoke run's image may unpack to.
    pub unpack_limits: crate::rootfs::Limits,
}

pub struct Plan {
    /// (image name, tag) for every `-t`/configured tag.
    pub refs: Vec<(String, String)>,
    pub targets: Vec<&'static Target>,
    /// The base for each platform (`base`, overridden per platform).
    pub bases: BTreeMap<Platform, BaseSpec>,
    pub epoch: u64,
    /// Values for `{{…}}` templates: version, git.sha, git.short_sha, date.
    pub vars: BTreeMap<String, String>,
    pub install: bool,
    /// Parallel compiles and compression threads (`-j`, else the number of CPUs).
    pub jobs: usize,
    pub compression: crate::oci::Compression,
    /// Where the default layout and Go/C outputs go.
    pub target_dir: PathBuf,
    pub overrides: BTreeMap<Platform, PlatformOverride>,
    pub edits: ConfigEdits,
    /// `--env` from the command line: applied last, over per-platform env.
    pub cli_env: Vec<(String, String)>,
    pub annotations: BTreeMap<String, String>,
    pub files: Vec<FileEntry>,
    pub bin_dir: String,
    pub project_dir: PathBuf,
    pub oci_layout: Option<PathBuf>,
    /// The `[images.NAME]` this plan builds, if the configuration has several.
    pub image_key: Option<String>,
}

impl BuildRequest {
    /// Concurrent uploads: `-j`, else 4.
    pub fn push_jobs(&self) -> usize {
        self.jobs.unwrap_or(4)
    }
}

/// Opens every build of one image's configuration and resolves the plan.
/// `key` names an `[images.NAME]` image: it gets its own layout, `DIR/NAME`.
pub fn load(
    req: &BuildRequest,
    cfg: &ImageConfig,
    key: Option<&str>,
) -> Result<(Plan, Vec<Builder>)> {
    let mut builders = cfg
        .components()
        .iter()
        .map(|c| Builder::open(req, cfg, c))
        .collect::<Result<Vec<_>>>()?;
    if builders.is_empty() {
        bail!("`build = []` leaves nothing to build: list at least one [[build]]");
    }
    let mut plan = Plan::resolve(req, cfg, &builders)?;
    plan.image_key = key.map(String::from);
    for b in &mut builders {
        b.expand(&plan.vars)?;
    }
    Ok((plan, builders))
}

impl Plan {
    fn resolve(req: &BuildRequest, cfg: &ImageConfig, builders: &[Builder]) -> Result<Plan> {
        let platform_list: Vec<String> = if !req.platforms.is_empty() {
            req.platforms.clone()
        } else if let Some(p) = &cfg.platforms {
            p.iter().map(|s| s.get_ref().clone()).collect()
        } else {
            DEFAULT_PLATFORMS.iter().map(|s| s.to_string()).collect()
        };
        let targets = targets::parse_list(&platform_list)?;
        if targets.is_empty() {
            bail!(
                "no platforms to build; valid platforms: {}",
                targets::valid_list()
            );
        }
        let git = super::git::read(&req.project_dir);
        let epoch = crate::epoch::source_date_epoch(git.commit_time)?;
        let bin_dir = cfg
            .bin_dir
            .clone()
            .unwrap_or_else(|| "/usr/local/bin".into());
        let mut extra = cfg.annotations.clone().unwrap_or_default();
        extra.extend(req.annotations.iter().cloned());
        let version = cfg
            .version
            .clone()
            .or_else(|| builders.iter().find_map(Builder::version));
        let created = crate::epoch::rfc3339(epoch);
        let annotations = super::annotations(&created, version.as_deref(), &git, &extra);
        let vars = template_vars(version.as_deref(), &git, &created);
        let refs = refs(req, cfg, &builders[0].name(), &vars)?;
        let overrides = cfg
            .platform
            .iter()
            .flatten()
            .map(|(k, v)| {
                let t = targets::lookup(k.get_ref())?;
                let mut v = v.clone();
                // `{{version}}` … in per-platform linker flags, as in the top-level ones.
                for f in v.ldflags.iter_mut().flatten() {
                    *f = crate::template::expand(f, &vars).context("ldflags")?;
                }
                Ok((t.platform.clone(), v))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        let edits = edits(req, cfg, builders, &bin_dir)?;
        let default_base = req
            .base
            .clone()
            .or_else(|| cfg.base.clone())
            .unwrap_or_else(|| "static".into());
        let mut bases = BTreeMap::new();
        for t in &targets {
            let over = overrides.get(&t.platform).and_then(|o| o.base.clone());
            let spec = BaseSpec::parse(over.as_deref().unwrap_or(&default_base))?;
            bases.insert(t.platform.clone(), spec);
        }
        Ok(Plan {
            refs,
            targets,
            bases,
            epoch,
            vars,
            install: req.install,
            jobs: req
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            compression: crate::oci::Compression::choose(
                req.compression.as_deref(),
                req.compression_level,
                cfg.compression.as_deref(),
                cfg.compression_level,
            )?,
            // A lone Cargo project keeps cargo's target dir (a workspace's, too);
            // anything else writes under the project's own `target/`.
            target_dir: match builders {
                [one] => one.target_dir().map(Path::to_path_buf),
                _ => None,
            }
            .unwrap_or_else(|| req.project_dir.join("target")),
            overrides,
            edits,
            cli_env: req.env.clone(),
            annotations,
            files: cfg.files.clone().unwrap_or_default(),
            bin_dir,
            project_dir: req.project_dir.clone(),
            oci_layout: req.oci_layout.clone(),
            image_key: None,
        })
    }

    /// Tags in plan order.
    pub fn tags(&self) -> Vec<String> {
        self.refs.iter().map(|(_, t)| t.clone()).collect()
    }

    /// One compile job per platform, with its `[platform."…"]` settings.
    pub fn jobs(&self) -> Vec<Job> {
        self.targets
            .iter()
            .map(|t| {
                let o = self.overrides.get(&t.platform).cloned().unwrap_or_default();
                Job {
                    target: t,
                    env: vec![],
                    ldflags: o.ldflags.unwrap_or_default(),
                    toolchain: o.toolchain,
                    features: o.features.unwrap_or_default(),
                    rustflags: o.rustflags.unwrap_or_default(),
                }
            })
            .collect()
    }

    /// The config edits for one platform: the common ones plus its env overrides.
    pub fn edits_for(&self, platform: &Platform) -> ConfigEdits {
        let mut e = self.edits.clone();
        let platform_env = self
            .overrides
            .get(platform)
            .and_then(|o| o.env.clone())
            .unwrap_or_default();
        for (k, v) in platform_env.into_iter().chain(self.cli_env.iter().cloned()) {
            e.env.retain(|(ek, _)| *ek != k);
            e.env.push((k, v));
        }
        e
    }

    /// The layout to write: `--oci-layout` or `<target>/xarch/oci`, plus
    /// `/NAME` for each of several `[images.NAME]` (one layout per image, so
    /// their tags never collide).
    pub fn layout_dir(&self) -> PathBuf {
        let dir = self
            .oci_layout
            .clone()
            .unwrap_or_else(|| self.target_dir.join("xarch").join("oci"));
        match &self.image_key {
            Some(k) => dir.join(k),
            None => dir,
        }
    }

    /// The layer holding the binaries, at `bin_dir/<name>`, mode 0755.
    pub fn bin_layer(&self, bins: &[Artifact]) -> Result<LayerBuilder> {
        let mut b = LayerBuilder::new();
        for a in bins {
            b.file(
                &format!("{}/{}", self.bin_dir, a.name),
                a.path.clone(),
                0o755,
            )?;
        }
        Ok(b)
    }

    /// The layer holding `[[files]]` (shared by every platform), if any.
    pub fn files_layer(&self) -> Result<Option<LayerBuilder>> {
        if self.files.is_empty() {
            return Ok(None);
        }
        let mut b = LayerBuilder::new();
        for f in &self.files {
            add_files(&mut b, &self.project_dir, f)?;
        }
        Ok(Some(b))
    }
}

/// Adds a file, or a directory tree (sorted, symlinks followed), with fixed
/// permissions: `mode` when given, else 0755 for executables and 0644 otherwise.
fn add_files(b: &mut LayerBuilder, project: &Path, f: &FileEntry) -> Result<()> {
    let rel = Path::new(&f.src);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        bail!(
            "files: src `{}` must be a path inside the project directory",
            f.src
        );
    }
    let src = project.join(rel);
    if !src.exists() {
        bail!(
            "files: `{}` does not exist (looked for {})",
            f.src,
            src.display()
        );
    }
    for entry in walkdir::WalkDir::new(&src)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.with_context(|| format!("cannot read {}", src.display()))?;
        let rel = entry
            .path()
            .strip_prefix(&src)
            .expect("walk stays under src");
        let dest = if rel.as_os_str().is_empty() {
            f.dest.clone()
        } else {
            format!("{}/{}", f.dest.trim_end_matches('/'), rel.to_string_lossy())
        };
        if entry.file_type().is_dir() {
            b.dir(&dest, 0o755)?;
        } else {
            let mode = f
                .mode
                .map(|m| m.0)
                .unwrap_or_else(|| default_mode(entry.path()));
            b.file(&dest, entry.path().to_path_buf(), mode)?;
        }
    }
    Ok(())
}

fn default_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let exec = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o111 != 0);
    if exec.unwrap_or(false) { 0o755 } else { 0o644 }
}

/// Image references from `-t`, else the configuration's name and tags, with
/// `{{…}}` templates expanded (`{{version}}`, `{{git.short_sha}}`, `{{major}}` …).
fn refs(
    req: &BuildRequest,
    cfg: &ImageConfig,
    package: &str,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let expand = |t: &str| {
        let s = crate::template::expand(t, vars)?;
        if s.is_empty() || s.ends_with(':') {
            bail!("tag template `{t}` expands to an empty tag here");
        }
        Ok(s)
    };
    let mut out: Vec<(String, String)> = Vec::new();
    if req.tags.is_empty() {
        let name = expand(&cfg.name.clone().unwrap_or_else(|| package.to_string()))?;
        for t in cfg.tags.clone().unwrap_or_else(|| vec!["latest".into()]) {
            let t = expand(&t)?;
            check_tag(&t)?;
            if !out.iter().any(|(_, have)| *have == t) {
                out.push((name.clone(), t));
            }
        }
    }
    for r in &req.tags {
        let pair = split_tag(&expand(r)?)?;
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    Ok(out)
}

/// `registry:5000/team/app:1.0` → (`registry:5000/team/app`, `1.0`); no tag → latest.
pub fn split_tag(r: &str) -> Result<(String, String)> {
    if r.contains('@') {
        bail!("`{r}`: a digest cannot be a tag; use name[:tag]");
    }
    let (name, tag) = split_name_tag(r);
    let tag = tag.unwrap_or("latest");
    if name.is_empty() {
        bail!("`{r}` has no image name; use name[:tag]");
    }
    check_tag(tag)?;
    Ok((name.to_string(), tag.to_string()))
}

fn check_tag(t: &str) -> Result<()> {
    reference::check_tag(t).map_err(|e| anyhow::anyhow!("invalid tag: {e}"))
}

fn edits(
    req: &BuildRequest,
    cfg: &ImageConfig,
    builders: &[Builder],
    bin_dir: &str,
) -> Result<ConfigEdits> {
    let entrypoint = match &cfg.entrypoint {
        Some(e) => e.clone(),
        None => match main_bin(builders) {
            Some(b) => vec![format!("{bin_dir}/{b}")],
            None => {
                let all: Vec<String> = builders.iter().flat_map(Builder::bins).collect();
                bail!(
                    "the image holds several binaries ({}) and none is the default: set \
                     `entrypoint` in the xarch configuration (or `default-run` in Cargo.toml)",
                    all.join(", ")
                )
            }
        },
    };
    let env: Vec<(String, String)> = cfg.env.clone().unwrap_or_default().into_iter().collect();
    let mut labels = cfg.labels.clone().unwrap_or_default();
    labels.extend(req.labels.iter().cloned());
    Ok(ConfigEdits {
        entrypoint: Some(entrypoint),
        cmd: cfg.cmd.clone(),
        env,
        workdir: cfg.workdir.clone(),
        user: req.user.clone().or_else(|| cfg.user.clone()),
        labels,
        ports: cfg.ports.iter().flatten().map(|p| p.0.clone()).collect(),
    })
}

/// The only binary, or a single build's default one.
fn main_bin(builders: &[Builder]) -> Option<String> {
    match builders {
        [one] => one.main_bin(),
        many => {
            let all: Vec<String> = many.iter().flat_map(Builder::bins).collect();
            (all.len() == 1).then(|| all[0].clone())
        }
    }
}

fn template_vars(
    version: Option<&str>,
    git: &super::git::GitInfo,
    created: &str,
) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let version = version.unwrap_or("0.0.0");
    v.insert("version".into(), version.to_string());
    // Semver parts, as docker/metadata-action's `{{major}}.{{minor}}`.
    let core = version.trim_start_matches('v');
    let core = core.split(['-', '+']).next().unwrap_or(core);
    let mut parts = core.split('.');
    for key in ["major", "minor", "patch"] {
        v.insert(key.into(), parts.next().unwrap_or("0").to_string());
    }
    let sha = git.revision.clone().unwrap_or_default();
    v.insert("git.short_sha".into(), sha.chars().take(7).collect());
    v.insert("git.sha".into(), sha);
    v.insert("git.branch".into(), tag_safe(git.branch.as_deref()));
    v.insert("git.tag".into(), tag_safe(git.tag.as_deref()));
    v.insert("date".into(), created.to_string());
    v
}

/// A branch or git tag usable in an image tag: `feature/x` → `feature-x`.
fn tag_safe(s: Option<&str>) -> String {
    s.unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The project directory: the given one, the manifest's parent, or the nearest
/// ancestor of the working directory holding a Cargo.toml, xarch.toml or go.mod.
pub fn project_dir(path: Option<&Path>, manifest: Option<&Path>) -> Result<PathBuf> {
    if let Some(m) = manifest {
        let parent = m.parent().filter(|p| !p.as_os_str().is_empty());
        return Ok(parent.map(Path::to_path_buf).unwrap_or_else(|| ".".into()));
    }
    if let Some(p) = path {
        if !p.is_dir() {
            bail!("{} is not a directory", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir()?;
    let markers = ["xarch.toml", "Cargo.toml", "go.mod"];
    cwd.ancestors()
        .find(|d| markers.iter().any(|m| d.join(m).is_file()))
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no xarch.toml, Cargo.toml or go.mod in {} or any parent; pass the project directory",
                cwd.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_values_from_version_and_git() {
        let git = super::super::git::GitInfo {
            revision: Some("0123456789abcdef".into()),
            branch: Some("feature/arm".into()),
            tag: Some("v1.4.2".into()),
            ..Default::default()
        };
        let v = template_vars(Some("1.4.2-rc.1"), &git, "2026-01-01T00:00:00Z");
        let e = |t: &str| crate::template::expand(t, &v).unwrap();
        assert_eq!(e("{{major}}.{{minor}}"), "1.4");
        assert_eq!(e("{{version}}-{{git.short_sha}}"), "1.4.2-rc.1-0123456");
        assert_eq!(e("{{git.branch}}"), "feature-arm");
        assert_eq!(e("{{git.tag}}"), "v1.4.2");
        assert_eq!(e("{{patch}}"), "2");
    }

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(
            split_tag("hello:1.0").unwrap(),
            ("hello".into(), "1.0".into())
        );
        assert_eq!(
            split_tag("hello").unwrap(),
            ("hello".into(), "latest".into())
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/team/app").unwrap(),
            ("127.0.0.1:5000/team/app".into(), "latest".into())
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/team/app:v2").unwrap(),
            ("127.0.0.1:5000/team/app".into(), "v2".into())
        );
        assert!(split_tag("app:bad tag").is_err());
        assert!(split_tag("app@sha256:00").is_err());
    }
}
