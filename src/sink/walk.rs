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
    /// Configs and layers, each once (foreign layers left out), referrers' too.
    pub blobs: Vec<Descriptor>,
    /// Manifests that refer to one of `manifests` (their `subject`): delivered
    /// after it, with the subject's digest. Each descriptor is as referrers
    /// lists carry it (with `artifactType` and annotations), whatever the
    /// caller passed.
    pub referrers: Vec<(Descriptor, Document, Digest)>,
}

/// Indexes may nest this deep (an index of indexes of images is 2).
const MAX_DEPTH: usize = 4;

pub fn walk(homes: &Homes, root: &Descriptor, referrers: &[Descriptor]) -> Result<Walk> {
    let mut w = Walk {
        manifests: Vec::new(),
        blobs: Vec::new(),
        referrers: Vec::new(),
    };
    let mut seen: BTreeMap<Digest, ()> = BTreeMap::new();
    visit(homes, root, 0, &mut w, &mut seen)?;
    for r in referrers {
        let doc = homes.manifest(r)?;
        let m = doc.manifest()?;
        let Some(subject) = m.subject.as_ref().map(|s| s.digest.clone()) else {
            bail!("referrer {} names no subject", r.digest);
        };
        for b in m.blobs() {
            if !is_foreign(b) && seen.insert(b.digest.clone(), ()).is_none() {
                w.blobs.push(b.clone());
            }
        }
        let d = crate::image::referrers::referrer_descriptor(&doc, &m);
        w.referrers.push((d, doc, subject));
    }
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
