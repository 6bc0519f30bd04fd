//! Layer writer benchmark: `cargo bench --bench layer`.
//!
//! Builds a 256 MiB input file with mixed content (half incompressible xorshift
//! bytes, a quarter log-like text, a quarter table-like binary), then, three times
//! each and interleaved, measures:
//!
//! * xarch: `LayerBuilder::write` (tar → sha256 → gzip -6 → sha256 → blob store,
//!   including the blob's fsync and rename), run in a child process — this binary
//!   re-executed with `XARCH_BENCH_LAYER_CHILD` set — so its peak RSS is its own;
//! * the peer: `tar -cf - -C DIR big.bin | gzip -6 | sha256sum` under `bash -c`
//!   with `set -o pipefail` (writes nothing to disk).
//!
//! Wall time is taken from spawn to reap; CPU time (user + system) and peak RSS
//! come from `wait4`'s rusage, which on Linux covers the child and every
//! descendant it reaped: for the pipeline, CPU is the sum over bash, tar, gzip
//! and sha256sum, and peak RSS the largest of them. CPU time is the figure to
//! trust when other work shares the machine.
//!
//! Exits non-zero when the layer writer's peak RSS reaches 64 MiB: memory must
//! stay flat whatever the layer size.

use std::env;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xarch::oci::{BlobStore, LayerBuilder, LayerOptions, media};

const MIB: u64 = 1 << 20;
const INPUT_SIZE: u64 = 256 * MIB;
const RUNS: usize = 3;
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// Set in the re-executed child: `<input file>\n<store dir>`.
const CHILD_ENV: &str = "XARCH_BENCH_LAYER_CHILD";
const INPUT_NAME: &str = "big.bin";

fn main() -> ExitCode {
    let result = match env::var(CHILD_ENV) {
        Ok(spec) => child(&spec).map(|()| ExitCode::SUCCESS),
        Err(_) => parent(),
    };
    result.unwrap_or_else(|e| {
        eprintln!("layer bench: error: {e:#}");
        ExitCode::from(2)
    })
}

// ---------------------------------------------------------------- child side

/// Writes one layer and reports its facts on stdout, one `key value` a line.
fn child(spec: &str) -> Result<()> {
    let (src, store_dir) = spec
        .split_once('\n')
        .with_context(|| format!("bad {CHILD_ENV}"))?;
    let store = BlobStore::open(Path::new(store_dir))?;
    let mut b = LayerBuilder::new();
    b.file("data/big.bin", PathBuf::from(src), 0o644)?;
    let start = Instant::now();
    let layer = b.write(
        LayerOptions { mtime: 0, level: 6 },
        media::OCI_LAYER_GZIP,
        &store,
    )?;
    let secs = start.elapsed().as_secs_f64();
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!("digest {}", layer.digest);
    println!("diff_id {}", layer.diff_id);
    println!("size {}", layer.size);
    println!("write_secs {secs:.3}");
    println!("vmhwm_kib {hwm}");
    Ok(())
}

// --------------------------------------------------------------- parent side

/// One finished process: wall time, CPU time (user + system, its reaped
/// descendants included), peak RSS (KiB) and what it printed.
struct Run {
    wall: Duration,
    cpu: Duration,
    maxrss_kib: u64,
    stdout: String,
}

/// Spawns `cmd`, reads its stdout to the end and reaps it with `wait4`.
fn measure(cmd: &mut Command) -> Result<Run> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .context("no stdout pipe")?
        .read_to_string(&mut stdout)?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: plain FFI call with valid out-pointers; `rusage` is POD.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed();
    // `child` was reaped above; dropping it neither waits nor kills.
    drop(child);
    if reaped != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{cmd:?} failed (wait status {status:#x}); it printed:\n{stdout}");
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Run {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        // Linux reports ru_maxrss in KiB.
        maxrss_kib: ru.ru_maxrss as u64,
        stdout,
    })
}

fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mib_of_kib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn parent() -> Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join(INPUT_NAME);
    let t = Instant::now();
    generate(&input, INPUT_SIZE)?;
    println!(
        "input: {} ({} MiB, mixed content) generated in {:.1}s",
        input.display(),
        INPUT_SIZE / MIB,
        t.elapsed().as_secs_f64()
    );
    print_machine();

    let exe = env::current_exe()?;
    let peer_script = format!(
        "set -o pipefail; tar -cf - -C '{}' {INPUT_NAME} | gzip -6 | sha256sum",
        tmp.path().display()
    );

    let mut xarch_runs = Vec::new();
    let mut peer_runs = Vec::new();
    let mut layer_facts: Option<(String, String, u64)> = None;
    for i in 1..=RUNS {
        let store = tmp.path().join(format!("store-{i}"));
        let run = measure(
            Command::new(&exe)
                .env(
                    CHILD_ENV,
                    format!("{}\n{}", input.display(), store.display()),
                )
                .stdin(Stdio::null()),
        )?;
        fs::remove_dir_all(&store)?; // keep the disk footprint to one blob
        let digest = field(&run.stdout, "digest").unwrap_or("?").to_string();
        let diff_id = field(&run.stdout, "diff_id").unwrap_or("?").to_string();
        let size: u64 = field(&run.stdout, "size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        println!(
            "run {i} xarch: {:6.2}s wall, {:6.2}s CPU, layer write {}s, peak RSS {:.1} MiB (VmHWM {:.1} MiB)",
            run.wall.as_secs_f64(),
            run.cpu.as_secs_f64(),
            field(&run.stdout, "write_secs").unwrap_or("?"),
            mib_of_kib(run.maxrss_kib),
            mib_of_kib(
                field(&run.stdout, "vmhwm_kib")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0)
            ),
        );
        match &layer_facts {
            None => layer_facts = Some((digest, diff_id, size)),
            Some((d, _, _)) if *d != digest => {
                bail!("layer digest changed between runs: {d} then {digest}")
            }
            Some(_) => {}
        }
        xarch_runs.push(run);

        let run = measure(
            Command::new("bash")
                .arg("-c")
                .arg(&peer_script)
                .stdin(Stdio::null()),
        )?;
        println!(
            "run {i} peer:  {:6.2}s wall, {:6.2}s CPU, peak RSS {:.1} MiB, sha256 of gzip stream {}",
            run.wall.as_secs_f64(),
            run.cpu.as_secs_f64(),
            mib_of_kib(run.maxrss_kib),
            run.stdout.split_whitespace().next().unwrap_or("?"),
        );
        peer_runs.push(run);
    }

    let (digest, diff_id, size) = layer_facts.context("no runs")?;
    println!();
    println!("layer digest:  {digest}");
    println!("layer diff_id: {diff_id}");
    println!(
        "layer size:    {size} bytes ({:.1}% of the input)",
        size as f64 * 100.0 / INPUT_SIZE as f64
    );
    print_stage_rss(tmp.path());

    let secs = |runs: &[Run]| median(runs.iter().map(|r| r.wall.as_secs_f64()).collect());
    let cpu = |runs: &[Run]| median(runs.iter().map(|r| r.cpu.as_secs_f64()).collect());
    let peak = |runs: &[Run]| runs.iter().map(|r| r.maxrss_kib).max().unwrap_or(0);
    let (xs, ps) = (secs(&xarch_runs), secs(&peer_runs));
    let (xr, pr) = (peak(&xarch_runs), peak(&peer_runs));
    let mib = (INPUT_SIZE / MIB) as f64;
    println!();
    println!(
        "| {RUNS} runs each, {} MiB input | median wall | MiB/s | median CPU | peak RSS |",
        INPUT_SIZE / MIB
    );
    println!("|---|---|---|---|---|");
    println!(
        "| xarch LayerBuilder::write (gzip -6, zlib-rs) | {xs:.2} s | {:.0} | {:.2} s | {:.1} MiB |",
        mib / xs,
        cpu(&xarch_runs),
        mib_of_kib(xr)
    );
    println!(
        "| tar \\| gzip -6 \\| sha256sum | {ps:.2} s | {:.0} | {:.2} s | {:.1} MiB |",
        mib / ps,
        cpu(&peer_runs),
        mib_of_kib(pr)
    );
    println!();
    println!(
        "ratio xarch/peer (median wall): {:.2} ({})",
        xs / ps,
        if xs < ps {
            "xarch is faster"
        } else {
            "xarch is slower"
        }
    );

    if xr >= RSS_LIMIT_KIB {
        eprintln!(
            "FAIL: the layer writer's peak RSS was {:.1} MiB, at or above the {} MiB limit: \
             memory must stay flat whatever the layer size",
            mib_of_kib(xr),
            RSS_LIMIT_KIB / 1024
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "ok: layer writer peak RSS {:.1} MiB < {} MiB",
        mib_of_kib(xr),
        RSS_LIMIT_KIB / 1024
    );
    Ok(ExitCode::SUCCESS)
}

fn print_machine() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("machine: nproc {cpus}, CPU {model}");
    for tool in ["tar", "gzip"] {
        if let Ok(out) = Command::new(tool).arg("--version").output() {
            let text = String::from_utf8_lossy(&out.stdout);
            println!("peer: {}", text.lines().next().unwrap_or(tool));
        }
    }
}

/// Once, outside the timed runs: which pipeline process is the largest, via
/// `/usr/bin/time -f %M` on each stage (skipped when GNU time is absent).
fn print_stage_rss(dir: &Path) {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return;
    }
    let log = dir.join("stage-rss.log");
    let script = format!(
        "set -o pipefail; T='{t} -a -o {log} -f'; \
         $T 'tar %M' tar -cf - -C '{d}' {INPUT_NAME} | $T 'gzip %M' gzip -6 | \
         $T 'sha256sum %M' sha256sum >/dev/null",
        t = time.display(),
        log = log.display(),
        d = dir.display()
    );
    let ok = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .status()
        .is_ok_and(|s| s.success());
    let text = fs::read_to_string(&log).unwrap_or_default();
    if !ok || text.is_empty() {
        return;
    }
    let stages: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (name, kib) = l.rsplit_once(' ')?;
            Some(format!("{name} {:.1} MiB", mib_of_kib(kib.parse().ok()?)))
        })
        .collect();
    println!(
        "peer peak RSS by stage (one extra run): {}",
        stages.join(", ")
    );
}

// ------------------------------------------------------------------- input

/// xorshift64: deterministic, fast, good enough to defeat deflate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const BLOCK: usize = MIB as usize;

/// Writes `size` bytes in 1 MiB blocks cycling random, text, random, binary:
/// half incompressible, half compressible the way logs and tables are.
fn generate(path: &Path, size: u64) -> Result<()> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(BLOCK, file);
    let mut block = Vec::with_capacity(BLOCK + 256);
    for i in 0..size.div_ceil(BLOCK as u64) {
        block.clear();
        match i % 4 {
            0 | 2 => random_block(&mut rng, &mut block),
            1 => text_block(&mut rng, &mut block),
            _ => binary_block(&mut rng, &mut block),
        }
        let left = (size - i * BLOCK as u64).min(BLOCK as u64) as usize;
        out.write_all(&block[..left])?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    // Flush to disk now so writeback does not land inside a timed run.
    file.sync_all()?;
    Ok(())
}

fn random_block(rng: &mut Rng, block: &mut Vec<u8>) {
    while block.len() < BLOCK {
        block.extend_from_slice(&rng.next().to_le_bytes());
    }
}

const WORDS: &[&str] = &[
    "request",
    "response",
    "handler",
    "connection",
    "accepted",
    "closed",
    "timeout",
    "retry",
    "cache",
    "miss",
    "hit",
    "layer",
    "manifest",
    "digest",
    "upload",
    "blob",
    "worker",
    "queue",
    "started",
    "finished",
    "user",
    "session",
    "token",
    "refresh",
    "error",
    "warning",
    "config",
    "loaded",
    "path=/var/lib/app",
    "status=200",
    "status=404",
    "method=GET",
];
const LEVELS: &[&str] = &["INFO ", "DEBUG", "WARN ", "TRACE"];
const MODULES: &[&str] = &[
    "server::http",
    "db::pool",
    "auth",
    "storage::blobs",
    "sched",
];

/// Log-like lines: timestamps, levels, module paths, ids, words from a vocabulary.
fn text_block(rng: &mut Rng, block: &mut Vec<u8>) {
    let mut secs = rng.below(86_400);
    while block.len() < BLOCK {
        secs += rng.below(3);
        let line = format!(
            "2026-11-23T{:02}:{:02}:{:02}.{:03}Z {} {}: id={} took {}ms",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60,
            rng.below(1000),
            LEVELS[rng.below(LEVELS.len() as u64) as usize],
            MODULES[rng.below(MODULES.len() as u64) as usize],
            rng.below(1_000_000),
            rng.below(500),
        );
        block.extend_from_slice(line.as_bytes());
        for _ in 0..3 + rng.below(6) {
            block.push(b' ');
            block.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        }
        block.push(b'\n');
    }
}

/// Table-like binary: 16-byte records of an index, a small value, a growing
/// offset and zero padding, as in symbol or relocation tables.
fn binary_block(rng: &mut Rng, block: &mut Vec<u8>) {
    let mut index = rng.below(1 << 20) as u32;
    let mut offset = rng.below(1 << 24) as u32;
    while block.len() < BLOCK {
        index = index.wrapping_add(1);
        offset = offset.wrapping_add(rng.below(64) as u32 * 4);
        block.extend_from_slice(&index.to_le_bytes());
        block.extend_from_slice(&(rng.below(4096) as u32).to_le_bytes());
        block.extend_from_slice(&offset.to_le_bytes());
        block.extend_from_slice(&[0; 4]);
    }
}
