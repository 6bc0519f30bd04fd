//! `xarch manifest create` against real registries: the CI merge of per-platform
//! builds (with `--digest-file`), sources in other repositories mounted rather
//! than uploaded, layouts as targets, refusals that tag nothing, and `--amend`.
//! Every index is read back with skopeo and its images run.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::registry::*;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn create(cache: &Path, args: &[&str]) -> Output {
    xarch()
        .args(["manifest", "create"])
        .args(args)
        .env("XARCH_CACHE_DIR", cache)
        .output()
        .unwrap()
}

fn create_ok(cache: &Path, args: &[&str]) -> Output {
    let out = create(cache, args);
    assert!(
        out.status.success(),
        "manifest create {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

fn create_fails(cache: &Path, args: &[&str]) -> String {
    let out = create(cache, args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    stderr(&out)
}

/// The raw bytes skopeo gets for a remote reference.
fn raw_remote(reference: &str) -> Vec<u8> {
    run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    )
    .stdout
}

/// `os/arch[/variant]` of each entry of an index.
fn platforms(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s.push_str(&format!("/{v}"));
            }
            s
        })
        .collect()
}

/// Runs the base's busybox from one platform of `reference`.
fn busybox_runs(reference: &str, platform: &str, qemu: &str, work: &Path) {
    let (bundle, config) = pull_platform(reference, platform, work);
    let env: Vec<String> = serde_json::from_value(config["process"]["env"].clone()).unwrap();
    let out = run_in_rootfs(
        &bundle.join("rootfs"),
        "/bin/busybox",
        &["echo", "busybox-ok"],
        &env,
        qemu,
    );
    assert_eq!(stdout(&out).trim(), "busybox-ok", "{reference} {platform}");
}

fn busybox_in(reg: &Registry, repos: &[(&str, bool)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    for (repo, docker) in repos {
        skopeo_push(&base, &format!("{}/{repo}", reg.host), *docker);
    }
    tmp
}

#[test]
fn two_platform_jobs_merge_into_one_index_that_runs_on_both() {
    require_image_tools();
    let reg = Registry::start("");
    let (ptmp, project) = copy_example("hello-rust");
    let cache = project.join("xarch-cache");
    // Two CI jobs, one per platform, each pushing its own tag and digest file.
    let mut pinned = Vec::new();
    for platform in ["linux/amd64", "linux/arm64"] {
        let arch = platform.rsplit('/').next().unwrap();
        // As in CI: a directory of digest files, created by the first job.
        let file = ptmp.path().join("digests").join(arch);
        let out = run_ok(
            xarch()
                .arg("build")
                .arg(&project)
                .args(["--platform", platform, "--push", "--json"])
                .args(["-t", &format!("{}/app:sha-1234-{arch}", reg.host)])
                .arg("--digest-file")
                .arg(&file)
                .env("CARGO_TARGET_DIR", shared_target())
                .env("XARCH_CACHE_DIR", &cache),
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let line = std::fs::read_to_string(&file).unwrap();
        let digest = report["index"]["digest"].as_str().unwrap();
        assert_eq!(line, format!("{}/app@{digest}\n", reg.host));
        assert_eq!(sha256(&raw_remote(line.trim())), digest);
        pinned.push(line.trim().to_string());
    }
    let uploads = reg.requests("POST", "/v2/app/blobs/uploads/");

    // The merge job.
    let target = format!("{}/app:1.0", reg.host);
    let out = create_ok(
        &cache,
        &[
            &target,
            &pinned[0],
            &pinned[1],
            "--annotation",
            "org.opencontainers.image.version=1.0",
        ],
    );
    let raw = raw_remote(&target);
    assert_eq!(
        stdout(&out).trim(),
        format!("{target}@{}", sha256(&raw)),
        "prints the pushed reference with the digest skopeo computes"
    );
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(
        index["annotations"]["org.opencontainers.image.version"],
        "1.0"
    );
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    for (n, p) in pinned.iter().enumerate() {
        let job_index: Value = serde_json::from_slice(&raw_remote(p)).unwrap();
        assert_eq!(
            index["manifests"][n], job_index["manifests"][0],
            "entries copied whole"
        );
    }
    assert_eq!(
        reg.requests("POST", "/v2/app/blobs/uploads/"),
        uploads,
        "the merge moves no blob: they are all in the repository"
    );

    for (platform, qemu, arch) in [
        ("linux/amd64", "x86_64", "x86_64"),
        ("linux/arm64", "aarch64", "aarch64"),
    ] {
        let (bundle, config) = pull_platform(&target, platform, ptmp.path());
        let args: Vec<String> = serde_json::from_value(config["process"]["args"].clone()).unwrap();
        let env: Vec<String> = serde_json::from_value(config["process"]["env"].clone()).unwrap();
        let said = stdout(&run_in_rootfs(
            &bundle.join("rootfs"),
            &args[0],
            &[],
            &env,
            qemu,
        ));
        assert!(said.contains(&format!("arch={arch}")), "{platform}: {said}");
    }

    // Made again from the same sources: the same digest, nothing new pushed.
    let again = create_ok(
        &cache,
        &[
            &target,
            &pinned[0],
            &pinned[1],
            "--annotation",
            "org.opencontainers.image.version=1.0",
            "--json",
        ],
    );
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["digest"], sha256(&raw).as_str());
    assert_eq!(report["push"]["uploaded"], 0);
    assert_eq!(report["push"]["manifests"], 0, "{report}");
}

#[test]
fn sources_in_other_repositories_are_mounted_and_a_layout_can_be_the_target() {
    require_image_tools();
    let reg = Registry::start("");
    let tmp = busybox_in(&reg, &[("src/a:1", false), ("src/b:1", false)]);
    let cache = tmp.path().join("cache");
    let a_index: Value =
        serde_json::from_slice(&raw_remote(&format!("{}/src/a:1", reg.host))).unwrap();
    let amd64 = a_index["manifests"][0]["digest"].as_str().unwrap();

    // A single manifest by digest (platform from its config) and one platform
    // of an index in another repository.
    let target = format!("{}/team/merged:1", reg.host);
    let out = create_ok(
        &cache,
        &[
            &target,
            &format!("{}/src/a@{amd64}", reg.host),
            &format!("{}/src/b:1#linux/arm/v7", reg.host),
            "--json",
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["push"]["mounted"], 4,
        "2 configs and 2 layers: {report}"
    );
    assert_eq!(report["push"]["uploaded"], 0);
    assert_eq!(report["push"]["copied"], 0);
    let log = reg.access_log();
    let posts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"POST /v2/team/merged/blobs/uploads/"))
        .collect();
    assert_eq!(posts.len(), 4, "{log}");
    assert!(
        posts.iter().all(|l| l.contains("mount=sha256:")),
        "a blob upload without a mount: {posts:?}"
    );
    let raw = raw_remote(&target);
    assert_eq!(report["digest"], sha256(&raw).as_str());
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm/v7"]);
    assert_eq!(index["manifests"][0]["digest"], amd64);
    assert_eq!(index["manifests"][1], a_index["manifests"][2]);
    busybox_runs(&target, "linux/arm/v7", "arm", tmp.path());
    busybox_runs(&target, "linux/amd64", "x86_64", tmp.path());

    // The same images into a layout: every blob fetched, tagged by its name.
    let layout = tmp.path().join("merged-layout");
    let out = create_ok(
        &cache,
        &[
            &format!("oci:{}:1.0", layout.display()),
            &format!("{}/src/a@{amd64}", reg.host),
            &format!("{}/src/b:1#linux/arm64", reg.host),
        ],
    );
    let index = skopeo_raw(&layout, "1.0");
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    let index_raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:1.0", layout.display())),
    )
    .stdout;
    assert_eq!(
        stdout(&out).trim(),
        format!("oci:{}:1.0@{}", layout.display(), sha256(&index_raw))
    );
    assert_eq!(
        verify_blobs(&layout),
        7,
        "index, 2 manifests, 2 configs, 2 layers"
    );
    let work = tmp.path().join("unpacked");
    std::fs::create_dir_all(&work).unwrap();
    let (bundle, config) = unpack_platform(&layout, "1.0", "linux/arm64", &work);
    let env: Vec<String> = serde_json::from_value(config["process"]["env"].clone()).unwrap();
    let out = run_in_rootfs(
        &bundle.join("rootfs"),
        "/bin/busybox",
        &["echo", "ok"],
        &env,
        "aarch64",
    );
    assert_eq!(stdout(&out).trim(), "ok");
    // --amend works on a layout too.
    create_ok(
        &cache,
        &[
            "--amend",
            &format!("oci:{}:1.0", layout.display()),
            &format!("{}/src/a:1#linux/arm/v7", reg.host),
        ],
    );
    let amended_raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:1.0", layout.display())),
    )
    .stdout;
    let amended: Value = serde_json::from_slice(&amended_raw).unwrap();
    assert_eq!(
        platforms(&amended),
        ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    );
    verify_blobs(&layout);

    // xarch push --digest-file: the pinned reference a merge job takes.
    let file = tmp.path().join("pushed.digest");
    run_ok(
        xarch()
            .arg("push")
            .arg(format!("oci:{}:1.0", layout.display()))
            .arg(format!("{}/team/pushed:1", reg.host))
            .arg("--digest-file")
            .arg(&file)
            .env("XARCH_CACHE_DIR", &cache),
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{}/team/pushed@{}\n", reg.host, sha256(&amended_raw))
    );
}

#[test]
fn duplicate_platforms_and_nested_indexes_are_refused_and_tag_nothing() {
    let reg = Registry::start("");
    let tmp = busybox_in(&reg, &[("src/a:1", false), ("src/nested:inner", false)]);
    let cache = tmp.path().join("cache");
    let a = format!("{}/src/a:1", reg.host);
    let a_raw = raw_remote(&a);
    let a_index: Value = serde_json::from_slice(&a_raw).unwrap();
    let amd64 = format!(
        "{}/src/a@{}",
        reg.host,
        a_index["manifests"][0]["digest"].as_str().unwrap()
    );

    let err = create_fails(&cache, &[&format!("{}/team/dup:1", reg.host), &amd64, &a]);
    assert!(
        err.contains(&format!(
            "linux/amd64 is given twice, by {amd64} and by {amd64}"
        )),
        "{err}"
    );
    let never = tmp.path().join("never");
    let err = create_fails(&cache, &[&format!("oci:{}:1", never.display()), &amd64, &a]);
    assert!(err.contains("is given twice"), "{err}");
    assert!(!never.exists(), "a refused layout target is not created");
    let err = create_fails(
        &cache,
        &[
            &format!("{}/team/dup:1", reg.host),
            &format!("{a}#linux/s390x"),
        ],
    );
    assert!(
        err.contains("has no linux/s390x; it offers: linux/amd64, linux/arm64, linux/arm/v7"),
        "{err}"
    );

    // An index whose entry is an index.
    let outer = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": sha256(&a_raw), "size": a_raw.len()}],
    });
    let status = reg.put_manifest(
        "src/nested",
        "outer",
        OCI_INDEX,
        &serde_json::to_vec(&outer).unwrap(),
    );
    assert_eq!(status, 201);
    let err = create_fails(
        &cache,
        &[
            &format!("{}/team/dup:1", reg.host),
            &format!("{}/src/nested:outer", reg.host),
        ],
    );
    assert!(err.contains("nested indexes are not supported"), "{err}");

    let err = create_fails(
        &cache,
        &[&format!("{}/team/dup@{}", reg.host, sha256(b"x")), &a],
    );
    assert!(err.contains("give it a tag"), "{err}");

    let (status, _) = reg.get("/v2/team/dup/manifests/1");
    assert_eq!(status, 404, "nothing may be tagged");
    assert_eq!(reg.requests("PUT", "/v2/team/dup/"), 0, "nothing pushed");
    assert_eq!(reg.requests("POST", "/v2/team/dup/"), 0, "nothing pushed");
}

#[test]
fn amend_adds_a_platform_and_replaces_the_same_platform() {
    require_image_tools();
    let reg = Registry::start("");
    let tmp = busybox_in(&reg, &[("src/a:1", false), ("src/d:1", true)]);
    let cache = tmp.path().join("cache");
    let target = format!("{}/team/am:1", reg.host);
    let index_of = |r: &str| -> Value { serde_json::from_slice(&raw_remote(r)).unwrap() };
    let a = index_of(&format!("{}/src/a:1", reg.host));
    let d = index_of(&format!("{}/src/d:1", reg.host));

    // --amend on a tag that does not exist yet simply creates the index.
    create_ok(
        &cache,
        &[
            "--amend",
            &target,
            &format!("{}/src/a:1#linux/amd64", reg.host),
            "--annotation",
            "a=1",
        ],
    );
    assert_eq!(platforms(&index_of(&target)), ["linux/amd64"]);

    create_ok(
        &cache,
        &[
            "--amend",
            &target,
            &format!("{}/src/a:1#linux/arm64", reg.host),
        ],
    );
    let index = index_of(&target);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(
        index["annotations"]["a"], "1",
        "the index keeps its annotations"
    );

    // The Docker-format amd64 image replaces the OCI one, in place.
    create_ok(
        &cache,
        &[
            "--amend",
            &target,
            &format!("{}/src/d:1#linux/amd64", reg.host),
            "--annotation",
            "b=2",
        ],
    );
    let index = index_of(&target);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(index["manifests"][0]["digest"], d["manifests"][0]["digest"]);
    assert_eq!(index["manifests"][0]["mediaType"], DOCKER_MANIFEST);
    assert_eq!(index["manifests"][1]["digest"], a["manifests"][1]["digest"]);
    assert_eq!(index["mediaType"], OCI_INDEX, "mixed images: an OCI index");
    assert_eq!(index["annotations"], json!({"a": "1", "b": "2"}));
    busybox_runs(&target, "linux/amd64", "x86_64", tmp.path());

    // Without --amend the index is made from the sources alone.
    create_ok(
        &cache,
        &[&target, &format!("{}/src/d:1#linux/arm64", reg.host)],
    );
    assert_eq!(platforms(&index_of(&target)), ["linux/arm64"]);
}
