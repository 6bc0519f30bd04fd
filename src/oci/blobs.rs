//! `BlobStore`: content-addressed files under `blobs/sha256/`. Every write goes to a
//! temp file beside the store and is renamed into place once its digest is known, so
//! an interrupted run never leaves a partial blob under a digest name.
//!
//! Nothing is trusted because of its file name: another process may have written
//! the directory (a shared cache, a layout from elsewhere). Every read hashes what
//! it reads; a file that does not hash to its name is `Corrupt`, naming the file and
//! both digests. A blob verified once is not hashed again in the same process while
//! its inode, size, mtime and ctime stay the same (ctime cannot be set back by a
//! user, so a later change is always seen).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

use super::digest::{Digest, HashingWriter};

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

/// A blob whose bytes are not what its name (or its descriptor) says.
#[derive(Debug, thiserror::Error)]
#[error("{what} is corrupt: expected {expected}{}, got {got}{}", size(self.sizes.map(|s| s.0)), size(self.sizes.map(|s| s.1)))]
pub struct Corrupt {
    /// The file or URL, for people.
    pub what: String,
    /// The digest it should have, and the one its bytes have.
    pub expected: Digest,
    pub got: Digest,
    /// (expected, actual) sizes, when they differ.
    pub sizes: Option<(u64, u64)>,
}

fn size(n: Option<u64>) -> String {
    n.map(|n| format!(" ({n} bytes)")).unwrap_or_default()
}

/// A blob being written: bytes are hashed on the way to a temp file.
pub struct BlobWriter {
    out: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    store: BlobStore,
}

/// What a verified file looked like: any change to it changes one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Seen {
    fn of(m: &fs::Metadata) -> Seen {
        Seen {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Files this process has hashed and found right, as they were then.
static VERIFIED: Mutex<Option<HashMap<PathBuf, Seen>>> = Mutex::new(None);

fn remember_verified(path: &Path, seen: Seen) {
    let mut v = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    v.get_or_insert_with(HashMap::new)
        .insert(path.to_path_buf(), seen);
}

fn known_verified(path: &Path, seen: &Seen) -> bool {
    let v = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    v.as_ref().and_then(|m| m.get(path)) == Some(seen)
}

impl BlobStore {
    /// A store rooted at `root/blobs/sha256`, with temp files in `root/.xarch-tmp`
    /// (outside `blobs/`, where tools expect only algorithm directories).
    pub fn open(root: &Path) -> Result<BlobStore> {
        let store = BlobStore::at(root);
        for d in [&store.dir, &store.tmp] {
            fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        Ok(store)
    }

    /// The store under `root`, creating nothing (for reading a layout).
    pub fn at(root: &Path) -> BlobStore {
        BlobStore {
            dir: root.join("blobs").join("sha256"),
            tmp: root.join(".xarch-tmp"),
        }
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// True when a file by that name exists: not that its bytes are right (every
    /// read checks that).
    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Hashes the blob (unless this process already did, and the file has not
    /// changed since); a wrong size or digest is `Corrupt`.
    pub fn verify(&self, digest: &Digest, size: Option<u64>) -> Result<()> {
        let path = self.path(digest);
        let mut f = File::open(&path)
            .with_context(|| format!("blob {digest} is missing ({})", path.display()))?;
        let seen = Seen::of(&f.metadata()?);
        let size_ok = size.is_none_or(|n| n == seen.len);
        if size_ok && known_verified(&path, &seen) {
            return Ok(());
        }
        let mut h = HashingWriter::new(io::sink());
        io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
        let got = h.finish().1;
        if &got != digest || !size_ok {
            let sizes = size.filter(|_| !size_ok).map(|n| (n, seen.len));
            return Err(corrupt(&path, digest, got, sizes));
        }
        remember_verified(&path, seen);
        Ok(())
    }

    /// The blob's file, verified first (for streaming it elsewhere).
    pub fn open_verified(&self, digest: &Digest, size: Option<u64>) -> Result<File> {
        self.verify(digest, size)?;
        let p = self.path(digest);
        File::open(&p).with_context(|| format!("blob {digest} is missing ({})", p.display()))
    }

    /// The blob's file as it is, for readers that hash what they read themselves.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        File::open(&p).with_context(|| format!("blob {digest} is missing ({})", p.display()))
    }

    /// A small blob's bytes, verified. Refuses files larger than `max` before
    /// reading them.
    pub fn read_bounded(&self, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        let path = self.path(digest);
        let f = File::open(&path)
            .with_context(|| format!("blob {digest} is missing ({})", path.display()))?;
        let len = f.metadata()?.len();
        if len > max {
            anyhow::bail!(
                "blob {digest} ({}) is {len} bytes, more than the {max} bytes allowed for it",
                path.display()
            );
        }
        let mut bytes = Vec::with_capacity(len as usize);
        f.take(max + 1).read_to_end(&mut bytes)?;
        let got = Digest::of(&bytes);
        if &got != digest {
            return Err(corrupt(&path, digest, got, None));
        }
        Ok(bytes)
    }

    /// A blob's bytes, verified (for manifests and configs: bounded at 64 MiB).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.read_bounded(digest, MAX_SMALL_BLOB)
    }

    pub fn writer(&self) -> Result<BlobWriter> {
        fs::create_dir_all(&self.tmp)
            .with_context(|| format!("cannot create {}", self.tmp.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.tmp)
            .with_context(|| format!("cannot create a temp file in {}", self.tmp.display()))?;
        // Held while the blob is written: `sweep` removes only unlocked files.
        tmp.as_file().lock()?;
        Ok(BlobWriter {
            out: HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp)),
            store: self.clone(),
        })
    }

    /// Stores `bytes` and returns their digest. A file already there is kept
    /// when it is right and replaced when it is not.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if !self.holds(&digest, Some(bytes.len() as u64)) {
            let mut w = self.writer()?;
            w.write_all(bytes)?;
            w.commit()?;
        }
        Ok(digest)
    }

    /// True when the blob is here and right. A corrupt file is not an error
    /// here: the caller writes the blob again, which replaces it.
    pub fn holds(&self, digest: &Digest, size: Option<u64>) -> bool {
        self.has(digest) && self.verify(digest, size).is_ok()
    }

    /// Copies blob `digest` from `other` (verified on the way), unless this
    /// store already holds it.
    pub fn copy_from(&self, other: &BlobStore, digest: &Digest, size: Option<u64>) -> Result<()> {
        if self.holds(digest, size) {
            return Ok(());
        }
        // Verified first (usually already, earlier in the run), then checked
        // again as it is copied: the file may change in between.
        let mut src = other.open_verified(digest, size)?;
        let mut w = self.writer()?;
        io::copy(&mut src, &mut w)?;
        w.commit_expect(digest).with_context(|| {
            format!(
                "{} changed while it was copied",
                other.path(digest).display()
            )
        })?;
        Ok(())
    }

    /// The store's scratch directory, for other atomic writes.
    pub fn temp_dir(&self) -> &Path {
        &self.tmp
    }

    /// The directory the blobs are in (`…/blobs/sha256`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Manifests, configs and other documents read whole are refused above this.
pub const MAX_SMALL_BLOB: u64 = 64 << 20;

/// Temp files of blobs being written start with this (stale ones are swept).
pub const TEMP_PREFIX: &str = "blob-";

/// Temp files older than this and held by no process are a killed run's leftovers.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes temp files that killed runs left in `tmp`: old enough, and not
/// locked by a live writer. Lock files stay. Best effort: errors are ignored.
pub fn sweep(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let stale = e
            .metadata()
            .ok()
            .filter(fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        let is_lock = path.extension().is_some_and(|x| x == "lock");
        if !stale || is_lock {
            continue;
        }
        if let Ok(f) = File::open(&path)
            && f.try_lock().is_ok()
        {
            let _ = fs::remove_file(&path);
        }
    }
}

fn corrupt(
    path: &Path,
    expected: &Digest,
    got: Digest,
    sizes: Option<(u64, u64)>,
) -> anyhow::Error {
    Corrupt {
        what: path.display().to_string(),
        expected: expected.clone(),
        got,
        sizes,
    }
    .into()
}

impl BlobWriter {
    /// Syncs the temp file and renames it to its digest; returns (digest, size).
    /// A file already at that name is replaced: if it was corrupt, this repairs it.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let (buf, digest, size) = self.out.finish();
        let tmp = buf.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        let dest = self.store.path(&digest);
        let file = tmp
            .persist(&dest)
            .with_context(|| format!("cannot write blob {}", dest.display()))?;
        remember_verified(&dest, Seen::of(&file.metadata()?));
        super::layout::sync_dir(&self.store.dir);
        Ok((digest, size))
    }

    /// Commits only when the bytes hash to `expected`; otherwise the temp file is
    /// dropped and the error names both digests.
    pub fn commit_expect(self, expected: &Digest) -> Result<(Digest, u64)> {
        let got = self.out.digest();
        if &got != expected {
            anyhow::bail!("digest mismatch: expected {expected}, got {got}");
        }
        self.commit()
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        self.out.digest()
    }

    /// How many bytes were written so far.
    pub fn len(&self) -> u64 {
        self.out.count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = s.put(b"abc").unwrap();
        assert_eq!(d, Digest::of(b"abc"));
        assert_eq!(s.read(&d).unwrap(), b"abc");
        assert_eq!(s.put(b"abc").unwrap(), d);
        assert_eq!(fs::read_dir(s.temp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn dropped_writer_leaves_no_blob() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let mut w = s.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(fs::read_dir(s.temp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_tampered_file_is_corrupt_and_the_next_write_repairs_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = s.put(br#"{"Env":["A=1"]}"#).unwrap();
        s.verify(&d, None).unwrap();
        fs::write(s.path(&d), br#"{"Env":["A=2"]}"#).unwrap();
        for e in [s.read(&d).unwrap_err(), s.verify(&d, None).unwrap_err()] {
            let c = e.downcast_ref::<Corrupt>().expect("a Corrupt error");
            assert_eq!(c.expected, d);
            assert_eq!(c.got, Digest::of(br#"{"Env":["A=2"]}"#));
            assert!(c.what.ends_with(d.hex()), "{}", c.what);
        }
        assert!(!s.holds(&d, None));
        assert_eq!(s.put(br#"{"Env":["A=1"]}"#).unwrap(), d);
        assert_eq!(s.read(&d).unwrap(), br#"{"Env":["A=1"]}"#);
    }

    #[test]
    fn sweep_removes_stale_unlocked_temp_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let mut live = s.writer().unwrap();
        live.write_all(b"in progress").unwrap();
        let stale = s.temp_dir().join("blob-killed");
        fs::write(&stale, b"x").unwrap();
        let lock = s.temp_dir().join("index.lock");
        fs::write(&lock, b"").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for e in fs::read_dir(s.temp_dir()).unwrap() {
            let f = File::options().write(true).open(e.unwrap().path()).unwrap();
            f.set_modified(old).unwrap();
        }
        sweep(s.temp_dir());
        assert!(!stale.exists());
        assert!(lock.exists());
        assert_eq!(
            fs::read_dir(s.temp_dir()).unwrap().count(),
            2,
            "the live temp file stays"
        );
        live.commit().unwrap();
    }

    #[test]
    fn sizes_are_checked_and_reads_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = s.put(b"0123456789").unwrap();
        assert!(s.verify(&d, Some(9)).is_err());
        s.verify(&d, Some(10)).unwrap();
        assert!(
            s.read_bounded(&d, 9)
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
        let other = BlobStore::open(&dir.path().join("o")).unwrap();
        assert!(other.copy_from(&s, &d, Some(5)).is_err());
        assert!(!other.has(&d));
        other.copy_from(&s, &d, Some(10)).unwrap();
        assert_eq!(other.read(&d).unwrap(), b"0123456789");
    }
}
