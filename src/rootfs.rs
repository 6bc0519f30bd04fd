//! `Rootfs`: an image's layers unpacked into a directory, safely — no entry may
//! land outside the root (absolute paths and `..` are refused, and symlinks are
//! resolved inside the root, never on the host), whiteouts are honoured and
//! modes kept. Each layer's bytes are checked against its digest as they are
//! read.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};

use crate::oci::Digest;

/// How many symlinks one path may pass through (as Linux's MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// Directory modes to apply once every layer is unpacked.
pub type DirModes = Vec<(PathBuf, u32)>;

/// Unpacks one layer (a tar: plain, gzip or zstd) from `reader` over `root`; the
/// directories' real modes are added to `modes` (see `finish`).
pub fn apply_layer(
    root: &Path,
    reader: impl Read,
    digest: &Digest,
    modes: &mut DirModes,
) -> Result<()> {
    let mut hashing = HashingReader::new(reader);
    {
        let tar = crate::oci::compress::decoder(&mut hashing)?;
        let mut archive = tar::Archive::new(tar);
        let mut made = std::collections::HashSet::new();
        for entry in archive
            .entries()
            .with_context(|| format!("layer {digest} is not a tar"))?
        {
            let mut entry = entry.with_context(|| format!("layer {digest}: bad tar entry"))?;
            apply_entry(root, &mut entry, modes, &mut made)
                .with_context(|| format!("layer {}", digest.short()))?;
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

/// Applies the directories' own modes, deepest first, after the last layer.
pub fn finish(modes: DirModes) -> Result<()> {
    let mut last: std::collections::BTreeMap<PathBuf, u32> = Default::default();
    for (p, m) in modes {
        last.insert(p, m);
    }
    for (p, m) in last.iter().rev() {
        if p.is_dir() {
            fs::set_permissions(p, fs::Permissions::from_mode(*m))?;
        }
    }
    Ok(())
}

/// Deletes an unpacked tree, read-only directories included (as a non-root
/// user `remove_dir_all` cannot empty a 0555 directory).
pub fn remove_tree(root: &Path) -> Result<()> {
    for e in walkdir::WalkDir::new(root).into_iter().flatten() {
        if e.file_type().is_dir() {
            let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o700));
        }
    }
    fs::remove_dir_all(root).with_context(|| format!("cannot remove {}", root.display()))
}

fn apply_entry<R: Read>(
    root: &Path,
    entry: &mut tar::Entry<R>,
    modes: &mut Vec<(PathBuf, u32)>,
    made: &mut std::collections::HashSet<PathBuf>,
) -> Result<()> {
    let raw = entry.path()?.to_path_buf();
    let rel = relative(&raw)?;
    let Some(name) = rel.file_name().map(|n| n.to_string_lossy().to_string()) else {
        return Ok(()); // the root itself
    };
    let parent = secure_join(root, rel.parent().unwrap_or(Path::new("")))?;
    // Whiteouts: `.wh..wh..opq` empties the directory, `.wh.NAME` deletes NAME.
    if name == ".wh..wh..opq" {
        // Hides what lower layers put there, not this layer's own entries.
        if parent.is_dir() {
            for e in fs::read_dir(&parent)? {
                let p = e?.path();
                if !made.contains(&p) {
                    remove(&p)?;
                }
            }
        }
        return Ok(());
    }
    if let Some(victim) = name.strip_prefix(".wh.") {
        // `.wh...` would name the parent: a whiteout removes one entry, no more.
        if victim.is_empty() || victim == "." || victim == ".." || victim.contains('/') {
            bail!("entry `{}` is not a valid whiteout", raw.display());
        }
        return remove(&parent.join(victim));
    }
    fs::create_dir_all(&parent)?;
    let dest = parent.join(&name);
    made.insert(dest.clone());
    let mode = entry.header().mode()? & 0o7777;
    let kind = entry.header().entry_type();
    if kind.is_dir() {
        if dest.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            remove(&dest)?;
        }
        fs::create_dir_all(&dest)?;
        // Owner-writable until every layer is in (a 0555 /usr/bin must still
        // take its files); the real mode is applied by `finish`.
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode | 0o700))?;
        modes.push((dest, mode));
        return Ok(());
    }
    remove(&dest)?;
    if kind.is_symlink() {
        let target = entry
            .link_name()?
            .with_context(|| format!("symlink {} has no target", raw.display()))?;
        std::os::unix::fs::symlink(target.as_ref(), &dest)?;
    } else if kind.is_hard_link() {
        let target = entry
            .link_name()?
            .with_context(|| format!("hard link {} has no target", raw.display()))?;
        let source = secure_join(root, &relative(&target)?)?;
        fs::hard_link(&source, &dest)
            .with_context(|| format!("hard link {} → {}", raw.display(), target.display()))?;
    } else if kind.is_file() || kind == tar::EntryType::Continuous {
        let mut f = fs::File::create(&dest)?;
        io::copy(entry, &mut f)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    // Devices and fifos are skipped: a smoke run does not need them.
    Ok(())
}

/// A tar path as a relative path; `/`-prefixed paths count from the root, as
/// in every image, but `..` is refused outright.
fn relative(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                bail!("entry `{}` climbs out of the image with `..`", p.display())
            }
            Component::Prefix(_) => bail!("entry `{}` is not a Unix path", p.display()),
        }
    }
    Ok(out)
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
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    bail!("too many symlinks resolving {}", rel.display());
                }
                let target = fs::read_link(&full)?;
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

/// Removes a file, link or directory tree if it exists.
fn remove(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p)?,
        Ok(_) => fs::remove_file(p)?,
        Err(_) => {}
    }
    Ok(())
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

    fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> (Vec<u8>, Digest) {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let bytes = b.into_inner().unwrap();
        let d = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        (bytes, d.parse().unwrap())
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, body: &[u8], mode: u32) {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`; write the raw name to build hostile layers.
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, body).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, path, target).unwrap();
    }

    #[test]
    fn dotdot_entries_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let (bytes, d) = layer(|b| file(b, "../escape", b"x", 0o644));
        let e = apply_layer(root.path(), &bytes[..], &d, &mut vec![]).unwrap_err();
        assert!(
            format!("{e:#}").contains("climbs out of the image"),
            "{e:#}"
        );
        assert!(!root.path().parent().unwrap().join("escape").exists());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_string_lossy().to_string();
        let (bytes, d) = layer(|b| {
            link(b, "etc", &target);
            link(b, "up", "../../..");
            file(b, "etc/passwd", b"root", 0o600);
            file(b, "up/x", b"y", 0o755);
        });
        apply_layer(root.path(), &bytes[..], &d, &mut vec![]).unwrap();
        // Nothing reached the host directory the link named …
        assert!(!outside.path().join("passwd").exists());
        // … the writes landed inside the root instead.
        let inside = root
            .path()
            .join(target.trim_start_matches('/'))
            .join("passwd");
        assert_eq!(fs::read(inside).unwrap(), b"root");
        let x = root.path().join("x");
        assert_eq!(
            fs::metadata(&x).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn whiteouts_remove_lower_files() {
        let root = tempfile::tempdir().unwrap();
        let (one, d1) = layer(|b| {
            file(b, "a/keep", b"1", 0o644);
            file(b, "a/gone", b"2", 0o644);
            file(b, "b/old", b"3", 0o644);
        });
        apply_layer(root.path(), &one[..], &d1, &mut vec![]).unwrap();
        let (two, d2) = layer(|b| {
            file(b, "a/.wh.gone", b"", 0o644);
            file(b, "b/.wh..wh..opq", b"", 0o644);
            file(b, "b/new", b"4", 0o644);
        });
        apply_layer(root.path(), &two[..], &d2, &mut vec![]).unwrap();
        let (three, d3) = layer(|b| {
            file(b, "c/mine", b"5", 0o644);
            file(b, "c/.wh..wh..opq", b"", 0o644);
        });
        apply_layer(root.path(), &three[..], &d3, &mut vec![]).unwrap();
        assert!(
            root.path().join("c/mine").exists(),
            "opq keeps its own layer's entries"
        );
        assert!(root.path().join("a/keep").exists());
        assert!(!root.path().join("a/gone").exists());
        assert!(!root.path().join("b/old").exists());
        assert!(root.path().join("b/new").exists());
    }

    #[test]
    fn a_whiteout_cannot_name_the_parent() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        fs::create_dir_all(&root).unwrap();
        fs::write(outer.path().join("sentinel"), b"keep").unwrap();
        let (bytes, d) = layer(|b| file(b, ".wh...", b"", 0o644));
        let e = apply_layer(&root, &bytes[..], &d, &mut vec![]).unwrap_err();
        assert!(format!("{e:#}").contains("not a valid whiteout"), "{e:#}");
        assert!(outer.path().join("sentinel").exists());
    }

    #[test]
    fn read_only_directories_still_take_their_files() {
        let root = tempfile::tempdir().unwrap();
        let (bytes, d) = layer(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o555);
            h.set_size(0);
            b.append_data(&mut h, "usr/bin/", &[][..]).unwrap();
            file(b, "usr/bin/tool", b"x", 0o755);
        });
        let mut modes = vec![];
        apply_layer(root.path(), &bytes[..], &d, &mut modes).unwrap();
        finish(modes).unwrap();
        assert!(root.path().join("usr/bin/tool").is_file());
        let m = fs::metadata(root.path().join("usr/bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o555);
        fs::set_permissions(
            root.path().join("usr/bin"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }

    #[test]
    fn a_corrupt_layer_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (bytes, _) = layer(|b| file(b, "f", b"x", 0o644));
        let wrong: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        let e = apply_layer(root.path(), &bytes[..], &wrong, &mut vec![]).unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
    }
}
