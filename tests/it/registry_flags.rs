//! Registry flags against a real Distribution registry: `--offline` (cache only,
//! never the network), `--chunk-size` (PATCH uploads) and `-j 1`.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::registry::*;
use common::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// The registry's `Docker-Content-Digest` for a manifest.
fn manifest_digest(reg: &Registry, path: &str) -> String {
    let (status, resp) = reg.get(path);
    assert_eq!(status, 200, "{resp}");
    resp.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Docker-Content-Digest in {resp}"))
}

/// `xarch build` of hello-rust for amd64 and arm64 into `layout` on `base`.
fn build_layout(project: &Path, base: &str, layout: &Path, extra: &[&str]) -> Output {
    xarch()
        .arg("build")
        .arg(project)
        .args(["--platform", "linux/amd64,linux/arm64", "--base", base])
        .args(["-t", "app:1", "--json", "--oci-layout"])
        .arg(layout)
        .args(extra)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("XARCH_CACHE_DIR", project.join("xarch-cache"))
        .output()
        .unwrap()
}

fn index_digest(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["index"]["digest"].as_str().unwrap().to_string()
}

fn assert_offline_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for n in needles.iter().chain(&["--offline forbids fetching"]) {
        assert!(err.contains(n), "stderr lacks `{n}`:\n{err}");
    }
    assert!(
        !err.contains("Compiling"),
        "must fail before compiling: {err}"
    );
}

#[test]
fn offline_builds_come_from_the_cache_and_never_touch_the_network() {
    let reg = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    skopeo_push(&base, &format!("{}/base/busybox:1", reg.host), false);
    let digest = manifest_digest(&reg, "/v2/base/busybox/manifests/1");
    let pinned = format!("{}/base/busybox@{digest}", reg.host);
    let tagged = format!("{}/base/busybox:1", reg.host);
    let (_ptmp, project) = copy_example("hello-rust");
    let layout = project.join("out");
    let online = index_digest(&build_layout(&project, &pinned, &layout, &[]));
    let by_tag = index_digest(&build_layout(&project, &tagged, &layout, &[]));

    // The registry is gone: its port is dead.
    let host = reg.host.clone();
    drop(reg);
    let out = build_layout(&project, &pinned, &layout, &["--offline"]);
    assert_eq!(index_digest(&out), online, "same inputs, same image");
    assert!(!stderr(&out).contains("Fetching"), "{}", stderr(&out));
    // A tag resolves to the digest it had last time.
    let out = build_layout(&project, &tagged, &layout, &["--offline"]);
    assert_eq!(index_digest(&out), by_tag);

    // A new layout needs the base layers, which only the dead registry has.
    let other = project.join("other");
    let out = build_layout(&project, &pinned, &other, &["--offline"]);
    assert_offline_error(&out, &["base layer sha256:", &pinned]);

    // Bases never resolved are not in the cache.
    let unknown = format!("{host}/base/other:1");
    let out = build_layout(&project, &unknown, &layout, &["--offline"]);
    assert_offline_error(&out, &[&format!("{unknown} is not in the cache")]);
    let unknown = format!("{host}/base/busybox@sha256:{}", "0".repeat(64));
    let out = build_layout(&project, &unknown, &layout, &["--offline"]);
    assert_offline_error(&out, &[&format!("{unknown} is not in the cache")]);
}

/// `xarch push` of the busybox layout to `dest` with extra flags.
fn push(base: &Path, dest: &str, flags: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    run_ok(
        xarch()
            .arg("push")
            .arg(format!("oci:{}:1", base.display()))
            .arg(dest)
            .args(flags)
            .env("XARCH_CACHE_DIR", cache.path()),
    )
}

/// Copies every platform of `reference` into a layout with skopeo (which checks
/// every digest) and returns the number of blobs, each verified again.
fn skopeo_verify(reference: &str, work: &Path) -> usize {
    let dir = work.join(reference.replace(['/', ':'], "_"));
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--all", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:x", dir.display())),
    );
    verify_blobs(&dir)
}

/// Sizes of the blobs (configs, layers) of the busybox layout.
fn blob_sizes(base: &Path) -> Vec<u64> {
    let index = skopeo_raw(base, "1");
    let mut sizes = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let m = read_blob(base, m["digest"].as_str().unwrap());
        sizes.push(m["config"]["size"].as_u64().unwrap());
        for l in m["layers"].as_array().unwrap() {
            sizes.push(l["size"].as_u64().unwrap());
        }
    }
    sizes
}

#[test]
fn chunk_size_uploads_in_patches_and_one_job_pushes_everything() {
    require_image_tools();
    let reg = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    let sizes = blob_sizes(&base);
    // Blobs over 1 MiB go up in 1 MiB PATCHes; the test needs at least one.
    let patches: u64 = sizes
        .iter()
        .filter(|s| **s > MIB)
        .map(|s| s.div_ceil(MIB))
        .sum();
    assert!(patches >= 2, "no busybox layer is over 1 MiB: {sizes:?}");

    push(
        &base,
        &format!("{}/chunked:1", reg.host),
        &["--chunk-size", "1"],
    );
    assert_eq!(
        reg.requests("PATCH", "/v2/chunked/blobs/uploads/") as u64,
        patches,
        "{}",
        reg.access_log()
    );
    assert_eq!(
        reg.requests("PUT", "/v2/chunked/blobs/uploads/"),
        sizes.len()
    );
    assert_eq!(
        skopeo_verify(&format!("{}/chunked:1", reg.host), tmp.path()),
        1 + 3 + sizes.len()
    );

    // Without the flag (or with 0) every blob is one PUT.
    for (repo, flags) in [("whole", &[][..]), ("zero", &["--chunk-size", "0"][..])] {
        push(&base, &format!("{}/{repo}:1", reg.host), flags);
        assert_eq!(reg.requests("PATCH", &format!("/v2/{repo}/")), 0);
        assert_eq!(
            reg.requests("PUT", &format!("/v2/{repo}/blobs/uploads/")),
            sizes.len()
        );
    }

    let out = push(
        &base,
        &format!("{}/serial:1", reg.host),
        &["-j", "1", "--json"],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stats"]["uploaded"], sizes.len(), "{report}");
    assert_eq!(
        inspect_remote(&format!("{}/serial:1", reg.host)),
        skopeo_raw(&base, "1")
    );
    skopeo_verify(&format!("{}/serial:1", reg.host), tmp.path());
}

/// Lines of `err` whose status verb is `verb`.
fn lines<'a>(err: &'a str, verb: &str) -> Vec<&'a str> {
    err.lines()
        .filter(|l| l.trim_start().starts_with(&format!("{verb} ")))
        .collect()
}

/// Distinct configs and layers of the pushed index `reference`.
fn distinct_blobs(reference: &str, repo: &str, host: &str) -> usize {
    let index = inspect_remote(reference);
    let mut blobs = std::collections::BTreeSet::new();
    for m in index["manifests"].as_array().unwrap() {
        let m = inspect_remote(&format!("{host}/{repo}@{}", m["digest"].as_str().unwrap()));
        blobs.insert(m["config"]["digest"].to_string());
        for l in m["layers"].as_array().unwrap() {
            blobs.insert(l["digest"].to_string());
        }
    }
    blobs.len()
}

#[test]
fn push_progress_is_plain_lines_off_a_terminal_and_nothing_with_quiet() {
    require_image_tools();
    let src = Registry::start("");
    let dst = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    skopeo_push(&base, &format!("{}/base/busybox:1", src.host), false);
    let (_ptmp, project) = copy_example("hello-rust");
    let build = |tag: &str, flags: &[&str]| {
        let mut c = xarch();
        c.arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64,linux/arm64", "--push", "--json"])
            .args(["--base", &format!("{}/base/busybox:1", src.host), "-t", tag])
            .args(flags)
            .env("CARGO_TARGET_DIR", shared_target())
            .env("XARCH_CACHE_DIR", project.join("xarch-cache"));
        let out = run_ok(&mut c);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (stderr(&out), report["push"].clone())
    };

    // Another registry: the base layers are copied, the rest uploaded.
    let tag = format!("{}/team/app:1", dst.host);
    let (err, stats) = build(&tag, &[]);
    let blobs = distinct_blobs(&tag, "team/app", &dst.host);
    let from = format!(" from {}/base/busybox", src.host);
    let copied = lines(&err, "Copied");
    assert_eq!(copied.len(), 2, "{err}");
    assert!(copied.iter().all(|l| l.contains(&from)), "{err}");
    assert_eq!(lines(&err, "Uploaded").len(), blobs - 2, "{err}");
    assert_eq!(stats["copied"], 2);
    assert_eq!(stats["uploaded"], blobs - 2, "each blob is counted once");
    assert!(stats["copied_bytes"].as_u64().unwrap() > 0);
    let summary = lines(&err, "Pushed");
    let expected = format!("Pushed {blobs} blobs ({} uploaded ", blobs - 2);
    assert!(
        summary.len() == 1 && summary[0].trim_start().starts_with(&expected),
        "{err}"
    );
    assert!(summary[0].contains(" copied ") && summary[0].contains(") and 3 manifests in "));
    assert!(summary[0].ends_with('s'), "{err}");

    // Again: everything is already there.
    let (err, stats) = build(&tag, &[]);
    assert_eq!(lines(&err, "Skipped").len(), blobs, "{err}");
    assert!(
        lines(&err, "Skipped")[0].ends_with(", already present"),
        "{err}"
    );
    assert_eq!(stats["existing"], blobs);
    let summary = lines(&err, "Pushed")[0].trim_start();
    let expected =
        format!("Pushed {blobs} blobs ({blobs} present) and 3 manifests (3 present) in ");
    assert!(summary.starts_with(&expected), "{err}");

    // The base's own registry mounts the base layers, though the cache now has
    // them too.
    let (err, stats) = build(&format!("{}/team/app:1", src.host), &[]);
    let mounted = lines(&err, "Mounted");
    assert_eq!(mounted.len(), 2, "{err}");
    assert!(mounted.iter().all(|l| l.contains(&from)), "{err}");
    assert_eq!(stats["mounted"], 2);

    // -q: nothing at all on stderr, though every blob is uploaded.
    let (err, stats) = build(&format!("{}/team/quiet:1", dst.host), &["-q"]);
    assert_eq!(err, "");
    assert_eq!(stats["uploaded"], blobs);
}
