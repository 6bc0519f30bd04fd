//! `xarch rebase` end to end, against real Distribution processes: an image
//! built on busybox 1 moved onto busybox 2 (its layer recompressed, plus a
//! marker layer), checked by digest arithmetic with skopeo, run under qemu,
//! and the refusals that push nothing.

use crate::common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::*;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const APP_PLATFORMS: [(&str, &str, &str); 2] = [
    ("linux/amd64", "x86_64", "x86_64"),
    ("linux/arm64", "aarch64", "aarch64"),
];

const MARKER: &str = "busybox base 2\n";

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(&digest[7..])
}

fn put(layout: &Path, bytes: &[u8]) -> Value {
    let d = sha(bytes);
    std::fs::write(blob_path(layout, &d), bytes).unwrap();
    json!({"digest": d, "size": bytes.len()})
}

fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A tar holding `/etc/base-release`.
fn marker_tar() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    tar.append_data(&mut h, "etc/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(MARKER.len() as u64);
    tar.append_data(&mut h, "etc/base-release", MARKER.as_bytes())
        .unwrap();
    tar.into_inner().unwrap()
}

/// Busybox 2 from busybox 1 (a layout written by `busybox_layout`, tag `1`):
/// per platform the busybox layer recompressed (same files, another digest)
/// and a layer with `/etc/base-release`; `keep` limits the platforms. Written
/// under tag `1`, as `skopeo_push` expects.
fn busybox_v2(v1: &Path, dest: &Path, keep: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dest.join("blobs/sha256")).unwrap();
    std::fs::copy(v1.join("oci-layout"), dest.join("oci-layout")).unwrap();
    let top: Value =
        serde_json::from_slice(&std::fs::read(v1.join("index.json")).unwrap()).unwrap();
    let index = read_blob(v1, top["manifests"][0]["digest"].as_str().unwrap());
    let marker = marker_tar();
    let mut manifests = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        let arch = entry["platform"]["architecture"].as_str().unwrap();
        if !keep.contains(&arch) {
            continue;
        }
        let m = read_blob(v1, entry["digest"].as_str().unwrap());
        let mut config = read_blob(v1, m["config"]["digest"].as_str().unwrap());
        let mut tar = Vec::new();
        let gz = std::fs::read(blob_path(v1, m["layers"][0]["digest"].as_str().unwrap())).unwrap();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        let mut layers = Vec::new();
        for bytes in [gzip(&tar, 9), gzip(&marker, 6)] {
            let mut d = put(dest, &bytes);
            d["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+gzip");
            layers.push(d);
        }
        config["rootfs"]["diff_ids"] = json!([sha(&tar), sha(&marker)]);
        config["history"]
            .as_array_mut()
            .unwrap()
            .push(json!({"created_by": "COPY base-release /etc/"}));
        let mut cfg = put(dest, &serde_json::to_vec(&config).unwrap());
        cfg["mediaType"] = m["config"]["mediaType"].clone();
        let manifest = json!({"schemaVersion": 2, "mediaType": m["mediaType"], "config": cfg, "layers": layers});
        let mut e = put(dest, &serde_json::to_vec(&manifest).unwrap());
        e["mediaType"] = m["mediaType"].clone();
        e["platform"] = entry["platform"].clone();
        manifests.push(e);
    }
    let index =
        json!({"schemaVersion": 2, "mediaType": index["mediaType"], "manifests": manifests});
    let mut e = put(dest, &serde_json::to_vec(&index).unwrap());
    e["mediaType"] = index["mediaType"].clone();
    e["annotations"] = json!({"org.opencontainers.image.ref.name": "1"});
    let top = json!({"schemaVersion": 2, "manifests": [e]});
    std::fs::write(dest.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    dest.to_path_buf()
}

/// Busybox 1 and 2 in `reg` (OCI), with 2 also as a Docker manifest list and
/// without arm64; returns the temp dir and the two layouts.
fn bases(reg: &Registry) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = busybox_layout(tmp.path());
    let v2 = busybox_v2(&v1, &tmp.path().join("v2"), &["amd64", "arm64", "arm"]);
    let no_arm64 = busybox_v2(&v1, &tmp.path().join("v2-no-arm64"), &["amd64", "arm"]);
    skopeo_push(&v1, &format!("{}/base/busybox:1", reg.host), false);
    skopeo_push(&v2, &format!("{}/base/busybox:2", reg.host), false);
    skopeo_push(&v2, &format!("{}/base/busybox:2-docker", reg.host), true);
    skopeo_push(
        &no_arm64,
        &format!("{}/base/busybox:2-no-arm64", reg.host),
        false,
    );
    (tmp, v1, v2)
}

fn build(project: &Path, base: &str, dest: &[&str]) -> Value {
    let out = run_ok(
        xarch()
            .arg("build")
            .arg(project)
            .args([
                "--platform",
                "linux/amd64,linux/arm64",
                "--base",
                base,
                "--json",
            ])
            .args(dest)
            .env("CARGO_TARGET_DIR", shared_target())
            .env("XARCH_CACHE_DIR", project.join("xarch-cache")),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rebase(project: &Path, args: &[&str]) -> Output {
    xarch()
        .arg("rebase")
        .args(args)
        .env("XARCH_CACHE_DIR", project.join("xarch-cache"))
        .output()
        .unwrap()
}

fn rebase_json(project: &Path, args: &[&str]) -> Value {
    let out = rebase(project, &[args, &["--json"]].concat());
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn refused(project: &Path, args: &[&str], needles: &[&str]) {
    let out = rebase(project, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: no `{n}` in: {err}");
    }
}

fn inspect_config(reference: &str) -> Value {
    let out = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn entry_for<'a>(index: &'a Value, platform: &Value) -> &'a Value {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == platform["architecture"])
        .unwrap_or_else(|| panic!("no {platform} in {index}"))
}

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// Writes, reads and uploads the registry has seen: a refused rebase adds none.
fn writes(reg: &Registry) -> usize {
    ["PUT", "POST", "PATCH", "DELETE"]
        .iter()
        .map(|m| reg.requests(m, "/"))
        .sum()
}

/// Digest arithmetic per platform, from the registry alone: the new base's
/// layers, then the old image's app layers unchanged; diff_ids and history
/// likewise; everything else in the config kept; base annotations renamed.
/// Returns the app layer digests.
fn check_rebased(host: &str, old: &str, new: &str, base: &str) -> BTreeSet<String> {
    let (old_index, new_index) = (inspect_remote(old), inspect_remote(new));
    let base_index = inspect_remote(&format!("{host}/base/busybox:{base}"));
    assert_eq!(new_index["mediaType"], old_index["mediaType"]);
    assert_eq!(new_index["annotations"], old_index["annotations"]);
    assert_eq!(list(&new_index["manifests"]).len(), 2);
    let mut app = BTreeSet::new();
    for entry in list(&new_index["manifests"]) {
        let at = |repo: &str, d: &Value| format!("{host}/{repo}@{}", d.as_str().unwrap());
        let was = entry_for(&old_index, &entry["platform"]);
        let base_entry = entry_for(&base_index, &entry["platform"]);
        let (m, old_m) = (
            inspect_remote(&at("team/app", &entry["digest"])),
            inspect_remote(&at("team/app", &was["digest"])),
        );
        let old_base = &old_m["annotations"]["org.opencontainers.image.base.digest"];
        let (b, old_b) = (
            inspect_remote(&at("base/busybox", &base_entry["digest"])),
            inspect_remote(&at("base/busybox", old_base)),
        );
        let (nb, ob) = (list(&b["layers"]).len(), list(&old_b["layers"]).len());
        let layers = list(&m["layers"]);
        assert_eq!(
            layers[..nb],
            list(&b["layers"])[..],
            "new base layers first"
        );
        assert_eq!(
            layers[nb..],
            list(&old_m["layers"])[ob..],
            "app layers as they were"
        );
        assert!(layers.len() > nb);
        app.extend(
            layers[nb..]
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string()),
        );

        let (c, old_c) = (
            inspect_config(&at("team/app", &entry["digest"])),
            inspect_config(&at("team/app", &was["digest"])),
        );
        let (bc, old_bc) = (
            inspect_config(&at("base/busybox", &base_entry["digest"])),
            inspect_config(&at("base/busybox", old_base)),
        );
        let ids = |c: &Value| list(&c["rootfs"]["diff_ids"]);
        assert_eq!(ids(&c), [ids(&bc), ids(&old_c)[ob..].to_vec()].concat());
        let hist = |c: &Value| list(&c["history"]);
        let skip = hist(&old_bc).len();
        assert_eq!(
            hist(&c),
            [hist(&bc), hist(&old_c)[skip..].to_vec()].concat()
        );
        for key in ["config", "created", "architecture", "os"] {
            assert_eq!(c[key], old_c[key], "config {key} unchanged");
        }
        let mut a = m["annotations"].clone();
        assert_eq!(
            a["org.opencontainers.image.base.name"],
            format!("{host}/base/busybox:{base}")
        );
        assert_eq!(
            a["org.opencontainers.image.base.digest"],
            base_entry["digest"]
        );
        let mut old_a = old_m["annotations"].clone();
        for k in [
            "org.opencontainers.image.base.name",
            "org.opencontainers.image.base.digest",
        ] {
            a.as_object_mut().unwrap().remove(k);
            old_a.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(a, old_a, "other annotations kept");
    }
    app
}

/// Each platform runs the app, and busybox shows the new base's marker file.
fn check_runs(source: &str, flags: &[&str], work: &Path) {
    for (platform, qemu, arch) in APP_PLATFORMS {
        let (bundle, config) = copy_and_unpack(source, flags, platform, work, "rebased");
        let rootfs = bundle.join("rootfs");
        let env: Vec<String> = serde_json::from_value(config["process"]["env"].clone()).unwrap();
        let args: Vec<String> = serde_json::from_value(config["process"]["args"].clone()).unwrap();
        let out = run_in_rootfs(&rootfs, &args[0], &[], &env, qemu);
        assert!(
            stdout(&out).contains(&format!("arch={arch}")),
            "{platform}: {}",
            stdout(&out)
        );
        // The new base: its marker layer, and busybox from its recompressed
        // layer. Under qemu `-L` makes /etc the rootfs's; a native run would
        // read the host's, so there busybox only echoes.
        let marker = std::fs::read_to_string(rootfs.join("etc/base-release")).unwrap();
        assert_eq!(marker, MARKER, "{platform}: new base layer missing");
        let args = match qemu {
            "x86_64" => ["echo", MARKER.trim_end()],
            _ => ["cat", "/etc/base-release"],
        };
        let bb = run_in_rootfs(&rootfs, "/bin/busybox", &args, &env, qemu);
        assert_eq!(stdout(&bb), MARKER, "{platform}");
        std::fs::remove_dir_all(&bundle).unwrap();
    }
}

/// Access log lines after the first `skip`, naming `method` and `digest`
/// (an upload's closing PUT, a download's GET, a mount's POST).
fn moved(reg: &Registry, skip: usize, method: &str, digest: &str) -> Vec<String> {
    reg.access_log()
        .lines()
        .skip(skip)
        .filter(|l| l.contains(&format!("\"{method} /v2/")) && l.contains(digest))
        .map(String::from)
        .collect()
}

#[test]
fn rebases_a_pushed_index_mounting_every_layer_and_refuses_what_does_not_fit() {
    require_image_tools();
    let reg = Registry::start("");
    let h = &reg.host;
    let (_btmp, _, _) = bases(&reg);
    let (ptmp, project) = copy_example("hello-rust");
    let app = format!("{h}/team/app:1.0");
    build(
        &project,
        &format!("{h}/base/busybox:1"),
        &["-t", &app, "--push"],
    );
    let (new_base, patched) = (
        format!("{h}/base/busybox:2"),
        format!("{h}/team/app:1.0-patched"),
    );

    // Refusals: clear, exit 1, and not one write to the registry.
    let before = writes(&reg);
    let old_layer = inspect_remote(&format!(
        "{h}/team/app@{}",
        inspect_remote(&app)["manifests"][0]["digest"]
            .as_str()
            .unwrap()
    ))["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong_layer = inspect_remote(&format!(
        "{h}/base/busybox@{}",
        inspect_remote(&new_base)["manifests"][0]["digest"]
            .as_str()
            .unwrap()
    ))["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    refused(
        &project,
        &[
            &app,
            "--base",
            &new_base,
            "--old-base",
            &new_base,
            "-t",
            &patched,
        ],
        &[
            &format!(
                "linux/amd64: the image does not start with the old base's layers: layer 1 is {old_layer} in the image but {wrong_layer} in the old base {new_base}"
            ),
            "--old-base",
        ],
    );
    refused(
        &project,
        &[
            &format!("{h}/base/busybox:1"),
            "--base",
            &new_base,
            "-t",
            &patched,
        ],
        &[
            "does not name its base",
            "org.opencontainers.image.base.name",
            "--old-base REF",
        ],
    );
    refused(
        &project,
        &[
            &app,
            "--base",
            &format!("{h}/base/busybox:2-no-arm64"),
            "-t",
            &patched,
        ],
        &["has no linux/arm64; it offers: linux/amd64, linux/arm/v7"],
    );
    refused(
        &project,
        &[
            &app,
            "--base",
            &new_base,
            "-t",
            &patched,
            "-t",
            &format!("{h}/other/app:1"),
        ],
        &["same repository"],
    );
    assert_eq!(writes(&reg), before, "a refused rebase writes nothing");
    assert_eq!(reg.get("/v2/team/app/manifests/1.0-patched").0, 404);

    // The rebase: only the two new configs are uploaded; the new base's layers
    // are mounted from base/busybox, the app layers are already in team/app.
    let mark = reg.access_log().lines().count();
    let report = rebase_json(&project, &[&app, "--base", &new_base, "-t", &patched]);
    let digest = report["digest"].as_str().unwrap();
    assert_eq!(report["targets"], json!([format!("{patched}@{digest}")]));
    assert_eq!(
        inspect_remote(&patched)["manifests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let app_layers = check_rebased(h, &app, &patched, "2");
    assert_eq!(app_layers.len(), 3, "files layer (shared) and two binaries");
    let push = &report["push"];
    assert_eq!(push["uploaded"], 2, "{report}");
    // Two recompressed busybox layers, and the marker layer both platforms share.
    assert_eq!(push["mounted"], 3, "{report}");
    assert_eq!(push["existing"], 3, "{report}");
    for img in list(&report["images"]) {
        assert_eq!(
            (
                img["old_base_layers"].clone(),
                img["new_base_layers"].clone()
            ),
            (json!(1), json!(2))
        );
        assert_eq!(img["app_layers"], 2);
    }

    // Into another repository: app layers mounted from team/app; no layer is
    // downloaded or uploaded by either rebase.
    let copy = format!("{h}/team/app-copy:1.0");
    let again = rebase_json(&project, &[&app, "--base", &new_base, "-t", &copy]);
    assert_eq!(
        again["digest"], report["digest"],
        "a rebase is reproducible"
    );
    assert_eq!(again["push"]["mounted"], 3 + 3, "{again}");
    assert_eq!(again["push"]["uploaded"], 2, "only the configs: {again}");
    for d in &app_layers {
        assert_eq!(
            moved(&reg, mark, "PUT", d),
            Vec::<String>::new(),
            "uploaded"
        );
        assert_eq!(
            moved(&reg, mark, "GET", d),
            Vec::<String>::new(),
            "downloaded"
        );
        let mounts = moved(
            &reg,
            mark,
            "POST",
            &format!("/v2/team/app-copy/blobs/uploads/?mount={d}&from=team/app "),
        );
        assert_eq!(mounts.len(), 1, "app layer {d} mounted from team/app once");
        assert!(mounts[0].contains("\" 201 "), "{mounts:?}");
    }

    check_runs(
        &format!("docker://{patched}"),
        &["--src-tls-verify=false"],
        ptmp.path(),
    );

    // Rebased again onto 1, without -t: the tag is overwritten, and the result is
    // the image first built, to the byte.
    let back = rebase_json(
        &project,
        &[&patched, "--base", &format!("{h}/base/busybox:1")],
    );
    assert_eq!(
        back["targets"],
        json!([format!("{patched}@{}", back["digest"].as_str().unwrap())])
    );
    let (_, original) = reg.get("/v2/team/app/manifests/1.0");
    let (_, now) = reg.get("/v2/team/app/manifests/1.0-patched");
    let body = |r: &str| r.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    assert_eq!(body(&now), body(&original));
}

#[test]
fn rebases_a_layout_onto_a_docker_base_with_oci_layer_types() {
    require_image_tools();
    let reg = Registry::start("");
    let h = &reg.host;
    let (_btmp, v1, _) = bases(&reg);
    let (ptmp, project) = copy_example("hello-rust");
    let out = ptmp.path().join("out");
    let layout = out.to_str().unwrap();
    build(
        &project,
        &format!("{h}/base/busybox:1"),
        &["-t", "app:1.0", "--oci-layout", layout],
    );
    let docker = format!("{h}/base/busybox:2-docker");
    assert_eq!(
        inspect_remote(&docker)["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );

    // The old base from a layout (busybox 1, as pushed), the new from a registry.
    let report = rebase_json(
        &project,
        &[
            &format!("oci:{layout}:1.0"),
            "--base",
            &docker,
            "--old-base",
            &format!("oci:{}:1", v1.display()),
            "-t",
            &format!("oci:{layout}:1.0-patched"),
        ],
    );
    assert_eq!(
        report["targets"],
        json!([format!(
            "oci:{layout}:1.0-patched@{}",
            report["digest"].as_str().unwrap()
        )])
    );
    verify_blobs(&out);
    let (old, new) = (skopeo_raw(&out, "1.0"), skopeo_raw(&out, "1.0-patched"));
    assert_eq!(new["mediaType"], "application/vnd.oci.image.index.v1+json");
    let docker_index = inspect_remote(&docker);
    for entry in list(&new["manifests"]) {
        let m = read_blob(&out, entry["digest"].as_str().unwrap());
        let was = read_blob(
            &out,
            entry_for(&old, &entry["platform"])["digest"]
                .as_str()
                .unwrap(),
        );
        let base_digest = entry_for(&docker_index, &entry["platform"])["digest"].clone();
        let b = inspect_remote(&format!(
            "{h}/base/busybox@{}",
            base_digest.as_str().unwrap()
        ));
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        let layers = list(&m["layers"]);
        for (l, bl) in layers.iter().zip(list(&b["layers"])) {
            assert_eq!(
                bl["mediaType"],
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            );
            assert_eq!(
                l["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            assert_eq!(
                (&l["digest"], &l["size"]),
                (&bl["digest"], &bl["size"]),
                "same bytes"
            );
        }
        assert_eq!(layers[2..], list(&was["layers"])[1..]);
        assert_eq!(
            m["annotations"]["org.opencontainers.image.base.name"],
            docker
        );
        assert_eq!(
            m["annotations"]["org.opencontainers.image.base.digest"],
            base_digest
        );
    }
    check_runs(&format!("oci:{layout}:1.0-patched"), &[], ptmp.path());

    // Back onto 1 without -t (old base from the annotations): the tag is
    // overwritten with the image first built.
    rebase_json(
        &project,
        &[
            &format!("oci:{layout}:1.0-patched"),
            "--base",
            &format!("{h}/base/busybox:1"),
        ],
    );
    assert_eq!(skopeo_raw(&out, "1.0-patched"), old);
    verify_blobs(&out);
}
