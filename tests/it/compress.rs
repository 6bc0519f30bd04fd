//! Layer compression end to end: gzip digests that do not depend on `-j`,
//! zstd and uncompressed layers, each read back by gzip/zstd/tar, skopeo and
//! umoci, and the binaries run under qemu-user.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{Registry, busybox_layout, skopeo_push};
use common::*;
use serde_json::Value;

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// hello-rust with a files layer of a few MiB (text and noise), so layers
/// span many compression blocks.
fn project_with_data() -> (tempfile::TempDir, PathBuf) {
    let (tmp, project) = copy_example("hello-rust");
    let data = project.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut bytes = Vec::new();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while bytes.len() < 5 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (bytes.len() >> 19) % 2 == 0 {
            bytes.extend_from_slice(&x.to_le_bytes());
        } else {
            let line = format!(
                "t={} level=info id={} took {}ms\n",
                x % 86_400,
                x % 99_991,
                x % 500
            );
            bytes.extend_from_slice(line.as_bytes());
        }
    }
    bytes.truncate(5 << 20);
    std::fs::write(data.join("mixed.bin"), &bytes).unwrap();
    std::fs::write(
        project.join("xarch.toml"),
        "name = \"hello\"\n[[files]]\nsrc = \"data\"\ndest = \"/srv/data\"\n",
    )
    .unwrap();
    (tmp, project)
}

/// `xarch build --json` into `layout` with `extra` flags; the report.
fn build(project: &Path, layout: &Path, platforms: &str, extra: &[&str]) -> Value {
    let out = run_ok(
        xarch()
            .arg("build")
            .arg(project)
            .args(["--platform", platforms, "-t", "c:1", "--json", "-q"])
            .arg("--oci-layout")
            .arg(layout)
            .args(extra)
            .env("CARGO_TARGET_DIR", shared_target()),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every (layer media type, blob path) of every manifest under the index.
fn layers(layout: &Path, report: &Value) -> Vec<(String, PathBuf)> {
    let index = read_blob(layout, report["index"]["digest"].as_str().unwrap());
    let mut out = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let man = read_blob(layout, m["digest"].as_str().unwrap());
        for l in man["layers"].as_array().unwrap() {
            let d = l["digest"].as_str().unwrap();
            out.push((
                l["mediaType"].as_str().unwrap().to_string(),
                layout.join("blobs/sha256").join(&d[7..]),
            ));
        }
    }
    out
}

/// `DECOMPRESS FILE | tar -t` succeeds (and the compressor's own test first).
fn tar_lists(blob: &Path, tool: Option<&str>) -> String {
    let script = match tool {
        Some(t) => format!(
            "set -e -o pipefail; {t} -t '{0}'; {t} -dc '{0}' | tar -tf -",
            blob.display()
        ),
        None => format!("tar -tf '{}'", blob.display()),
    };
    stdout(&run_ok(Command::new("bash").arg("-c").arg(script)))
}

/// Copies one platform out with skopeo and unpacks it with umoci. Debian's
/// umoci (0.4.7) refuses zstd layers ("blob is not correct mediatype"; umoci
/// reads them from 0.5 on), so for zstd images skopeo decompresses every
/// layer and writes gzip, and umoci checks the result against the diff_ids.
fn unpack(layout: &Path, platform: &str, work: &Path, zstd: bool) -> (PathBuf, Value) {
    let source = format!("oci:{}:1", layout.display());
    let flags: &[&str] = if zstd {
        &["--dest-compress-format", "gzip"]
    } else {
        &[]
    };
    copy_and_unpack(&source, flags, platform, work, "single")
}

/// Each platform's image unpacked, its binary run (under qemu when foreign).
fn runs_everywhere(layout: &Path, work: &Path, zstd: bool, platforms: &[(&str, &str, &str)]) {
    for (platform, qemu, arch) in platforms {
        let (bundle, config) = unpack(layout, platform, work, zstd);
        let rootfs = bundle.join("rootfs");
        let env: Vec<String> = serde_json::from_value(config["process"]["env"].clone()).unwrap();
        let said = stdout(&run_in_rootfs(
            &rootfs,
            "/usr/local/bin/hello-rust",
            &[],
            &env,
            qemu,
        ));
        assert!(said.contains(&format!("arch={arch}")), "{platform}: {said}");
        let data = std::fs::read(rootfs.join("srv/data/mixed.bin")).unwrap();
        assert_eq!(data.len(), 5 << 20, "{platform}: files layer");
    }
}

#[test]
fn gzip_layers_are_the_same_with_any_jobs_and_read_by_every_tool() {
    require_image_tools();
    require("pigz", "apt-get install -y pigz");
    let (tmp, project) = project_with_data();
    let platforms = "linux/amd64,linux/arm64";
    let mut digests = Vec::new();
    for (i, jobs) in ["1", "2", "8", "2"].iter().enumerate() {
        // A fresh layout each time: nothing is reused, every layer compressed.
        let layout = tmp.path().join(format!("out-{i}"));
        let report = build(&project, &layout, platforms, &["-j", jobs]);
        digests.push((jobs.to_string(), report["index"]["digest"].clone()));
        if i == 0 {
            for (media, blob) in layers(&layout, &report) {
                assert_eq!(media, GZIP);
                assert!(!tar_lists(&blob, Some("gzip")).is_empty());
                // pigz reads the one-member stream too.
                run_ok(Command::new("pigz").arg("-t").arg(&blob));
            }
            assert!(skopeo_raw(&layout, "1")["manifests"].is_array());
            runs_everywhere(
                &layout,
                tmp.path(),
                false,
                &[
                    ("linux/amd64", "x86_64", "x86_64"),
                    ("linux/arm64", "aarch64", "aarch64"),
                ],
            );
        }
    }
    assert!(
        digests.iter().all(|d| d.1 == digests[0].1),
        "index digests differ between -j values or runs: {digests:?}"
    );
}

#[test]
fn zstd_images_are_oci_read_by_skopeo_and_umoci_and_run_on_each_cpu() {
    require_image_tools();
    require("zstd", "apt-get install -y zstd");
    let (tmp, project) = project_with_data();
    let layout = tmp.path().join("out");
    let platforms = "linux/amd64,linux/arm64,linux/386";
    let report = build(&project, &layout, platforms, &["--compression", "zstd"]);
    let index = skopeo_raw(&layout, "1");
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let all = layers(&layout, &report);
    // static base (gzip, as built in), files and binaries (zstd), per platform.
    assert_eq!(all.len(), 9);
    for (n, (media, blob)) in all.iter().enumerate() {
        if n % 3 == 0 {
            assert_eq!(media, GZIP, "the built-in base keeps its layer");
            continue;
        }
        assert_eq!(media, ZSTD);
        let listed = tar_lists(blob, Some("zstd -q"));
        assert!(
            listed.contains("srv/data/mixed.bin") || listed.contains("hello-rust"),
            "{listed}"
        );
    }
    verify_blobs(&layout);
    runs_everywhere(
        &layout,
        tmp.path(),
        true,
        &[
            ("linux/amd64", "x86_64", "x86_64"),
            ("linux/arm64", "aarch64", "aarch64"),
            ("linux/386", "i386", "x86"),
        ],
    );

    // The same image with one or eight threads, and xarch reads it back.
    for jobs in ["1", "8"] {
        let again = build(
            &project,
            &tmp.path().join(format!("out-{jobs}")),
            platforms,
            &["--compression", "zstd", "-j", jobs],
        );
        assert_eq!(
            again["index"]["digest"], report["index"]["digest"],
            "-j {jobs}"
        );
    }
    let ran = run_ok(
        xarch()
            .args(["run", "--platform", "linux/arm64"])
            .arg(format!("oci:{}:1", layout.display())),
    );
    assert!(stdout(&ran).contains("arch=aarch64"), "{}", stdout(&ran));
    let shown = stdout(&run_ok(
        xarch()
            .arg("inspect")
            .arg(format!("oci:{}:1", layout.display())),
    ));
    assert!(
        shown.contains("Docker Engine before 23.0 and containerd before 1.5"),
        "{shown}"
    );
}

#[test]
fn uncompressed_layers_and_config_keys() {
    require("skopeo", "apt-get install -y skopeo");
    let (tmp, project) = project_with_data();
    let toml = project.join("xarch.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("compression = \"none\"\n{base}")).unwrap();
    let layout = tmp.path().join("out");
    let report = build(&project, &layout, "linux/amd64", &[]);
    let all = layers(&layout, &report);
    let manifest = read_blob(&layout, report["images"][0]["digest"].as_str().unwrap());
    let config = read_blob(&layout, manifest["config"]["digest"].as_str().unwrap());
    for (n, (media, blob)) in all.iter().enumerate().skip(1) {
        assert_eq!(media, TAR);
        tar_lists(blob, None);
        // Uncompressed: the digest is the diff_id.
        let d = format!("sha256:{}", blob.file_name().unwrap().to_string_lossy());
        assert_eq!(config["rootfs"]["diff_ids"][n], d.as_str());
    }
    assert!(skopeo_raw(&layout, "1")["manifests"].is_array());

    // The flag wins over the key; a level comes with it.
    let report = build(
        &project,
        &tmp.path().join("z"),
        "linux/amd64",
        &["--compression", "zstd", "--compression-level", "19"],
    );
    assert_eq!(layers(&tmp.path().join("z"), &report)[1].0, ZSTD);

    // A bad level is a configuration error at its line.
    std::fs::write(
        &toml,
        format!("compression = \"gzip\"\ncompression-level = 12\n{base}"),
    )
    .unwrap();
    let out = xarch().arg("build").arg(&project).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("xarch.toml:1:1") && err.contains("use 0–9"),
        "{err}"
    );
}

#[test]
fn zstd_on_a_docker_base_makes_an_oci_image() {
    require_image_tools();
    let reg = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    let base_ref = format!("{}/base/busybox:docker", reg.host);
    skopeo_push(&base, &base_ref, true);
    let (ptmp, project) = copy_example("hello-rust");
    let layout = ptmp.path().join("out");
    let report = run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/arm64", "-t", "c:1", "--json", "-q"])
            .args(["--base", &base_ref, "--compression", "zstd"])
            .arg("--oci-layout")
            .arg(&layout)
            .env("CARGO_TARGET_DIR", shared_target()),
    );
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let index = skopeo_raw(&layout, "1");
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifest = read_blob(&layout, report["images"][0]["digest"].as_str().unwrap());
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    // The base's Docker gzip layer is retyped, its bytes kept.
    assert_eq!(types, [GZIP, ZSTD, ZSTD]);
    let (bundle, config) = unpack(&layout, "linux/arm64", ptmp.path(), true);
    let env: Vec<String> = serde_json::from_value(config["process"]["env"].clone()).unwrap();
    let rootfs = bundle.join("rootfs");
    let bb = run_in_rootfs(
        &rootfs,
        "/bin/busybox",
        &["echo", "busybox-ok"],
        &env,
        "aarch64",
    );
    assert_eq!(stdout(&bb).trim(), "busybox-ok");
    let hi = run_in_rootfs(&rootfs, "/usr/local/bin/hello-rust", &[], &env, "aarch64");
    assert!(stdout(&hi).contains("arch=aarch64"));
}
