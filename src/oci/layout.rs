//! `Layout`: an OCI image layout on disk (`oci-layout`, `index.json`, `blobs/`).
//! Images are added or replaced by ref name without touching other entries;
//! `index.json` is rewritten through a temp file and a rename under a lock.
//!
//! A layout is valid or absent at every instant: a new one is assembled in a
//! temp directory beside it and renamed into place, so a killed run leaves
//! either nothing or a complete empty layout, and two runs creating the same
//! layout at once both end up using the one that won the rename.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::annotations::REF_NAME;
use super::blobs::{self, BlobStore};
use super::descriptor::Descriptor;
use super::media::OCI_INDEX;
use crate::oci::DEFAULT_TAG;

const LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// `index.json` files larger than this are refused (a layout from elsewhere is
/// untrusted input).
const MAX_INDEX_JSON: u64 = 16 << 20;

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    blobs: BlobStore,
}

impl Layout {
    /// Opens a layout, creating it (and its parents) when missing. A directory
    /// holding other files is refused rather than filled; one holding only what
    /// an interrupted xarch run leaves (`blobs/`, `.xarch-tmp/`) is completed.
    pub fn open_or_create(root: &Path) -> Result<Layout> {
        if !root.join("oci-layout").is_file() {
            create(root)?;
        }
        let layout = Layout::open(root)?;
        blobs::sweep(layout.blobs.temp_dir());
        Ok(layout)
    }

    /// Opens an existing layout for reading; creates nothing.
    pub fn open(root: &Path) -> Result<Layout> {
        if !root.join("oci-layout").is_file() {
            bail!(
                "{} is not an OCI image layout (no oci-layout file)",
                root.display()
            );
        }
        Ok(Layout {
            root: root.to_path_buf(),
            blobs: BlobStore::at(root),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The layout's `index.json`, parsed as plain JSON so entries written by other
    /// tools keep every field.
    pub fn index(&self) -> Result<Value> {
        let p = self.root.join("index.json");
        let f = File::open(&p).with_context(|| format!("cannot read {}", p.display()))?;
        let mut bytes = Vec::new();
        f.take(MAX_INDEX_JSON + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_INDEX_JSON {
            bail!("{} is larger than 16 MiB; refusing it", p.display());
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", p.display()))
    }

    /// Every entry of `index.json`, checked (digest and size required).
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        let index = self.index()?;
        manifests(&index)
            .map(|m| {
                Descriptor::from_json(m)
                    .with_context(|| format!("{}/index.json", self.root.display()))
            })
            .collect()
    }

    /// The entry carrying ref name `name`.
    pub fn find(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|d| d.annotation(REF_NAME) == Some(name)))
    }

    /// The image `oci:DIR[:TAG]` names: the entry tagged `tag`; with no tag the
    /// one tagged `latest`, else the layout's only entry.
    pub fn resolve(&self, tag: Option<&str>) -> Result<Descriptor> {
        // Referrers (untagged entries with an artifactType) are not images.
        let entries: Vec<Descriptor> = self
            .entries()?
            .into_iter()
            .filter(|d| d.annotation(REF_NAME).is_some() || d.json.get("artifactType").is_none())
            .collect();
        let want = tag.unwrap_or(DEFAULT_TAG);
        if let Some(d) = entries
            .iter()
            .find(|d| d.annotation(REF_NAME) == Some(want))
        {
            return Ok(d.clone());
        }
        let dir = self.root.display();
        match (tag, entries.as_slice()) {
            (None, [one]) => Ok(one.clone()),
            (_, []) => bail!("{dir} holds no image"),
            (Some(t), _) => bail!("{dir} has no image tagged `{t}`; it has {}", tags(&entries)),
            (None, _) => bail!(
                "{dir} holds several images and none is tagged `{DEFAULT_TAG}`; name one as \
                 oci:{dir}:TAG ({})",
                tags(&entries)
            ),
        }
    }

    /// Adds `descs` as entries without a ref name (referrers), each once.
    pub fn add_untagged(&self, descs: &[Descriptor]) -> Result<()> {
        if descs.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(self.blobs.temp_dir())?;
        let lock = File::create(self.blobs.temp_dir().join("index.lock"))?;
        lock.lock().context("cannot lock the layout's index.json")?;
        let mut index = self.index()?;
        let list = index["manifests"]
            .as_array_mut()
            .context("index.json has no manifests array")?;
        for d in descs {
            let present = list.iter().any(|m| {
                m["digest"].as_str() == Some(d.digest.as_str())
                    && m["annotations"][REF_NAME].as_str().is_none()
            });
            if !present {
                list.push(d.json.clone());
            }
        }
        write_atomic(&self.root, "index.json", &super::json::to_vec(&index)?)
    }

    /// Points each ref name at `desc` (with `annotations` added), replacing any entry
    /// that had the same ref name and keeping all others.
    pub fn set_refs(
        &self,
        desc: &Descriptor,
        names: &[String],
        annotations: &[(String, String)],
    ) -> Result<()> {
        fs::create_dir_all(self.blobs.temp_dir())?;
        let lock = File::create(self.blobs.temp_dir().join("index.lock"))?;
        lock.lock().context("cannot lock the layout's index.json")?;
        let mut index = self.index()?;
        let list = index["manifests"]
            .as_array_mut()
            .context("index.json has no manifests array")?;
        list.retain(|m| match m["annotations"][REF_NAME].as_str() {
            Some(n) => !names.iter().any(|x| x == n),
            None => true,
        });
        for name in names {
            let mut entry = desc.clone();
            for (k, v) in annotations {
                entry.set_annotation(k, v);
            }
            entry.set_annotation(REF_NAME, name);
            list.push(entry.json);
        }
        write_atomic(&self.root, "index.json", &super::json::to_vec(&index)?)
    }
}

/// Makes a new layout at `root`: assembled in a temp directory beside it, then
/// renamed into place (onto a missing or empty directory). When another run got
/// there first, its layout is used.
fn create(root: &Path) -> Result<()> {
    if root.is_dir() && !only_layout_leftovers(root)? {
        bail!(
            "{} exists and is not an OCI image layout (no oci-layout file); \
             choose an empty or new directory",
            root.display()
        );
    }
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    if root.is_dir() && fs::read_dir(root)?.next().is_some() {
        // What a run killed while creating a layout the old way leaves: complete it.
        return complete(root);
    }
    let tmp = tempfile::Builder::new()
        .prefix(".xarch-new-layout-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    complete(tmp.path())?;
    match fs::rename(tmp.path(), root) {
        Ok(()) => {
            let _ = tmp.keep();
            sync_dir(parent);
            Ok(())
        }
        // Another run created it first; ours is dropped (and removed).
        Err(_) if root.join("oci-layout").is_file() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", root.display())),
    }
}

/// Writes whatever of `blobs/`, `index.json` and `oci-layout` is missing, the
/// marker last: a directory is a layout only once it is complete.
fn complete(root: &Path) -> Result<()> {
    BlobStore::open(root)?;
    if !root.join("index.json").is_file() {
        write_atomic(root, "index.json", &super::json::to_vec(&empty_index())?)?;
    }
    write_atomic(root, "oci-layout", LAYOUT_FILE.as_bytes())
}

/// True when `dir` holds nothing but what an xarch layout being created holds.
fn only_layout_leftovers(dir: &Path) -> Result<bool> {
    for e in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = e?.file_name();
        if !matches!(
            name.to_str(),
            Some("blobs" | ".xarch-tmp" | "index.json" | "oci-layout")
        ) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes `root/name` through a synced temp file and a rename, then syncs the
/// directory so the rename itself survives a crash.
fn write_atomic(root: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp_dir = root.join(".xarch-tmp");
    fs::create_dir_all(&tmp_dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(name)
        .tempfile_in(&tmp_dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let dest = root.join(name);
    tmp.persist(&dest)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    sync_dir(root);
    Ok(())
}

/// fsync of a directory; best effort (some filesystems refuse it).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn empty_index() -> Value {
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
}

fn manifests(index: &Value) -> impl Iterator<Item = &Value> {
    index["manifests"].as_array().into_iter().flatten()
}

/// `1.0, latest, and 1 untagged` for messages.
fn tags(entries: &[Descriptor]) -> String {
    let mut names: Vec<&str> = entries
        .iter()
        .filter_map(|d| d.annotation(REF_NAME))
        .collect();
    names.sort();
    let untagged = entries.len() - names.len();
    let mut s = if names.is_empty() {
        "no tags".to_string()
    } else {
        format!("tags {}", names.join(", "))
    };
    if untagged > 0 {
        s.push_str(&format!(" and {untagged} untagged"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;

    fn desc(b: &[u8]) -> Descriptor {
        Descriptor::new(OCI_INDEX, &Digest::of(b), b.len() as u64)
    }

    #[test]
    fn replace_by_ref_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        let l = Layout::open_or_create(&root).unwrap();
        l.set_refs(&desc(b"a"), &["1.0".into(), "latest".into()], &[])
            .unwrap();
        l.set_refs(&desc(b"b"), &["2.0".into()], &[]).unwrap();
        l.set_refs(&desc(b"c"), &["latest".into()], &[("x".into(), "y".into())])
            .unwrap();
        assert_eq!(l.entries().unwrap().len(), 3);
        assert_eq!(l.find("1.0").unwrap().unwrap().digest, Digest::of(b"a"));
        let latest = l.find("latest").unwrap().unwrap();
        assert_eq!(latest.digest, Digest::of(b"c"));
        assert_eq!(latest.annotation("x"), Some("y"));
        assert_eq!(l.resolve(None).unwrap().digest, Digest::of(b"c"));
        assert_eq!(
            fs::read_to_string(root.join("oci-layout")).unwrap(),
            LAYOUT_FILE
        );
    }

    #[test]
    fn no_tag_means_latest_else_the_only_image() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(&dir.path().join("o")).unwrap();
        assert!(
            l.resolve(None)
                .unwrap_err()
                .to_string()
                .contains("holds no image")
        );
        l.set_refs(&desc(b"a"), &["1.0".into()], &[]).unwrap();
        assert_eq!(l.resolve(None).unwrap().digest, Digest::of(b"a"));
        l.set_refs(&desc(b"b"), &["2.0".into()], &[]).unwrap();
        let e = l.resolve(None).unwrap_err().to_string();
        assert!(e.contains("tags 1.0, 2.0"), "{e}");
        let e = l.resolve(Some("3")).unwrap_err().to_string();
        assert!(e.contains("no image tagged `3`"), "{e}");
    }

    #[test]
    fn refuses_a_non_layout_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("precious.txt"), "x").unwrap();
        let e = Layout::open_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not an OCI image layout"), "{e}");
        assert!(dir.path().join("precious.txt").exists());
    }

    #[test]
    fn completes_what_a_killed_run_left() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        fs::create_dir_all(dir.path().join(".xarch-tmp")).unwrap();
        let l = Layout::open_or_create(dir.path()).unwrap();
        assert!(l.entries().unwrap().is_empty());
    }

    #[test]
    fn two_creators_of_one_layout_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("new/out");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let r = root.clone();
                std::thread::spawn(move || Layout::open_or_create(&r).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let left: Vec<_> = fs::read_dir(root.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "temp directories were left behind");
    }
}
