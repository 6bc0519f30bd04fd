//! Toolchains: how each language compiles for a target. The recipes (how to
//! find, probe and install each tool) live in `toolchains/` as data.

pub mod c;
pub mod cc;
pub mod doctor;
pub mod go;
pub mod recipe;
pub mod rust;
pub mod versions;

use std::path::PathBuf;

/// A built binary for one target.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: String,
    pub path: PathBuf,
}

use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use crate::targets::Target;

/// One platform's compile, with its per-platform settings.
#[derive(Debug, Clone)]
pub struct Job {
    pub target: &'static Target,
    /// Extra environment for the compiler (`[platform."…"] env` is for the image;
    /// this is `build-env`).
    pub env: Vec<(String, String)>,
    pub ldflags: Vec<String>,
    /// A toolchain recipe name chosen for this platform (`zig`, `gcc`).
    pub toolchain: Option<String>,
    /// Rust: extra features and rustflags for this platform.
    pub features: Vec<String>,
    pub rustflags: Vec<String>,
}

/// Runs `f` over `items` on at most `jobs` threads, keeping every result (one
/// failed platform does not hide the others).
pub fn parallel<I: Sync, T: Send>(
    jobs: usize,
    items: &[I],
    f: impl Fn(&I) -> Result<T> + Sync,
) -> Vec<Result<T>> {
    let next = Mutex::new(0usize);
    let results: Vec<Mutex<Option<Result<T>>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().expect("queue");
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(item) = items.get(i) else { break };
                    *results[i].lock().expect("slot") = Some(f(item));
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().expect("slot").expect("every item ran"))
        .collect()
}

/// Runs a compiler command, capturing its output; on failure the error carries
/// the command's last lines so the user sees why that platform failed.
pub fn run_captured(mut cmd: Command, what: &str) -> Result<()> {
    let program = cmd.get_program().to_string_lossy().to_string();
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("{what}: cannot run {program}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n    ");
    bail!("{what} failed ({}):\n    {tail}", out.status)
}

/// Collects per-platform results: all artifacts, or one error listing every
/// failed platform (with its output) and the ones that did build.
pub fn collect<T>(
    lang: &str,
    jobs: &[Job],
    results: Vec<Result<T>>,
) -> Result<Vec<(&'static Target, T)>> {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (job, r) in jobs.iter().zip(results) {
        match r {
            Ok(v) => ok.push((job.target, v)),
            Err(e) => failed.push(format!("{}: {e:#}", job.target.platform)),
        }
    }
    if failed.is_empty() {
        return Ok(ok);
    }
    let built: Vec<String> = ok.iter().map(|(t, _)| t.platform.to_string()).collect();
    bail!(
        "{lang} build failed for {} of {} platforms{}\n{}",
        failed.len(),
        jobs.len(),
        if built.is_empty() {
            String::new()
        } else {
            format!(" (built, kept for the next run: {})", built.join(", "))
        },
        failed.join("\n")
    )
}
