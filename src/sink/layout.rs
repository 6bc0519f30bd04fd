//! Delivery into an OCI layout: every blob copied in (from a local store, or
//! fetched from its registry), then the manifests, then `index.json` — so the
//! layout never names anything it does not hold.

use std::path::Path;

use anyhow::Result;

use super::LayoutTag;
use super::walk::Walk;
use crate::image::{Ctx, Homes};
use crate::oci::annotations::CONTAINERD_NAME;
use crate::oci::{Descriptor, Layout};

pub async fn deliver(
    ctx: &Ctx,
    homes: &Homes,
    w: &Walk,
    dir: &Path,
    tags: &[LayoutTag],
) -> Result<()> {
    let layout = Layout::open_or_create(dir)?;
    let store = layout.blobs();
    for b in &w.blobs {
        homes.copy_into(ctx, b, store).await?;
    }
    let referrers = w.referrers.iter().map(|(_, doc, _)| doc);
    for doc in w.manifests.iter().map(|(_, doc)| doc).chain(referrers) {
        if !store.holds(&doc.digest, Some(doc.bytes.len() as u64)) {
            store.put(&doc.bytes)?;
        }
    }
    // Referrers are untagged entries of index.json, found by their subject.
    let listed: Vec<Descriptor> = w.referrers.iter().map(|(d, _, _)| d.clone()).collect();
    layout.add_untagged(&listed)?;
    let (root, _) = w.manifests.last().expect("a walk holds its root");
    // A fresh entry: the source's own ref name and annotations stay behind.
    let mut entry = Descriptor::new(&root.media_type, &root.digest, root.size);
    if let Some(p) = root.json.get("platform") {
        entry = entry.with_platform_json(p.clone());
    }
    for t in tags {
        // containerd's import reads the full name; skopeo and umoci the ref name.
        let named: Vec<(String, String)> = t
            .name
            .iter()
            .map(|n| (CONTAINERD_NAME.to_string(), n.clone()))
            .collect();
        layout.set_refs(&entry, std::slice::from_ref(&t.tag), &named)?;
    }
    Ok(())
}
