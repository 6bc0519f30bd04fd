//! `Root`: a directory handle that unpacking cannot leave. Every lookup goes
//! through `openat2(RESOLVE_IN_ROOT)`, so symlinks (absolute ones and `..`
//! included) resolve as if the root were `/`; every create, chmod, chown,
//! utime, link and remove then acts on one name inside an already opened
//! directory, never following a symlink in that last name. No path string is
//! ever handed to the kernel to resolve from the host's `/`.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rustix::fs::{
    AtFlags, CWD, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, Uid,
};
use rustix::io::Errno;

/// How deep the walks over the finished tree go (one open directory per level).
/// Entry paths are capped lower; only symlinked parents can nest deeper.
pub const MAX_WALK_DEPTH: usize = 512;

/// A directory's identity while it exists: (device, inode).
pub type DirId = (u64, u64);

/// A directory's mode and mtime to apply once every layer is in.
#[derive(Clone, Copy, Debug)]
pub struct DirMeta {
    pub mode: u32,
    pub mtime: Option<u64>,
}

/// How many symlinks one path may pass through (as Linux's MAXSYMLINKS).
pub const MAX_LINKS: usize = 40;

enum Made {
    Done(OwnedFd),
    Again(Vec<OsString>),
}

fn owned(parts: &[&OsStr]) -> Vec<OsString> {
    parts.iter().map(|p| p.to_os_string()).collect()
}

/// The root of an unpacked tree, held open.
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens `dir` (a trusted path: the temp dir xarch made).
    pub fn open(dir: &Path) -> Result<Root> {
        let fd = rustix::fs::open(dir, dir_flags(), Mode::empty())
            .with_context(|| format!("cannot open {}", dir.display()))?;
        Ok(Root { fd })
    }

    /// The directory `parts` names inside the root, symlinks resolved inside
    /// it; `None` when it does not exist. With `create`, missing directories
    /// are made (mode 0755), each reported to `made` as (parent, name, itself);
    /// a symlink to a missing directory gets its target made, as a container
    /// runtime would.
    pub fn dir(
        &self,
        parts: &[&OsStr],
        create: bool,
        made: &mut dyn FnMut(DirId, &OsStr, DirId),
    ) -> Result<Option<OwnedFd>> {
        let mut path = owned(parts);
        for _ in 0..=MAX_LINKS {
            let parts: Vec<&OsStr> = path.iter().map(OsString::as_os_str).collect();
            match self.resolve(&parts) {
                Ok(fd) => return Ok(Some(fd)),
                Err(Errno::NOENT) if create => {}
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(walk_error(&parts, e)),
            }
            match self.make(&parts, made)? {
                Made::Done(fd) => return Ok(Some(fd)),
                Made::Again(next) => path = next,
            }
        }
        bail!("`{}`: too many levels of symlinks", join(parts))
    }

    /// Makes the missing tail of `parts` below its deepest existing ancestor.
    /// A name there that exists yet did not resolve is a symlink to a missing
    /// directory: the path is given back with the link's target in its place.
    fn make(&self, parts: &[&OsStr], made: &mut dyn FnMut(DirId, &OsStr, DirId)) -> Result<Made> {
        let mut have = 0;
        let mut cur = self.resolve(&[]).map_err(|e| walk_error(&[], e))?;
        while have < parts.len() {
            match self.resolve(&parts[..=have]) {
                Ok(fd) => cur = fd,
                Err(Errno::NOENT) => break,
                Err(e) => return Err(walk_error(&parts[..=have], e)),
            }
            have += 1;
        }
        for (i, name) in parts.iter().enumerate().skip(have) {
            if *name == ".." {
                // Only a spliced link target has `..`: resolve it from the root.
                return Ok(Made::Again(owned(parts)));
            }
            match rustix::fs::mkdirat(&cur, *name, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    let target = rustix::fs::readlinkat(&cur, *name, Vec::new())
                        .map_err(|e| walk_error(&parts[..=i], e))?;
                    let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                    let mut next = if target.is_absolute() {
                        vec![]
                    } else {
                        owned(&parts[..i])
                    };
                    next.extend(target.iter().filter(|c| *c != "/").map(OsStr::to_os_string));
                    next.extend(owned(&parts[i + 1..]));
                    return Ok(Made::Again(next));
                }
                Err(e) => return Err(walk_error(&parts[..=i], e)),
            }
            let fd = rustix::fs::openat(&cur, *name, dir_flags() | OFlags::NOFOLLOW, Mode::empty())
                .map_err(|e| walk_error(&parts[..=i], e))?;
            made(id(&cur)?, name, id(&fd)?);
            cur = fd;
        }
        Ok(Made::Done(cur))
    }

    fn resolve(&self, parts: &[&OsStr]) -> rustix::io::Result<OwnedFd> {
        if parts.is_empty() {
            return rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty());
        }
        let path: std::path::PathBuf = parts.iter().collect();
        rustix::fs::openat2(
            &self.fd,
            &path,
            dir_flags(),
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Applies the recorded directory modes and mtimes, deepest first, walking
    /// the finished tree through real directories only (a path that is now a
    /// symlink is never entered or changed).
    pub fn settle(&self, dirs: &HashMap<DirId, DirMeta>) -> Result<()> {
        let top = rustix::fs::openat(&self.fd, ".", read_dir_flags(), Mode::empty())?;
        settle_dir(top, dirs, 0)
    }
}

fn settle_dir(dir: OwnedFd, dirs: &HashMap<DirId, DirMeta>, depth: usize) -> Result<()> {
    if depth > MAX_WALK_DEPTH {
        bail!("the image nests directories deeper than {MAX_WALK_DEPTH} levels");
    }
    for name in names(&dir)? {
        if kind_of(&dir, name.as_c_str())? == Some(FileType::Directory) {
            let child = rustix::fs::openat(&dir, name.as_c_str(), read_dir_flags(), Mode::empty())?;
            settle_dir(child, dirs, depth + 1)?;
        }
    }
    if depth == 0 {
        return Ok(()); // the root keeps the mode xarch gave it
    }
    if let Some(meta) = dirs.get(&id(&dir)?) {
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(meta.mode))?;
        if let Some(t) = meta.mtime {
            rustix::fs::futimens(&dir, &times(t))?;
        }
    }
    Ok(())
}

/// The names in the directory `dir`, `.` and `..` left out.
pub fn names(dir: &impl AsFd) -> Result<Vec<CString>> {
    let reader = rustix::fs::openat(dir, ".", read_dir_flags(), Mode::empty())?;
    let mut out = Vec::new();
    for e in Dir::new(reader)? {
        let e = e?;
        let name = e.file_name();
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// What `name` in `dir` is, without following it; `None` if it is absent.
pub fn kind_of<P: rustix::path::Arg>(dir: &impl AsFd, name: P) -> Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` from `dir` if present: a file or link, or a whole directory
/// tree (emptied through handles, its subdirectories made writable first).
pub fn remove(dir: &impl AsFd, name: &OsStr) -> Result<()> {
    match kind_of(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let sub = open_to_empty(dir, name)?;
            empty(&sub, 0)?;
            Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
        }
        Some(_) => Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?),
    }
}

/// Removes everything inside the directory `dir`.
pub fn empty(dir: &OwnedFd, depth: usize) -> Result<()> {
    if depth > MAX_WALK_DEPTH {
        bail!("cannot remove a tree nested deeper than {MAX_WALK_DEPTH} levels");
    }
    for name in names(dir)? {
        let name = OsStr::from_bytes(name.as_bytes());
        if kind_of(dir, name)? == Some(FileType::Directory) {
            let sub = open_to_empty(dir, name)?;
            empty(&sub, depth + 1)?;
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
        } else {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
        }
    }
    Ok(())
}

/// Opens the directory `name` for reading and makes it owner-writable (a
/// finished tree has 0555 and even 0000 directories). A 0000 directory cannot
/// be opened to fchmod it as a non-root user: it is chmodded by name, which is
/// safe because `name` was just seen to be a real directory in a directory
/// xarch holds open (and the tree is xarch's own).
fn open_to_empty(dir: &impl AsFd, name: &OsStr) -> Result<OwnedFd> {
    let fd = match rustix::fs::openat(dir, name, read_dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ACCESS) => {
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(0o700), AtFlags::empty())?;
            rustix::fs::openat(dir, name, read_dir_flags(), Mode::empty())?
        }
        Err(e) => return Err(e.into()),
    };
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    Ok(fd)
}

/// Creates the directory `name` in `dir`, or keeps the one there (anything
/// else there is replaced); returns it opened for reading.
pub fn mkdir(dir: &impl AsFd, name: &OsStr) -> Result<OwnedFd> {
    match kind_of(dir, name)? {
        Some(FileType::Directory) => {}
        Some(_) => {
            remove(dir, name)?;
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
        }
        None => rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?,
    }
    Ok(rustix::fs::openat(
        dir,
        name,
        read_dir_flags(),
        Mode::empty(),
    )?)
}

/// Creates the regular file `name` in `dir` (nothing may be there: the caller
/// removed it), never following a symlink.
pub fn create_file(dir: &impl AsFd, name: &OsStr) -> Result<std::fs::File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))?;
    Ok(std::fs::File::from(fd))
}

pub fn symlink(dir: &impl AsFd, name: &OsStr, target: &Path) -> Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

/// A hard link `name` in `dir` to `source_name` in `source_dir`; a symlink
/// source is linked itself, never followed.
pub fn hard_link(
    source_dir: &impl AsFd,
    source_name: &OsStr,
    dir: &impl AsFd,
    name: &OsStr,
) -> Result<()> {
    Ok(rustix::fs::linkat(
        source_dir,
        source_name,
        dir,
        name,
        AtFlags::empty(),
    )?)
}

/// A tar entry's owner as ids the kernel takes; `None` for ones it cannot
/// (over 32 bits, or -1, which means "unchanged").
pub fn owner(uid: u64, gid: u64) -> Option<(Uid, Gid)> {
    let uid = u32::try_from(uid).ok().filter(|u| *u != u32::MAX)?;
    let gid = u32::try_from(gid).ok().filter(|g| *g != u32::MAX)?;
    Some((Uid::from_raw(uid), Gid::from_raw(gid)))
}

/// Sets the owner of `name` in `dir`, never following it.
pub fn chown(dir: &impl AsFd, name: &OsStr, (uid, gid): (Uid, Gid)) -> Result<()> {
    rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Sets the mtime of `name` in `dir` (a symlink's own, never its target's).
pub fn set_mtime(dir: &impl AsFd, name: &OsStr, mtime: u64) -> Result<()> {
    rustix::fs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

pub fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

pub fn id(fd: &impl AsFd) -> Result<DirId> {
    let st: Stat = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Opens the trusted directory `path` for emptying (`remove_tree`).
pub fn open_trusted(path: &Path) -> Result<OwnedFd> {
    let fd = rustix::fs::openat(CWD, path, read_dir_flags(), Mode::empty())
        .with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    Ok(fd)
}

fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
}

fn read_dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn join(parts: &[&OsStr]) -> String {
    parts
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn walk_error(parts: &[&OsStr], e: Errno) -> anyhow::Error {
    let at = join(parts);
    match e {
        Errno::NOSYS => anyhow::anyhow!(
            "unpacking needs openat2 (Linux 5.6 or later), which this kernel or its seccomp \
             policy refuses"
        ),
        Errno::NOTDIR => anyhow::anyhow!("`{at}` is not a directory, but entries are under it"),
        Errno::LOOP => anyhow::anyhow!("`{at}`: too many levels of symlinks"),
        e => anyhow::Error::from(io::Error::from(e)).context(format!("cannot open `{at}`")),
    }
}
