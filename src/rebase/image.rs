//! `Image`: one platform's image, and its rebase. The old base's layers must be
//! the start of the image; they are swapped for the new base's, and the
//! config's `rootfs.diff_ids` and `history` follow. App layers keep their
//! descriptors as they are, so their bytes (and digests) never change.

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value, json};

use crate::image::Image;
use crate::oci::annotations as ann;
use crate::oci::image::Base;
use crate::oci::{Family, media};

/// A base for the rebase: the resolved image, and how to name it in messages.
#[derive(Debug, Clone)]
pub struct NamedBase {
    pub base: Base,
    pub label: String,
}

/// The rewritten manifest (its config descriptor still the old one: the
/// caller fills it in once the config is stored) and config.
#[derive(Debug, Clone)]
pub struct Rebased {
    pub manifest: Value,
    pub config: Value,
    pub app_layers: usize,
}

fn layers_of(img: &Image) -> &[Value] {
    as_slice(&img.manifest.json["layers"])
}

/// Moves `img` from `old` onto `new`; refuses when `old` is not what `img`
/// starts with.
pub fn rebase(img: &Image, old: &NamedBase, new: &NamedBase) -> Result<Rebased> {
    check_prefix(img, old)?;
    let n = old.base.layers.len();
    let mut config = img.config.json.clone();
    let diff_ids = diff_ids(img, old, new)?;
    config["rootfs"]["diff_ids"] = Value::Array(diff_ids);
    if let Some(h) = history(img, old, new) {
        config["history"] = Value::Array(h);
    }
    let mut manifest = img.manifest.json.clone();
    let mut layers = base_layers(img, new)?;
    layers.extend(layers_of(img)[n..].iter().cloned());
    manifest["layers"] = Value::Array(layers);
    if img.manifest.family() == Family::Oci {
        base_annotations(&mut manifest, &new.base);
    }
    Ok(Rebased {
        manifest,
        config,
        app_layers: layers_of(img).len() - n,
    })
}

/// The old base's layer digests must open the image's list, one for one.
fn check_prefix(img: &Image, old: &NamedBase) -> Result<()> {
    let (p, have, want) = (&img.platform, layers_of(img), &old.base.layers);
    if have.len() < want.len() {
        bail!(
            "{p}: the image has {} layers, fewer than the {} of the old base {}",
            have.len(),
            want.len(),
            old.label
        );
    }
    for (i, (h, w)) in have.iter().zip(want).enumerate() {
        let h = h["digest"].as_str().unwrap_or("(no digest)");
        let w = w.digest.to_string();
        if h != w {
            bail!(
                "{p}: the image does not start with the old base's layers: layer {} is {h} in the image \
                 but {w} in the old base {}; name the base it was built on with --old-base",
                i + 1,
                old.label
            );
        }
    }
    Ok(())
}

/// The new base's diff_ids, then the image's own past the old base's; every
/// list must match its layer count, and the image's must start with the old
/// base's (the same layers have the same diff_ids).
fn diff_ids(img: &Image, old: &NamedBase, new: &NamedBase) -> Result<Vec<Value>> {
    let p = &img.platform;
    let have = diff_ids_of(
        &img.config.json,
        layers_of(img).len(),
        &format!("{p}: the image"),
    )?;
    let n = old.base.layers.len();
    let was = diff_ids_of(&old.base.config, n, &format!("{p}: old base {}", old.label))?;
    let will = diff_ids_of(
        &new.base.config,
        new.base.layers.len(),
        &format!("{p}: new base {}", new.label),
    )?;
    if have[..n] != *was {
        bail!(
            "{p}: the image's config does not start with the old base's diff_ids, although its layers do \
             (the image or the old base {} is inconsistent)",
            old.label
        );
    }
    Ok(will.iter().chain(&have[n..]).cloned().collect())
}

fn diff_ids_of<'a>(config: &'a Value, layers: usize, what: &str) -> Result<&'a [Value]> {
    let ids = as_slice(&config["rootfs"]["diff_ids"]);
    if ids.len() != layers {
        bail!(
            "{what} has {layers} layers but its config lists {} diff_ids",
            ids.len()
        );
    }
    Ok(ids)
}

/// The new base's history, then the image's past the old base's entries (as
/// many as the old base's config has: history also counts layerless steps).
/// None when there is no history on either side, so none is invented.
fn history(img: &Image, old: &NamedBase, new: &NamedBase) -> Option<Vec<Value>> {
    let have = as_slice(&img.config.json["history"]);
    let skip = as_slice(&old.base.config["history"]).len();
    let will = as_slice(&new.base.config["history"]);
    if img.config.json.get("history").is_none() && will.is_empty() {
        return None;
    }
    Some(will.iter().chain(have.iter().skip(skip)).cloned().collect())
}

/// The new base's layer descriptors, typed for the image's family: an OCI
/// image on a Docker base gets OCI layer types (same bytes), so the manifest
/// never mixes families.
fn base_layers(img: &Image, new: &NamedBase) -> Result<Vec<Value>> {
    let family = img.manifest.family();
    new.base
        .layers
        .iter()
        .map(|d| {
            let mut v = d.json.clone();
            let t = media::layer_in(family, &d.media_type)
                .map_err(|e| anyhow!("{}: new base {}: {e}", img.platform, new.label))?;
            v["mediaType"] = json!(t);
            Ok(v)
        })
        .collect()
}

/// `base.name`/`base.digest` name the new base, or go when it has no
/// registry name (a base from a layout); other annotations stay.
fn base_annotations(manifest: &mut Value, new: &Base) {
    let Some(obj) = manifest.as_object_mut() else {
        return;
    };
    let slot = obj
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(a) = slot.as_object_mut() else {
        return;
    };
    match (&new.name, &new.digest) {
        (Some(n), Some(d)) => {
            a.insert(ann::BASE_NAME.into(), json!(n));
            a.insert(ann::BASE_DIGEST.into(), json!(d.as_str()));
        }
        _ => {
            a.remove(ann::BASE_NAME);
            a.remove(ann::BASE_DIGEST);
        }
    }
    if a.is_empty() {
        obj.remove("annotations");
    }
}

fn as_slice(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Config, Document, Manifest};
    use crate::oci::{Descriptor, Digest};

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn base(layers: &[&str], history: usize, family: Family, name: &str) -> NamedBase {
        let media = family.layer_gzip();
        NamedBase {
            base: Base {
                family,
                config: json!({
                    "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| d(&format!("tar-{l}")).to_string()).collect::<Vec<_>>()},
                    "history": (0..history).map(|i| json!({"created_by": format!("{name} {i}")})).collect::<Vec<_>>(),
                }),
                layers: layers
                    .iter()
                    .map(|l| Descriptor::new(media, &d(l), 7))
                    .collect(),
                name: Some(format!("reg/{name}:1")),
                digest: Some(d(name)),
            },
            label: name.to_string(),
        }
    }

    /// An OCI image on `old` with two app layers and one extra history entry.
    fn image(old: &NamedBase) -> Image {
        let mut layers: Vec<Value> = old.base.layers.iter().map(|l| l.json.clone()).collect();
        let mut ids = as_slice(&old.base.config["rootfs"]["diff_ids"]).to_vec();
        let mut history = as_slice(&old.base.config["history"]).to_vec();
        for app in ["app1", "app2"] {
            layers.push(json!({"mediaType": media::OCI_LAYER_GZIP, "digest": d(app).as_str(), "size": 3, "annotations": {"keep": app}}));
            ids.push(json!(d(&format!("tar-{app}")).as_str()));
            history.push(json!({"created_by": app}));
        }
        let manifest = json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": d("cfg").as_str(), "size": 1},
            "layers": layers,
            "annotations": {ann::BASE_NAME: "reg/old:1", ann::BASE_DIGEST: d("old").as_str(), "other": "kept"},
        });
        let config = json!({"created": "2024-01-01T00:00:00Z", "config": {"Env": ["A=1"]},
            "rootfs": {"type": "layers", "diff_ids": ids}, "history": history});
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let document = Document::new(bytes, d("img"), Some(media::OCI_MANIFEST));
        Image {
            platform: "linux/arm64".parse().unwrap(),
            descriptor: document.descriptor(),
            manifest: Manifest::parse(manifest, media::OCI_MANIFEST, &d("img")).unwrap(),
            document,
            config: Config::parse(serde_json::to_vec(&config).unwrap(), d("cfg")).unwrap(),
        }
    }

    #[test]
    fn swaps_base_layers_diff_ids_history_and_annotations() {
        let old = base(&["b1"], 2, Family::Oci, "old");
        let new = base(&["n1", "n2"], 3, Family::Docker, "new");
        let img = image(&old);
        let r = rebase(&img, &old, &new).unwrap();
        let layers = as_slice(&r.manifest["layers"]);
        let digests: Vec<&str> = layers
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        assert_eq!(
            digests,
            [d("n1"), d("n2"), d("app1"), d("app2")].map(|x| x.to_string())
        );
        // A Docker base's layers are typed for the OCI image; app layers untouched.
        assert_eq!(layers[0]["mediaType"], media::OCI_LAYER_GZIP);
        assert_eq!(layers[2], layers_of(&img)[1]);
        assert_eq!(r.app_layers, 2);
        let ids = as_slice(&r.config["rootfs"]["diff_ids"]);
        assert_eq!(ids.len(), 4);
        assert_eq!(ids[1], json!(d("tar-n2").as_str()));
        assert_eq!(ids[3], json!(d("tar-app2").as_str()));
        let h: Vec<&str> = as_slice(&r.config["history"])
            .iter()
            .map(|h| h["created_by"].as_str().unwrap())
            .collect();
        assert_eq!(h, ["new 0", "new 1", "new 2", "app1", "app2"]);
        assert_eq!(r.config["created"], img.config.json["created"]);
        assert_eq!(r.config["config"], img.config.json["config"]);
        let a = &r.manifest["annotations"];
        assert_eq!(a[ann::BASE_NAME], "reg/new:1");
        assert_eq!(a[ann::BASE_DIGEST], d("new").as_str());
        assert_eq!(a["other"], "kept");
    }

    #[test]
    fn refuses_an_old_base_that_is_not_the_prefix() {
        let old = base(&["b1"], 1, Family::Oci, "old");
        let wrong = base(&["x1"], 1, Family::Oci, "wrong");
        let img = image(&old);
        let e = rebase(&img, &wrong, &old).unwrap_err().to_string();
        assert!(
            e.starts_with("linux/arm64: the image does not start"),
            "{e}"
        );
        assert!(
            e.contains(d("b1").as_str()) && e.contains(d("x1").as_str()),
            "{e}"
        );
        let long = base(&["b1", "app1", "app2", "more"], 1, Family::Oci, "long");
        let e = rebase(&img, &long, &old).unwrap_err().to_string();
        assert!(
            e.contains("the image has 3 layers, fewer than the 4"),
            "{e}"
        );
    }

    #[test]
    fn a_base_without_a_name_drops_the_base_annotations() {
        let old = base(&["b1"], 1, Family::Oci, "old");
        let mut new = base(&["n1"], 1, Family::Oci, "new");
        new.base.name = None;
        let r = rebase(&image(&old), &old, &new).unwrap();
        assert!(r.manifest["annotations"].get(ann::BASE_NAME).is_none());
        assert_eq!(r.manifest["annotations"]["other"], "kept");
    }
}
