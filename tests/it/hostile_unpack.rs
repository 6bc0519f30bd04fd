//! Hostile images unpacked by `xarch run` (and `build --smoke`) through the
//! real CLI: every crafted case ends in a clear error or a safe result, and
//! nothing outside the unpacked root changes — a sentinel directory that the
//! images aim at, and the rest of the test's directory, are compared before
//! and after each case.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::craft::{Compression, Image, Sentinel, Tar, changes, snapshot};
use common::*;

/// One test's directory: a sentinel, layouts and xarch's cache.
struct Case {
    tmp: tempfile::TempDir,
    sentinel: Sentinel,
    n: std::cell::Cell<usize>,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let sentinel = Sentinel::new(tmp.path());
        Case {
            tmp,
            sentinel,
            n: Default::default(),
        }
    }

    fn host(&self) -> String {
        self.sentinel.path()
    }

    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    /// `xarch run` of `image` (from a fresh cache) with `flags`; fails the test
    /// if anything outside the cache changed.
    fn run(&self, image: &Image, flags: &[&str]) -> Output {
        self.run_with(image, flags, |_, _| {})
    }

    /// `run`, with `setup` given the command and the test's directory once the
    /// layout is written.
    fn run_with(
        &self,
        image: &Image,
        flags: &[&str],
        setup: impl FnOnce(&mut Command, &Path),
    ) -> Output {
        self.n.set(self.n.get() + 1);
        let layout = self.tmp.path().join(format!("layout-{}", self.n.get()));
        image.write_layout(&layout, "1");
        let _ = std::fs::remove_dir_all(self.cache());
        // xarch keeps its own temp dir in a layout it opens.
        let own = layout.join(".xarch-tmp");
        let skip = [self.cache(), own];
        let skip: Vec<&Path> = skip.iter().map(PathBuf::as_path).collect();
        let before = snapshot(self.tmp.path(), &skip);
        let mut cmd = xarch();
        cmd.args(["run", "--platform", "linux/amd64"])
            .args(flags)
            .arg(format!("oci:{}:1", layout.display()))
            .env("XARCH_CACHE_DIR", self.cache());
        setup(&mut cmd, self.tmp.path());
        let out = cmd.output().unwrap();
        let changed = changes(&before, &snapshot(self.tmp.path(), &skip));
        assert!(
            changed.is_empty(),
            "changed outside the root: {changed:#?}\n{}",
            stderr(&out)
        );
        assert_eq!(mode(&self.sentinel.dir), 0o700);
        out
    }

    /// The case unpacked (the run then stopped at the missing entrypoint);
    /// returns the unpacked root.
    fn unpacked(&self, out: &Output) -> PathBuf {
        let err = stderr(out);
        assert!(
            err.contains("/no-such-program is not in the image"),
            "{err}"
        );
        let mut roots: Vec<_> = std::fs::read_dir(self.cache().join("rootfs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(roots.len(), 1, "{roots:?}");
        roots.pop().unwrap()
    }

    /// The case was refused with `want` in the message, and left no rootfs.
    fn refused(&self, out: &Output, want: &str) {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "wanted `{want}` in: {err}");
        let left: Vec<_> = std::fs::read_dir(self.cache().join("rootfs"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn one_layer(tar: Tar) -> Image {
    Image::new().layer(&tar.finish(), Compression::Gzip)
}

/// Where an absolute path of the host lands inside `root`.
fn inside(root: &Path, host_path: &str) -> PathBuf {
    root.join(host_path.trim_start_matches('/'))
}

#[test]
fn a_directory_replaced_by_a_symlink_to_the_host_keeps_the_host_mode() {
    // The reported escape: a directory's mode is recorded, then a later entry
    // (a higher layer, or the same one) makes the path a link to a host
    // directory; the final chmod must not follow it.
    let c = Case::new();
    let mut lower = Tar::new();
    lower.dir("d/", 0o755).dir("p/", 0o755).dir("p/sub/", 0o777);
    let mut upper = Tar::new();
    upper.symlink("d", &c.host()).symlink("p", &c.host());
    let image = Image::new()
        .layer(&lower.finish(), Compression::Gzip)
        .layer(&upper.finish(), Compression::Gzip);
    let root = c.unpacked(&c.run(&image, &[]));
    assert!(root.join("d").symlink_metadata().unwrap().is_symlink());
    assert_eq!(mode(&c.sentinel.dir.join("sub")), 0o750);

    let c = Case::new();
    let mut t = Tar::new();
    t.dir("d/", 0o755)
        .symlink("d", &c.host())
        .dir("d/sub/", 0o777);
    let root = c.unpacked(&c.run(&one_layer(t), &[]));
    // `d/sub/` went through the link, resolved inside the root.
    assert_eq!(mode(&inside(&root, &c.host()).join("sub")), 0o777);
}

#[test]
fn paths_with_dotdot_are_refused_and_absolute_ones_stay_inside() {
    let c = Case::new();
    let mut t = Tar::new();
    t.file("../../sentinel/secret", b"evil", 0o644);
    c.refused(
        &c.run(&one_layer(t), &[]),
        "`../../sentinel/secret` climbs out of the image",
    );

    let c = Case::new();
    let mut t = Tar::new();
    t.file("a/../../x", b"evil", 0o644);
    c.refused(&c.run(&one_layer(t), &[]), "climbs out of the image");

    let c = Case::new();
    let mut t = Tar::new();
    let abs = format!("{}/secret", c.host());
    t.file(&abs, b"evil", 0o644)
        .file("//double/x", b"2", 0o644)
        .file("./dot/x", b"3", 0o644);
    let root = c.unpacked(&c.run(&one_layer(t), &[]));
    assert_eq!(std::fs::read(inside(&root, &abs)).unwrap(), b"evil");
    assert_eq!(std::fs::read(root.join("double/x")).unwrap(), b"2");
    assert_eq!(std::fs::read(root.join("dot/x")).unwrap(), b"3");
}

#[test]
fn symlinks_resolve_inside_the_root_for_every_kind_of_write() {
    let c = Case::new();
    let host = c.host();
    let mut lower = Tar::new();
    lower
        .symlink("etc", &host)
        .symlink("up", "../../../..")
        .symlink("pw", &format!("{host}/secret"))
        .symlink("dangling", "/made/here")
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1");
    let mut upper = Tar::new();
    upper
        .file("etc/secret", b"evil", 0o666)
        .dir("etc/sub/", 0o777)
        .file("up/x", b"up", 0o755)
        // A file over a link to a host file replaces the link.
        .file("pw", b"evil", 0o644)
        .file("dangling/f", b"made", 0o644);
    let image = Image::new()
        .layer(&lower.finish(), Compression::Gzip)
        .layer(&upper.finish(), Compression::Gzip);
    let root = c.unpacked(&c.run(&image, &[]));
    assert_eq!(
        std::fs::read(inside(&root, &host).join("secret")).unwrap(),
        b"evil"
    );
    assert_eq!(std::fs::read(root.join("x")).unwrap(), b"up");
    assert!(root.join("pw").symlink_metadata().unwrap().is_file());
    assert_eq!(std::fs::read(root.join("made/here/f")).unwrap(), b"made");

    let c = Case::new();
    let mut t = Tar::new();
    t.symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"", 0o644);
    c.refused(&c.run(&one_layer(t), &[]), "too many levels of symlinks");
}

#[test]
fn hard_links_only_reach_entries_of_the_image() {
    let c = Case::new();
    let mut t = Tar::new();
    t.symlink("out", &c.host()).hardlink("h", "out/secret");
    c.refused(
        &c.run(&one_layer(t), &[]),
        "hard link `h` → `out/secret`: the target is not in the image",
    );

    let c = Case::new();
    let mut t = Tar::new();
    t.hardlink("h", &format!("{}/secret", c.host()));
    c.refused(&c.run(&one_layer(t), &[]), "the target is not in the image");

    let c = Case::new();
    let mut t = Tar::new();
    t.hardlink("h", "../sentinel/secret");
    c.refused(&c.run(&one_layer(t), &[]), "climbs out of the image");

    let c = Case::new();
    let mut t = Tar::new();
    t.dir("d/", 0o755).hardlink("h", "d");
    c.refused(&c.run(&one_layer(t), &[]), "hard link `h` → `d`");

    // A hard link to a symlink is the symlink itself: writes through it still
    // resolve inside the root.
    let c = Case::new();
    let mut t = Tar::new();
    t.file("in", b"inside", 0o644)
        .hardlink("same", "in")
        .symlink("out", &c.host())
        .hardlink("twin", "out")
        .file("twin/secret", b"evil", 0o644);
    let root = c.unpacked(&c.run(&one_layer(t), &[]));
    assert_eq!(std::fs::read(root.join("same")).unwrap(), b"inside");
    assert!(root.join("twin").symlink_metadata().unwrap().is_symlink());
    assert_eq!(
        std::fs::read(inside(&root, &c.host()).join("secret")).unwrap(),
        b"evil"
    );
}

#[test]
fn whiteouts_stay_inside_the_root() {
    let c = Case::new();
    let mut t = Tar::new();
    t.file(".wh...", b"", 0o644);
    c.refused(
        &c.run(&one_layer(t), &[]),
        "entry `.wh...` is not a valid whiteout",
    );

    let c = Case::new();
    let mut t = Tar::new();
    t.file("sub/.wh..", b"", 0o644);
    c.refused(&c.run(&one_layer(t), &[]), "not a valid whiteout");

    let c = Case::new();
    let mut lower = Tar::new();
    lower
        .symlink("s", &c.host())
        .file("keep/a", b"a", 0o644)
        .file("opq/old", b"old", 0o644)
        .symlink("gone", &c.host());
    let mut upper = Tar::new();
    upper
        .file("s/.wh.secret", b"", 0o644)
        .file("s/.wh..wh..opq", b"", 0o644)
        .file("s/sub/.wh..wh..opq", b"", 0o644)
        .file("opq/new", b"new", 0o644)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file(".wh.gone", b"", 0o644);
    let image = Image::new()
        .layer(&lower.finish(), Compression::Gzip)
        .layer(&upper.finish(), Compression::Zstd);
    let root = c.unpacked(&c.run(&image, &[]));
    assert!(root.join("keep/a").is_file());
    assert!(!root.join("opq/old").exists());
    assert!(root.join("opq/new").is_file());
    assert!(root.join("gone").symlink_metadata().is_err());
}

#[test]
fn devices_and_fifos_are_skipped_and_setuid_needs_root() {
    let c = Case::new();
    let mut t = Tar::new();
    t.special("dev/null", b'3')
        .special("dev/sda", b'4')
        .special("fifo", b'6')
        .file("suid", b"x", 0o4755)
        .file("sgid", b"x", 0o2755)
        .dir("shared/", 0o3777);
    let tar = t.finish();
    let image = Image::new().layer(&tar, Compression::Gzip);
    let root = c.unpacked(&c.run(&image, &[]));
    assert!(root.join("dev").is_dir());
    assert!(root.join("dev/null").symlink_metadata().is_err());
    assert!(root.join("dev/sda").symlink_metadata().is_err());
    assert!(root.join("fifo").symlink_metadata().is_err());
    let root_user = euid() == 0;
    let (suid, sgid, shared) = if root_user {
        (0o4755, 0o2755, 0o3777)
    } else {
        (0o755, 0o755, 0o1777)
    };
    assert_eq!(mode(&root.join("suid")), suid);
    assert_eq!(mode(&root.join("sgid")), sgid);
    assert_eq!(mode(&root.join("shared")), shared);
    if root_user {
        // As anyone else, the bits are dropped.
        let c = Case::new();
        let out = c.run_with(&image, &[], |cmd, dir| {
            give_to_nobody(dir);
            cmd.uid(65534).gid(65534);
        });
        let root = c.unpacked(&out);
        assert_eq!(mode(&root.join("suid")), 0o755);
        assert_eq!(mode(&root.join("sgid")), 0o755);
        assert_eq!(mode(&root.join("shared")), 0o1777);
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn give_to_nobody(dir: &Path) {
    for e in walkdir::WalkDir::new(dir) {
        let e = e.unwrap();
        std::os::unix::fs::lchown(e.path(), Some(65534), Some(65534)).unwrap();
    }
}

#[test]
fn limits_refuse_with_the_flag_that_raises_them() {
    // Path length and depth.
    let c = Case::new();
    let mut t = Tar::new();
    t.file(&format!("{}f", "d/".repeat(300)), b"", 0o644);
    c.refused(
        &c.run(&one_layer(t), &[]),
        "is nested 301 directories deep (at most 256)",
    );
    let c = Case::new();
    let mut t = Tar::new();
    t.file(&"n".repeat(5000), b"", 0o644);
    c.refused(
        &c.run(&one_layer(t), &[]),
        "has a path of 5000 bytes (at most 4096)",
    );
    let c = Case::new();
    let mut t = Tar::new();
    t.symlink("l", &"t".repeat(5000));
    c.refused(
        &c.run(&one_layer(t), &[]),
        "has a target of 5000 bytes (at most 4096)",
    );

    // Entries, raised by --max-unpack-entries.
    let mut t = Tar::new();
    for i in 0..1001 {
        t.file(&format!("f/{i}"), b"", 0o644);
    }
    let image = one_layer(t);
    let c = Case::new();
    c.refused(
        &c.run(&image, &["--max-unpack-entries", "1000"]),
        "the image has more than 1000 entries; raise the limit with --max-unpack-entries",
    );
    let root = c.unpacked(&c.run(&image, &["--max-unpack-entries", "1002"]));
    assert!(root.join("f/1000").is_file());

    // Bytes, raised by --max-unpack-size.
    let mut t = Tar::new();
    t.file("big", &vec![7; 2 << 20], 0o644);
    let image = one_layer(t);
    let c = Case::new();
    c.refused(
        &c.run(&image, &["--max-unpack-size", "1M"]),
        "the image's layers unpack to more than 1.0 MiB; raise the limit with --max-unpack-size",
    );
    let root = c.unpacked(&c.run(&image, &["--max-unpack-size", "3M"]));
    assert_eq!(std::fs::metadata(root.join("big")).unwrap().len(), 2 << 20);
    let out = xarch()
        .args(["run", "--max-unpack-size", "lots", "oci:x"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("`lots` is not a size"),
        "{}",
        stderr(&out)
    );
}

/// Long names and PAX records are bounded before they are read: a 256 MiB
/// one is refused by an xarch whose heap is capped far below that.
#[test]
fn huge_long_names_and_pax_records_are_refused_in_bounded_memory() {
    const HUGE: u64 = 256 << 20;
    for kind in [b'x', b'L', b'K'] {
        let c = Case::new();
        let mut t = Tar::to(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        t.header(kind, b"huge", HUGE).zeros(HUGE).pad(HUGE);
        t.file("after", b"x", 0o644);
        let gz = t.finish().finish().unwrap();
        let image = Image::new().blob_layer(gz, Compression::Gzip.media_type(), "sha256:unused");
        let out = c.run_with(&image, &[], |cmd, _| cap_heap(cmd, 96 << 20));
        c.refused(
            &out,
            "an entry's headers (GNU long name, long link name or PAX records) are larger than 1.0 MiB",
        );
    }
}

/// Caps the data segment (heap and anonymous mappings) of `cmd`'s process.
fn cap_heap(cmd: &mut Command, bytes: u64) {
    // SAFETY: only setrlimit, async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn plain_gzip_docker_and_zstd_layers_unpack_by_media_type() {
    let c = Case::new();
    let layer = |name: &str| {
        let mut t = Tar::new();
        t.file(name, name.as_bytes(), 0o644);
        t.finish()
    };
    let image = Image::new()
        .layer(&layer("plain"), Compression::None)
        .layer(&layer("gzip"), Compression::Gzip)
        .layer(&layer("docker"), Compression::DockerGzip)
        .layer(&layer("zstd"), Compression::Zstd);
    let root = c.unpacked(&c.run(&image, &[]));
    for name in ["plain", "gzip", "docker", "zstd"] {
        assert_eq!(std::fs::read(root.join(name)).unwrap(), name.as_bytes());
    }
    // A layer whose bytes are not what its media type says.
    let c = Case::new();
    let image = Image::new().blob_layer(
        Compression::Zstd.compress(&layer("z")),
        Compression::Gzip.media_type(),
        "sha256:unused",
    );
    c.refused(&c.run(&image, &[]), "bad tar entry");
    let c = Case::new();
    let image =
        Image::new().blob_layer(layer("z"), "application/vnd.example.weird", "sha256:unused");
    c.refused(
        &c.run(&image, &[]),
        "layers of type `application/vnd.example.weird` cannot be unpacked",
    );
}

/// Random archives unpacked through the library (many cases, fast): never a
/// panic, never a write outside the root.
mod random {
    use super::*;
    use proptest::prelude::*;
    use xarch::rootfs::{Limits, Unpack};

    /// One tar entry: (kind, path, link target, mode).
    type Entry = (u8, String, String, u32);

    /// Mostly plain names, so that later entries go through earlier links.
    fn name() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            12 => prop::sample::select(&["a", "b"][..]),
            1 => prop::sample::select(&["..", ".", "", ".wh.a", ".wh..wh..opq", ".wh...", "c/d"][..]),
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        (any::<bool>(), prop::collection::vec(name(), 1..3))
            .prop_map(|(abs, parts)| format!("{}{}", if abs { "/" } else { "" }, parts.join("/")))
    }

    const AIMED: [&str; 8] = [
        "SENTINEL",
        "SENTINEL/sub",
        "SENTINEL/secret",
        "../../..",
        "/",
        "..",
        "a",
        "b/a",
    ];

    /// Link targets aimed at the host (the sentinel, `..` chains) or inside.
    fn target() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(&AIMED[..]).prop_map(String::from),
            1 => path(),
        ]
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let kind =
            prop::sample::select(&[b'0', b'0', b'5', b'5', b'2', b'2', b'1', b'3', b'6'][..]);
        let mode = prop::sample::select(&[0o644, 0o755, 0o4755, 0o000, 0o555, 0o1777][..]);
        // Hard links name paths (mostly there); symlinks aim anywhere.
        (kind, path(), target(), path(), mode).prop_map(|(k, p, t, l, m)| {
            let target = if k == b'1' { l } else { t };
            (k, p, target, m)
        })
    }

    fn layers() -> impl Strategy<Value = Vec<Vec<Entry>>> {
        prop::collection::vec(prop::collection::vec(entry(), 0..16), 1..4)
    }

    fn tar(entries: &[Entry], sentinel: &str) -> Vec<u8> {
        let mut t = Tar::new();
        for (kind, path, link, mode) in entries {
            let path = path.replace("SENTINEL", sentinel);
            let link = link.replace("SENTINEL", sentinel);
            let body: &[u8] = if *kind == b'0' { b"evil" } else { b"" };
            t.entry(*kind, path.as_bytes(), link.as_bytes(), *mode, body);
        }
        t.finish()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_archives_never_write_outside_the_root(layers in layers()) {
            let tmp = tempfile::tempdir().unwrap();
            let sentinel = Sentinel::new(tmp.path());
            let root = tmp.path().join("root");
            std::fs::create_dir(&root).unwrap();
            let before = snapshot(tmp.path(), &[&root]);
            let mut unpack = Unpack::new(&root, Limits::default()).unwrap();
            // Errors are fine (`..`, loops, …); writes outside the root are
            // not. Later layers still go in after an error, to try more.
            for entries in &layers {
                let bytes = tar(entries, &sentinel.path());
                let digest = common::craft::sha(&bytes).parse().unwrap();
                let _ = unpack.layer(&bytes[..], &digest, "application/vnd.oci.image.layer.v1.tar");
            }
            let _ = unpack.finish();
            let changed = changes(&before, &snapshot(tmp.path(), &[&root]));
            prop_assert!(changed.is_empty(), "{:#?}", changed);
            xarch::rootfs::remove_tree(&root).unwrap();
            let changed = changes(&before, &snapshot(tmp.path(), &[]));
            prop_assert!(changed.is_empty(), "{:#?}", changed);
        }
    }
}

#[test]
fn pax_records_are_checked_like_any_path() {
    let c = Case::new();
    let mut t = Tar::new();
    t.pax(&[("path", b"../../sentinel/secret")])
        .file("innocent", b"evil", 0o644);
    c.refused(
        &c.run(&one_layer(t), &[]),
        "`../../sentinel/secret` climbs out of the image",
    );

    let c = Case::new();
    let mut t = Tar::new();
    let secret = format!("{}/secret", c.host());
    t.pax(&[("linkpath", secret.as_bytes())]).hardlink("h", "x");
    c.refused(&c.run(&one_layer(t), &[]), "the target is not in the image");

    let c = Case::new();
    let long = format!("p/{}", "n".repeat(200));
    let mut t = Tar::new();
    t.pax(&[("path", long.as_bytes())])
        .file("short", b"long", 0o644);
    t.pax(&[("linkpath", secret.as_bytes())]).symlink("l", "x");
    let root = c.unpacked(&c.run(&one_layer(t), &[]));
    assert_eq!(std::fs::read(root.join(&long)).unwrap(), b"long");
    assert!(!root.join("short").exists());
    assert_eq!(
        std::fs::read_link(root.join("l")).unwrap(),
        Path::new(&secret)
    );
}

/// `build --smoke` unpacks its temp rootfs the same way: a base that replaces
/// a directory with a link to the host leaves the host as it was, and the
/// smoke run itself still passes.
#[test]
fn smoke_runs_on_a_hostile_base_without_touching_the_host() {
    require("skopeo", "apt-get install -y skopeo");
    let registry = common::registry::Registry::start("");
    let c = Case::new();
    let mut lower = Tar::new();
    lower.dir("d/", 0o755).dir("tmp/", 0o1777);
    let mut upper = Tar::new();
    upper.symlink("d", &c.host()).dir("d/sub/", 0o777);
    let base = Image::new()
        .entrypoint(&[])
        .layer(&lower.finish(), Compression::Gzip)
        .layer(&upper.finish(), Compression::Gzip);
    let layout = c.tmp.path().join("base");
    base.write_layout(&layout, "1");
    let base_ref = format!("{}/base/hostile:1", registry.host);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:1", layout.display()))
            .arg(format!("docker://{base_ref}")),
    );
    let before = snapshot(&c.sentinel.dir, &[]);
    let (project_tmp, project) = crate::run::exit_project();
    let out = xarch()
        .arg("build")
        .arg(&project)
        .args([
            "--platform",
            "linux/amd64",
            "--base",
            &base_ref,
            "-t",
            "e:1",
        ])
        .args(["--smoke", "0", "--oci-layout"])
        .arg(project_tmp.path().join("oci"))
        .env("XARCH_CACHE_DIR", c.cache())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("args=1 greeting=hi"), "{err}");
    let changed = changes(&before, &snapshot(&c.sentinel.dir, &[]));
    assert!(changed.is_empty(), "{changed:#?}");
    assert_eq!(mode(&c.sentinel.dir), 0o700);
}
