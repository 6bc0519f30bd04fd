//! Crafted images for hostile-input tests: tar entries of any kind, order and
//! name — raw headers the `tar` crate's builder refuses (`..`, absolute paths,
//! names over 100 bytes without its checks, huge PAX records and long names) —
//! packed into layers (plain, gzip, zstd) and written as an OCI layout; and a
//! snapshot of a directory tree to prove nothing outside a test's root changed.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BLOCK: usize = 512;

/// A tar stream written entry by entry, exactly as told.
pub struct Tar<W: Write = Vec<u8>> {
    out: W,
}

impl Tar<Vec<u8>> {
    pub fn new() -> Self {
        Tar { out: Vec::new() }
    }
}

impl Default for Tar<Vec<u8>> {
    fn default() -> Self {
        Tar::new()
    }
}

impl<W: Write> Tar<W> {
    /// A tar written into `out` (e.g. a gzip encoder, for huge streams).
    pub fn to(out: W) -> Self {
        Tar { out }
    }

    pub fn file(&mut self, path: &str, body: &[u8], mode: u32) -> &mut Self {
        self.entry(b'0', path.as_bytes(), b"", mode, body)
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.entry(b'5', path.as_bytes(), b"", mode, b"")
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(b'2', path.as_bytes(), target.as_bytes(), 0o777, b"")
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(b'1', path.as_bytes(), target.as_bytes(), 0o644, b"")
    }

    /// A character (`b'3'`) or block (`b'4'`) device, or a fifo (`b'6'`).
    pub fn special(&mut self, path: &str, kind: u8) -> &mut Self {
        self.entry(kind, path.as_bytes(), b"", 0o666, b"")
    }

    /// A PAX extended header (`x`) for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            // "LEN KEY=VALUE\n", LEN counting itself.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + rest.to_string().len();
            if len.to_string().len() + rest != len {
                len += 1;
            }
            body.extend(format!("{len} {k}=").as_bytes());
            body.extend(*v);
            body.push(b'\n');
        }
        self.entry(b'x', b"PaxHeaders/next", b"", 0o644, &body)
    }

    /// Any entry: `kind` is the typeflag byte, `path` and `link` raw bytes
    /// (over 100 bytes, they go first as GNU long name / long link entries).
    pub fn entry(
        &mut self,
        kind: u8,
        path: &[u8],
        link: &[u8],
        mode: u32,
        body: &[u8],
    ) -> &mut Self {
        if link.len() > 100 {
            self.long(b'K', link);
        }
        if path.len() > 100 {
            self.long(b'L', path);
        }
        let h = header(
            kind,
            &path[..path.len().min(100)],
            &link[..link.len().min(100)],
            mode,
            body.len() as u64,
        );
        self.raw(&h).raw(body).pad(body.len() as u64)
    }

    /// A GNU long name (`L`) or long link name (`K`) entry for the next entry.
    pub fn long(&mut self, kind: u8, name: &[u8]) -> &mut Self {
        let mut body = name.to_vec();
        body.push(0);
        let h = header(kind, b"././@LongLink", b"", 0o644, body.len() as u64);
        self.raw(&h).raw(&body).pad(body.len() as u64)
    }

    /// A header alone, declaring `size` bytes of body the caller then writes
    /// (with `raw` or `zeros`) and pads.
    pub fn header(&mut self, kind: u8, path: &[u8], size: u64) -> &mut Self {
        let h = header(kind, path, b"", 0o644, size);
        self.raw(&h)
    }

    /// `n` zero bytes, written in chunks (for bodies of any size).
    pub fn zeros(&mut self, mut n: u64) -> &mut Self {
        let chunk = [0u8; 64 * 1024];
        while n > 0 {
            let k = n.min(chunk.len() as u64) as usize;
            self.out.write_all(&chunk[..k]).unwrap();
            n -= k as u64;
        }
        self
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.write_all(bytes).unwrap();
        self
    }

    /// Zeros up to the next 512-byte block after a body of `len` bytes.
    pub fn pad(&mut self, len: u64) -> &mut Self {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.raw(&[0; BLOCK][..BLOCK - rem]);
        }
        self
    }

    /// Ends the archive (two zero blocks) and gives back the writer.
    pub fn finish(mut self) -> W {
        self.raw(&[0; 2 * BLOCK]);
        self.out
    }
}

/// A GNU header with raw name and link bytes (nothing checked).
fn header(kind: u8, name: &[u8], link: &[u8], mode: u32, size: u64) -> [u8; BLOCK] {
    let mut h = tar::Header::new_gnu();
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::new(kind));
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name[..name.len()].copy_from_slice(name);
    gnu.linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    *h.as_bytes()
}

/// How a layer's tar is stored, and so its media type.
#[derive(Clone, Copy, Debug)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    /// Gzip under Docker's media type.
    DockerGzip,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::DockerGzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    }

    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => tar.to_vec(),
            Compression::Gzip | Compression::DockerGzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(tar).unwrap();
                gz.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(tar, 3).unwrap(),
        }
    }
}

/// A single-platform image (linux/amd64) of crafted layers.
pub struct Image {
    /// (blob bytes, media type, diff id)
    layers: Vec<(Vec<u8>, String, String)>,
    config: Value,
}

impl Default for Image {
    fn default() -> Self {
        Image::new()
    }
}

impl Image {
    /// An image whose entrypoint is not in it: `xarch run` unpacks it, then
    /// stops with "is not in the image" (proof that unpacking succeeded).
    pub fn new() -> Self {
        Image {
            layers: Vec::new(),
            config: json!({
                "architecture": "amd64", "os": "linux",
                "config": {"Entrypoint": ["/no-such-program"]},
                "rootfs": {"type": "layers", "diff_ids": []},
            }),
        }
    }

    pub fn entrypoint(mut self, argv: &[&str]) -> Self {
        self.config["config"]["Entrypoint"] = json!(argv);
        self
    }

    /// A layer from a finished tar, stored with `c`.
    pub fn layer(self, tar: &[u8], c: Compression) -> Self {
        let diff_id = sha(tar);
        self.blob_layer(c.compress(tar), c.media_type(), &diff_id)
    }

    /// A layer whose stored bytes are given as they are.
    pub fn blob_layer(mut self, blob: Vec<u8>, media_type: &str, diff_id: &str) -> Self {
        self.layers
            .push((blob, media_type.to_string(), diff_id.to_string()));
        self
    }

    /// Writes the image as the OCI layout `dir`, tagged `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let mut config = self.config.clone();
        let mut layers = Vec::new();
        for (blob, media_type, diff_id) in &self.layers {
            config["rootfs"]["diff_ids"]
                .as_array_mut()
                .unwrap()
                .push(json!(diff_id));
            let d = put(dir, blob);
            layers.push(json!({"mediaType": media_type, "digest": d, "size": blob.len()}));
        }
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": put(dir, &config), "size": config.len()},
            "layers": layers,
        }))
        .unwrap();
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(dir, &manifest), "size": manifest.len(),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"org.opencontainers.image.ref.name": tag}
            }]
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }
}

pub fn sha(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn put(layout: &Path, bytes: &[u8]) -> String {
    let d = sha(bytes);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
        bytes,
    )
    .unwrap();
    d
}

/// Every path under a directory with its kind, mode and content (or link
/// target), for before/after comparisons.
pub type Snapshot = BTreeMap<PathBuf, String>;

/// A snapshot of `dir`, leaving out the subtrees in `skip`.
pub fn snapshot(dir: &Path, skip: &[&Path]) -> Snapshot {
    let mut out = Snapshot::new();
    let walk = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| !skip.contains(&e.path()));
    for e in walk {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let t = m.file_type();
        let what = if t.is_symlink() {
            format!("link → {}", std::fs::read_link(e.path()).unwrap().display())
        } else if t.is_dir() {
            "dir".into()
        } else if t.is_file() {
            format!(
                "file {:x}",
                Sha256::digest(std::fs::read(e.path()).unwrap())
            )
        } else if t.is_fifo() || t.is_char_device() || t.is_block_device() {
            "special".into()
        } else {
            "other".into()
        };
        let mode = m.permissions().mode() & 0o7777;
        out.insert(e.path().to_path_buf(), format!("{what} {mode:o}"));
    }
    out
}

/// The paths whose entry differs between two snapshots (empty: none).
pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (p, was) in before {
        match after.get(p) {
            Some(now) if now == was => {}
            Some(now) => out.push(format!("{}: {was} → {now}", p.display())),
            None => out.push(format!("{}: {was} → removed", p.display())),
        }
    }
    for (p, now) in after {
        if !before.contains_key(p) {
            out.push(format!("{}: new {now}", p.display()));
        }
    }
    out
}

/// A host directory outside every root, that crafted images aim at: mode
/// 0700, a secret file (0600) and a subdirectory (0750).
pub struct Sentinel {
    pub dir: PathBuf,
}

impl Sentinel {
    pub fn new(parent: &Path) -> Sentinel {
        let dir = parent.join("sentinel");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("secret"), b"host secret").unwrap();
        std::fs::write(dir.join("sub/file"), b"host file").unwrap();
        let set =
            |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        set(&dir.join("secret"), 0o600);
        set(&dir.join("sub/file"), 0o644);
        set(&dir.join("sub"), 0o750);
        set(&dir, 0o700);
        Sentinel { dir }
    }

    /// The sentinel's absolute path, as a symlink target.
    pub fn path(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }
}
