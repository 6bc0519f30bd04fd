//! `xarch run` and `build --smoke`: an image's entrypoint run from its
//! unpacked filesystem, natively or under qemu-user; hostile layers refused.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A C project whose program prints its arguments and exits with the number
/// given as its first argument.
pub fn exit_project() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("exiter");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("xarch.toml"),
        "sources = [\"main.c\"]\noutput = \"exiter\"\ncmd = [\"0\"]\nworkdir = \"/tmp\"\n\
         env = { GREETING = \"hi\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.c"),
        "#include <stdio.h>\n#include <stdlib.h>\n#include <unistd.h>\n\
         int main(int argc, char **argv) {\n\
           char wd[256]; getcwd(wd, sizeof wd);\n\
           printf(\"args=%d greeting=%s\\n\", argc - 1, getenv(\"GREETING\"));\n\
           fprintf(stderr, \"wd=%s\\n\", wd);\n\
         #ifdef __s390x__\n  if (argc > 2) return 9;\n#endif\n\
           return argc > 1 ? atoi(argv[1]) : 0;\n}\n",
    )
    .unwrap();
    (tmp, dir)
}

#[test]
fn run_executes_each_platform_with_the_image_env_and_exit_code() {
    let (tmp, dir) = exit_project();
    let layout = tmp.path().join("oci");
    run_ok(
        xarch()
            .arg("build")
            .arg(&dir)
            .args([
                "--platform",
                "linux/amd64,linux/arm64,linux/s390x",
                "-t",
                "e:1",
                "--oci-layout",
            ])
            .arg(&layout),
    );
    let image = format!("oci:{}:1", layout.display());
    for platform in ["linux/amd64", "linux/arm64", "linux/s390x"] {
        let out = xarch()
            .args(["run", "--platform", platform, &image, "--", "3", "x"])
            .output()
            .unwrap();
        let err = stderr(&out);
        // s390x is the platform whose build of the program exits 9 here.
        let want = if platform == "linux/s390x" { 9 } else { 3 };
        assert_eq!(out.status.code(), Some(want), "{platform}: {err}");
        assert_eq!(stdout(&out), "args=2 greeting=hi\n", "{platform}");
        assert!(err.contains("not an isolated container"), "{err}");
        assert!(err.contains("/tmp"), "{err}");
    }
    // No arguments: the image's cmd (`0`) runs, and the exit code is 0.
    let out = run_ok(xarch().args(["run", "--platform", "arm64", &image]));
    assert_eq!(stdout(&out), "args=1 greeting=hi\n");
    let out = xarch()
        .args(["run", "--platform", "linux/riscv64", &image])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("has no linux/riscv64; it offers: linux/amd64, linux/arm64, linux/s390x")
    );
}

#[test]
fn smoke_runs_every_platform_and_a_failure_stops_the_build() {
    let (tmp, dir) = exit_project();
    let layout = tmp.path().join("oci");
    let build = |smoke: &str| {
        xarch()
            .arg("build")
            .arg(&dir)
            .args([
                "--platform",
                "linux/amd64,linux/arm64,linux/s390x",
                "-t",
                "e:1",
                "--json",
            ])
            .args(["--smoke", smoke, "--oci-layout"])
            .arg(&layout)
            .output()
            .unwrap()
    };
    let ok = build("0");
    assert!(ok.status.success(), "{}", stderr(&ok));
    // The program's output goes to stderr: stdout stays the JSON report.
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["images"].as_array().unwrap().len(), 3);
    assert_eq!(stderr(&ok).matches("args=1 greeting=hi").count(), 3);
    let before = skopeo_raw(&layout, "1");
    // Exits 9 on s390x only: the build fails, naming it, and tags nothing new.
    let bad = xarch()
        .arg("build")
        .arg(&dir)
        .args([
            "--platform",
            "linux/amd64,linux/arm64,linux/s390x",
            "-t",
            "e:2",
        ])
        .args(["--smoke", "0 more", "--oci-layout"])
        .arg(&layout)
        .output()
        .unwrap();
    let err = stderr(&bad);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--smoke `0 more` failed on linux/s390x (exit status: 9)"),
        "{err}"
    );
    assert_eq!(skopeo_raw(&layout, "1"), before);
    let tags = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(!tags.contains("\"2\""), "{tags}");
}

/// Writes `bytes` as a blob of `layout`; returns its digest.
fn blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = format!("{:x}", Sha256::digest(bytes));
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

#[test]
fn run_refuses_a_layer_that_climbs_out_of_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("evil");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    // A gzip'd tar with an entry named `../../escaped` (written raw: the tar crate
    // itself refuses to build such a path).
    let mut tar = tar::Builder::new(Vec::new());
    let name = "../../escaped";
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(4);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    tar.append(&h, &b"evil"[..]).unwrap();
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let layer = gz.finish().unwrap();
    let layer_digest = blob(&layout, &layer);
    let diff_id = format!("sha256:{:x}", Sha256::digest(&raw));
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/escaped"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    }))
    .unwrap();
    let config_digest = blob(&layout, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}]
    }))
    .unwrap();
    let manifest_digest = blob(&layout, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "1"}
        }]
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let out = xarch()
        .args(["run", "--platform", "linux/amd64"])
        .arg(format!("oci:{}:1", layout.display()))
        .env("XARCH_CACHE_DIR", &cache)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`../../escaped` climbs out of the image"),
        "{err}"
    );
    // Nothing escaped anywhere near the cache, and no half-unpacked rootfs is left.
    assert!(!cache.join("escaped").exists() && !tmp.path().join("escaped").exists());
    let rootfs = cache.join("rootfs");
    let left: Vec<_> = std::fs::read_dir(&rootfs)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
