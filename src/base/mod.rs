//! `Base`s built into xarch, needing no download: `static` (users, groups, /tmp
//! and CA certificates, like distroless/static) and `scratch` (empty).

use anyhow::{Result, bail};
use base64::Engine;
use serde_json::json;

use crate::image::ImageRef;
use crate::oci::image::{Base, DEFAULT_PATH};
use crate::oci::{BlobStore, Descriptor, Family, LayerBuilder, LayerOptions};
use crate::platform::Platform;

/// The uid:gid images on `static` run as by default (distroless's `nonroot`).
pub const NONROOT: &str = "65532:65532";

pub const BUILTIN: &[&str] = &["static", "scratch"];

pub fn is_builtin(name: &str) -> bool {
    BUILTIN.contains(&name)
}

/// A base as configured: built in, or an image (in a registry or a layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseSpec {
    Builtin(String),
    Image(ImageRef),
}

impl std::fmt::Display for BaseSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BaseSpec::Builtin(n) => write!(f, "{n}"),
            BaseSpec::Image(r) => write!(f, "{r}"),
        }
    }
}

impl BaseSpec {
    pub fn parse(s: &str) -> Result<BaseSpec> {
        if is_builtin(s) {
            return Ok(BaseSpec::Builtin(s.to_string()));
        }
        match s.parse() {
            Ok(r) => Ok(BaseSpec::Image(r)),
            Err(e) => bail!(
                "base `{s}` is neither a built-in base ({}) nor an image reference: {e}",
                BUILTIN.join(", ")
            ),
        }
    }
}

/// A built-in base, its layer already in the store: one per build, shared by
/// every platform.
#[derive(Debug, Clone)]
pub struct Builtin {
    layers: Vec<Descriptor>,
    diff_ids: Vec<serde_json::Value>,
    history: Vec<serde_json::Value>,
    user: Option<&'static str>,
}

/// Writes built-in base `name`'s layer into `store` (the same bytes for every
/// platform, so it is written once).
pub fn builtin(name: &str, mtime: u64, store: &BlobStore) -> Result<Builtin> {
    match name {
        "scratch" => Ok(Builtin {
            layers: vec![],
            diff_ids: vec![],
            history: vec![],
            user: None,
        }),
        "static" => {
            let layer = static_layer().write(
                LayerOptions { mtime, level: 9 },
                Family::Oci.layer_gzip(),
                store,
            )?;
            let desc = Descriptor::new(&layer.media_type, &layer.digest, layer.size);
            let history = json!({"created": created(mtime), "created_by": "xarch: static base (passwd, group, nsswitch.conf, tmp, CA certificates)", "comment": "xarch"});
            Ok(Builtin {
                layers: vec![desc],
                diff_ids: vec![json!(layer.diff_id.as_str())],
                history: vec![history],
                user: Some(NONROOT),
            })
        }
        other => bail!(
            "unknown built-in base `{other}` (built-in bases: {})",
            BUILTIN.join(", ")
        ),
    }
}

impl Builtin {
    /// The base as seen by one platform: the shared layer, a config for its CPU.
    pub fn for_platform(&self, platform: &Platform) -> Base {
        let mut cfg = json!({"Env": [format!("PATH={}", DEFAULT_PATH)]});
        if let Some(u) = self.user {
            cfg["User"] = json!(u);
            cfg["WorkingDir"] = json!("/");
        }
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
            "history": self.history,
        });
        if let Some(v) = &platform.variant {
            config["variant"] = json!(v);
        }
        Base {
            family: Family::Oci,
            config,
            layers: self.layers.clone(),
            name: None,
            digest: None,
        }
    }
}

fn created(mtime: u64) -> String {
    crate::epoch::rfc3339(mtime)
}

fn static_layer() -> LayerBuilder {
    let mut b = LayerBuilder::new();
    let passwd = "root:x:0:0:root:/root:/sbin/nologin\n\
                  nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                  nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
    let group = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n";
    let add = |b: &mut LayerBuilder| -> Result<()> {
        b.bytes("etc/passwd", passwd, 0o644)?;
        b.bytes("etc/group", group, 0o644)?;
        b.bytes("etc/nsswitch.conf", "hosts: files dns\n", 0o644)?;
        b.bytes("etc/ssl/certs/ca-certificates.crt", ca_bundle(), 0o644)?;
        b.dir("tmp", 0o1777)?;
        b.dir("root", 0o700)?;
        b.owner(65532, 65532).dir("home/nonroot", 0o700)?;
        Ok(())
    };
    add(&mut b).expect("static base paths are valid");
    b
}

/// Mozilla's root store (from the webpki-root-certs crate) as a PEM bundle.
pub fn ca_bundle() -> String {
    let mut out = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_layer_is_identical_for_every_platform() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let a = builtin("static", 0, &store)
            .unwrap()
            .for_platform(&"linux/amd64".parse().unwrap());
        let b = builtin("static", 0, &store)
            .unwrap()
            .for_platform(&"linux/arm/v7".parse().unwrap());
        assert_eq!(a.layers, b.layers);
        assert_eq!(a.config["config"]["User"], NONROOT);
        assert_eq!(b.config["variant"], "v7");
    }

    #[test]
    fn ca_bundle_has_many_pem_certs() {
        assert!(ca_bundle().matches("BEGIN CERTIFICATE").count() > 100);
    }

    #[test]
    fn unknown_builtin_lists_the_known() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let e = builtin("alpine", 0, &store).unwrap_err();
        assert!(e.to_string().contains("static, scratch"));
    }
}
