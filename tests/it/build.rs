//! `xarch build` end to end: real cargo cross builds, layouts checked with skopeo
//! and umoci, binaries run under qemu-user.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PLATFORMS: [(&str, &str, &str, &str); 3] = [
    // platform, qemu name, Rust's ARCH, pointer bits
    ("linux/amd64", "x86_64", "x86_64", "64"),
    ("linux/arm64", "aarch64", "aarch64", "64"),
    ("linux/386", "i386", "x86", "32"),
];

#[test]
fn builds_an_index_whose_images_run_on_each_cpu() {
    require_image_tools();
    let (tmp, project) = copy_example("hello-rust");
    let layout = tmp.path().join("out");
    let out = run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64,linux/arm64,linux/386"])
            .arg("--oci-layout")
            .arg(&layout)
            .args(["-t", "hello:1.0", "--json"])
            .env("CARGO_TARGET_DIR", shared_target()),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The layout's index.json names the new index by its tag.
    let index_json: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = &index_json["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "1.0"
    );
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "hello:1.0"
    );
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(entry["digest"], report["index"]["digest"]);

    // skopeo reads it as an OCI index of three platform manifests.
    let index = skopeo_raw(&layout, "1.0");
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let platforms: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/386"]);
    assert_eq!(verify_blobs(&layout), report_blob_count(&layout, &index));

    for (platform, qemu, arch, bits) in PLATFORMS {
        let (bundle, config) = unpack_platform(&layout, "1.0", platform, tmp.path());
        let rootfs = bundle.join("rootfs");
        let args: Vec<String> = serde_json::from_value(config["process"]["args"].clone()).unwrap();
        let env: Vec<String> = serde_json::from_value(config["process"]["env"].clone()).unwrap();
        assert_eq!(args, ["/usr/local/bin/hello-rust"]);
        assert!(env.contains(&"GREETING=hello".to_string()), "{env:?}");
        assert_eq!(
            config["process"]["user"]["uid"], 65532,
            "static base runs as nonroot"
        );
        let run = run_in_rootfs(&rootfs, &args[0], &[], &env, qemu);
        let said = stdout(&run);
        assert!(
            said.contains(&format!(
                "hello from hello-rust: arch={arch} os=linux bits={bits} endian=little"
            )),
            "{platform}: {said}"
        );
        // The static base and the files layer are there.
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        assert!(passwd.contains("nonroot:x:65532:65532"), "{passwd}");
        let certs =
            std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
        assert!(certs.matches("BEGIN CERTIFICATE").count() > 100);
        use std::os::unix::fs::PermissionsExt;
        let tmp_mode = std::fs::metadata(rootfs.join("tmp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(tmp_mode & 0o7777, 0o1777);
        let msg = rootfs.join("usr/share/hello/message.txt");
        assert_eq!(
            std::fs::metadata(&msg).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(
            std::fs::read_to_string(msg)
                .unwrap()
                .contains("layered by xarch")
        );
    }

    // Config and manifest carry what the issue asks for.
    let m = read_blob(&layout, manifests[1]["digest"].as_str().unwrap());
    assert_eq!(
        m["annotations"]["org.opencontainers.image.version"],
        "0.1.0"
    );
    assert!(m["annotations"]["org.opencontainers.image.created"].is_string());
    let c = read_blob(&layout, m["config"]["digest"].as_str().unwrap());
    assert_eq!(c["architecture"], "arm64");
    assert_eq!(
        c["config"]["Labels"]["org.opencontainers.image.description"],
        "xarch's Rust example"
    );
    assert_eq!(
        c["history"].as_array().unwrap().len(),
        3,
        "base, files, binaries"
    );
    assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
}

/// Blobs reachable from the index: the index, and per manifest itself, its config
/// and its layers (layers shared between platforms counted once).
fn report_blob_count(layout: &std::path::Path, index: &Value) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        seen.insert(d.to_string());
        let man = read_blob(layout, d);
        seen.insert(man["config"]["digest"].as_str().unwrap().to_string());
        for l in man["layers"].as_array().unwrap() {
            seen.insert(l["digest"].as_str().unwrap().to_string());
        }
    }
    seen.len() + 1
}

fn build_digest(project: &std::path::Path, layout: &std::path::Path, epoch: Option<&str>) -> Value {
    let mut cmd = xarch();
    cmd.arg("build")
        .arg(project)
        .args([
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "r:1",
            "--json",
            "-q",
        ])
        .arg("--oci-layout")
        .arg(layout);
    if let Some(e) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", e);
    }
    serde_json::from_slice(&run_ok(&mut cmd).stdout).unwrap()
}

#[test]
fn same_sources_give_the_same_digest_from_any_checkout_path() {
    // Two checkouts at different paths, each with its own target dir.
    let (tmp_a, a) = copy_example("hello-rust");
    let (tmp_b, b) = copy_example("hello-rust");
    let b2 = tmp_b.path().join("elsewhere").join("deeper");
    std::fs::create_dir_all(b2.parent().unwrap()).unwrap();
    std::fs::rename(&b, &b2).unwrap();
    let one = build_digest(&a, &tmp_a.path().join("out"), None);
    let two = build_digest(&b2, &tmp_b.path().join("out"), None);
    assert_eq!(
        one["index"]["digest"], two["index"]["digest"],
        "index digests differ"
    );
    assert_eq!(one["images"], two["images"]);

    // SOURCE_DATE_EPOCH moves every `created` and so the digest.
    let layout = tmp_a.path().join("out-epoch");
    let three = build_digest(&a, &layout, Some("1700000000"));
    assert_ne!(three["index"]["digest"], one["index"]["digest"]);
    let index = read_blob(&layout, three["index"]["digest"].as_str().unwrap());
    assert_eq!(
        index["annotations"]["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    for m in index["manifests"].as_array().unwrap() {
        let man = read_blob(&layout, m["digest"].as_str().unwrap());
        assert_eq!(
            man["annotations"]["org.opencontainers.image.created"],
            "2023-11-14T22:13:20Z"
        );
        let cfg = read_blob(&layout, man["config"]["digest"].as_str().unwrap());
        assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
        for h in cfg["history"].as_array().unwrap() {
            assert_eq!(h["created"], "2023-11-14T22:13:20Z");
        }
    }
}

#[test]
fn config_errors_point_at_file_line_and_column() {
    let (_tmp, project) = copy_example("hello-rust");
    std::fs::write(
        project.join("xarch.toml"),
        "name = \"hello\"\nplatforms = [\"linux/amd64\"]\nentrypont = [\"/x\"]\n",
    )
    .unwrap();
    let out = xarch().arg("build").arg(&project).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("xarch.toml:3:1:"), "{err}");
    assert!(err.contains("unknown field `entrypont`"), "{err}");

    std::fs::write(
        project.join("xarch.toml"),
        "name = \"hello\"\n\n[platform.\"linux/arm64\"]\nfeatures = \"fast\"\n",
    )
    .unwrap();
    let out = xarch().arg("build").arg(&project).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("xarch.toml:4:12:"), "{err}");
    assert!(
        err.contains("key `platform.\"linux/arm64\".features`"),
        "{err}"
    );
    assert!(err.contains("expected a sequence"), "{err}");

    // The same checks apply to [package.metadata.xarch], pinned in Cargo.toml.
    std::fs::remove_file(project.join("xarch.toml")).unwrap();
    let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        cargo.replace("name = \"hello\"", "name = \"hello\"\nuser = 7"),
    )
    .unwrap();
    let out = xarch().arg("build").arg(&project).output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("Cargo.toml:12:8:"), "{err}");
    assert!(err.contains("key `package.metadata.xarch.user`"), "{err}");
}

#[test]
fn unknown_platforms_are_usage_errors_listing_the_valid_ones() {
    let (_tmp, project) = copy_example("hello-rust");
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/amd64,linux/sparc64"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown platform `linux/sparc64`"), "{err}");
    for p in [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
    ] {
        assert!(err.contains(p), "{p} missing from: {err}");
    }

    std::fs::write(
        project.join("xarch.toml"),
        "platforms = [\"linux/amd64\", \"windows/arm\"]\n",
    )
    .unwrap();
    let out = xarch().arg("build").arg(&project).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("xarch.toml:1:29:") && err.contains("valid platforms"),
        "{err}"
    );
}

#[test]
fn a_wrong_architecture_binary_is_refused_and_nothing_is_tagged() {
    // A misconfigured linker that "links" an x86-64 program for arm64, as a host
    // gcc picked by mistake would.
    let (tmp, project) = copy_example("hello-rust");
    let linker = tmp.path().join("bad-linker");
    std::fs::write(
        &linker,
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = -o ]; then cp /bin/true \"$2\"; exit 0; fi; shift; done; exit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&linker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let layout = tmp.path().join("out");
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/amd64,linux/arm64", "-t", "bad:1"])
        .arg("--oci-layout")
        .arg(&layout)
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", &linker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("aarch64-unknown-linux-musl/release/hello-rust is ELF 64-bit LSB X86_64"),
        "{err}"
    );
    assert!(
        err.contains("but linux/arm64 needs ELF 64-bit LSB AARCH64"),
        "{err}"
    );
    assert!(
        !layout.join("index.json").exists(),
        "nothing may be written for a refused build"
    );
}

#[test]
fn missing_rust_target_with_no_install_names_the_fix() {
    let (tmp, project) = copy_example("hello-rust");
    // A fresh cache: xarch has not yet learned whether rustup serves this target.
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/ppc64le", "--no-install"])
        .env("XARCH_CACHE_DIR", tmp.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("rustup target add powerpc64le-unknown-linux-musl"),
        "{err}"
    );
}

#[test]
fn an_interrupted_build_leaves_the_layout_whole() {
    require("skopeo", "apt-get install -y skopeo");
    let (tmp, project) = copy_example("hello-rust");
    let layout = tmp.path().join("out");
    let build = |tag: &str| {
        let mut c = xarch();
        c.arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64", "-t", tag])
            .arg("--oci-layout")
            .arg(&layout)
            .env("CARGO_TARGET_DIR", shared_target());
        c
    };
    run_ok(&mut build("good:1"));
    let before = std::fs::read(layout.join("index.json")).unwrap();

    // A large data file makes layering take long enough to be killed mid-write.
    let data = project.join("bulk");
    std::fs::create_dir_all(&data).unwrap();
    write_noise(&data.join("noise.bin"), 128 << 20);
    std::fs::write(
        project.join("xarch.toml"),
        "[[files]]\nsrc = \"bulk\"\ndest = \"/srv/bulk\"\n",
    )
    .unwrap();
    let mut child = build("big:1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let err = BufReader::new(child.stderr.take().unwrap());
    let start = Instant::now();
    for line in err.lines() {
        if line.unwrap().contains("Layering files") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "build never reached layering"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL: no destructors, no cleanup
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the build finished before it could be interrupted"
    );

    // index.json is untouched, every blob matches its digest, the old image reads.
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), before);
    verify_blobs(&layout);
    let index = skopeo_raw(&layout, "1");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);

    // The next run completes and adds the new tag beside the old one.
    run_ok(&mut build("big:2"));
    verify_blobs(&layout);
    let refs: BTreeMap<String, String> =
        serde_json::from_slice::<Value>(&std::fs::read(layout.join("index.json")).unwrap())
            .unwrap()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["annotations"]["org.opencontainers.image.ref.name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    m["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    assert_eq!(refs.keys().collect::<Vec<_>>(), ["1", "2"]);
}

/// Incompressible bytes, quickly (xorshift).
fn write_noise(path: &std::path::Path, len: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..len / buf.len() {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
}

#[test]
fn cargo_xarch_builds_into_the_target_dir() {
    let (_tmp, project) = copy_example("hello-rust");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_cargo-xarch"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let out = run_ok(
        std::process::Command::new("cargo")
            .args(["xarch", "build", "--platform", "linux/amd64"])
            .current_dir(project.join("src"))
            .env("PATH", path)
            .env_remove("CARGO_TARGET_DIR"),
    );
    let layout = project.join("target/xarch/oci");
    assert!(
        stdout(&out).contains(&format!("written to {}", layout.display())),
        "{}",
        stdout(&out)
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "hello:latest"
    );
}

#[test]
fn command_line_settings_override_the_configuration() {
    let (tmp, project) = copy_example("hello-rust");
    std::fs::write(
        project.join("xarch.toml"),
        "name = \"hello\"\nenv = { A = \"config\", B = \"config\" }\n\n[platform.\"linux/amd64\"]\nenv = { B = \"platform\", C = \"platform\" }\n",
    )
    .unwrap();
    let layout = tmp.path().join("out");
    let out = run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64", "-t", "o:1", "--json", "-q"])
            .args([
                "--env",
                "C=cli",
                "--label",
                "team=core",
                "--annotation",
                "org.example.k=v",
                "--user",
                "1000:1000",
            ])
            .arg("--oci-layout")
            .arg(&layout)
            .env("CARGO_TARGET_DIR", shared_target()),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let index = read_blob(&layout, report["index"]["digest"].as_str().unwrap());
    assert_eq!(index["annotations"]["org.example.k"], "v");
    let m = read_blob(&layout, index["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(m["annotations"]["org.example.k"], "v");
    let c = read_blob(&layout, m["config"]["digest"].as_str().unwrap());
    let env: Vec<&str> = c["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // Config, then [platform] env, then --env: the command line wins.
    assert!(
        env.contains(&"A=config") && env.contains(&"B=platform") && env.contains(&"C=cli"),
        "{env:?}"
    );
    assert_eq!(c["config"]["Labels"]["team"], "core");
    assert_eq!(c["config"]["User"], "1000:1000");
}

#[test]
fn tag_templates_come_from_the_version_and_git() {
    let (tmp, project) = copy_example("hello-rust");
    let git = |args: &[&str]| {
        run_ok(
            std::process::Command::new("git")
                .arg("-C")
                .arg(&project)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args),
        )
    };
    git(&["init", "-q", "-b", "feature/arm"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    let sha = stdout(&git(&["rev-parse", "HEAD"])).trim().to_string();
    let version = cargo_version(&project);
    let layout = tmp.path().join("out");
    let out = run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64", "--json", "-q"])
            .args(["-t", "app:{{version}}", "-t", "app:{{major}}.{{minor}}"])
            .args([
                "-t",
                "app:sha-{{git.short_sha}}",
                "-t",
                "app:{{git.branch}}",
            ])
            .arg("--oci-layout")
            .arg(&layout)
            .env("CARGO_TARGET_DIR", shared_target()),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut parts = version.split('.');
    let minor = format!("{}.{}", parts.next().unwrap(), parts.next().unwrap());
    let want = vec![
        format!("app:{version}"),
        format!("app:{minor}"),
        format!("app:sha-{}", &sha[..7]),
        "app:feature-arm".to_string(),
    ];
    assert_eq!(report["refs"], serde_json::json!(want));
    let index = skopeo_raw(&layout, &format!("sha-{}", &sha[..7]));
    assert_eq!(
        index["annotations"]["org.opencontainers.image.revision"],
        sha
    );

    // No tag at HEAD: `{{git.tag}}` has nothing to give, and says so.
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/amd64", "-t", "app:{{git.tag}}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expands to an empty tag"),
        "{}",
        stderr(&out)
    );
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/amd64", "-t", "app:{{nope}}"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("unknown template value `nope`"),
        "{}",
        stderr(&out)
    );
}

fn cargo_version(project: &std::path::Path) -> String {
    let text = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    v["package"]["version"].as_str().unwrap().to_string()
}
