//! `--reuse-from REPO`: each image carries its inputs' digest; an unchanged
//! build from a fresh clone (other directory, empty caches) finds every
//! platform image in the registry, compiles nothing and uploads nothing; a
//! change for one platform rebuilds only that platform.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::registry::*;
use common::*;
use serde_json::Value;

const PLATFORMS: &str = "linux/amd64,linux/arm64,linux/s390x";

fn origin(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("origin");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("xarch.toml"),
        "sources = [\"main.c\"]\noutput = \"app\"\n",
    )
    .unwrap();
    std::fs::write(
        p.join("main.c"),
        "#include <stdio.h>\nint main(void) { puts(\"reused\"); return 0; }\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t", "-C"])
                .arg(&p)
                .args(args),
        )
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "app"]);
    p
}

fn build(dir: &Path, cache: &Path, reg: &Registry) -> Output {
    run_ok(
        xarch()
            .arg("build")
            .arg(dir)
            .args(["--platform", PLATFORMS, "--push", "--json"])
            .args(["-t", &format!("{}/team/app:1", reg.host)])
            .args(["--reuse-from", &format!("{}/cache/app", reg.host)])
            .env("XARCH_CACHE_DIR", cache),
    )
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_unchanged_build_from_a_fresh_clone_reuses_every_platform() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let origin = origin(tmp.path());
    let reg = Registry::start("");
    let clone = |name: &str| {
        let d = tmp.path().join(name);
        run_ok(
            Command::new("git")
                .args(["clone", "-q"])
                .arg(&origin)
                .arg(&d),
        );
        d
    };

    let a = clone("a");
    let first = build(&a, &tmp.path().join("cache-a"), &reg);
    let err = stderr(&first);
    assert!(
        err.contains("Compiling") && !err.contains("Reusing"),
        "{err}"
    );
    let first = report(&first);
    // Each image carries its inputs' digest.
    let index = inspect_remote(&format!("{}/team/app:1", reg.host));
    let _ = index;
    let tags = reg.get("/v2/cache/app/tags/list").1;
    assert_eq!(tags.matches("inputs-").count(), 3, "{tags}");

    // A fresh clone elsewhere, empty caches: nothing compiled, nothing uploaded.
    let b = clone("b");
    let second = build(&b, &tmp.path().join("cache-b"), &reg);
    let err = stderr(&second);
    assert_eq!(err.matches("Reusing").count(), 3, "{err}");
    assert!(!err.contains("Compiling"), "{err}");
    let second = report(&second);
    assert_eq!(second["index"]["digest"], first["index"]["digest"]);
    assert_eq!(second["push"]["uploaded"], 0, "{}", second["push"]);
    assert_eq!(second["push"]["copied"], 0, "{}", second["push"]);

    // One platform's settings change: only it is built again.
    let toml = b.join("xarch.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!("{text}\n[platform.\"linux/arm64\"]\nenv = {{ TUNED = \"1\" }}\n"),
    )
    .unwrap();
    let third = build(&b, &tmp.path().join("cache-b"), &reg);
    let err = stderr(&third);
    assert_eq!(err.matches("Reusing").count(), 2, "{err}");
    assert!(
        err.contains("linux/amd64") && err.contains("linux/s390x"),
        "{err}"
    );
    let third = report(&third);
    let digest = |r: &Value, p: &str| {
        r["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["platform"] == p)
            .unwrap()["digest"]
            .clone()
    };
    assert_eq!(digest(&third, "linux/amd64"), digest(&first, "linux/amd64"));
    assert_eq!(digest(&third, "linux/s390x"), digest(&first, "linux/s390x"));
    assert_ne!(digest(&third, "linux/arm64"), digest(&first, "linux/arm64"));
    // The reused images still run.
    let out = run_ok(
        xarch()
            .args([
                "run",
                "--platform",
                "linux/s390x",
                &format!("{}/team/app:1", reg.host),
            ])
            .env("XARCH_CACHE_DIR", tmp.path().join("cache-run")),
    );
    assert_eq!(stdout(&out), "reused\n");
}
