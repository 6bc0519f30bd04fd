//! Registries end to end, against real Distribution processes: multi-arch bases
//! pulled per platform, images pushed, checked with skopeo and run under qemu.

use crate::common;

use std::process::Command;

use common::registry::*;
use common::*;
use serde_json::Value;

const APP_PLATFORMS: [(&str, &str, &str); 2] = [
    ("linux/amd64", "x86_64", "x86_64"),
    ("linux/arm64", "aarch64", "aarch64"),
];

fn build_push(project: &std::path::Path, base: &str, tags: &[String]) -> Value {
    let mut c = xarch();
    c.arg("build")
        .arg(project)
        .args([
            "--platform",
            "linux/amd64,linux/arm64",
            "--base",
            base,
            "--push",
            "--json",
        ])
        .env("CARGO_TARGET_DIR", shared_target())
        .env("XARCH_CACHE_DIR", project.join("xarch-cache"));
    for t in tags {
        c.args(["-t", t]);
    }
    serde_json::from_slice(&run_ok(&mut c).stdout).unwrap()
}

/// The image runs its own binary and the base's busybox on each platform.
fn check_runs(reference: &str, work: &std::path::Path) {
    for (platform, qemu, arch) in APP_PLATFORMS {
        let (bundle, config) = pull_platform(reference, platform, work);
        let rootfs = bundle.join("rootfs");
        let env: Vec<String> = serde_json::from_value(config["process"]["env"].clone()).unwrap();
        let args: Vec<String> = serde_json::from_value(config["process"]["args"].clone()).unwrap();
        assert_eq!(
            args,
            ["/usr/local/bin/hello-rust"],
            "new entrypoint drops the base's Cmd"
        );
        let out = run_in_rootfs(&rootfs, &args[0], &[], &env, qemu);
        assert!(
            stdout(&out).contains(&format!("arch={arch}")),
            "{platform}: {}",
            stdout(&out)
        );
        let bb = run_in_rootfs(&rootfs, "/bin/busybox", &["echo", "busybox-ok"], &env, qemu);
        assert_eq!(
            stdout(&bb).trim(),
            "busybox-ok",
            "{platform}: base layer missing or broken"
        );
        assert!(
            env.contains(&"PATH=/bin".to_string()),
            "base env kept: {env:?}"
        );
    }
}

#[test]
fn builds_on_oci_and_docker_bases_mounts_base_layers_and_repushes_nothing() {
    require_image_tools();
    let reg = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    skopeo_push(&base, &format!("{}/base/busybox:oci", reg.host), false);
    skopeo_push(&base, &format!("{}/base/busybox:docker", reg.host), true);
    assert_eq!(
        inspect_remote(&format!("{}/base/busybox:docker", reg.host))["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );

    for (kind, index_type) in [
        ("oci", "application/vnd.oci.image.index.v1+json"),
        (
            "docker",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ),
    ] {
        let (ptmp, project) = copy_example("hello-rust");
        let tags = vec![
            format!("{}/team/app-{kind}:1", reg.host),
            format!("{}/team/app-{kind}:latest", reg.host),
        ];
        let report = build_push(
            &project,
            &format!("{}/base/busybox:{kind}", reg.host),
            &tags,
        );
        let digest = report["index"]["digest"].as_str().unwrap();
        assert_eq!(report["pushed"][0], format!("{}@{digest}", tags[0]));
        // Same registry, other repository: the base layer is mounted, never uploaded.
        assert_eq!(report["push"]["mounted"], 2, "{report}");
        assert_eq!(report["push"]["copied"], 0);
        assert_eq!(
            report["layout"],
            Value::Null,
            "--push alone writes no layout"
        );

        let index = inspect_remote(&tags[1]);
        assert_eq!(
            index["mediaType"], index_type,
            "media types follow the base"
        );
        let platforms: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"]["architecture"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, ["amd64", "arm64"]);
        let manifest = inspect_remote(&format!(
            "{}/team/app-{kind}@{}",
            reg.host,
            index["manifests"][1]["digest"].as_str().unwrap()
        ));
        let base_manifest = inspect_remote(&format!("{}/base/busybox:{kind}", reg.host));
        assert_eq!(
            manifest["layers"][0]["digest"],
            inspect_remote(&format!(
                "{}/base/busybox@{}",
                reg.host,
                base_manifest["manifests"][1]["digest"].as_str().unwrap()
            ))["layers"][0]["digest"]
        );
        check_runs(&tags[0], ptmp.path());

        // A second push of the same build uploads nothing.
        let uploads_before = reg.requests("PUT", &format!("/v2/team/app-{kind}/blobs/uploads/"));
        let again = build_push(
            &project,
            &format!("{}/base/busybox:{kind}", reg.host),
            &tags,
        );
        assert_eq!(again["index"]["digest"], report["index"]["digest"]);
        assert_eq!(again["push"]["uploaded"], 0, "{again}");
        assert_eq!(
            reg.requests("PUT", &format!("/v2/team/app-{kind}/blobs/uploads/")),
            uploads_before
        );
    }
}

#[test]
fn a_base_on_another_registry_is_copied_and_a_layout_gets_every_blob() {
    require_image_tools();
    let src = Registry::start("");
    let dst = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    skopeo_push(&base, &format!("{}/base/busybox:1", src.host), false);
    let (ptmp, project) = copy_example("hello-rust");
    let tag = format!("{}/app:1", dst.host);
    let report = build_push(
        &project,
        &format!("{}/base/busybox:1", src.host),
        std::slice::from_ref(&tag),
    );
    assert_eq!(report["push"]["copied"], 2, "{report}");
    check_runs(&tag, ptmp.path());

    // Into a layout, base layers are fetched so the layout is complete.
    let layout = ptmp.path().join("out");
    run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args([
                "--platform",
                "linux/arm64",
                "--base",
                &format!("{}/base/busybox:1", src.host),
                "-t",
                "app:1",
            ])
            .arg("--oci-layout")
            .arg(&layout)
            .env("CARGO_TARGET_DIR", shared_target())
            .env("XARCH_CACHE_DIR", project.join("xarch-cache")),
    );
    verify_blobs(&layout);
    let work = ptmp.path().join("from-layout");
    std::fs::create_dir_all(&work).unwrap();
    let (bundle, config) = unpack_platform(&layout, "1", "linux/arm64", &work);
    let env: Vec<String> = serde_json::from_value(config["process"]["env"].clone()).unwrap();
    let bb = run_in_rootfs(
        &bundle.join("rootfs"),
        "/bin/busybox",
        &["echo", "ok"],
        &env,
        "aarch64",
    );
    assert_eq!(stdout(&bb).trim(), "ok");
    let index = skopeo_raw(&layout, "1");
    let m = read_blob(&layout, index["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(
        m["annotations"]["org.opencontainers.image.base.name"],
        format!("{}/base/busybox:1", src.host)
    );

    // xarch push moves that layout to a registry.
    let out = run_ok(
        xarch()
            .arg("push")
            .arg(format!("oci:{}:1", layout.display()))
            .arg(format!("{}/pushed/app:1", dst.host))
            .env("XARCH_CACHE_DIR", project.join("xarch-cache")),
    );
    assert!(
        stdout(&out).contains(&format!("{}/pushed/app:1@sha256:", dst.host)),
        "{}",
        stdout(&out)
    );
    let pushed = inspect_remote(&format!("{}/pushed/app:1", dst.host));
    assert_eq!(
        pushed["manifests"][0]["digest"],
        index["manifests"][0]["digest"]
    );
}

#[test]
fn missing_tags_and_platforms_are_clear_errors_and_push_nothing() {
    let reg = Registry::start("");
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    skopeo_push(&base, &format!("{}/base/busybox:1", reg.host), false);
    let (_ptmp, project) = copy_example("hello-rust");
    let build = |base: &str, platforms: &str| {
        xarch()
            .arg("build")
            .arg(&project)
            .args([
                "--platform",
                platforms,
                "--base",
                base,
                "--push",
                "-t",
                &format!("{}/team/app:1", reg.host),
            ])
            .env("XARCH_CACHE_DIR", project.join("xarch-cache"))
            .output()
            .unwrap()
    };
    let out = build(&format!("{}/base/busybox:nope", reg.host), "linux/amd64");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("base/busybox:nope not found") && err.contains("MANIFEST_UNKNOWN"),
        "{err}"
    );

    let out = build(
        &format!("{}/base/busybox:1", reg.host),
        "linux/amd64,linux/386",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("has no linux/386; it offers: linux/amd64, linux/arm64, linux/arm/v7"),
        "{err}"
    );
    assert!(
        !err.contains("Compiling"),
        "must fail before compiling: {err}"
    );
    let (status, _) = reg.get("/v2/team/app/manifests/1");
    assert_eq!(status, 404, "nothing may be pushed under the tag");
}

#[test]
fn basic_auth_uses_login_and_never_prints_the_password() {
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
    let docker_config = tmp.path().join("docker");
    let (_ptmp, project) = copy_example("hello-rust");
    let push = || {
        xarch()
            .arg("build")
            .arg(&project)
            .args([
                "--platform",
                "linux/amd64",
                "--push",
                "-t",
                &format!("{}/team/app:1", reg.host),
            ])
            .env("DOCKER_CONFIG", &docker_config)
            .env("CARGO_TARGET_DIR", shared_target())
            .env("XARCH_CACHE_DIR", project.join("xarch-cache"))
            .output()
            .unwrap()
    };
    let out = push();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("xarch login {}", reg.host)),
        "{}",
        stderr(&out)
    );

    let login = |pw: &str| {
        let mut c = xarch();
        c.args(["login", &reg.host, "-u", "alice", "--password-stdin"])
            .env("DOCKER_CONFIG", &docker_config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pw}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // A wrong password is refused at login (as docker login does) and not saved.
    let out = login("wrong-pw");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("rejected the credentials") && !err.contains("wrong-pw"),
        "{err}"
    );
    assert!(!docker_config.join("config.json").exists());

    // A wrong password already in the docker config: push fails, nothing leaks.
    std::fs::create_dir_all(&docker_config).unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:wrong-pw");
    std::fs::write(
        docker_config.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host),
    )
    .unwrap();
    let out = push();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("rejected the credentials") && err.contains("401"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-pw") && !err.contains(&auth),
        "a credential leaked: {err}"
    );

    run_ok_output(login("s3cret-pw"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(docker_config.join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = push();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("s3cret-pw") && !stdout(&out).contains("s3cret-pw"));
    assert_eq!(
        inspect_with_creds(&format!("{}/team/app:1", reg.host))["manifests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn run_ok_output(out: std::process::Output) {
    assert!(out.status.success(), "{}", stderr(&out));
}

fn inspect_with_creds(reference: &str) -> Value {
    let out = run_ok(
        Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                "alice:s3cret-pw",
            ])
            .arg(format!("docker://{reference}")),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
