//! `Cache`: xarch's content-addressed cache on disk — base manifests, configs and
//! blobs by digest, and the digest each tag last resolved to (for `--offline`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::oci::{BlobStore, Digest, Layer};
use crate::registry::reference::Reference;

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    blobs: BlobStore,
}

impl Cache {
    /// `$XARCH_CACHE_DIR`, else `$XDG_CACHE_HOME/xarch`, else `~/.cache/xarch`.
    pub fn open_default() -> Result<Cache> {
        let root = std::env::var_os("XARCH_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("xarch")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/xarch")))
            .context("cannot find a cache directory: set XARCH_CACHE_DIR")?;
        Cache::open(&root)
    }

    pub fn open(root: &Path) -> Result<Cache> {
        let blobs = BlobStore::open(root)?;
        crate::oci::blobs::sweep(blobs.temp_dir());
        Ok(Cache {
            root: root.to_path_buf(),
            blobs,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    fn ref_path(&self, r: &Reference) -> PathBuf {
        let tag = r.tag.as_deref().unwrap_or(crate::oci::DEFAULT_TAG);
        self.root
            .join("refs")
            .join(r.registry.replace(':', "_"))
            .join(&r.repository)
            .join(tag)
    }

    /// The digest `r`'s tag resolved to last time, if known.
    pub fn tag_digest(&self, r: &Reference) -> Option<Digest> {
        std::fs::read_to_string(self.ref_path(r))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn remember_tag(&self, r: &Reference, digest: &Digest) -> Result<()> {
        let p = self.ref_path(r);
        std::fs::create_dir_all(p.parent().expect("ref path has a parent"))?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.blobs.temp_dir())?;
        std::io::Write::write_all(&mut tmp, digest.as_str().as_bytes())?;
        tmp.persist(&p)?;
        Ok(())
    }

    /// The layer an identical earlier build wrote (same fingerprint, blob
    /// still in `store` and intact), so a no-op rebuild compresses nothing.
    pub fn find_layer(&self, key: &str, media: &str, store: &BlobStore) -> Option<Layer> {
        std::fs::read_to_string(self.root.join("layers").join(key))
            .ok()
            .and_then(|t| parse_layer(&t, media))
            .filter(|l| store.holds(&l.digest, Some(l.size)))
    }

    /// Remembers the layer written for fingerprint `key`.
    pub fn remember_layer(&self, key: &str, l: &Layer) -> Result<()> {
        let path = self.root.join("layers").join(key);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.blobs.temp_dir())?;
        let line = format!("{} {} {}", l.digest, l.diff_id, l.size);
        std::io::Write::write_all(&mut tmp, line.as_bytes())?;
        tmp.persist(&path)?;
        Ok(())
    }
}

fn parse_layer(text: &str, media: &str) -> Option<Layer> {
    let mut parts = text.split_whitespace();
    Some(Layer {
        digest: parts.next()?.parse().ok()?,
        diff_id: parts.next()?.parse().ok()?,
        size: parts.next()?.parse().ok()?,
        media_type: media.to_string(),
    })
}
