//! The one image model: every command reads an image the same way. The same
//! layout (named without a tag) gives the same image to `run`, `push`,
//! `inspect`, `rebase` and `manifest create`; a base can come from a layout;
//! and a corrupt blob — tampered, truncated or too long, in a layout or in the
//! cache — is a clear "corrupt" error naming the file and both digests,
//! whichever command reads it.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::*;
use common::*;
use serde_json::Value;

/// A C program that prints $GREETING and exits 0.
fn greeter(dir: &Path) -> PathBuf {
    let p = dir.join("greeter");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("xarch.toml"),
        "sources = [\"main.c\"]\noutput = \"greeter\"\n",
    )
    .unwrap();
    std::fs::write(
        p.join("main.c"),
        "#include <stdio.h>\n#include <stdlib.h>\n\
         int main(void) { printf(\"greeting=%s\\n\", getenv(\"GREETING\")); return 0; }\n",
    )
    .unwrap();
    p
}

fn cmd(cache: &Path) -> Command {
    let mut c = xarch();
    c.env("XARCH_CACHE_DIR", cache);
    c
}

/// Builds the greeter for amd64 on `base` into `layout` as `tag`, greeting `g`.
fn build(project: &Path, cache: &Path, base: &str, layout: &Path, tag: &str, g: &str) -> Value {
    let out = run_ok(
        cmd(cache)
            .arg("build")
            .arg(project)
            .args(["--platform", "linux/amd64", "--base", base, "--json"])
            .args([
                "-t",
                &format!("greeter:{tag}"),
                "--env",
                &format!("GREETING={g}"),
            ])
            .arg("--oci-layout")
            .arg(layout),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn index_of(report: &Value) -> String {
    report["index"]["digest"].as_str().unwrap().to_string()
}

#[test]
fn one_layout_is_one_image_to_every_command_and_a_base_can_be_a_layout() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let busybox = busybox_layout(tmp.path());
    let base = format!("oci:{}:1", busybox.display());
    let project = greeter(tmp.path());
    let layout = tmp.path().join("out");
    // Two images in one layout: `oci:DIR` with no tag means `latest`.
    build(&project, &cache, &base, &layout, "1.0", "one");
    let latest = index_of(&build(&project, &cache, &base, &layout, "latest", "two"));
    let bare = format!("oci:{}", layout.display());

    // run: the base's busybox is there (a layout base), and the image is latest's.
    let out = run_ok(cmd(&cache).args(["run", &bare]));
    assert_eq!(stdout(&out), "greeting=two\n");
    // inspect
    let out = run_ok(cmd(&cache).args(["inspect", &bare, "--json"]));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["digest"], latest.as_str());
    let base_index = skopeo_raw(&busybox, "1");
    assert_eq!(
        shown["images"][0]["layers"][0]["digest"],
        read_blob(
            &busybox,
            base_index["manifests"][0]["digest"].as_str().unwrap()
        )["layers"][0]["digest"],
        "the base's layer comes first"
    );
    // push
    let reg = Registry::start("");
    let target = format!("{}/team/greeter:1", reg.host);
    let out = run_ok(cmd(&cache).args(["push", &bare, &target]));
    assert_eq!(stdout(&out).trim(), format!("{target}@{latest}"));
    // rebase onto the same base: the same image, so the same digest.
    let out = run_ok(cmd(&cache).args([
        "rebase",
        &bare,
        "--base",
        &base,
        "--old-base",
        &base,
        "-t",
        &format!("oci:{}:rebased", layout.display()),
        "--json",
    ]));
    let rebased: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rebased["digest"], latest.as_str());
    // manifest create takes the same image's platform manifest.
    let merged = format!("oci:{}:merged", tmp.path().join("merged").display());
    let out = run_ok(cmd(&cache).args(["manifest", "create", &merged, &bare, "--json"]));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let latest_index = skopeo_raw(&layout, "latest");
    assert_eq!(
        created["manifests"][0]["digest"],
        latest_index["manifests"][0]["digest"]
    );
    // The base's blobs were copied into the output layout, every one verified.
    assert!(verify_blobs(&layout) > 3);
}

/// Every command reading `image` fails with a "corrupt" error naming `file`
/// and both digests (or sizes), and exits 1.
fn assert_corrupt(cache: &Path, commands: &[Vec<String>], file: &Path, expected: &str) {
    for args in commands {
        let out: Output = cmd(cache).args(args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?} did not fail: {err}");
        assert!(err.contains("is corrupt"), "{args:?}: {err}");
        assert!(err.contains(&file.display().to_string()), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(b))
}

#[test]
fn a_corrupt_layout_blob_is_refused_by_every_command_naming_file_and_digests() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let busybox = busybox_layout(tmp.path());
    let base = format!("oci:{}:1", busybox.display());
    let project = greeter(tmp.path());
    let layout = tmp.path().join("out");
    build(&project, &cache, &base, &layout, "1", "hi");
    let image = format!("oci:{}:1", layout.display());
    let reg = Registry::start("");
    let commands = |what: &str| -> Vec<Vec<String>> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut all = vec![
            s(&["run", &image]),
            s(&["push", &image, &format!("{}/t/{what}:1", reg.host)]),
            s(&[
                "rebase",
                &image,
                "--base",
                &base,
                "--old-base",
                &base,
                "-t",
                &format!("{}/t/{what}:rebased", reg.host),
            ]),
            s(&[
                "manifest",
                "create",
                &format!("{}/t/{what}:merged", reg.host),
                &image,
            ]),
        ];
        if what == "config" {
            all.push(s(&["inspect", &image]));
        }
        all
    };
    let index = skopeo_raw(&layout, "1");
    let manifest = read_blob(&layout, index["manifests"][0]["digest"].as_str().unwrap());
    let blob_path = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };

    // A tampered config: same size, other bytes.
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let path = blob_path(&config);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let i = bad.iter().position(|b| *b == b'h').unwrap();
    bad[i] = b'H';
    std::fs::write(&path, &bad).unwrap();
    assert_corrupt(&cache, &commands("config"), &path, &config);
    std::fs::write(&path, &good).unwrap();

    // The app layer (the last one), truncated, then one byte too long.
    let layer = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = blob_path(&layer);
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, &good[..good.len() - 10]).unwrap();
    let sizes = format!(
        "expected {layer} ({} bytes), got sha256:{} ({} bytes)",
        good.len(),
        sha256_hex(&good[..good.len() - 10]),
        good.len() - 10
    );
    assert_corrupt(&cache, &commands("short"), &path, &sizes);
    let mut long = good.clone();
    long.push(0);
    std::fs::write(&path, &long).unwrap();
    let sizes = format!(
        "expected {layer} ({} bytes), got sha256:{} ({} bytes)",
        good.len(),
        sha256_hex(&long),
        good.len() + 1
    );
    assert_corrupt(&cache, &commands("long"), &path, &sizes);
    std::fs::write(&path, &good).unwrap();
    // Repaired: everything works again.
    run_ok(cmd(&cache).args(["push", &image, &format!("{}/t/ok:1", reg.host)]));
}

#[test]
fn a_tampered_cached_config_is_refused_offline_and_refetched_online() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let reg = Registry::start("");
    let busybox = busybox_layout(tmp.path());
    let base = format!("{}/base/busybox:1", reg.host);
    skopeo_push(&busybox, &base, false);
    let project = greeter(tmp.path());
    let layout = tmp.path().join("out");
    let first = build(&project, &cache, &base, &layout, "1", "hi");
    // The base's config, as cached by the first build, gets another Env.
    let out = run_ok(cmd(&cache).args(["inspect", &base, "--json"]));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = shown["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["platform"] == "linux/amd64")
        .unwrap()["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let cached = cache.join("blobs/sha256").join(&config[7..]);
    let text = std::fs::read_to_string(&cached).unwrap();
    std::fs::write(&cached, text.replace("PATH=/bin", "PATH=/evil")).unwrap();

    let out = cmd(&cache)
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/amd64", "--base", &base, "--offline"])
        .args(["-t", "greeter:2", "--env", "GREETING=hi", "--oci-layout"])
        .arg(&layout)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in [
        "is corrupt",
        &cached.display().to_string(),
        &config,
        "--offline forbids fetching",
    ] {
        assert!(err.contains(needle), "no `{needle}` in: {err}");
    }
    // Online: said, removed, fetched again; the image is what the registry holds.
    std::fs::write(&cached, text.replace("PATH=/bin", "PATH=/evil")).unwrap();
    let out = run_ok(
        cmd(&cache)
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64", "--base", &base, "--json"])
            .args(["-t", "greeter:1", "--env", "GREETING=hi", "--oci-layout"])
            .arg(&layout),
    );
    assert!(
        stderr(&out).contains("removed from the cache"),
        "{}",
        stderr(&out)
    );
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        index_of(&again),
        index_of(&first),
        "the same image as before"
    );
    assert_eq!(std::fs::read_to_string(&cached).unwrap(), text);
}

/// A registry that streams endless bytes for a config is cut off within a
/// chunk of the config's size, whichever command reads it, and nothing is
/// cached or written.
#[test]
fn an_endless_config_is_cut_off_in_every_command() {
    use common::liar::{Body, Liar, Reply};
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start("");
    let busybox = busybox_layout(tmp.path());
    skopeo_push(&busybox, &format!("{}/base/busybox:1", reg.host), false);
    // The amd64 config, as the base holds it.
    let top = skopeo_raw(&busybox, "1");
    let amd64 = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let config = read_blob(&busybox, &amd64)["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let cfg = config.clone();
    let liar = Liar::start(Some(&reg.host), move |req| {
        if req.method == "GET" && req.path().ends_with(&format!("/blobs/{cfg}")) {
            Reply::streaming(200, Body::Endless)
        } else {
            Reply::Forward
        }
    });
    let base = format!("{}/base/busybox:1", liar.host);
    let project = greeter(tmp.path());
    let target = format!("{}/team/x:1", liar.host);
    let commands: Vec<(&str, Vec<String>)> = vec![
        (
            "build",
            vec![
                "build".into(),
                project.display().to_string(),
                "--platform".into(),
                "linux/amd64".into(),
                "--base".into(),
                base.clone(),
                "--oci-layout".into(),
                tmp.path().join("out").display().to_string(),
            ],
        ),
        (
            "inspect",
            vec![
                "inspect".into(),
                base.clone(),
                "--platform".into(),
                "linux/amd64".into(),
            ],
        ),
        (
            "run",
            vec![
                "run".into(),
                "--platform".into(),
                "linux/amd64".into(),
                base.clone(),
            ],
        ),
        (
            "push",
            vec![
                "push".into(),
                base.clone(),
                format!("oci:{}:1", tmp.path().join("copy").display()),
            ],
        ),
        (
            "rebase",
            vec![
                "rebase".into(),
                base.clone(),
                "--base".into(),
                base.clone(),
                "--old-base".into(),
                base.clone(),
                "-t".into(),
                target.clone(),
            ],
        ),
        (
            "manifest create",
            vec![
                "manifest".into(),
                "create".into(),
                target.clone(),
                format!("{base}#linux/amd64"),
            ],
        ),
    ];
    for (name, args) in commands {
        let before = liar.sent();
        let cache = tmp.path().join(format!("cache-{}", name.replace(' ', "-")));
        let out = xarch()
            .args(&args)
            .env("XARCH_CACHE_DIR", &cache)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(&format!(
                "blob {config} is larger than its descriptor's size"
            )),
            "{name}: {err}"
        );
        assert!(
            liar.sent() - before < 4 << 20,
            "{name}: {} bytes were read",
            liar.sent() - before
        );
        assert!(
            !cache.join("blobs/sha256").join(&config[7..]).exists(),
            "{name}: the lie was cached"
        );
    }
    // The layout the push began is valid and names nothing: no lie got in.
    let copy = tmp.path().join("copy");
    if copy.exists() {
        let index: Value =
            serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"], serde_json::json!([]));
        verify_blobs(&copy);
    }
}
