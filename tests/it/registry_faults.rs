//! Registry faults a healthy Distribution never produces, injected by a proxy in
//! front of a real one: corrupted blobs, oversized manifests, 503/429 with
//! `Retry-After`, dropped connections.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::proxy::{Fault, Proxy, corrupt};
use common::registry::*;
use common::*;
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// (config digest, layer digest) of the busybox layout's image for `arch`.
fn busybox_blobs(layout: &Path, arch: &str) -> (String, String) {
    let top = skopeo_raw(layout, "1");
    let entry = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap();
    let m = read_blob(layout, entry["digest"].as_str().unwrap());
    (
        m["config"]["digest"].as_str().unwrap().to_string(),
        m["layers"][0]["digest"].as_str().unwrap().to_string(),
    )
}

/// The digest the proxy's corruption turns `digest`'s blob into.
fn corrupted_digest(layout: &Path, digest: &str) -> String {
    let mut bytes = std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap();
    corrupt(&mut bytes);
    sha(&bytes)
}

/// `xarch build` of hello-rust for amd64 and arm64 on `base`, plus `extra` flags.
fn build(project: &Path, base: &str, extra: &[&str]) -> Output {
    xarch()
        .arg("build")
        .arg(project)
        .args(["--platform", "linux/amd64,linux/arm64", "--base", base])
        .args(extra)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("XARCH_CACHE_DIR", project.join("xarch-cache"))
        .output()
        .unwrap()
}

fn assert_fails(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`:\n{err}");
    }
    err
}

fn in_cache(project: &Path, digest: &str) -> bool {
    project
        .join("xarch-cache/blobs/sha256")
        .join(&digest[7..])
        .exists()
}

#[test]
fn a_corrupted_base_blob_fails_the_build_names_both_digests_and_pushes_nothing() {
    require_image_tools();
    let src = Registry::start("");
    let dst = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    skopeo_push(&base, &format!("{}/base/busybox:1", src.host), false);
    let (config, layer) = busybox_blobs(&base, "amd64");
    let (_ptmp, project) = copy_example("hello-rust");
    let tag = format!("{}/team/app:1", dst.host);

    // A corrupted config is caught while resolving the base, before compiling.
    let proxy = Proxy::start(&src.host, Fault::CorruptBlob(config.clone()));
    let bad = corrupted_digest(&base, &config);
    let out = build(
        &project,
        &format!("{}/base/busybox:1", proxy.host),
        &["--push", "-t", &tag],
    );
    let corrupt = format!("blob {config} from {}/base/busybox is corrupt", proxy.host);
    let err = assert_fails(&out, &[&corrupt, &bad, "digest mismatch"]);
    assert!(!err.contains("Compiling"), "{err}");
    assert_eq!(proxy.faults(), 1);
    assert!(!in_cache(&project, &config) && !in_cache(&project, &bad));

    // A corrupted base layer is caught while copying it to the other registry.
    let proxy = Proxy::start(&src.host, Fault::CorruptBlob(layer.clone()));
    let bad = corrupted_digest(&base, &layer);
    let base_ref = format!("{}/base/busybox:1", proxy.host);
    let out = build(&project, &base_ref, &["--push", "-t", &tag]);
    let corrupt = format!("blob {layer} from {}/base/busybox is corrupt", proxy.host);
    assert_fails(&out, &[&corrupt, &bad, "digest mismatch"]);
    assert!(proxy.faults() >= 1);
    assert!(!in_cache(&project, &layer) && !in_cache(&project, &bad));
    let (status, _) = dst.get("/v2/team/app/manifests/1");
    assert_eq!(status, 404, "nothing may be pushed under the tag");

    // Into a layout: the build fails and tags nothing.
    let layout = project.join("out");
    let out = build(
        &project,
        &base_ref,
        &["-t", "app:1", "--oci-layout", layout.to_str().unwrap()],
    );
    assert_fails(&out, &[&corrupt, &bad]);
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap_or_default();
    assert!(!index.contains("app:1"), "{index}");
    assert!(!layout.join("blobs/sha256").join(&bad[7..]).exists());
}

#[test]
fn an_oversized_manifest_is_refused_and_nothing_is_pushed() {
    let reg = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    skopeo_push(&base, &format!("{}/base/busybox:1", reg.host), false);
    let (_ptmp, project) = copy_example("hello-rust");
    // Refused by its Content-Length, and (chunked) while it is read.
    for chunked in [false, true] {
        let proxy = Proxy::start(&reg.host, Fault::HugeManifest { chunked });
        let out = build(
            &project,
            &format!("{}/base/busybox:1", proxy.host),
            &["--push", "-t", &format!("{}/team/app:1", reg.host)],
        );
        let err = assert_fails(
            &out,
            &[
                &format!("manifest {}/base/busybox:1", proxy.host),
                "larger than 4 MiB",
            ],
        );
        assert!(!err.contains("Compiling"), "{err}");
        assert_eq!(proxy.faults(), 1, "chunked: {chunked}");
    }
    let (status, _) = reg.get("/v2/team/app/manifests/1");
    assert_eq!(status, 404, "nothing may be pushed under the tag");
}

/// Pushes the busybox layout through a faulty proxy; returns the wall time.
fn push_through(proxy: &Proxy, base: &Path, repo: &str) -> Duration {
    let cache = tempfile::tempdir().unwrap();
    let start = Instant::now();
    run_ok(
        xarch()
            .arg("push")
            .arg(format!("oci:{}:1", base.display()))
            .arg(format!("{}/{repo}:1", proxy.host))
            .env("XARCH_CACHE_DIR", cache.path()),
    );
    start.elapsed()
}

#[test]
fn pushes_retry_503_and_429_after_retry_after_and_dropped_connections() {
    require_image_tools();
    let reg = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    let index = skopeo_raw(&base, "1");
    let cases = [
        ("unavailable", Fault::Status { n: 2, status: 503 }, 2),
        ("throttled", Fault::Status { n: 2, status: 429 }, 2),
        ("dropped", Fault::Drop { n: 1 }, 1),
    ];
    for (repo, fault, n) in cases {
        let proxy = Proxy::start(&reg.host, fault.clone());
        let took = push_through(&proxy, &base, repo);
        assert_eq!(proxy.faults(), n, "{fault:?}");
        assert!(proxy.requests() > n, "{fault:?}: nothing after the faults");
        if let Fault::Status { .. } = fault {
            assert!(
                took >= Duration::from_secs(1),
                "Retry-After: 1 was not honoured ({took:?})"
            );
        }
        // The real registry, asked directly, has the whole image.
        let pushed = inspect_remote(&format!("{}/{repo}:1", reg.host));
        assert_eq!(pushed, index, "{fault:?}");
        let work = tmp.path().join(repo);
        std::fs::create_dir_all(&work).unwrap();
        pull_platform(&format!("{}/{repo}:1", reg.host), "linux/arm64", &work);
    }
}
