//! `RustProject`: a Cargo package, its binaries, and one `cargo build` with a
//! `--target` per platform. Two routes:
//! - prebuilt std (rustup serves it): musl targets link with rustc's bundled
//!   `rust-lld`, so no C cross toolchain is needed for static binaries;
//! - std from source (rustup has none for the target): `-Zbuild-std` with the
//!   `rust-src` component, linked by `zig cc` against zig's musl.
//!
//! Crates that compile C (`cc`, `*-sys`) get zig as `CC_<triple>`/`AR_<triple>`.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use cargo_metadata::{Message, Metadata, MetadataCommand, Package, TargetKind};

use super::cc::{CcSet, Libc};
use crate::targets::Target;
use crate::ui;

/// What to build from a Cargo project.
#[derive(Debug, Clone, Default)]
pub struct RustOptions {
    pub package: Option<String>,
    pub bins: Vec<String>,
    pub features: Vec<String>,
    pub all_features: bool,
    pub no_default_features: bool,
    /// Cargo profile (default `release`).
    pub profile: String,
    pub rustflags: Vec<String>,
    /// Install missing rustup targets (false: `--no-install`).
    pub install: bool,
    pub jobs: Option<usize>,
    /// musl (static, default) or glibc (the `rust_gnu` triple, linked by zig
    /// against the given glibc version).
    pub libc: Libc,
}

/// The Rust triple a platform builds with: `rust` for musl, `rust_gnu` for glibc.
pub fn triple<'a>(t: &'a Target, libc: &Libc) -> &'a str {
    match libc {
        Libc::Musl => &t.rust,
        Libc::Glibc(_) => &t.rust_gnu,
    }
}

/// Extra settings for one target (from `[platform."…"]`).
#[derive(Debug, Clone, Default)]
pub struct TargetSettings {
    pub features: Vec<String>,
    pub rustflags: Vec<String>,
}

pub struct RustProject {
    pub metadata: Metadata,
    pub package: Package,
    pub bins: Vec<String>,
}

pub use super::Artifact;

/// How a triple's std is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// rustup's prebuilt std.
    Prebuilt,
    /// std built from `rust-src` (`-Zbuild-std`), linked with zig.
    BuildStd,
}

impl RustProject {
    /// Reads the project through `cargo metadata` and picks the package and bins.
    pub fn open(manifest: &Path, opts: &RustOptions) -> Result<RustProject> {
        let metadata = MetadataCommand::new()
            .cargo_path(cargo())
            .manifest_path(manifest)
            .no_deps()
            .exec()
            .with_context(|| format!("cargo metadata failed for {}", manifest.display()))?;
        // cargo reports absolute manifest paths; compare like with like.
        let manifest = &std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_path_buf());
        let package = pick_package(&metadata, manifest, opts.package.as_deref())?.clone();
        let all_bins: Vec<String> = package
            .targets
            .iter()
            .filter(|t| t.kind.contains(&TargetKind::Bin))
            .map(|t| t.name.clone())
            .collect();
        let bins = if opts.bins.is_empty() {
            all_bins.clone()
        } else {
            for b in &opts.bins {
                if !all_bins.contains(b) {
                    bail!(
                        "package `{}` has no binary `{b}`; its binaries: {}",
                        package.name,
                        all_bins.join(", ")
                    );
                }
            }
            opts.bins.clone()
        };
        if bins.is_empty() {
            bail!(
                "package `{}` has no binary targets to put in an image",
                package.name
            );
        }
        Ok(RustProject {
            metadata,
            package,
            bins,
        })
    }

    pub fn target_dir(&self) -> &Path {
        self.metadata.target_directory.as_std_path()
    }

    /// The binary an image runs by default: `default-run`, else the one named like
    /// the package, else the only one.
    pub fn main_bin(&self) -> Option<&str> {
        let pick = |n: &str| {
            self.bins
                .iter()
                .find(|b| b.as_str() == n)
                .map(String::as_str)
        };
        self.package
            .default_run
            .as_deref()
            .and_then(pick)
            .or_else(|| pick(self.package.name.as_str()))
            .or_else(|| (self.bins.len() == 1).then(|| self.bins[0].as_str()))
    }

    /// Builds every bin for every target; targets sharing features and route go
    /// into one `cargo build` invocation. Returns artifacts keyed by Rust triple.
    /// `tools` is where zig wrapper scripts are written.
    pub fn build(
        &self,
        targets: &[(&Target, TargetSettings)],
        opts: &RustOptions,
        tools: &Path,
    ) -> Result<BTreeMap<String, Vec<Artifact>>> {
        let routes = self.routes(targets.iter().map(|t| t.0), opts, tools)?;
        // zig as the C compiler whenever it is there, not only when Cargo.lock
        // names `cc`: a project without a lock file may still compile C.
        let needs_c = self.compiles_c() || zig_available(targets.first().map(|t| t.0));
        let libc = &opts.libc;
        // One cargo invocation per (features, route).
        type Group<'t> = Vec<&'t (&'t Target, TargetSettings)>;
        let mut groups: BTreeMap<(Vec<String>, Route), Group> = BTreeMap::new();
        for t in targets {
            let mut f = opts.features.clone();
            f.extend(t.1.features.iter().cloned());
            let route = routes[triple(t.0, libc)];
            groups.entry((f, route)).or_default().push(t);
        }
        let mut out = BTreeMap::new();
        for ((features, route), group) in groups {
            let mut cmd = self.cargo_build(&group, &features, opts, route)?;
            // zig links wherever rust-lld cannot: std from source, glibc.
            let zig_links = route == Route::BuildStd || *libc != Libc::Musl;
            for (t, _) in &group {
                if zig_links || needs_c {
                    zig_env(&mut cmd, t, libc, zig_links, tools)?;
                }
            }
            let triples: Vec<&str> = group.iter().map(|t| triple(t.0, libc)).collect();
            out.extend(run_cargo(cmd, &triples)?);
        }
        Ok(out)
    }

    /// The route for each triple, checked (and installed when allowed) before
    /// anything compiles.
    pub fn routes<'a>(
        &self,
        targets: impl Iterator<Item = &'a Target>,
        opts: &RustOptions,
        tools: &Path,
    ) -> Result<BTreeMap<String, Route>> {
        let mut out = BTreeMap::new();
        for t in targets {
            let triple = triple(t, &opts.libc);
            let route = ensure_target(triple, opts.install, self.dir(), tools)?;
            let why = if route == Route::BuildStd {
                Some("std built from source")
            } else if opts.libc != Libc::Musl {
                Some("glibc")
            } else if self.compiles_c() {
                Some("a dependency compiles C")
            } else {
                None
            };
            if let Some(why) = why {
                super::cc::find("zig", t)?.1.map_err(|m| {
                    anyhow::anyhow!(
                        "{}: Rust for {triple} ({why}) needs zig as its C compiler and linker: {m}",
                        t.platform,
                    )
                })?;
            }
            out.insert(triple.to_string(), route);
        }
        Ok(out)
    }

    /// True when a dependency compiles C through the `cc` crate (read from
    /// Cargo.lock; no lock file: false).
    pub fn compiles_c(&self) -> bool {
        let lock = self.metadata.workspace_root.join("Cargo.lock");
        std::fs::read_to_string(lock)
            .map(|t| t.lines().any(|l| l.trim() == "name = \"cc\""))
            .unwrap_or(false)
    }

    fn dir(&self) -> &Path {
        self.package
            .manifest_path
            .parent()
            .expect("manifest has a parent")
            .as_std_path()
    }

    fn cargo_build(
        &self,
        group: &[&(&Target, TargetSettings)],
        features: &[String],
        opts: &RustOptions,
        route: Route,
    ) -> Result<Command> {
        let mut cmd = Command::new(cargo());
        cmd.current_dir(self.dir())
            .arg("build")
            .arg("--manifest-path")
            .arg(self.package.manifest_path.as_std_path())
            .args(["--package", self.package.name.as_str()])
            .args(["--profile", &opts.profile])
            .arg("--message-format=json-render-diagnostics");
        for b in &self.bins {
            cmd.args(["--bin", b]);
        }
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
        if opts.all_features {
            cmd.arg("--all-features");
        }
        if opts.no_default_features {
            cmd.arg("--no-default-features");
        }
        if ui::is_quiet() {
            cmd.arg("--quiet");
        }
        if let Some(j) = opts.jobs {
            cmd.args(["--jobs", &j.to_string()]);
        }
        if route == Route::BuildStd {
            // -Zbuild-std is unstable; RUSTC_BOOTSTRAP lets a stable toolchain
            // use it, as cargo-zigbuild and cross do.
            cmd.env("RUSTC_BOOTSTRAP", "1")
                .arg("-Zbuild-std=std,panic_abort");
        }
        let remap = self.remap_flags();
        if std::env::var_os("RUSTFLAGS").is_some()
            || std::env::var_os("CARGO_ENCODED_RUSTFLAGS").is_some()
        {
            ui::warn(
                "RUSTFLAGS is set: cargo then ignores xarch's --remap-path-prefix flags, so binaries may embed build paths",
            );
        }
        for (target, settings) in group {
            let triple = triple(target, &opts.libc);
            cmd.args(["--target", triple]);
            // Per-target rustflags win over build.rustflags in cargo, so the remap
            // flags go into every target's list (a user's own list is merged).
            let mut flags = remap.clone();
            if route == Route::BuildStd {
                // zig brings musl's crt objects and libc; rustc's are not there.
                flags.push("-Clink-self-contained=no".into());
            }
            flags.extend(opts.rustflags.iter().cloned());
            flags.extend(settings.rustflags.iter().cloned());
            let key = format!("target.{triple}.rustflags");
            cmd.args(["--config", &config_array(&key, &flags)]);
            if triple.contains("-musl") && route == Route::Prebuilt {
                let var = format!("CARGO_TARGET_{}_LINKER", env_name(triple));
                if std::env::var_os(&var).is_none() {
                    cmd.env(var, "rust-lld");
                }
            }
        }
        let triples: Vec<&str> = group.iter().map(|t| triple(t.0, &opts.libc)).collect();
        let how = match route {
            Route::Prebuilt => "",
            Route::BuildStd => " (std from source, linked by zig)",
        };
        ui::status(
            "Compiling",
            &format!("{} for {}{how}", self.package.name, triples.join(", ")),
        );
        Ok(cmd)
    }

    /// `--remap-path-prefix` for the workspace and cargo home, so binaries do not
    /// depend on where the checkout or the registry cache lives.
    fn remap_flags(&self) -> Vec<String> {
        let mut flags = vec![format!(
            "--remap-path-prefix={}=/build",
            self.metadata.workspace_root
        )];
        if let Some(home) = cargo_home() {
            flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
        }
        flags
    }
}

fn pick_package<'a>(
    meta: &'a Metadata,
    manifest: &Path,
    name: Option<&str>,
) -> Result<&'a Package> {
    let members = meta.workspace_packages();
    if let Some(name) = name {
        return members
            .into_iter()
            .find(|p| p.name.as_str() == name)
            .with_context(|| {
                let names: Vec<&str> = meta
                    .workspace_packages()
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                format!(
                    "no package `{name}` in the workspace; packages: {}",
                    names.join(", ")
                )
            });
    }
    if let Some(p) = members
        .iter()
        .find(|p| p.manifest_path.as_std_path() == manifest)
    {
        return Ok(p);
    }
    let with_bins: Vec<&Package> = members
        .into_iter()
        .filter(|p| p.targets.iter().any(|t| t.kind.contains(&TargetKind::Bin)))
        .collect();
    match with_bins.as_slice() {
        [one] => Ok(one),
        [] => bail!("no package with a binary in {}", manifest.display()),
        many => {
            let names: Vec<&str> = many.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "{} is a workspace with several binary packages; choose one with --package ({})",
                manifest.display(),
                names.join(", ")
            )
        }
    }
}

fn run_cargo(mut cmd: Command, triples: &[&str]) -> Result<BTreeMap<String, Vec<Artifact>>> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {}", cargo().display()))?;
    let stdout = child.stdout.take().expect("piped");
    let mut out: BTreeMap<String, Vec<Artifact>> = BTreeMap::new();
    for msg in Message::parse_stream(BufReader::new(stdout)) {
        let Message::CompilerArtifact(a) = msg? else {
            continue;
        };
        let Some(exe) = a.executable else { continue };
        if !a.target.kind.contains(&TargetKind::Bin) {
            continue;
        }
        // Artifacts live under <target-dir>/<triple>/<profile>/: the triple is a
        // path component.
        let triple = triples
            .iter()
            .find(|t| exe.components().any(|c| c.as_str() == **t))
            .with_context(|| format!("cannot tell which target built {exe}"))?;
        out.entry(triple.to_string()).or_default().push(Artifact {
            name: a.target.name.clone(),
            path: exe.into_std_path_buf(),
        });
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "cargo build failed for {} (see the errors above)",
            triples.join(", ")
        );
    }
    Ok(out)
}

fn zig_available(t: Option<&Target>) -> bool {
    t.is_some_and(|t| super::cc::find("zig", t).is_ok_and(|(_, f)| f.is_ok()))
}

/// zig as the C compiler (`CC_<triple>` …) for crates that compile C and, when
/// `link` (std from source, glibc), as the linker.
fn zig_env(cmd: &mut Command, t: &Target, libc: &Libc, link: bool, tools: &Path) -> Result<()> {
    let cc = CcSet::prepare("zig", t, libc, tools)?;
    let triple = triple(t, libc);
    let suffix = triple.replace('-', "_");
    for (k, v) in [
        ("CC", &cc.cc),
        ("CXX", &cc.cxx),
        ("AR", &cc.ar),
        ("RANLIB", &cc.ranlib),
    ] {
        let var = format!("{k}_{suffix}");
        if std::env::var_os(&var).is_none() {
            cmd.env(var, v);
        }
    }
    if link {
        let var = format!("CARGO_TARGET_{}_LINKER", env_name(triple));
        if std::env::var_os(&var).is_none() {
            cmd.env(var, &cc.cc);
        }
    }
    Ok(())
}

/// Makes sure rustc has a std for `triple`: the prebuilt one (installed through
/// rustup when allowed), else std from source. Runs in the project directory so
/// its rust-toolchain file applies. "rustup has no std for this triple" is
/// remembered under `tools`, so later builds do not ask again.
pub fn ensure_target(triple: &str, install: bool, dir: &Path, tools: &Path) -> Result<Route> {
    let sysroot = sysroot(dir)?;
    if sysroot
        .join("lib/rustlib")
        .join(triple)
        .join("lib")
        .is_dir()
    {
        return Ok(Route::Prebuilt);
    }
    let marker = tools
        .join("rustup-no-std")
        .join(sysroot_key(&sysroot))
        .join(triple);
    if !marker.exists() {
        let fix = format!("rustup target add {triple}");
        if !install {
            bail!(
                "the Rust standard library for {triple} is not installed (--no-install given); install it with: {fix}\n  \
                 (where rustup has none for it, xarch builds std from source instead, which needs: rustup component add rust-src, pip install ziglang)"
            );
        }
        ui::status("Installing", &format!("rust-std for {triple} ({fix})"));
        let out = Command::new("rustup")
            .args(["target", "add", triple])
            .current_dir(dir)
            .env("RUST_BACKTRACE", "0")
            .output()
            .with_context(|| format!("cannot run rustup; install {triple}'s std with: {fix}"))?;
        if out.status.success() {
            return Ok(Route::Prebuilt);
        }
        let reason = rustup_reason(&String::from_utf8_lossy(&out.stderr));
        // Only rustup's definite "none for this target" is remembered; a
        // network or disk error must not switch routes for good.
        if !reason.is_for_good() {
            bail!("rustup target add {triple} failed: {reason}");
        }
        ui::status(
            "Note",
            &format!(
                "rustup has no prebuilt std for {triple} ({reason}); building std from source"
            ),
        );
        std::fs::create_dir_all(marker.parent().expect("marker has a parent"))?;
        std::fs::write(&marker, reason.to_string())?;
    }
    ensure_rust_src(&sysroot, install, dir)?;
    Ok(Route::BuildStd)
}

/// rustc has a std for `triple` (prebuilt, from rustup).
pub fn has_std(sysroot: &Path, triple: &str) -> bool {
    sysroot
        .join("lib/rustlib")
        .join(triple)
        .join("lib")
        .is_dir()
}

pub fn has_rust_src(sysroot: &Path) -> bool {
    sysroot.join("lib/rustlib/src/rust/library").is_dir()
}

/// An earlier `rustup target add` found no prebuilt std for `triple`.
pub fn no_prebuilt_std(sysroot: &Path, triple: &str, tools: &Path) -> bool {
    no_std_marker(sysroot, triple, tools).exists()
}

fn no_std_marker(sysroot: &Path, triple: &str, tools: &Path) -> PathBuf {
    tools
        .join("rustup-no-std")
        .join(sysroot_key(sysroot))
        .join(triple)
}

fn ensure_rust_src(sysroot: &Path, install: bool, dir: &Path) -> Result<()> {
    if has_rust_src(sysroot) {
        return Ok(());
    }
    let fix = "rustup component add rust-src";
    if !install {
        bail!(
            "building std from source needs the rust-src component (--no-install given); install it with: {fix}"
        );
    }
    ui::status("Installing", &format!("rust-src ({fix})"));
    let out = Command::new("rustup")
        .args(["component", "add", "rust-src"])
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .with_context(|| format!("cannot run rustup; install with: {fix}"))?;
    if !out.status.success() {
        bail!(
            "{fix} failed: {}",
            rustup_reason(&String::from_utf8_lossy(&out.stderr))
        );
    }
    Ok(())
}

/// One directory per toolchain, so a new rustc asks rustup again.
fn sysroot_key(sysroot: &Path) -> String {
    let name = sysroot
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "default".into());
    // rustc's mtime changes when the toolchain is updated in place.
    let stamp = std::fs::metadata(sysroot.join("bin/rustc"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    format!("{name}-{stamp}")
}

/// Why rustup failed, from its stderr (rustup says it only in words).
#[derive(Debug, PartialEq, Eq)]
enum RustupReason {
    /// The download server has no std for the target: HTTP 404.
    NoneOnServer,
    /// rustup knows the target has no prebuilt artifacts (tier 3).
    Tier3,
    /// Anything else (network, disk): its own words.
    Other(String),
}

impl RustupReason {
    /// Whether rustup will never have a std for the target (remembered), as
    /// opposed to a failure that may pass (never remembered).
    fn is_for_good(&self) -> bool {
        !matches!(self, RustupReason::Other(_))
    }
}

impl std::fmt::Display for RustupReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RustupReason::NoneOnServer => f.write_str("its server has none: HTTP 404"),
            RustupReason::Tier3 => f.write_str("no prebuilt artifacts: a tier-3 target"),
            RustupReason::Other(text) => f.write_str(text),
        }
    }
}

/// The line of rustup's output that says why, without its backtrace.
fn rustup_reason(stderr: &str) -> RustupReason {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Stack backtrace"))
        .filter(|l| {
            l.starts_with("error:") || l.contains("status code") || l.contains("unavailable")
        })
        .collect();
    let text = match lines.as_slice() {
        [] => return RustupReason::Other("rustup target add failed".to_string()),
        l => l.join("; ").replace("error: ", ""),
    };
    // The common answers, without rustup's download URLs and temp paths.
    if text.contains("status code: 404") {
        RustupReason::NoneOnServer
    } else if text.contains("no prebuilt artifacts") {
        RustupReason::Tier3
    } else {
        RustupReason::Other(text)
    }
}

pub fn sysroot(dir: &Path) -> Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .context("cannot run rustc; install Rust with rustup (https://rustup.rs)")?;
    if !out.status.success() {
        bail!(
            "rustc --print sysroot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The cargo to run: `$CARGO` (set when running as `cargo xarch`), else `cargo`.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| "cargo".into())
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// `aarch64-unknown-linux-musl` → `AARCH64_UNKNOWN_LINUX_MUSL`.
pub fn env_name(triple: &str) -> String {
    triple.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// A `--config` argument setting `key` to a TOML array of strings.
fn config_array(key: &str, values: &[String]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| toml::Value::String(v.clone()).to_string())
        .collect();
    format!("{key}=[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert_eq!(
            env_name("armv7-unknown-linux-musleabihf"),
            "ARMV7_UNKNOWN_LINUX_MUSLEABIHF"
        );
    }

    #[test]
    fn rustup_reasons_are_short() {
        let e404 = "error: component download failed for rust-std-armv7-unknown-linux-musleabihf: could not download file from 'https://static.rust-lang.org/x.tar.xz' to '/root/.rustup/downloads/y.partial': http request returned an unsuccessful status code: 404\nStack backtrace:\n 0: x";
        assert_eq!(rustup_reason(e404), RustupReason::NoneOnServer);
        assert_eq!(
            rustup_reason(e404).to_string(),
            "its server has none: HTTP 404"
        );
        let tier3 = "error: toolchain 'stable' has no prebuilt artifacts available for target 's390x-unknown-linux-musl'";
        assert_eq!(
            rustup_reason(tier3).to_string(),
            "no prebuilt artifacts: a tier-3 target"
        );
        let other = rustup_reason("error: disk full");
        assert_eq!(other, RustupReason::Other("disk full".into()));
        assert!(!other.is_for_good() && rustup_reason(tier3).is_for_good());
    }

    #[test]
    fn config_array_quotes() {
        let s = config_array(
            "build.rustflags",
            &["--remap-path-prefix=/a b=/build".into()],
        );
        assert_eq!(s, r#"build.rustflags=["--remap-path-prefix=/a b=/build"]"#);
    }
}
