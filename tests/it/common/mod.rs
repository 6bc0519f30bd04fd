//! Shared test harness: the xarch binary, third-party tools (a missing one fails
//! with the command that installs it), example copies and OCI layout checks.

pub mod craft;
pub mod http;
pub mod liar;
pub mod pki;
pub mod proxy;
pub mod registry;
pub mod token;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `xarch` binary built for this test run.
pub fn xarch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xarch"));
    c.env_remove("SOURCE_DATE_EPOCH").env("NO_COLOR", "1");
    c
}

/// A cargo target dir shared by tests that build the examples, so each target
/// compiles once per run.
pub fn shared_target() -> PathBuf {
    repo().join("target").join("xarch-test-examples")
}

/// Fails (never skips) when a tool is missing, naming how to install it.
pub fn require(tool: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed; install it with `{install}` (or run scripts/setup)"
    );
}

pub fn require_image_tools() {
    require("skopeo", "apt-get install -y skopeo");
    require("umoci", "apt-get install -y umoci");
    require("qemu-aarch64-static", "apt-get install -y qemu-user-static");
}

/// Copies `examples/<name>` (without its target dir) into a fresh temp dir.
pub fn copy_example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join(name);
    copy_tree(&repo().join("examples").join(name), &dest);
    (tmp, dest)
}

fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let to = dest.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Runs a command, panicking with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `skopeo inspect --raw oci:DIR:TAG`, parsed.
pub fn skopeo_raw(layout: &Path, tag: &str) -> Value {
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:{tag}", layout.display()),
    ]));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Copies one platform out of a multi-platform layout with skopeo and unpacks it
/// with umoci; returns (bundle dir, runtime config.json).
pub fn unpack_platform(layout: &Path, tag: &str, platform: &str, work: &Path) -> (PathBuf, Value) {
    let source = format!("oci:{}:{tag}", layout.display());
    copy_and_unpack(&source, &[], platform, work, "single")
}

/// `skopeo copy` of one platform of `source` (any skopeo transport) into a
/// single-image layout named `<label>-<arch>` under `work`, then `umoci unpack`
/// into `bundle-<arch>`; returns (bundle dir, runtime config.json).
pub fn copy_and_unpack(
    source: &str,
    skopeo_flags: &[&str],
    platform: &str,
    work: &Path,
    label: &str,
) -> (PathBuf, Value) {
    let parts: Vec<&str> = platform.split('/').collect();
    let name = parts[1..].join("-");
    let single = work.join(format!("{label}-{name}"));
    let mut copy = Command::new("skopeo");
    copy.args(["copy", "--quiet"]).args(skopeo_flags).args([
        "--override-os",
        parts[0],
        "--override-arch",
        parts[1],
    ]);
    if let Some(v) = parts.get(2) {
        copy.args(["--override-variant", v]);
    }
    copy.arg(source)
        .arg(format!("oci:{}:img", single.display()));
    run_ok(&mut copy);
    let bundle = work.join(format!("bundle-{name}"));
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:img", single.display()))
            .arg(&bundle),
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    (bundle, config)
}

/// Runs a binary from an unpacked rootfs: natively for x86_64 and i386 on an
/// x86_64 host (the kernel runs 32-bit x86 itself, as Docker would; Debian's
/// qemu-i386 7.2 also crashes Go's 386 runtime), else under
/// `qemu-<arch>-static` with the rootfs as its sysroot.
pub fn run_in_rootfs(
    rootfs: &Path,
    exe: &str,
    args: &[&str],
    env: &[String],
    qemu: &str,
) -> Output {
    let bin = rootfs.join(exe.trim_start_matches('/'));
    let native = qemu == "x86_64" || (qemu == "i386" && cfg!(target_arch = "x86_64"));
    let mut cmd = if native {
        Command::new(&bin)
    } else {
        let tool = format!("qemu-{qemu}-static");
        require(&tool, "apt-get install -y qemu-user-static");
        let mut c = Command::new(tool);
        c.arg("-L").arg(rootfs).arg(&bin);
        c
    };
    cmd.args(args).env_clear();
    for kv in env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    run_ok(&mut cmd)
}

/// Every blob file in a layout hashes to its name; returns how many there are.
pub fn verify_blobs(layout: &Path) -> usize {
    let dir = layout.join("blobs").join("sha256");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        let hex = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(
            e.file_name().to_string_lossy(),
            hex,
            "blob {:?} does not match its digest",
            e.path()
        );
        n += 1;
    }
    n
}

pub fn read_blob(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}
