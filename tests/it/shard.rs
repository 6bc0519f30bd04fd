//! A build split over machines: each shard builds some platforms from its own
//! clone (its own caches) and pushes by digest with a metadata file; the merge
//! makes one index from the metadata files. The result is the one-shot build:
//! the same child digests, the same index digest.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::registry::*;
use common::*;
use serde_json::Value;

/// A git repository holding a small C program, cloned by each shard.
fn origin(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("origin");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("xarch.toml"),
        "sources = [\"main.c\"]\noutput = \"app\"\nversion = \"1.2.3\"\n",
    )
    .unwrap();
    std::fs::write(
        p.join("main.c"),
        "#include <stdio.h>\nint main(void) { puts(\"sharded\"); return 0; }\n",
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

fn clone(origin: &Path, dest: &Path) {
    run_ok(
        Command::new("git")
            .arg("clone")
            .arg("-q")
            .arg(origin)
            .arg(dest),
    );
}

#[test]
fn three_shards_merged_by_metadata_equal_the_one_shot_build() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let origin = origin(tmp.path());
    let reg = Registry::start("");
    let repo = format!("{}/team/app", reg.host);
    let platforms = ["linux/amd64", "linux/arm64", "linux/s390x"];

    // One shot, from its own clone.
    let whole = tmp.path().join("whole");
    clone(&origin, &whole);
    let out = run_ok(
        xarch()
            .arg("build")
            .arg(&whole)
            .args(["--platform", &platforms.join(","), "--push", "--json"])
            .args(["-t", &format!("{repo}:1")])
            .env("XARCH_CACHE_DIR", tmp.path().join("cache-whole")),
    );
    let one_shot: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Three shards: separate clones, separate caches, pushed by digest.
    let mut files = Vec::new();
    for (i, p) in platforms.iter().enumerate() {
        let dir = tmp.path().join(format!("shard-{i}"));
        clone(&origin, &dir);
        let meta = tmp.path().join(format!("meta/{i}.json"));
        run_ok(
            xarch()
                .arg("build")
                .arg(&dir)
                .args(["--platform", p, "--push-by-digest", "-t", &repo])
                .arg("--metadata-file")
                .arg(&meta)
                .env("XARCH_CACHE_DIR", tmp.path().join(format!("cache-{i}"))),
        );
        let m: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        assert_eq!(m["repository"], repo.as_str());
        assert_eq!(
            m["manifests"][0]["platform"]["architecture"],
            p.split('/').nth(1).unwrap()
        );
        files.push(meta);
    }
    // Nothing was tagged by the shards.
    let (status, _) = reg.get("/v2/team/app/tags/list");
    assert_eq!(status, 200);
    let tags = reg.get("/v2/team/app/tags/list").1;
    assert!(tags.contains("\"1\"") && !tags.contains("latest"), "{tags}");

    let target = format!("{repo}:merged");
    let mut merge = xarch();
    merge
        .args(["manifest", "create", &target, "--json", "--from-metadata"])
        .args(&files[..1])
        .arg("--from-metadata")
        .arg(&files[1])
        .arg("--from-metadata")
        .arg(&files[2])
        .env("XARCH_CACHE_DIR", tmp.path().join("cache-merge"));
    let out = run_ok(&mut merge);
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    let children = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        children(&merged, "manifests"),
        children(&one_shot, "images")
    );
    assert_eq!(
        merged["digest"], one_shot["index"]["digest"],
        "the same index, byte for byte"
    );
    assert_eq!(
        merged["push"]["uploaded"], 0,
        "everything is mounted or present"
    );
    let out = run_ok(
        xarch()
            .args(["run", "--platform", "linux/s390x", &target])
            .env("XARCH_CACHE_DIR", tmp.path().join("cache-merge")),
    );
    assert_eq!(stdout(&out), "sharded\n");
}
