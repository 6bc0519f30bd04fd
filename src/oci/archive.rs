//! OCI archives: a whole OCI layout (`oci-layout`, `index.json`, `blobs/`) in
//! one tar, plus a docker `manifest.json` for one platform, so `docker load`
//! (either image store), `podman load`, `skopeo` and `ctr import` accept it.
//!
//! Written streaming and reproducibly (entries sorted, fixed times and owners),
//! through a temp file renamed into place. Read by unpacking the entries a
//! layout can hold — and nothing else — into a directory; every blob is still
//! verified on use.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::layout::sync_dir;

/// One image of the archive as `docker load` reads it (the classic store
/// loads one image per `manifest.json` entry).
pub struct DockerEntry {
    /// `name:tag` references.
    pub repo_tags: Vec<String>,
    /// `blobs/sha256/…` of the config and of each layer, in order.
    pub config: String,
    pub layers: Vec<String>,
}

/// Archives the layout at `dir` into `file` (replaced atomically), with a
/// docker `manifest.json` when `docker` is given.
pub fn pack(dir: &Path, file: &Path, docker: Option<&DockerEntry>) -> Result<()> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".xarch-archive-")
        .tempfile_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp));
    tar.mode(tar::HeaderMode::Deterministic);
    add_file(&mut tar, "oci-layout", &fs::read(dir.join("oci-layout"))?)?;
    add_file(&mut tar, "index.json", &fs::read(dir.join("index.json"))?)?;
    if let Some(d) = docker {
        let m = json!([{"Config": d.config, "RepoTags": d.repo_tags, "Layers": d.layers}]);
        add_file(&mut tar, "manifest.json", &super::json::to_vec(&m)?)?;
    }
    add_dir(&mut tar, "blobs/")?;
    add_dir(&mut tar, "blobs/sha256/")?;
    let blobs = dir.join("blobs/sha256");
    let mut names: Vec<String> = fs::read_dir(&blobs)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().to_string()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for n in names {
        let path = blobs.join(&n);
        let f = File::open(&path)?;
        let len = f.metadata()?.len();
        let mut h = header(tar::EntryType::Regular, 0o644, len);
        tar.append_data(&mut h, format!("blobs/sha256/{n}"), f.take(len))
            .with_context(|| format!("cannot archive {}", path.display()))?;
    }
    let out = tar.into_inner()?;
    let tmp = out.into_inner().map_err(|e| e.into_error())?;
    tmp.as_file().sync_all()?;
    tmp.persist(file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    sync_dir(parent);
    Ok(())
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn add_file<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
    tar.append_data(&mut h, name, bytes)?;
    Ok(())
}

fn add_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, name, io::empty())?;
    Ok(())
}

/// `index.json` and `oci-layout` larger than this are refused.
const MAX_DOCUMENT: u64 = 16 << 20;

/// Unpacks the layout inside `file` into `dir` (empty or new): only
/// `oci-layout`, `index.json` and `blobs/sha256/<64 hex>` regular files are
/// taken; every other entry (docker's `manifest.json`, links, devices, odd
/// names) is skipped, so nothing can be written outside `dir`.
pub fn unpack(file: &Path, dir: &Path) -> Result<()> {
    let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut archive = tar::Archive::new(io::BufReader::with_capacity(1 << 20, f));
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let mut found_layout = false;
    for entry in archive
        .entries()
        .with_context(|| format!("{} is not a tar archive", file.display()))?
    {
        let mut e = entry.with_context(|| format!("{} is not a valid tar", file.display()))?;
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = e
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let dest = match path.as_str() {
            "oci-layout" | "index.json" => {
                if e.size() > MAX_DOCUMENT {
                    bail!("{}: {path} is larger than 16 MiB", file.display());
                }
                found_layout |= path == "oci-layout";
                dir.join(&path)
            }
            p => match p.strip_prefix("blobs/sha256/") {
                Some(hex)
                    if hex.len() == 64
                        && hex
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
                {
                    blobs.join(hex)
                }
                _ => continue,
            },
        };
        let mut out = File::create(&dest)?;
        io::copy(&mut e, &mut out)
            .with_context(|| format!("cannot unpack {path} from {}", file.display()))?;
    }
    if !found_layout {
        bail!(
            "{} is not an OCI archive (no oci-layout file in it)",
            file.display()
        );
    }
    Ok(())
}
