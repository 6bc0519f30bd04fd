//! Referrers (OCI 1.1): artifacts whose `subject` is an image travel with it.
//! Against Debian's Distribution (2.8, no referrers API): a push keeps the
//! `sha256-<hex>` fallback tag — an index read by plain HTTP here too — and two
//! pushes of different referrers at once both stay listed; a layout keeps them
//! as untagged `index.json` entries; `xarch referrers` lists them either way.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::*;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

fn put_blob(layout: &Path, b: &[u8]) -> (String, usize) {
    let d = sha(b);
    std::fs::write(layout.join("blobs/sha256").join(&d[7..]), b).unwrap();
    (d, b.len())
}

/// Adds an artifact manifest whose subject is `subject` (an index entry) to
/// the layout, as an untagged index.json entry; returns its digest.
fn attach(layout: &Path, subject: &Value, artifact_type: &str, body: &str) -> String {
    let (cfg, cfg_size) = put_blob(layout, b"{}");
    let (layer, layer_size) = put_blob(layout, body.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": layer, "size": layer_size}],
        "subject": {"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]},
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let (d, size) = put_blob(layout, &bytes);
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": d, "size": size, "artifactType": artifact_type,
    }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    d
}

fn greeter_layout(tmp: &Path) -> PathBuf {
    let p = tmp.join("g");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("xarch.toml"),
        "sources = [\"m.c\"]\noutput = \"g\"\n",
    )
    .unwrap();
    std::fs::write(p.join("m.c"), "int main(void) { return 0; }\n").unwrap();
    let layout = tmp.join("out");
    run_ok(
        xarch()
            .arg("build")
            .arg(&p)
            .args([
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                "g:1",
                "--oci-layout",
            ])
            .arg(&layout)
            .env("XARCH_CACHE_DIR", tmp.join("cache")),
    );
    layout
}

fn listed(out: &std::process::Output) -> Vec<(String, Vec<String>)> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let r = a["referrers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["digest"].as_str().unwrap().to_string())
                .collect();
            (a["subject"].as_str().unwrap().to_string(), r)
        })
        .collect()
}

#[test]
fn referrers_travel_through_the_fallback_tag_and_layouts() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let layout = greeter_layout(tmp.path());
    let index = skopeo_raw(&layout, "1");
    let amd64 = index["manifests"][0].clone();
    let sbom = attach(
        &layout,
        &amd64,
        "application/spdx+json",
        r#"{"spdxVersion":"SPDX-2.3"}"#,
    );

    // In the layout: listed under the amd64 image.
    let out = run_ok(
        xarch()
            .args([
                "referrers",
                &format!("oci:{}:1", layout.display()),
                "--json",
            ])
            .env("XARCH_CACHE_DIR", &cache),
    );
    let l = listed(&out);
    assert_eq!(
        l[1],
        (
            amd64["digest"].as_str().unwrap().to_string(),
            vec![sbom.clone()]
        )
    );
    assert!(l[0].1.is_empty() && l[2].1.is_empty(), "{l:?}");

    // Pushed: the registry has no referrers API, so the fallback tag holds it.
    let reg = Registry::start("");
    let target = format!("{}/team/g:1", reg.host);
    run_ok(
        xarch()
            .args(["push", &format!("oci:{}:1", layout.display()), &target])
            .env("XARCH_CACHE_DIR", &cache),
    );
    let hex = &amd64["digest"].as_str().unwrap()[7..];
    let (status, body) = reg.get(&format!("/v2/team/g/manifests/sha256-{hex}"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&sbom),
        "fallback tag lacks the referrer: {body}"
    );
    assert!(body.contains("application/spdx+json"), "{body}");
    let out = run_ok(
        xarch()
            .args(["referrers", &target, "--json"])
            .env("XARCH_CACHE_DIR", &cache),
    );
    assert_eq!(listed(&out)[1].1, vec![sbom.clone()]);
    let out = run_ok(
        xarch()
            .args([
                "referrers",
                &target,
                "--artifact-type",
                "application/vnd.cyclonedx+json",
                "--json",
            ])
            .env("XARCH_CACHE_DIR", &cache),
    );
    assert!(
        listed(&out)[1].1.is_empty(),
        "the type filter lets nothing else through"
    );

    // Two pushes of other referrers of the same image at once: both kept.
    let a = attach(
        &layout,
        &amd64,
        "application/vnd.cyclonedx+json",
        r#"{"bomFormat":"CycloneDX"}"#,
    );
    let b = attach(
        &layout,
        &amd64,
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        r#"{"sig":1}"#,
    );
    let one = |only: &str, other: &str| {
        // Each pusher sees the image with one of the two new referrers.
        let copy = tmp.path().join(format!("copy-{only}"));
        let _ = std::fs::remove_dir_all(&copy);
        run_ok(Command::new("cp").arg("-r").arg(&layout).arg(&copy));
        let idx = copy.join("index.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&idx).unwrap()).unwrap();
        v["manifests"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["digest"] != other);
        std::fs::write(&idx, serde_json::to_vec(&v).unwrap()).unwrap();
        let mut c = xarch();
        c.args(["push", &format!("oci:{}:1", copy.display()), &target])
            .env("XARCH_CACHE_DIR", tmp.path().join(format!("cache-{only}")));
        c.spawn().unwrap()
    };
    let (mut p1, mut p2) = (one(&a, &b), one(&b, &a));
    assert!(p1.wait().unwrap().success() && p2.wait().unwrap().success());
    let (_, body) = reg.get(&format!("/v2/team/g/manifests/sha256-{hex}"));
    for d in [&sbom, &a, &b] {
        assert!(
            body.contains(d.as_str()),
            "{d} lost from the fallback tag: {body}"
        );
    }

    // From the registry into a new layout: the referrers come along.
    let copy = tmp.path().join("mirror");
    run_ok(
        xarch()
            .args(["push", &target, &format!("oci:{}:1", copy.display())])
            .env("XARCH_CACHE_DIR", &cache),
    );
    let out = run_ok(
        xarch()
            .args(["referrers", &format!("oci:{}:1", copy.display()), "--json"])
            .env("XARCH_CACHE_DIR", &cache),
    );
    let mut got = listed(&out)[1].1.clone();
    got.sort();
    let mut want = vec![sbom, a, b];
    want.sort();
    assert_eq!(got, want);
    verify_blobs(&copy);
}
