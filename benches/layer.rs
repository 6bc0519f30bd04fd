//! Layer writer benchmark: `cargo bench --bench layer`.
//!
//! Builds a 256 MiB input file with mixed content (half incompressible xorshift
//! bytes, a quarter log-like text, a quarter table-like binary), then, three times
//! each and interleaved, measures:
//!
//! * xarch gzip: `LayerBuilder::write` with gzip -6 on every core (tar → sha256 →
//!   parallel block gzip → sha256 → blob store, including the blob's fsync and
//!   rename), run in a child process — this binary re-executed with
//!   `XARCH_BENCH_LAYER_CHILD` set — so its peak RSS is its own;
//! * xarch zstd: the same with zstd -3 on every core;
//! * the peers, under `bash -c` with `set -o pipefail` (writing nothing to disk):
//!   `tar -cf - -C DIR big.bin | gzip -6 | sha256sum`, the same with
//!   `pigz -6 -p N` (N = this machine's cores) and with `zstd -3 -T0`.
//!
//! Once more, outside the comparison, xarch gzip on one thread (`-j 1`): its
//! digest must equal the multi-threaded one, and its time shows the scaling.
//!
//! Wall time is taken from spawn to reap; CPU time (user + system) and peak RSS
//! come from `wait4`'s rusage, which on Linux covers the child and every
//! descendant it reaped: for a pipeline, CPU is the sum over its processes and
//! peak RSS the largest of them.
//!
//! Exits non-zero when a layer writer's peak RSS reaches 64 MiB (memory must stay
//! flat whatever the layer size) or when a digest differs between runs or
//! thread counts.

use std::env;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xarch::oci::{BlobStore, Compression, Family, LayerBuilder, LayerOptions};

const MIB: u64 = 1 << 20;
const INPUT_SIZE: u64 = 256 * MIB;
const RUNS: usize = 3;
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// Set in the re-executed child: `<input>\n<store dir>\n<gzip|zstd>\n<threads>`.
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
    let parts: Vec<&str> = spec.split('\n').collect();
    let [src, store_dir, alg, threads] = parts[..] else {
        bail!("bad {CHILD_ENV}");
    };
    let compression = Compression::parse(alg, None)?;
    let store = BlobStore::open(Path::new(store_dir))?;
    let mut b = LayerBuilder::new();
    b.file("data/big.bin", PathBuf::from(src), 0o644)?;
    let start = Instant::now();
    let layer = b.write(
        LayerOptions {
            mtime: 0,
            compression,
            threads: threads.parse()?,
        },
        compression.media_type(Family::Oci),
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
        .stdin(Stdio::null())
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

/// One thing measured: an xarch layer write (`alg`, `threads`) or a peer
/// pipeline (`script`).
struct Variant {
    label: String,
    xarch: Option<(&'static str, usize)>,
    script: String,
    runs: Vec<Run>,
    digest: Option<String>,
}

impl Variant {
    fn xarch(label: &str, alg: &'static str, threads: usize) -> Variant {
        Variant {
            label: label.into(),
            xarch: Some((alg, threads)),
            script: String::new(),
            runs: vec![],
            digest: None,
        }
    }

    fn peer(label: &str, dir: &Path, compressor: &str) -> Variant {
        Variant {
            label: label.into(),
            xarch: None,
            script: format!(
                "set -o pipefail; tar -cf - -C '{}' {INPUT_NAME} | {compressor} | sha256sum",
                dir.display()
            ),
            runs: vec![],
            digest: None,
        }
    }

    /// Runs once, checking that an xarch digest never changes.
    fn run(&mut self, exe: &Path, input: &Path, tmp: &Path) -> Result<()> {
        let run = match self.xarch {
            Some((alg, threads)) => {
                let store = tmp.join("store");
                let spec = format!("{}\n{}\n{alg}\n{threads}", input.display(), store.display());
                let run = measure(Command::new(exe).env(CHILD_ENV, spec))?;
                fs::remove_dir_all(&store)?; // keep the disk footprint to one blob
                let digest = field(&run.stdout, "digest").unwrap_or("?").to_string();
                match &self.digest {
                    Some(d) if *d != digest => {
                        bail!(
                            "{}: digest changed between runs: {d} then {digest}",
                            self.label
                        )
                    }
                    _ => self.digest = Some(digest),
                }
                run
            }
            None => measure(Command::new("bash").arg("-c").arg(&self.script))?,
        };
        println!(
            "  {:<28} {:6.2}s wall, {:6.2}s CPU, peak RSS {:5.1} MiB",
            self.label,
            run.wall.as_secs_f64(),
            run.cpu.as_secs_f64(),
            mib_of_kib(run.maxrss_kib),
        );
        self.runs.push(run);
        Ok(())
    }

    fn wall(&self) -> f64 {
        median(self.runs.iter().map(|r| r.wall.as_secs_f64()).collect())
    }

    fn cpu(&self) -> f64 {
        median(self.runs.iter().map(|r| r.cpu.as_secs_f64()).collect())
    }

    fn peak_kib(&self) -> u64 {
        self.runs.iter().map(|r| r.maxrss_kib).max().unwrap_or(0)
    }

    fn size(&self) -> Option<u64> {
        field(&self.runs.first()?.stdout, "size")?.parse().ok()
    }
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    print_machine(cores);

    let exe = env::current_exe()?;
    let dir = tmp.path();
    let mut variants = vec![
        Variant::xarch("xarch gzip -6", "gzip", cores),
        Variant::peer("tar | gzip -6 | sha256sum", dir, "gzip -6"),
        Variant::peer(
            &format!("tar | pigz -6 -p{cores} | sha256sum"),
            dir,
            &format!("pigz -6 -p{cores}"),
        ),
        Variant::xarch("xarch zstd -3", "zstd", cores),
        Variant::peer("tar | zstd -3 -T0 | sha256sum", dir, "zstd -3 -T0 -q"),
    ];
    for i in 1..=RUNS {
        println!("run {i}:");
        for v in &mut variants {
            v.run(&exe, &input, dir)?;
        }
    }
    println!("once more, one thread:");
    let mut single = Variant::xarch("xarch gzip -6, -j 1", "gzip", 1);
    single.run(&exe, &input, dir)?;
    let mut failed = false;
    if single.digest != variants[0].digest {
        eprintln!(
            "FAIL: gzip digest with -j 1 ({:?}) differs from -j {cores} ({:?})",
            single.digest, variants[0].digest
        );
        failed = true;
    }

    println!();
    for v in variants.iter().filter(|v| v.xarch.is_some()) {
        let size = v.size().unwrap_or(0);
        println!(
            "{}: digest {}, {size} bytes ({:.1}% of the input)",
            v.label,
            v.digest.as_deref().unwrap_or("?"),
            size as f64 * 100.0 / INPUT_SIZE as f64
        );
    }
    println!();
    let mib = (INPUT_SIZE / MIB) as f64;
    println!(
        "| {RUNS} runs each, {} MiB input, {cores} cores | median wall | MiB/s | median CPU | peak RSS |",
        INPUT_SIZE / MIB
    );
    println!("|---|---|---|---|---|");
    for v in variants.iter().chain(std::iter::once(&single)) {
        println!(
            "| {} | {:.2} s | {:.0} | {:.2} s | {:.1} MiB |",
            v.label.replace('|', "\\|"),
            v.wall(),
            mib / v.wall(),
            v.cpu(),
            mib_of_kib(v.peak_kib())
        );
    }
    println!();
    let ratio = |a: usize, b: usize| variants[a].wall() / variants[b].wall();
    println!(
        "ratio xarch gzip / gzip -6 (median wall):  {:.2} (target ≤ 0.30)",
        ratio(0, 1)
    );
    println!(
        "ratio xarch gzip / pigz -6 (median wall):  {:.2} (target ≤ 0.90)",
        ratio(0, 2)
    );
    println!(
        "ratio xarch zstd / zstd -3 (median wall):  {:.2} (target ≤ 1.30)",
        ratio(3, 4)
    );
    println!(
        "xarch gzip scaling, -j 1 / -j {cores}:          {:.2}",
        single.wall() / variants[0].wall()
    );

    for v in variants.iter().filter(|v| v.xarch.is_some()) {
        if v.peak_kib() >= RSS_LIMIT_KIB {
            eprintln!(
                "FAIL: {}: peak RSS {:.1} MiB, at or above the {} MiB limit: \
                 memory must stay flat whatever the layer size",
                v.label,
                mib_of_kib(v.peak_kib()),
                RSS_LIMIT_KIB / 1024
            );
            failed = true;
        }
    }
    if failed {
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "ok: layer writers' peak RSS < {} MiB; gzip digest equal with -j 1 and -j {cores}",
        RSS_LIMIT_KIB / 1024
    );
    Ok(ExitCode::SUCCESS)
}

fn print_machine(cores: usize) {
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: nproc {cores}, CPU {model}, load average {}",
        load.trim()
    );
    for tool in ["tar", "gzip", "pigz", "zstd"] {
        if let Ok(out) = Command::new(tool).arg("--version").output() {
            let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
            println!("peer: {}", text.lines().next().unwrap_or(tool));
        }
    }
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
