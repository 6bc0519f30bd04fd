//! Crash safety: builds and pushes killed with SIGKILL at random moments. After
//! each kill the layout is valid or absent — skopeo and umoci read every tag,
//! every blob hashes to its name — and the next run succeeds.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::*;
use common::*;

/// Kills per kind; each kill lands at a random moment of a run.
const KILLS: usize = 12;

/// A small C project with a files layer big enough that layering takes a while.
fn project(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("app");
    std::fs::create_dir_all(p.join("data")).unwrap();
    std::fs::write(
        p.join("xarch.toml"),
        "sources = [\"main.c\"]\noutput = \"app\"\n\
         [[files]]\nsrc = \"data\"\ndest = \"/srv/data\"\n",
    )
    .unwrap();
    std::fs::write(p.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    let mut noise = Vec::with_capacity(24 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while noise.len() < 24 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(p.join("data/noise.bin"), noise).unwrap();
    p
}

/// A pseudo-random delay in 0..max, different for each `i`.
fn delay(i: usize, max: Duration) -> Duration {
    let mut x = (i as u64 + 1).wrapping_mul(0x2545f4914f6cdd1d);
    x ^= x >> 29;
    let max_ms = (max.as_millis() as u64).max(2);
    Duration::from_millis(x % max_ms)
}

/// Runs `c` to success; how long it took.
fn timed(c: &mut Command) -> Duration {
    let start = Instant::now();
    run_ok(c);
    start.elapsed()
}

/// Starts `c`, kills it (SIGKILL) after `after`; true when it was killed
/// before it finished.
fn kill_after(c: &mut Command, after: Duration) -> bool {
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// The layout, if there is one, reads with skopeo and umoci at every tag and
/// every blob hashes to its name.
fn assert_valid(layout: &Path) {
    if !layout.exists() {
        return;
    }
    assert!(
        layout.join("oci-layout").is_file(),
        "{} exists without an oci-layout file",
        layout.display()
    );
    verify_blobs(layout);
    let out = run_ok(Command::new("umoci").args(["ls", "--layout"]).arg(layout));
    for tag in stdout(&out).lines() {
        skopeo_raw(layout, tag);
    }
}

#[test]
fn builds_and_pushes_killed_at_random_moments_leave_valid_layouts() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let project = project(tmp.path());
    let build = |layout: &Path, tag: &str| {
        let mut c = xarch();
        c.arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64,linux/arm64", "-t", tag])
            .arg("--oci-layout")
            .arg(layout)
            .env("XARCH_CACHE_DIR", &cache);
        c
    };
    // Warm the compile (zig's libc) so kills land in image writing; each kill
    // then lands within the time the last whole run took, however fast or
    // loaded the machine is.
    run_ok(&mut build(&tmp.path().join("warm"), "app:0"));
    let mut last = timed(&mut build(&tmp.path().join("warm"), "app:1"));

    let mut killed = 0;
    for i in 0..KILLS {
        // Half the kills hit a layout being created, half an existing one.
        let layout = tmp.path().join(format!("out-{}", i % 2));
        if i % 2 == 0 {
            let _ = std::fs::remove_dir_all(&layout);
        }
        if kill_after(&mut build(&layout, &format!("app:{i}")), delay(i, last)) {
            killed += 1;
        }
        assert_valid(&layout);
        last = timed(&mut build(&layout, &format!("app:{i}")));
        assert_valid(&layout);
    }

    let reg = Registry::start("");
    let layout = tmp.path().join("out-1");
    let mut last = Duration::from_millis(400);
    for i in 0..KILLS {
        let target = format!("{}/team/app:{i}", reg.host);
        let mut push = xarch();
        push.args(["push", &format!("oci:{}:1", layout.display()), &target])
            .env("XARCH_CACHE_DIR", &cache);
        if kill_after(&mut push, delay(i + 100, last)) {
            killed += 1;
        }
        let mut again = xarch();
        again
            .args(["push", &format!("oci:{}:1", layout.display()), &target])
            .env("XARCH_CACHE_DIR", &cache);
        last = timed(&mut again);
        inspect_remote(&target);
    }
    eprintln!(
        "killed {killed} of {} runs; every layout stayed valid",
        2 * KILLS
    );
    assert!(
        killed >= KILLS / 2,
        "only {killed} runs were killed mid-way"
    );
}
