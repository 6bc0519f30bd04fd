//! `Layout`: an OCI image layout on disk (`oci-layout`, `index.json`, `blobs/`).
//! Images are added or replaced by ref name without touching other entries;
//! `index.json` is rewritten through a temp file and a rename under a lock.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oci_spec::image::Descriptor;
use serde_json::{Value, json};

use super::annotations::REF_NAME;
use super::blobs::BlobStore;
use super::media::OCI_INDEX;

const LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    blobs: BlobStore,
}

impl Layout {
    /// Opens a layout, creating it (and its parents) when missing. A directory
    /// holding other files but no `oci-layout` is refused rather than filled.
    pub fn open_or_create(root: &Path) -> Result<Layout> {
        let marker = root.join("oci-layout");
        if !marker.exists() {
            if root.is_dir() && fs::read_dir(root)?.next().is_some() {
                bail!(
                    "{} exists and is not an OCI image layout (no oci-layout file); \
                     choose an empty or new directory",
                    root.display()
                );
            }
            fs::create_dir_all(root)
                .with_context(|| format!("cannot create {}", root.display()))?;
        }
        let layout = Layout {
            root: root.to_path_buf(),
            blobs: BlobStore::open(root)?,
        };
        if !marker.exists() {
            layout.write_atomic("oci-layout", LAYOUT_FILE.as_bytes())?;
        }
        if !root.join("index.json").exists() {
            layout.write_index(&empty_index())?;
        }
        Ok(layout)
    }

    /// Opens an existing layout for reading.
    pub fn open(root: &Path) -> Result<Layout> {
        if !root.join("oci-layout").is_file() {
            bail!(
                "{} is not an OCI image layout (no oci-layout file)",
                root.display()
            );
        }
        Ok(Layout {
            root: root.to_path_buf(),
            blobs: BlobStore::open(root)?,
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
        let bytes = fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", p.display()))
    }

    /// The descriptor in `index.json` carrying ref name `name`.
    pub fn find(&self, name: &str) -> Result<Option<Descriptor>> {
        let index = self.index()?;
        for m in manifests(&index) {
            if m["annotations"][REF_NAME].as_str() == Some(name) {
                return Ok(Some(serde_json::from_value(m.clone())?));
            }
        }
        Ok(None)
    }

    /// The image `oci:DIR:TAG` names: the entry tagged `tag`, or with no tag the
    /// layout's only entry.
    pub fn resolve(&self, tag: Option<&str>) -> Result<Descriptor> {
        if let Some(t) = tag {
            return self
                .find(t)?
                .with_context(|| format!("{} has no image tagged `{t}`", self.root.display()));
        }
        let index = self.index()?;
        let list: Vec<&Value> = manifests(&index).collect();
        match list.as_slice() {
            [one] => Ok(serde_json::from_value((*one).clone())?),
            [] => bail!("{} holds no image", self.root.display()),
            _ => bail!(
                "{} holds several images; name one as oci:DIR:TAG",
                self.root.display()
            ),
        }
    }

    /// Points each ref name at `desc` (with `annotations` added), replacing any entry
    /// that had the same ref name and keeping all others.
    pub fn set_refs(
        &self,
        desc: &Descriptor,
        names: &[String],
        annotations: &[(String, String)],
    ) -> Result<()> {
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
            let mut entry = serde_json::to_value(desc)?;
            let ann = entry
                .as_object_mut()
                .expect("descriptor is an object")
                .entry("annotations")
                .or_insert_with(|| json!({}));
            for (k, v) in annotations {
                ann[k] = json!(v);
            }
            ann[REF_NAME] = json!(name);
            list.push(entry);
        }
        self.write_index(&index)
    }

    fn write_index(&self, index: &Value) -> Result<()> {
        self.write_atomic("index.json", &super::json::to_vec(index)?)
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(name)
            .tempfile_in(self.blobs.temp_dir())?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        let dest = self.root.join(name);
        tmp.persist(&dest)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        Ok(())
    }
}

fn empty_index() -> Value {
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
}

fn manifests(index: &Value) -> impl Iterator<Item = &Value> {
    index["manifests"].as_array().into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;
    use crate::oci::image::descriptor;

    fn desc(b: &[u8]) -> Descriptor {
        descriptor(OCI_INDEX, b.len() as u64, &Digest::of(b)).unwrap()
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
        let idx = l.index().unwrap();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 3);
        assert_eq!(
            l.find("1.0").unwrap().unwrap().digest().to_string(),
            Digest::of(b"a").as_str()
        );
        let latest = l.find("latest").unwrap().unwrap();
        assert_eq!(latest.digest().to_string(), Digest::of(b"c").as_str());
        assert_eq!(latest.annotations().as_ref().unwrap()["x"], "y");
        assert_eq!(
            fs::read_to_string(root.join("oci-layout")).unwrap(),
            LAYOUT_FILE
        );
    }

    #[test]
    fn refuses_a_non_layout_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("precious.txt"), "x").unwrap();
        let e = Layout::open_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not an OCI image layout"), "{e}");
        assert!(dir.path().join("precious.txt").exists());
    }
}
