//! `rootfs`: an image's layers unpacked into a directory that no entry can
//! leave. Every change is made through a directory handle (`root::Root`,
//! `openat2` with `RESOLVE_IN_ROOT`): symlinks in an image resolve inside its
//! root, a last path component is never followed, and directory modes are
//! applied at the end by walking real directories only. Entries with `..` are
//! refused, whiteouts honoured, setuid/setgid bits dropped unless xarch runs as
//! root, devices and fifos skipped, and everything is bounded (`Limits`). Each
//! layer is hashed as it is read and must match its digest.

mod meter;
mod root;

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};

use crate::oci::Digest;
use meter::{Meter, Metered};
use root::{DirId, DirMeta, Root};

/// What one image may unpack to. The defaults are generous (real images are
/// far below them); `--max-unpack-size` and `--max-unpack-entries` raise the
/// two a large image could reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes, counted both as the uncompressed tar streams and as the bytes
    /// written to files (a sparse entry writes more than it reads).
    pub max_bytes: u64,
    /// Tar entries across every layer.
    pub max_entries: u64,
    /// Bytes in one entry's path or link target.
    pub max_path: usize,
    /// Components in one entry's path.
    pub max_depth: usize,
    /// Bytes of one entry's headers: GNU long names and PAX records.
    pub max_header: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 1_000_000,
            max_path: 4096,
            max_depth: 256,
            max_header: 1 << 20,
        }
    }
}

/// An unpacking in progress: layers are applied in order with `layer`, then
/// `finish` applies the directories' own modes.
pub struct Unpack {
    root: Root,
    limits: Limits,
    meter: Rc<Meter>,
    entries: u64,
    written: u64,
    /// Every directory made, by identity: its mode and mtime, applied by `finish`.
    dirs: HashMap<DirId, DirMeta>,
    /// Running as root: owners are kept, and setuid/setgid bits.
    privileged: bool,
}

/// Names made by the current layer, as (directory, name): an opaque whiteout
/// hides lower layers' entries, not its own layer's.
type Made = HashSet<(DirId, OsString)>;

impl Unpack {
    /// Starts unpacking into `dir`, an empty directory xarch made.
    pub fn new(dir: &Path, limits: Limits) -> Result<Unpack> {
        Ok(Unpack {
            root: Root::open(dir)?,
            limits,
            meter: Meter::new(limits.max_bytes, limits.max_header),
            entries: 0,
            written: 0,
            dirs: HashMap::new(),
            privileged: rustix::process::geteuid().is_root(),
        })
    }

    /// Applies one layer (`media_type` says how it is compressed) read from
    /// `reader`; its bytes must hash to `digest`.
    pub fn layer(&mut self, reader: impl Read, digest: &Digest, media_type: &str) -> Result<()> {
        let mut hashing = HashingReader::new(reader);
        {
            let tar = crate::oci::decoder::decoder(media_type, &mut hashing)
                .with_context(|| format!("layer {digest}"))?;
            let mut archive = tar::Archive::new(Metered::new(tar, self.meter.clone()));
            let mut entries = archive
                .entries()
                .with_context(|| format!("layer {digest} is not a tar"))?;
            let mut made = Made::new();
            loop {
                self.meter.headers();
                let next = entries.next();
                self.meter.body();
                let Some(entry) = next else { break };
                let mut entry = entry.with_context(|| format!("layer {digest}: bad tar entry"))?;
                self.count_entry()?;
                self.entry(&mut entry, &mut made)
                    .with_context(|| format!("layer {}", digest.short()))?;
                // The rest of the body is read here, not as the next header.
                io::copy(&mut entry, &mut io::sink())
                    .with_context(|| format!("layer {digest}: bad tar entry"))?;
            }
        }
        // Read to the end so the hash covers every byte, padding included.
        io::copy(&mut hashing, &mut io::sink())?;
        let got = hashing.digest();
        if got != digest.as_str() {
            bail!("layer digest mismatch: expected {digest}, got {got}");
        }
        Ok(())
    }

    /// Applies the directories' own modes and mtimes, once every layer is in.
    pub fn finish(self) -> Result<()> {
        self.root.settle(&self.dirs)
    }

    fn count_entry(&mut self) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            bail!(
                "the image has more than {} entries; raise the limit with --max-unpack-entries",
                self.limits.max_entries
            );
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>, made: &mut Made) -> Result<()> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        let raw = entry.path_bytes().into_owned();
        let is_dir = kind == T::Directory || (kind.is_file() && raw.ends_with(b"/"));
        let act = is_dir
            || matches!(
                kind,
                T::Regular
                    | T::Continuous
                    | T::GNUSparse
                    | T::Symlink
                    | T::Link
                    | T::Char
                    | T::Block
                    | T::Fifo
            );
        if !act {
            return Ok(()); // PAX global headers, volume labels, …: no file
        }
        let parts = self.parts(&raw)?;
        let Some((name, parents)) = parts.split_last() else {
            return Ok(()); // the root itself
        };
        if let Some(victim) = name.as_bytes().strip_prefix(b".wh.") {
            return self.whiteout(parents, victim, &raw, made);
        }
        let dirs = &mut self.dirs;
        let dir = self
            .root
            .dir(parents, true, &mut |parent, child, itself| {
                made.insert((parent, child.to_os_string()));
                dirs.insert(
                    itself,
                    DirMeta {
                        mode: 0o755,
                        mtime: None,
                    },
                );
            })?
            .expect("created");
        made.insert((root::id(&dir)?, name.to_os_string()));
        let h = entry.header();
        let mode = self.mode(h.mode()?);
        let mtime = h.mtime().ok();
        // Owners are kept only when running as root (no one else can give
        // files away); one the header cannot give is left to xarch.
        let owner = match (h.uid(), h.gid()) {
            (Ok(uid), Ok(gid)) if self.privileged => root::owner(uid, gid),
            _ => None,
        };
        if is_dir {
            let fd = root::mkdir(&dir, name)?;
            own(&fd, owner)?;
            // Owner-writable until every layer is in (a 0555 /usr/bin must
            // still take its files); `finish` applies the real mode.
            rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode | 0o700))?;
            self.dirs.insert(root::id(&fd)?, DirMeta { mode, mtime });
            return Ok(());
        }
        root::remove(&dir, name)?;
        match kind {
            T::Symlink => {
                let target = self.link_target(entry, &raw)?;
                root::symlink(&dir, name, Path::new(OsStr::from_bytes(&target)))?;
                if let Some(owner) = owner {
                    root::chown(&dir, name, owner)?;
                }
                if let Some(t) = mtime {
                    root::set_mtime(&dir, name, t)?;
                }
            }
            T::Link => self.hard_link(entry, &raw, &dir, name)?,
            T::Regular | T::Continuous | T::GNUSparse => {
                let mut file = root::create_file(&dir, name)?;
                self.copy_body(entry, &mut file)?;
                own(&file, owner)?;
                file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
                if let Some(t) = mtime {
                    rustix::fs::futimens(&file, &root::times(t))?;
                }
            }
            // Devices and fifos are skipped (a smoke run does not need them);
            // like any entry, they replace what was at their path.
            _ => {}
        }
        Ok(())
    }

    /// `.wh..wh..opq` empties the directory of lower layers' entries,
    /// `.wh.NAME` deletes NAME; other `.wh..wh.` names are AUFS bookkeeping.
    fn whiteout(
        &mut self,
        parents: &[&OsStr],
        victim: &[u8],
        raw: &[u8],
        made: &Made,
    ) -> Result<()> {
        let opaque = victim == b".wh..opq";
        if !opaque && victim.starts_with(b".wh.") {
            return Ok(());
        }
        // `.wh...` would name the parent: a whiteout removes one entry, no more.
        if !opaque && (victim.is_empty() || victim == b"." || victim == b"..") {
            bail!("entry `{}` is not a valid whiteout", shown(raw));
        }
        let Some(dir) = self.root.dir(parents, false, &mut |_, _, _| {})? else {
            return Ok(()); // nothing there to hide
        };
        if !opaque {
            return root::remove(&dir, OsStr::from_bytes(victim));
        }
        let id = root::id(&dir)?;
        for child in root::names(&dir)? {
            let child = OsStr::from_bytes(child.as_bytes());
            if !made.contains(&(id, child.to_os_string())) {
                root::remove(&dir, child)?;
            }
        }
        Ok(())
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<R>,
        raw: &[u8],
        dir: &OwnedFd,
        name: &OsStr,
    ) -> Result<()> {
        let target = self.link_target(entry, raw)?;
        let tparts = self.parts(&target)?;
        let missing = || {
            anyhow::anyhow!(
                "hard link `{}` → `{}`: the target is not in the image",
                shown(raw),
                shown(&target)
            )
        };
        let (tname, tparents) = tparts.split_last().ok_or_else(missing)?;
        // Resolved inside the root like any path: a link can only name an
        // entry of this image.
        let source = self
            .root
            .dir(tparents, false, &mut |_, _, _| {})?
            .ok_or_else(missing)?;
        if root::kind_of(&source, *tname)?.is_none() {
            return Err(missing());
        }
        root::hard_link(&source, tname, dir, name)
            .with_context(|| format!("hard link `{}` → `{}`", shown(raw), shown(&target)))
    }

    fn link_target<R: Read>(&self, entry: &tar::Entry<R>, raw: &[u8]) -> Result<Vec<u8>> {
        let target = entry
            .link_name_bytes()
            .with_context(|| format!("link `{}` has no target", shown(raw)))?
            .into_owned();
        if target.len() > self.limits.max_path {
            bail!(
                "link `{}` has a target of {} bytes (at most {})",
                shown(raw),
                target.len(),
                self.limits.max_path
            );
        }
        Ok(target)
    }

    /// A file's body, counted against the size limit as it is written.
    fn copy_body(&mut self, entry: &mut impl Read, file: &mut std::fs::File) -> Result<()> {
        let left = self.limits.max_bytes.saturating_sub(self.written);
        let n = io::copy(&mut entry.take(left + 1), file)?;
        self.written += n;
        if n > left {
            bail!(
                "the image's layers unpack to more than {}; raise the limit with --max-unpack-size",
                crate::ui::size(self.limits.max_bytes)
            );
        }
        Ok(())
    }

    /// An entry's permission bits: setuid/setgid only when running as root.
    fn mode(&self, mode: u32) -> u32 {
        if self.privileged {
            mode & 0o7777
        } else {
            mode & 0o1777
        }
    }

    /// A tar path as components under the root: `/`-prefixed paths count from
    /// the root, as in every image, but `..` is refused outright, and length
    /// and depth are bounded.
    fn parts<'a>(&self, raw: &'a [u8]) -> Result<Vec<&'a OsStr>> {
        if raw.len() > self.limits.max_path {
            bail!(
                "entry `{}` has a path of {} bytes (at most {})",
                shown(raw),
                raw.len(),
                self.limits.max_path
            );
        }
        let mut parts = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => bail!("entry `{}` climbs out of the image with `..`", shown(raw)),
                c => parts.push(OsStr::from_bytes(c)),
            }
        }
        if parts.len() > self.limits.max_depth {
            bail!(
                "entry `{}` is nested {} directories deep (at most {})",
                shown(raw),
                parts.len(),
                self.limits.max_depth
            );
        }
        Ok(parts)
    }
}

/// Sets the owner of an opened file or directory (before its mode: a chown
/// clears setuid bits).
fn own(
    fd: &impl std::os::fd::AsFd,
    owner: Option<(rustix::fs::Uid, rustix::fs::Gid)>,
) -> Result<()> {
    if let Some((uid, gid)) = owner {
        rustix::fs::fchown(fd, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// A path for an error message: lossy UTF-8, long ones cut.
fn shown(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.into_owned(),
    }
}

/// Deletes an unpacked tree through handles, read-only directories included
/// (as a non-root user `remove_dir_all` cannot empty a 0555 directory).
pub fn remove_tree(root: &Path) -> Result<()> {
    let fd = root::open_trusted(root)?;
    root::empty(&fd, 0).with_context(|| format!("cannot empty {}", root.display()))?;
    std::fs::remove_dir(root).with_context(|| format!("cannot remove {}", root.display()))
}

/// `root/rel` with every symlink on the way resolved *inside* `root` (an
/// absolute link target counts from the root, `..` stops at it), so no write
/// can reach the host through a link an image planted.
pub fn secure_join(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut todo: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            parts.pop();
            continue;
        }
        if part == "." {
            continue;
        }
        let candidate: PathBuf = parts.iter().chain([&part]).collect();
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > root::MAX_LINKS {
                    bail!("too many symlinks resolving {}", rel.display());
                }
                let target = std::fs::read_link(&full)?;
                if target.is_absolute() {
                    parts.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push(n.to_os_string()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => parts.push(part),
        }
    }
    Ok(parts.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hash: Sha256::new(),
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hash.clone().finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::media;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> (Vec<u8>, Digest) {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let bytes = b.into_inner().unwrap();
        let d = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        (bytes, d.parse().unwrap())
    }

    fn unpack(root: &Path, layers: &[(Vec<u8>, Digest)], limits: Limits) -> Result<()> {
        let mut u = Unpack::new(root, limits)?;
        for (bytes, d) in layers {
            u.layer(&bytes[..], d, media::OCI_LAYER_TAR)?;
        }
        u.finish()
    }

    fn header(kind: tar::EntryType, path: &str, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(mode);
        h.set_entry_type(kind);
        // set_path refuses `..`; write the raw name to build hostile layers.
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        h
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, body: &[u8], mode: u32) {
        let h = header(tar::EntryType::Regular, path, body.len() as u64, mode);
        b.append(&h, body).unwrap();
    }

    fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
        b.append(&header(tar::EntryType::Directory, path, 0, mode), &[][..])
            .unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
        let mut h = header(kind, path, 0, 0o777);
        h.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }

    fn symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
        link(b, tar::EntryType::Symlink, path, target);
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A root inside a parent that also holds a host directory (0700, one
    /// file): after each case the host directory must be as it was.
    struct Case {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        host: PathBuf,
    }

    impl Case {
        fn new() -> Case {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            let host = tmp.path().join("host");
            fs::create_dir(&root).unwrap();
            fs::create_dir(&host).unwrap();
            fs::write(host.join("keep"), b"host").unwrap();
            fs::set_permissions(host.join("keep"), fs::Permissions::from_mode(0o640)).unwrap();
            fs::set_permissions(&host, fs::Permissions::from_mode(0o700)).unwrap();
            Case {
                _tmp: tmp,
                root,
                host,
            }
        }

        fn host(&self) -> String {
            self.host.to_string_lossy().into_owned()
        }

        fn assert_host_untouched(&self) {
            assert_eq!(mode(&self.host), 0o700);
            let names: Vec<_> = fs::read_dir(&self.host)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["keep"]);
            assert_eq!(fs::read(self.host.join("keep")).unwrap(), b"host");
            assert_eq!(mode(&self.host.join("keep")), 0o640);
        }
    }

    #[test]
    fn dotdot_entries_are_refused() {
        let c = Case::new();
        let l = layer(|b| file(b, "../host/keep", b"x", 0o644));
        let e = unpack(&c.root, &[l], Limits::default()).unwrap_err();
        assert!(
            format!("{e:#}").contains("climbs out of the image"),
            "{e:#}"
        );
        c.assert_host_untouched();
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let c = Case::new();
        let host = c.host();
        let l = layer(|b| {
            symlink(b, "etc", &host);
            symlink(b, "up", "../../..");
            file(b, "etc/passwd", b"root", 0o600);
            file(b, "up/x", b"y", 0o755);
        });
        unpack(&c.root, &[l], Limits::default()).unwrap();
        c.assert_host_untouched();
        // The writes landed inside the root instead.
        let inside = c.root.join(host.trim_start_matches('/')).join("passwd");
        assert_eq!(fs::read(inside).unwrap(), b"root");
        assert_eq!(mode(&c.root.join("x")), 0o755);
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_keeps_the_host_mode() {
        // The reported escape: `d` is recorded with mode 0755, then replaced
        // by a link to a host directory; the final chmod must not follow it.
        let c = Case::new();
        let host = c.host();
        let one = layer(|b| {
            dir(b, "d/", 0o755);
            dir(b, "p/sub/", 0o751);
        });
        let two = layer(|b| {
            symlink(b, "d", &host);
            symlink(b, "p", &host);
        });
        unpack(&c.root, &[one, two], Limits::default()).unwrap();
        c.assert_host_untouched();
        assert!(fs::symlink_metadata(c.root.join("d")).unwrap().is_symlink());
        // The same within one layer.
        let c = Case::new();
        let host = c.host();
        let l = layer(|b| {
            dir(b, "d/", 0o755);
            symlink(b, "d", &host);
        });
        unpack(&c.root, &[l], Limits::default()).unwrap();
        c.assert_host_untouched();
    }

    #[test]
    fn hard_links_reach_only_the_image() {
        let c = Case::new();
        let host = c.host();
        let l = layer(|b| {
            symlink(b, "out", &host);
            file(b, "in", b"inside", 0o644);
            link(b, tar::EntryType::Link, "a", "in");
            // Through a link to the host: resolved inside the root, where
            // there is no `keep`.
            link(b, tar::EntryType::Link, "b", "out/keep");
        });
        let e = unpack(&c.root, &[l], Limits::default()).unwrap_err();
        assert!(format!("{e:#}").contains("is not in the image"), "{e:#}");
        c.assert_host_untouched();
        assert_eq!(fs::read(c.root.join("a")).unwrap(), b"inside");
        // A hard link to a symlink is the symlink itself, not its target.
        let c = Case::new();
        let host = c.host();
        let l = layer(|b| {
            symlink(b, "out", &host);
            link(b, tar::EntryType::Link, "twin", "out");
            file(b, "twin/x", b"x", 0o644);
        });
        unpack(&c.root, &[l], Limits::default()).unwrap();
        assert!(
            fs::symlink_metadata(c.root.join("twin"))
                .unwrap()
                .is_symlink()
        );
        c.assert_host_untouched();
    }

    #[test]
    fn whiteouts_remove_lower_files() {
        let root = tempfile::tempdir().unwrap();
        let one = layer(|b| {
            file(b, "a/keep", b"1", 0o644);
            file(b, "a/gone", b"2", 0o644);
            file(b, "b/old", b"3", 0o644);
        });
        let two = layer(|b| {
            file(b, "a/.wh.gone", b"", 0o644);
            file(b, "b/.wh..wh..opq", b"", 0o644);
            file(b, "b/new", b"4", 0o644);
        });
        let three = layer(|b| {
            file(b, "c/mine", b"5", 0o644);
            file(b, "c/sub/deep", b"6", 0o644);
            file(b, "c/.wh..wh..opq", b"", 0o644);
        });
        unpack(root.path(), &[one, two, three], Limits::default()).unwrap();
        let r = root.path();
        assert!(
            r.join("c/mine").exists(),
            "opq keeps its own layer's entries"
        );
        assert!(r.join("c/sub/deep").exists(), "and the directories it made");
        assert!(r.join("a/keep").exists());
        assert!(!r.join("a/gone").exists());
        assert!(!r.join("b/old").exists());
        assert!(r.join("b/new").exists());
    }

    #[test]
    fn a_whiteout_cannot_name_the_parent_or_reach_the_host() {
        let c = Case::new();
        let l = layer(|b| file(b, ".wh...", b"", 0o644));
        let e = unpack(&c.root, &[l], Limits::default()).unwrap_err();
        assert!(format!("{e:#}").contains("not a valid whiteout"), "{e:#}");
        let host = c.host();
        let l = layer(|b| {
            symlink(b, "h", &host);
            file(b, "h/.wh.keep", b"", 0o644);
            file(b, "h/.wh..wh..opq", b"", 0o644);
            file(b, ".wh.h", b"", 0o644);
        });
        unpack(&c.root, &[l], Limits::default()).unwrap();
        c.assert_host_untouched();
    }

    #[test]
    fn read_only_directories_still_take_their_files() {
        let root = tempfile::tempdir().unwrap();
        let l = layer(|b| {
            dir(b, "usr/bin/", 0o555);
            file(b, "usr/bin/tool", b"x", 0o755);
            dir(b, "locked/", 0o000);
            file(b, "locked/in", b"x", 0o644);
        });
        unpack(root.path(), &[l], Limits::default()).unwrap();
        assert!(root.path().join("usr/bin/tool").is_file());
        assert_eq!(mode(&root.path().join("usr/bin")), 0o555);
        assert_eq!(mode(&root.path().join("usr")), 0o755);
        assert_eq!(mode(&root.path().join("locked")), 0o000);
        remove_tree(root.path()).unwrap();
        assert!(!root.path().exists());
    }

    #[test]
    fn a_corrupt_layer_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (bytes, _) = layer(|b| file(b, "f", b"x", 0o644));
        let wrong: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        let e = unpack(root.path(), &[(bytes, wrong)], Limits::default()).unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
    }

    #[test]
    fn limits_stop_an_image_with_a_clear_error() {
        let small = Limits {
            max_bytes: 4096,
            max_entries: 3,
            max_path: 64,
            max_depth: 4,
            max_header: 2048,
        };
        type Build = Box<dyn FnOnce(&mut tar::Builder<Vec<u8>>)>;
        let cases: Vec<(Build, &str)> = vec![
            (
                Box::new(|b| (0..4).for_each(|i| file(b, &format!("f{i}"), b"", 0o644))),
                "more than 3 entries; raise the limit with --max-unpack-entries",
            ),
            (
                Box::new(|b| file(b, "big", &[0; 5000], 0o644)),
                "--max-unpack-size",
            ),
            (
                Box::new(|b| file(b, &"x".repeat(65), b"", 0o644)),
                "has a path of 65 bytes (at most 64)",
            ),
            (
                Box::new(|b| file(b, "a/b/c/d/e", b"", 0o644)),
                "nested 5 directories deep (at most 4)",
            ),
            (
                Box::new(|b| {
                    let mut h = tar::Header::new_gnu();
                    h.set_size(0);
                    h.set_entry_type(tar::EntryType::Regular);
                    b.append_data(&mut h, "d/".repeat(1500), &[][..]).unwrap();
                }),
                "headers (GNU long name, long link name or PAX records) are larger than 2.0 KiB",
            ),
        ];
        for (build, want) in cases {
            let root = tempfile::tempdir().unwrap();
            let l = layer(build);
            let e = unpack(root.path(), &[l], small).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{e:#}");
        }
    }

    #[test]
    fn zstd_and_gzip_layers_are_read_by_media_type() {
        let root = tempfile::tempdir().unwrap();
        let (tar, _) = layer(|b| file(b, "z", b"zstd", 0o644));
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let d: Digest = format!("sha256:{}", hex::encode(Sha256::digest(&zst)))
            .parse()
            .unwrap();
        let mut u = Unpack::new(root.path(), Limits::default()).unwrap();
        u.layer(&zst[..], &d, "application/vnd.oci.image.layer.v1.tar+zstd")
            .unwrap();
        let e = u.layer(&zst[..], &d, media::OCI_LAYER_GZIP).unwrap_err();
        assert!(format!("{e:#}").contains("bad tar entry"), "{e:#}");
        assert_eq!(fs::read(root.path().join("z")).unwrap(), b"zstd");
    }
}
