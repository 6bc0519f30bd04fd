//! `walk`: everything an image or index needs, children before parents — the
//! manifests under the root (the root last) and every blob they reference, each
//! once. Manifests are read from local stores (verified); blobs may be remote.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::image::{Document, Homes};
use crate::oci::{Descriptor, Digest};

/// Non-distributable ("foreign") layers are referenced, never copied.
pub fn is_foreign(d: &Descriptor) -> bool {
    d.media_type.contains("foreign") || d.media_type.contains("nondistributable")
}

pub struct Walk {
    /// Every manifest and index with its bytes, children first, the root last.
    pub manifests: Vec<(Descriptor, Document)>,
    /// Configs and layers, each once (foreign layers left out).
    pub blobs: Vec<Descriptor>,
}

/// Indexes may nest this deep (an index of indexes of images is 2).
const MAX_DEPTH: usize = 4;

pub fn walk(homes: &Homes, root: &Descriptor) -> Result<Walk> {
    let mut w = Walk {
        manifests: Vec::new(),
        blobs: Vec::new(),
    };
    let mut seen: BTreeMap<Digest, ()> = BTreeMap::new();
    visit(homes, root, 0, &mut w, &mut seen)?;
    Ok(w)
}

fn visit(
    homes: &Homes,
    desc: &Descriptor,
    depth: usize,
    w: &mut Walk,
    seen: &mut BTreeMap<Digest, ()>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        bail!(
            "indexes nest deeper than {MAX_DEPTH} levels at {}",
            desc.digest
        );
    }
    if seen.insert(desc.digest.clone(), ()).is_some() {
        return Ok(());
    }
    let doc = homes.manifest(desc)?;
    if doc.is_index() {
        for child in &doc.index()?.manifests {
            visit(homes, child, depth + 1, w, seen)?;
        }
    } else {
        for b in doc.manifest()?.blobs() {
            if !is_foreign(b) && seen.insert(b.digest.clone(), ()).is_none() {
                w.blobs.push(b.clone());
            }
        }
    }
    let typed = Descriptor {
        media_type: doc.media_type.clone(),
        ..desc.clone()
    };
    w.manifests.push((typed, doc));
    Ok(())
}
