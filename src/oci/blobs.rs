//! `BlobStore`: content-addressed files under `blobs/sha256/`. Every write goes to a
//! temp file beside the store and is renamed into place once its digest is known, so
//! an interrupted run never leaves a partial blob under a digest name.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::digest::{Digest, HashingWriter};

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

/// A blob being written: bytes are hashed on the way to a temp file.
pub struct BlobWriter {
    out: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    store: BlobStore,
}

impl BlobStore {
    /// A store rooted at `root/blobs/sha256`, with temp files in `root/.xarch-tmp`
    /// (outside `blobs/`, where tools expect only algorithm directories).
    pub fn open(root: &Path) -> Result<BlobStore> {
        let store = BlobStore {
            dir: root.join("blobs").join("sha256"),
            tmp: root.join(".xarch-tmp"),
        };
        for d in [&store.dir, &store.tmp] {
            fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        Ok(store)
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        File::open(&p).with_context(|| format!("blob {digest} is missing ({})", p.display()))
    }

    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.path(digest);
        fs::read(&p).with_context(|| format!("blob {digest} is missing ({})", p.display()))
    }

    pub fn writer(&self) -> Result<BlobWriter> {
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.tmp)
            .with_context(|| format!("cannot create a temp file in {}", self.tmp.display()))?;
        Ok(BlobWriter {
            out: HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp)),
            store: self.clone(),
        })
    }

    /// Stores `bytes` and returns their digest (a no-op when already present).
    pub fn put(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if !self.has(&digest) {
            let mut w = self.writer()?;
            w.write_all(bytes)?;
            w.commit()?;
        }
        Ok(digest)
    }

    /// Copies blob `digest` from `other` (verified on the way), unless present.
    pub fn copy_from(&self, other: &BlobStore, digest: &Digest) -> Result<()> {
        if self.has(digest) {
            return Ok(());
        }
        let mut w = self.writer()?;
        io::copy(&mut other.open_blob(digest)?, &mut w)?;
        w.commit_expect(digest)
            .with_context(|| format!("blob {digest} in {} is corrupt", other.dir.display()))?;
        Ok(())
    }

    /// A temp file in the store's scratch directory, for other atomic writes.
    pub fn temp_dir(&self) -> &Path {
        &self.tmp
    }
}

impl BlobWriter {
    /// Syncs the temp file and renames it to its digest; returns (digest, size).
    pub fn commit(self) -> Result<(Digest, u64)> {
        let (buf, digest, size) = self.out.finish();
        let tmp = buf.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        let dest = self.store.path(&digest);
        if dest.exists() {
            // Same digest, same bytes: keep the existing file, drop the temp.
            return Ok((digest, size));
        }
        tmp.persist(&dest)
            .with_context(|| format!("cannot write blob {}", dest.display()))?;
        Ok((digest, size))
    }
}

impl BlobWriter {
    /// Commits only when the bytes hash to `expected`; otherwise the temp file is
    /// dropped and the error names both digests.
    pub fn commit_expect(self, expected: &Digest) -> Result<(Digest, u64)> {
        let got = self.out.digest();
        if &got != expected {
            anyhow::bail!("digest mismatch: expected {expected}, got {got}");
        }
        self.commit()
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
}
