//! `Layer`: a compressed tar written in one streaming pass —
//! deterministic tar → sha256 (diff_id) → gzip, zstd or nothing → sha256
//! (digest) → blob store.
//!
//! Tar building and hashing run on one thread; `compress::encode` takes the
//! stream in fixed blocks through a small bounded pipe and compresses it on
//! `threads` more, so every core works and memory stays flat whatever the size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};

use super::blobs::BlobStore;
use super::compress::{self, BlockWriter, Compression};
use super::digest::{Digest, HashingWriter};

/// A written layer, as the manifest (digest, size) and config (diff_id) need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone)]
enum Data {
    Dir,
    File(PathBuf),
    Bytes(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone)]
struct Entry {
    data: Data,
    mode: u32,
    uid: u64,
    gid: u64,
}

/// The contents of one layer, keyed by path (relative to `/`, no leading slash).
/// Entries are written sorted, so parents always come before their children.
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
    owner: (u64, u64),
}

/// How a layer is written: the reproducible mtime of every entry, the
/// compression, and how many threads may compress (which never changes the
/// bytes written).
#[derive(Debug, Clone, Copy)]
pub struct LayerOptions {
    pub mtime: u64,
    pub compression: Compression,
    pub threads: usize,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            mtime: 0,
            compression: Compression::default(),
            threads: 1,
        }
    }
}

fn clean(path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("path `{path}` leaves the image root"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        bail!("path `{path}` names the image root");
    }
    Ok(parts.join("/"))
}

impl LayerBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Owner (uid, gid) for entries added after this call; 0:0 by default.
    pub fn owner(&mut self, uid: u64, gid: u64) -> &mut Self {
        self.owner = (uid, gid);
        self
    }

    fn insert(&mut self, path: &str, data: Data, mode: u32) -> Result<&mut Self> {
        let path = clean(path)?;
        let (uid, gid) = self.owner;
        // Missing parents become root-owned 0755 directories.
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            self.entries.entry(p.to_string()).or_insert(Entry {
                data: Data::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
            parent = p;
        }
        self.entries.insert(
            path,
            Entry {
                data,
                mode,
                uid,
                gid,
            },
        );
        Ok(self)
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self> {
        self.insert(path, Data::Dir, mode)
    }

    /// A file whose bytes are streamed from `src` when the layer is written.
    pub fn file(&mut self, path: &str, src: PathBuf, mode: u32) -> Result<&mut Self> {
        self.insert(path, Data::File(src), mode)
    }

    pub fn bytes(&mut self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Result<&mut Self> {
        self.insert(path, Data::Bytes(bytes.into()), mode)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        self.insert(path, Data::Symlink(target.to_string()), 0o777)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A hash of everything the layer's bytes depend on — entries, modes,
    /// owners, options, and each source file's size and mtime (as make and
    /// cargo judge freshness) — so an unchanged layer need not be rewritten.
    pub fn fingerprint(&self, opts: LayerOptions, media_type: &str) -> Result<String> {
        use sha2::{Digest as _, Sha256};
        use std::os::unix::fs::MetadataExt;
        let mut h = Sha256::new();
        let c = opts.compression;
        h.update(format!(
            "{media_type}\0{}\0{}\0{}\0",
            opts.mtime,
            c.name(),
            c.level()
        ));
        for (path, e) in &self.entries {
            h.update(format!("{path}\0{:o}\0{}\0{}\0", e.mode, e.uid, e.gid));
            match &e.data {
                Data::Dir => h.update(b"d"),
                Data::Symlink(t) => h.update(format!("l{t}\0")),
                Data::Bytes(b) => {
                    h.update(format!("b{}\0", b.len()));
                    h.update(b);
                }
                Data::File(src) => {
                    let m = std::fs::metadata(src)
                        .with_context(|| format!("cannot read {}", src.display()))?;
                    h.update(format!(
                        "f{}\0{}\0{}.{}\0{}\0",
                        src.display(),
                        m.len(),
                        m.mtime(),
                        m.mtime_nsec(),
                        m.ino()
                    ));
                }
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Writes the layer into `store` in one pass and returns its descriptor facts.
    pub fn write(&self, opts: LayerOptions, media_type: &str, store: &BlobStore) -> Result<Layer> {
        let (tx, blocks) = compress::pipe();
        let blob = store.writer()?;
        let (tar_result, compressed) = std::thread::scope(|s| {
            let producer = s.spawn(move || self.write_tar(opts, tx));
            let compressed = compress::encode(opts.compression, opts.threads, blocks, blob);
            let tar = producer
                .join()
                .unwrap_or_else(|_| Err(anyhow!("layer writer panicked")));
            (tar, compressed)
        });
        // A failed tar leaves a temp file, never a blob.
        let diff_id = tar_result?;
        let (digest, size) = compressed?.commit()?;
        Ok(Layer {
            digest,
            diff_id,
            size,
            media_type: media_type.to_string(),
        })
    }

    fn write_tar(&self, opts: LayerOptions, tx: BlockWriter) -> Result<Digest> {
        let sink = HashingWriter::new(tx);
        let mut tar = tar::Builder::new(sink);
        tar.mode(tar::HeaderMode::Deterministic);
        for (path, e) in &self.entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(opts.mtime);
            h.set_uid(e.uid);
            h.set_gid(e.gid);
            h.set_mode(e.mode);
            match &e.data {
                Data::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    tar.append_data(&mut h, format!("{path}/"), io::empty())?;
                }
                Data::Bytes(b) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(b.len() as u64);
                    tar.append_data(&mut h, path, b.as_slice())?;
                }
                Data::File(src) => {
                    let f = File::open(src)
                        .with_context(|| format!("cannot read {}", src.display()))?;
                    let len = f.metadata()?.len();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(len);
                    // Exactly the size the header says, or an error: a file
                    // that changes while it is read never makes a corrupt tar.
                    let exact = Exact {
                        inner: BufReader::with_capacity(1 << 20, f),
                        left: len,
                    };
                    tar.append_data(&mut h, path, exact)
                        .with_context(|| format!("cannot add {} to a layer", src.display()))?;
                }
                Data::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    tar.append_link(&mut h, path, target)?;
                }
            }
        }
        let mut sink = tar.into_inner()?;
        sink.flush()?;
        let (blocks, diff_id, _) = sink.finish();
        blocks.finish()?;
        Ok(diff_id)
    }
}

/// A file read as exactly `left` more bytes: fewer (it shrank) or more (it
/// grew while it was being layered) is an error, not a short or long entry.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut one = [0u8; 1];
            return match self.inner.read(&mut one)? {
                0 => Ok(0),
                _ => Err(io::Error::other("the file grew while it was being layered")),
            };
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::other(
                "the file shrank while it was being layered",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(store: &BlobStore, layer: &Layer) -> Vec<(String, u64, u32, u64)> {
        let f = store.open_blob(&layer.digest).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mtime().unwrap(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_file_that_changes_size_while_read_is_an_error() {
        let read = |data: &[u8], left: u64| {
            let mut r = Exact { inner: data, left };
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out)
        };
        assert_eq!(read(b"0123456789", 10).unwrap(), b"0123456789");
        let grew = read(b"0123456789", 8).unwrap_err().to_string();
        assert!(grew.contains("grew"), "{grew}");
        let shrank = read(b"0123456789", 12).unwrap_err().to_string();
        assert!(shrank.contains("shrank"), "{shrank}");
    }

    #[test]
    fn sorted_parents_first_fixed_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut b = LayerBuilder::new();
        b.bytes("/usr/local/bin/app", b"x".to_vec(), 0o755).unwrap();
        b.dir("tmp", 0o1777).unwrap();
        b.bytes("etc/passwd", b"root".to_vec(), 0o644).unwrap();
        let opts = LayerOptions {
            mtime: 1_700_000_000,
            ..LayerOptions::default()
        };
        let l = b
            .write(opts, super::super::media::OCI_LAYER_GZIP, &store)
            .unwrap();
        let got = entries(&store, &l);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/passwd",
                "tmp/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/app"
            ]
        );
        assert!(got.iter().all(|e| e.1 == 1_700_000_000 && e.3 == 0));
        assert_eq!(got[2].2, 0o1777);
    }

    #[test]
    fn digests_are_reproducible_and_diff_id_is_the_tar_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let src = dir.path().join("big");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let mut b = LayerBuilder::new();
        b.file("app/big", src, 0o644).unwrap();
        let one = b.write(LayerOptions::default(), "m", &store).unwrap();
        let two = b.write(LayerOptions::default(), "m", &store).unwrap();
        assert_eq!(one, two);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(store.open_blob(&one.digest).unwrap())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of(&tar), one.diff_id);
        assert_eq!(
            std::fs::metadata(store.path(&one.digest)).unwrap().len(),
            one.size
        );
        // gzip header: no mtime, so equal sources give equal bytes anywhere.
        let gz = store.read(&one.digest).unwrap();
        assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn refuses_escaping_paths() {
        let mut b = LayerBuilder::new();
        assert!(b.bytes("../etc/x", b"".to_vec(), 0o644).is_err());
        assert!(b.bytes("/", b"".to_vec(), 0o644).is_err());
    }

    #[test]
    fn long_paths_survive() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let long = format!("opt/{}/file", "d".repeat(150));
        let mut b = LayerBuilder::new();
        b.bytes(&long, b"x".to_vec(), 0o644).unwrap();
        let l = b.write(LayerOptions::default(), "m", &store).unwrap();
        assert!(entries(&store, &l).iter().any(|e| e.0 == long));
    }

    #[test]
    fn the_fingerprint_keys_on_compression_and_level_not_threads() {
        let mut b = LayerBuilder::new();
        b.bytes("a", b"x".to_vec(), 0o644).unwrap();
        let key = |compression, threads| {
            let opts = LayerOptions {
                compression,
                threads,
                ..LayerOptions::default()
            };
            b.fingerprint(opts, "m").unwrap()
        };
        let gzip6 = key(Compression::Gzip(6), 1);
        assert_eq!(gzip6, key(Compression::Gzip(6), 8));
        assert_ne!(gzip6, key(Compression::Gzip(9), 1));
        assert_ne!(gzip6, key(Compression::Zstd(6), 1));
        assert_ne!(gzip6, key(Compression::None, 1));
    }
}
