//! OCI archives: `build -o oci-archive:FILE` writes every platform into one
//! reproducible tar that skopeo and `podman load` read; `oci-archive:FILE` is
//! read wherever xarch reads an image; `xarch load` puts one platform into
//! podman's store; a hostile archive writes nothing outside its directory.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::*;
use common::*;
use serde_json::Value;

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
        "#include <stdio.h>\nint main(void) { puts(\"hello from the archive\"); return 0; }\n",
    )
    .unwrap();
    p
}

/// The archive's members: name → bytes.
fn members(file: &Path) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(std::fs::File::open(file).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().to_string();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (name, b)
        })
        .collect()
}

/// podman with its own storage under `dir`, so tests never touch the host's.
fn podman(dir: &Path) -> Command {
    require("podman", "apt-get install -y podman");
    let conf = dir.join("storage.conf");
    if !conf.exists() {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                dir.join("root").display(),
                dir.join("run").display()
            ),
        )
        .unwrap();
    }
    let mut c = Command::new("podman");
    c.env("CONTAINERS_STORAGE_CONF", conf);
    c
}

#[test]
fn build_writes_a_reproducible_multi_platform_archive_podman_and_skopeo_load() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let project = greeter(tmp.path());
    let build = |file: &Path| {
        run_ok(
            xarch()
                .arg("build")
                .arg(&project)
                .args(["--platform", "linux/amd64,linux/arm64,linux/s390x"])
                .args(["-t", "greeter:1.0", "-o"])
                .arg(format!("oci-archive:{}", file.display()))
                .env("XARCH_CACHE_DIR", tmp.path().join("cache")),
        )
    };
    let a = tmp.path().join("a.tar");
    let b = tmp.path().join("b.tar");
    build(&a);
    build(&b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(
        !project.join("target/xarch/oci").exists(),
        "-o alone writes no default layout"
    );

    let m = members(&a);
    let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..3], ["oci-layout", "index.json", "manifest.json"]);
    let index: Value = serde_json::from_slice(&m[1].1).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "1.0"
    );
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "greeter:1.0"
    );
    let docker: Value = serde_json::from_slice(&m[2].1).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "greeter:1.0");
    for path in std::iter::once(&docker[0]["Config"]).chain(docker[0]["Layers"].as_array().unwrap())
    {
        assert!(
            names.contains(&path.as_str().unwrap()),
            "{path} is not in the archive"
        );
    }

    // skopeo sees every platform and copies them all.
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}", a.display())),
    );
    let seen: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(seen["manifests"].as_array().unwrap().len(), 3);
    let copy = tmp.path().join("copy");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--all"])
            .arg(format!("oci-archive:{}", a.display()))
            .arg(format!("oci:{}:1", copy.display())),
    );
    assert!(verify_blobs(&copy) >= 7);

    // podman loads the host's platform under the image's name.
    let store = tmp.path().join("podman");
    run_ok(podman(&store).arg("load").arg("-i").arg(&a));
    let out = run_ok(podman(&store).args(["image", "inspect", "greeter:1.0"]));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown[0]["Architecture"], "amd64");
    assert!(
        shown[0]["RepoTags"].to_string().contains("greeter:1.0"),
        "{}",
        shown[0]["RepoTags"]
    );
}

#[test]
fn archives_are_read_wherever_images_are_and_load_goes_to_podman() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let xa = || {
        let mut c = xarch();
        c.env("XARCH_CACHE_DIR", &cache);
        c
    };
    // A base from an archive: busybox, copied into one by `xarch push`.
    let busybox = busybox_layout(tmp.path());
    let bb = tmp.path().join("busybox.tar");
    run_ok(xa().args([
        "push",
        &format!("oci:{}:1", busybox.display()),
        &format!("oci-archive:{}:1", bb.display()),
    ]));
    let base = format!("oci-archive:{}:1", bb.display());
    let project = greeter(tmp.path());
    let app = tmp.path().join("app.tar");
    let out = run_ok(
        xa().arg("build")
            .arg(&project)
            .args([
                "--platform",
                "linux/amd64,linux/arm64",
                "--base",
                &base,
                "--json",
            ])
            .args(["-t", "greeter:2", "-o"])
            .arg(format!("oci-archive:{}", app.display())),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = report["index"]["digest"].as_str().unwrap().to_string();
    let image = format!("oci-archive:{}", app.display());

    // inspect, run, push, manifest create and rebase all read it.
    let out = run_ok(xa().args(["inspect", &image, "--json"]));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["digest"], digest.as_str());
    // busybox's layer, then the binary's.
    assert_eq!(shown["images"][0]["layers"].as_array().unwrap().len(), 2);
    let out = run_ok(xa().args(["run", "--platform", "linux/arm64", &image]));
    assert_eq!(stdout(&out), "hello from the archive\n");
    let reg = Registry::start("");
    let target = format!("{}/team/greeter:2", reg.host);
    let out = run_ok(xa().args(["push", &image, &target]));
    assert_eq!(stdout(&out).trim(), format!("{target}@{digest}"));
    let merged = tmp.path().join("merged");
    run_ok(xa().args([
        "manifest",
        "create",
        &format!("oci:{}:1", merged.display()),
        &format!("{image}#linux/arm64"),
    ]));
    assert_eq!(
        skopeo_raw(&merged, "1")["manifests"][0]["platform"]["architecture"],
        "arm64"
    );
    let out = run_ok(xa().args([
        "rebase",
        &image,
        "--base",
        &base,
        "--old-base",
        &base,
        "-t",
        &format!("oci:{}:same", merged.display()),
        "--json",
    ]));
    let rebased: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rebased["digest"],
        digest.as_str(),
        "rebased onto its own base: unchanged"
    );

    // xarch load: one platform into podman's store.
    let store = tmp.path().join("podman");
    podman(&store).arg("--version").output().unwrap();
    let out = run_ok(
        xa().args([
            "load",
            &image,
            "--tool",
            "podman",
            "--platform",
            "linux/arm64",
            "-t",
            "greeter:arm",
        ])
        .env("CONTAINERS_STORAGE_CONF", store.join("storage.conf")),
    );
    assert!(stderr(&out).contains("Loaded"), "{}", stderr(&out));
    let out = run_ok(podman(&store).args(["image", "inspect", "greeter:arm"]));
    let loaded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(loaded[0]["Architecture"], "arm64");
}

#[test]
fn a_hostile_archive_writes_nothing_outside_and_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sentinel = tmp.path().join("sentinel");
    std::fs::create_dir_all(&sentinel).unwrap();
    let evil = tmp.path().join("evil.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&evil).unwrap());
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        // Raw names: the tar crate's path setters refuse `..` on purpose.
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    let hex = "a".repeat(64);
    add("../sentinel/escaped", tar::EntryType::Regular, b"x", None);
    add("/tmp/absolute-escape", tar::EntryType::Regular, b"x", None);
    add(
        &format!("blobs/sha256/{hex}"),
        tar::EntryType::Symlink,
        b"",
        Some("/etc/passwd"),
    );
    add(
        "blobs/sha256/../../../sentinel/also",
        tar::EntryType::Regular,
        b"x",
        None,
    );
    add(
        "oci-layout",
        tar::EntryType::Regular,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        None,
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{hex}","size":10}}]}}"#
    );
    add(
        "index.json",
        tar::EntryType::Regular,
        index.as_bytes(),
        None,
    );
    b.finish().unwrap();
    drop(b);
    let out = xarch()
        .args(["inspect", &format!("oci-archive:{}", evil.display())])
        .env("XARCH_CACHE_DIR", tmp.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&sentinel).unwrap().count(), 0);
    assert!(!Path::new("/tmp/absolute-escape").exists());
}
