//! `Image`: one platform's image — a base, new layers on top and config edits —
//! written as a config blob and a manifest blob.
//!
//! The config is edited as JSON rather than through a typed struct so that fields
//! this version does not know (Healthcheck, Shell, vendor keys …) survive intact.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::blobs::BlobStore;
use super::descriptor::Descriptor;
use super::digest::Digest;
use super::json;
use super::layer::Layer;
use super::media::Family;
use crate::platform::Platform;

/// What an image is built on: its config (kept whole) and its layer descriptors.
#[derive(Debug, Clone)]
pub struct Base {
    pub family: Family,
    pub config: Value,
    pub layers: Vec<Descriptor>,
    /// Name and manifest digest, for the `base.name`/`base.digest` annotations.
    pub name: Option<String>,
    pub digest: Option<Digest>,
}

/// Changes to the image config, applied over the base's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigEdits {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<String>,
}

/// A layer to add, with the history line that explains it.
#[derive(Debug, Clone)]
pub struct NewLayer {
    pub layer: Layer,
    pub created_by: String,
}

/// Everything needed to write one platform's image.
pub struct ImageSpec<'a> {
    pub base: &'a Base,
    pub platform: &'a Platform,
    pub layers: &'a [NewLayer],
    pub edits: &'a ConfigEdits,
    /// RFC 3339 time for `created` (config, history, annotation).
    pub created: &'a str,
    pub annotations: &'a BTreeMap<String, String>,
}

/// A written image: the manifest's descriptor (with platform) and sizes.
#[derive(Debug, Clone)]
pub struct WrittenImage {
    pub descriptor: Descriptor,
    pub config_digest: Digest,
    /// Manifest + config + all layers, compressed.
    pub total_size: u64,
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn write(spec: &ImageSpec, store: &BlobStore) -> Result<WrittenImage> {
    let family = spec.base.family;
    let config = edit_config(spec)?;
    let config_bytes = json::to_vec(&config)?;
    let config_digest = store.put(&config_bytes)?;
    let config_desc = Descriptor::new(family.config(), &config_digest, config_bytes.len() as u64);

    let mut layers = spec.base.layers.clone();
    for l in spec.layers {
        layers.push(Descriptor::new(
            &l.layer.media_type,
            &l.layer.digest,
            l.layer.size,
        ));
    }
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": family.manifest(),
        "config": config_desc,
        "layers": layers,
    });
    // Docker schema 2 has no annotations field; OCI manifests carry them.
    if family == Family::Oci && !spec.annotations.is_empty() {
        manifest["annotations"] = json!(spec.annotations);
    }
    let bytes = json::to_vec(&manifest)?;
    let digest = store.put(&bytes)?;
    let desc = Descriptor::new(family.manifest(), &digest, bytes.len() as u64)
        .with_platform(spec.platform);
    let total_size =
        bytes.len() as u64 + config_bytes.len() as u64 + layers.iter().map(|l| l.size).sum::<u64>();
    Ok(WrittenImage {
        descriptor: desc,
        config_digest,
        total_size,
    })
}

fn edit_config(spec: &ImageSpec) -> Result<Value> {
    let mut root = match &spec.base.config {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let p = spec.platform;
    root.insert("architecture".into(), json!(p.architecture));
    root.insert("os".into(), json!(p.os));
    match &p.variant {
        Some(v) => root.insert("variant".into(), json!(v)),
        None => root.remove("variant"),
    };
    root.insert("created".into(), json!(spec.created));

    let cfg = object_at(&mut root, "config");
    apply_edits(cfg, spec.edits);

    let rootfs = object_at(&mut root, "rootfs");
    rootfs.insert("type".into(), json!("layers"));
    let diff_ids = array_at(rootfs, "diff_ids");
    for l in spec.layers {
        diff_ids.push(json!(l.layer.diff_id.as_str()));
    }

    let history = array_at(&mut root, "history");
    for l in spec.layers {
        history.push(json!({
            "created": spec.created,
            "created_by": l.created_by,
            "comment": "xarch",
        }));
    }
    Ok(Value::Object(root))
}

fn apply_edits(cfg: &mut Map<String, Value>, e: &ConfigEdits) {
    let mut env: Vec<String> = cfg
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if !env.iter().any(|kv| kv.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    for (k, v) in &e.env {
        let entry = format!("{k}={v}");
        match env
            .iter_mut()
            .find(|kv| kv.split_once('=').map(|x| x.0) == Some(k))
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
    cfg.insert("Env".into(), json!(env));
    if let Some(ep) = &e.entrypoint {
        cfg.insert("Entrypoint".into(), json!(ep));
        // As in a Dockerfile, a new ENTRYPOINT drops the base's CMD.
        if e.cmd.is_none() {
            cfg.remove("Cmd");
        }
    }
    if let Some(cmd) = &e.cmd {
        cfg.insert("Cmd".into(), json!(cmd));
    }
    if let Some(w) = &e.workdir {
        cfg.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &e.user {
        cfg.insert("User".into(), json!(u));
    }
    if !e.labels.is_empty() {
        let labels = object_at(cfg, "Labels");
        for (k, v) in &e.labels {
            labels.insert(k.clone(), json!(v));
        }
    }
    if !e.ports.is_empty() {
        let ports = object_at(cfg, "ExposedPorts");
        for p in &e.ports {
            ports.insert(p.clone(), json!({}));
        }
    }
}

fn object_at<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = m.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}

fn array_at<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = m.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("just made an array")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(config: Value) -> Base {
        Base {
            family: Family::Oci,
            config,
            layers: vec![],
            name: None,
            digest: None,
        }
    }

    fn layer() -> NewLayer {
        NewLayer {
            layer: Layer {
                digest: Digest::of(b"gz"),
                diff_id: Digest::of(b"tar"),
                size: 2,
                media_type: super::super::media::OCI_LAYER_GZIP.into(),
            },
            created_by: "xarch: binaries".into(),
        }
    }

    fn write_with(base_cfg: Value, edits: ConfigEdits) -> (Value, Value) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let b = base(base_cfg);
        let platform: Platform = "linux/arm/v7".parse().unwrap();
        let layers = [layer()];
        let ann = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let spec = ImageSpec {
            base: &b,
            platform: &platform,
            layers: &layers,
            edits: &edits,
            created: "2024-01-01T00:00:00Z",
            annotations: &ann,
        };
        let w = write(&spec, &store).unwrap();
        let m: Value = serde_json::from_slice(&store.read(&w.descriptor.digest).unwrap()).unwrap();
        let c: Value = serde_json::from_slice(&store.read(&w.config_digest).unwrap()).unwrap();
        assert_eq!(w.descriptor.json["platform"]["variant"], "v7");
        (m, c)
    }

    #[test]
    fn config_keeps_unknown_base_fields_and_applies_edits() {
        let base_cfg = json!({
            "architecture": "arm", "os": "linux",
            "config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Healthcheck": {"Test": ["NONE"]}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
            "history": [{"created_by": "base"}],
            "vendor.key": 7
        });
        let edits = ConfigEdits {
            entrypoint: Some(vec!["/app".into()]),
            env: vec![("A".into(), "2".into()), ("B".into(), "3".into())],
            user: Some("65532".into()),
            ports: vec!["8080/tcp".into()],
            ..Default::default()
        };
        let (m, c) = write_with(base_cfg, edits);
        assert_eq!(c["vendor.key"], 7);
        assert_eq!(c["variant"], "v7");
        assert_eq!(c["config"]["Healthcheck"]["Test"][0], "NONE");
        assert_eq!(c["config"]["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert!(
            c["config"].get("Cmd").is_none(),
            "new entrypoint drops base cmd"
        );
        assert_eq!(c["config"]["ExposedPorts"]["8080/tcp"], json!({}));
        assert_eq!(c["rootfs"]["diff_ids"][1], Digest::of(b"tar").as_str());
        assert_eq!(c["history"].as_array().unwrap().len(), 2);
        assert_eq!(m["layers"][0]["digest"], Digest::of(b"gz").as_str());
        assert_eq!(m["annotations"]["k"], "v");
        assert_eq!(m["mediaType"], super::super::media::OCI_MANIFEST);
    }

    #[test]
    fn empty_base_gets_default_path() {
        let (_, c) = write_with(json!({}), ConfigEdits::default());
        assert!(
            c["config"]["Env"][0]
                .as_str()
                .unwrap()
                .starts_with("PATH=/usr/local/sbin")
        );
        assert_eq!(c["rootfs"]["type"], "layers");
    }
}
