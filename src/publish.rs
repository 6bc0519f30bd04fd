//! `xarch push`: an image or index from a local OCI layout to a registry.

use std::collections::HashMap;

use anyhow::{Result, bail};

use crate::build::runtime;
use crate::cache::Cache;
use crate::oci::{Digest, Layout};
use crate::registry::push::{self, PushSet, PushStats};
use crate::registry::{Client, ImageRef, Options, Reference};
use crate::ui;

/// Pushes `src` (an `oci:DIR[:TAG]`) to each of `targets`; returns the pushed
/// root digest and what moved.
pub fn push_layout(
    src: &ImageRef,
    targets: &[Reference],
    opts: Options,
    jobs: usize,
) -> Result<(Digest, PushStats)> {
    let ImageRef::Layout { dir, tag } = src else {
        bail!(
            "`{src}` is not a local layout; xarch push reads oci:DIR[:TAG] (registry-to-registry copy is not supported yet)"
        );
    };
    let layout = Layout::open(dir)?;
    let root: Digest = layout
        .resolve(tag.as_deref())?
        .digest()
        .to_string()
        .parse()?;
    let cache = Cache::open_default()?;
    let client = Client::new(opts)?;
    let set = PushSet {
        store: layout.blobs(),
        root: root.clone(),
        remote: HashMap::new(),
        cache: &cache,
    };
    ui::status(
        "Pushing",
        &format!("{} to {}", root.short(), targets[0].name()),
    );
    let stats = runtime()?.block_on(push::push(&client, &set, targets, jobs))?;
    Ok((root, stats))
}

pub(crate) fn only_image(layout: &Layout) -> Result<oci_spec::image::Descriptor> {
    let index = layout.index()?;
    let list = index["manifests"].as_array().cloned().unwrap_or_default();
    match list.as_slice() {
        [one] => Ok(serde_json::from_value(one.clone())?),
        [] => bail!("{} holds no image", layout.root().display()),
        _ => bail!(
            "{} holds several images; name one as oci:DIR:TAG",
            layout.root().display()
        ),
    }
}
