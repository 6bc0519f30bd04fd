//! `xarch inspect` against real registries and layouts, checked against skopeo:
//! raw bytes identical, their sha256 the digest reported, every platform, manifest
//! and layer digest in the tree, configs as skopeo reads them.

use crate::common;

use std::process::{Command, Output};

use common::registry::*;
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn inspect(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    run_ok(
        xarch()
            .arg("inspect")
            .args(args)
            .env("XARCH_CACHE_DIR", cache.path()),
    )
}

fn inspect_fails(args: &[&str]) -> String {
    let cache = tempfile::tempdir().unwrap();
    let out = xarch()
        .arg("inspect")
        .args(args)
        .env("XARCH_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    stderr(&out)
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    run_ok(Command::new("skopeo").arg("inspect").args(args)).stdout
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every blob of a manifest (config, then layers) as skopeo serves it.
fn blob_digests(manifest: &Value) -> Vec<String> {
    std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().unwrap())
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_oci_index_and_a_docker_list_read_as_skopeo_reads_them() {
    require_image_tools();
    let reg = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    skopeo_push(&base, &format!("{}/base/busybox:oci", reg.host), false);
    skopeo_push(&base, &format!("{}/base/busybox:docker", reg.host), true);

    for (tag, index_type) in [("oci", OCI_INDEX), ("docker", DOCKER_LIST)] {
        let r = format!("{}/base/busybox:{tag}", reg.host);
        let docker_r = format!("docker://{r}");
        let raw = inspect(&["--raw", &r]).stdout;
        assert_eq!(
            raw,
            skopeo(&["--raw", "--tls-verify=false", &docker_r]),
            "{tag}: --raw must be the bytes as served"
        );
        let digest = sha256(&raw);
        let report = json(&inspect(&["--json", &r]));
        assert_eq!(report["digest"], digest.as_str());
        assert_eq!(report["media_type"], index_type);
        assert_eq!(report["size"], raw.len());
        let platforms: Vec<&str> = report["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["platform"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);

        // The tree names the index, every platform, manifest and blob.
        let tree = stdout(&inspect(&[&r]));
        assert!(
            tree.contains(&digest) && tree.contains(index_type),
            "{tree}"
        );
        let index: Value = serde_json::from_slice(&raw).unwrap();
        for (n, m) in index["manifests"].as_array().unwrap().iter().enumerate() {
            let child = m["digest"].as_str().unwrap();
            assert!(
                tree.contains(&format!("{}  {child}", platforms[n])),
                "{tree}"
            );
            let manifest = inspect_remote(&format!("{}/base/busybox@{child}", reg.host));
            for d in blob_digests(&manifest) {
                assert!(tree.contains(&d), "{tag}: {d} missing from\n{tree}");
            }
            assert_eq!(
                report["images"][n]["layers"][0]["digest"],
                manifest["layers"][0]["digest"]
            );
        }

        // One platform: its manifest, and its config, byte for byte.
        let arm64 = index["manifests"][1]["digest"].as_str().unwrap();
        let pinned = format!("docker://{}/base/busybox@{arm64}", reg.host);
        assert_eq!(
            inspect(&["--raw", "--platform", "linux/arm64", &r]).stdout,
            skopeo(&["--raw", "--tls-verify=false", &pinned])
        );
        assert_eq!(
            inspect(&["--raw", "--config", "--platform", "arm64", &r]).stdout,
            skopeo(&[
                "--raw",
                "--config",
                "--tls-verify=false",
                "--override-os",
                "linux",
                "--override-arch",
                "arm64",
                &docker_r
            ])
        );
        let config = stdout(&inspect(&["--config", "--platform", "linux/arm/v7", &r]));
        for want in [
            "linux/arm/v7",
            "env         PATH=/bin",
            r#"cmd         ["sh"]"#,
            "entrypoint  (none)",
            "labels      base=busybox",
            "busybox-static from Debian",
        ] {
            assert!(config.contains(want), "{want} missing from\n{config}");
        }

        // A single manifest by digest: its platform comes from its config.
        let single = format!("{}/base/busybox@{arm64}", reg.host);
        let raw_single = inspect(&["--raw", &single]).stdout;
        assert_eq!(sha256(&raw_single), arm64);
        let tree = stdout(&inspect(&[&single]));
        assert!(tree.contains("platform    linux/arm64"), "{tree}");
        let manifest: Value = serde_json::from_slice(&raw_single).unwrap();
        for d in blob_digests(&manifest) {
            assert!(tree.contains(&d), "{d} missing from\n{tree}");
        }
        let one = json(&inspect(&["--json", "--config", &single]));
        assert_eq!(one["architecture"], "arm64");
    }

    let r = format!("{}/base/busybox:oci", reg.host);
    let err = inspect_fails(&["--platform", "linux/s390x", &r]);
    assert!(
        err.contains("has no linux/s390x; it offers: linux/amd64, linux/arm64, linux/arm/v7"),
        "{err}"
    );
    let err = inspect_fails(&["--config", &r]);
    assert!(err.contains("choose one with --platform"), "{err}");
    let err = inspect_fails(&[&format!("{}/base/busybox:nope", reg.host)]);
    assert!(err.contains("MANIFEST_UNKNOWN"), "{err}");
}

#[test]
fn a_layout_built_on_a_registry_base_shows_base_created_and_config() {
    require_image_tools();
    let reg = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    let base_ref = format!("{}/base/busybox:1", reg.host);
    skopeo_push(&base, &base_ref, false);
    let (ptmp, project) = copy_example("hello-rust");
    let layout = ptmp.path().join("out");
    run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64,linux/arm64", "--base", &base_ref])
            .args(["-t", "app:1", "--oci-layout"])
            .arg(&layout)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("CARGO_TARGET_DIR", shared_target())
            .env("XARCH_CACHE_DIR", project.join("xarch-cache")),
    );
    let src = format!("oci:{}:1", layout.display());
    let raw = inspect(&["--raw", &src]).stdout;
    assert_eq!(raw, skopeo(&["--raw", &src]));
    // The layout's only image needs no tag.
    let untagged = format!("oci:{}", layout.display());
    assert_eq!(inspect(&["--raw", &untagged]).stdout, raw);

    let tree = stdout(&inspect(&[&src]));
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert!(tree.contains(&sha256(&raw)), "{tree}");
    assert!(tree.contains("created     2023-11-14T22:13:20Z"), "{tree}");
    let base_index = inspect_remote(&base_ref);
    for (n, platform) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
        let child = index["manifests"][n]["digest"].as_str().unwrap();
        assert!(tree.contains(&format!("{platform}  {child}")), "{tree}");
        for d in blob_digests(&read_blob(&layout, child)) {
            assert!(tree.contains(&d), "{d} missing from\n{tree}");
        }
        let base_digest = base_index["manifests"][n]["digest"].as_str().unwrap();
        assert!(
            tree.contains(&format!("base        {base_ref}@{base_digest}")),
            "{tree}"
        );
    }

    let config = stdout(&inspect(&["--config", "--platform", "linux/arm64", &src]));
    for want in [
        r#"entrypoint  ["/usr/local/bin/hello-rust"]"#,
        "GREETING=hello",
        "PATH=/bin",
        "busybox-static from Debian",
        "xarch: hello-rust",
    ] {
        assert!(config.contains(want), "{want} missing from\n{config}");
    }
    let arm64 = index["manifests"][1]["digest"].as_str().unwrap();
    let m = read_blob(&layout, arm64);
    let config_raw = inspect(&["--raw", "--config", "--platform", "linux/arm64", &src]).stdout;
    assert_eq!(sha256(&config_raw), m["config"]["digest"].as_str().unwrap());
}

#[test]
fn a_registry_that_needs_a_login_gets_it_and_never_sees_it_printed() {
    require("htpasswd", "apt-get install -y apache2-utils");
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = tmp.path().join("htpasswd");
    run_ok(
        Command::new("htpasswd")
            .args(["-Bbc"])
            .arg(&htpasswd)
            .args(["alice", "s3cret-pw"]),
    );
    let reg = Registry::start(&format!(
        "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
        htpasswd.display()
    ));
    let base = busybox_layout(tmp.path());
    let r = format!("{}/team/bb:1", reg.host);
    skopeo_push_with(&base, &r, &["--dest-creds", "alice:s3cret-pw"]);

    let docker_config = tmp.path().join("docker");
    let err = inspect_fails_with(&r, &docker_config);
    assert!(
        err.contains(&format!("requires a login: run `xarch login {}`", reg.host)),
        "{err}"
    );
    std::fs::create_dir_all(&docker_config).unwrap();
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "alice:s3cret-pw",
    );
    std::fs::write(
        docker_config.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host),
    )
    .unwrap();
    let out = run_ok(
        xarch()
            .args(["inspect", &r])
            .env("DOCKER_CONFIG", &docker_config)
            .env("XARCH_CACHE_DIR", tmp.path().join("cache")),
    );
    assert!(stdout(&out).contains("linux/arm/v7"), "{}", stdout(&out));
    for text in [stdout(&out), stderr(&out)] {
        assert!(
            !text.contains("s3cret-pw") && !text.contains(&auth),
            "{text}"
        );
    }
}

fn inspect_fails_with(r: &str, docker_config: &std::path::Path) -> String {
    let out = xarch()
        .args(["inspect", r])
        .env("DOCKER_CONFIG", docker_config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    stderr(&out)
}
