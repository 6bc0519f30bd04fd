//! `Descriptor`: a content descriptor as it appears in a manifest or an index —
//! media type, digest, size and (in an index) platform — with its JSON kept
//! whole, so fields xarch does not know (annotations, `urls`, `artifactType`,
//! `os.version` …) survive a copy into another document.

use serde_json::{Value, json};

use super::digest::Digest;
use crate::platform::Platform;

#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// Normalized; None when the descriptor names no os and architecture.
    pub platform: Option<Platform>,
    /// The descriptor as written, every field kept.
    pub json: Value,
}

/// A descriptor that cannot be used: what is wrong with it, for the caller to
/// name the document it is in.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BadDescriptor(String);

impl Descriptor {
    pub fn new(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest.clone(),
            size,
            platform: None,
            json: json!({"mediaType": media_type, "digest": digest.as_str(), "size": size}),
        }
    }

    /// Reads a descriptor; the digest must be a valid sha256 and the size a
    /// non-negative integer (a size is what every read is bounded by).
    pub fn from_json(v: &Value) -> Result<Descriptor, BadDescriptor> {
        let digest: Digest = v["digest"]
            .as_str()
            .ok_or_else(|| BadDescriptor("a descriptor has no digest".into()))?
            .parse()
            .map_err(|e| BadDescriptor(format!("a descriptor's digest: {e}")))?;
        let size = v["size"]
            .as_u64()
            .filter(|n| *n <= i64::MAX as u64)
            .ok_or_else(|| BadDescriptor(format!("descriptor {digest} has no valid size")))?;
        let p = &v["platform"];
        let platform = match (p["os"].as_str(), p["architecture"].as_str()) {
            (Some(os), Some(arch)) => Some(Platform::new(os, arch, p["variant"].as_str())),
            _ => None,
        };
        Ok(Descriptor {
            media_type: v["mediaType"].as_str().unwrap_or_default().to_string(),
            digest,
            size,
            platform,
            json: v.clone(),
        })
    }

    /// The descriptor with `platform` recorded (keeping `os.version` and
    /// `os.features` already there when the platform is the same).
    pub fn with_platform(mut self, p: &Platform) -> Descriptor {
        let mut v = platform_json(p);
        if self.platform.as_ref() == Some(p) {
            for k in ["os.version", "os.features"] {
                if let Some(x) = self.json["platform"].get(k) {
                    v[k] = x.clone();
                }
            }
        }
        self.json["platform"] = v;
        self.platform = Some(p.clone());
        self
    }

    /// Sets the platform JSON as given (os.version and all), normalizing the key.
    pub fn with_platform_json(mut self, v: Value) -> Descriptor {
        let p = Platform::new(
            v["os"].as_str().unwrap_or_default(),
            v["architecture"].as_str().unwrap_or_default(),
            v["variant"].as_str(),
        );
        self.json["platform"] = v;
        self.platform = Some(p);
        self
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.json["annotations"][key].as_str()
    }

    pub fn set_annotation(&mut self, key: &str, value: &str) {
        let obj = self
            .json
            .as_object_mut()
            .expect("a descriptor is an object");
        let a = obj.entry("annotations").or_insert_with(|| json!({}));
        if !a.is_object() {
            *a = json!({});
        }
        a[key] = json!(value);
    }

    /// buildx's attestation manifests sit in an index as `unknown/unknown`.
    pub fn is_attestation(&self) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
    }

    /// The same descriptor renamed: another digest and size (a rewritten
    /// document), every other field kept.
    pub fn retarget(mut self, media_type: &str, digest: &Digest, size: u64) -> Descriptor {
        self.json["mediaType"] = json!(media_type);
        self.json["digest"] = json!(digest.as_str());
        self.json["size"] = json!(size);
        self.media_type = media_type.to_string();
        self.digest = digest.clone();
        self.size = size;
        self
    }
}

/// `{"os": …, "architecture": …, "variant": …}` for a platform.
pub fn platform_json(p: &Platform) -> Value {
    let mut v = json!({"os": p.os, "architecture": p.architecture});
    if let Some(var) = &p.variant {
        v["variant"] = json!(var);
    }
    v
}

impl serde::Serialize for Descriptor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_field_and_checks_digest_and_size() {
        let d = Digest::of(b"x");
        let v = json!({"mediaType": "m", "digest": d.as_str(), "size": 3,
            "platform": {"os": "linux", "architecture": "aarch64"}, "urls": ["u"]});
        let desc = Descriptor::from_json(&v).unwrap();
        assert_eq!(desc.platform.as_ref().unwrap().to_string(), "linux/arm64");
        assert_eq!(desc.json["urls"][0], "u");
        let mut moved = desc.retarget("m2", &Digest::of(b"y"), 9);
        moved.set_annotation("k", "v");
        assert_eq!(moved.json["urls"][0], "u");
        assert_eq!(moved.annotation("k"), Some("v"));
        for bad in [
            json!({"size": 1}),
            json!({"digest": "sha256:12", "size": 1}),
            json!({"digest": d.as_str()}),
            json!({"digest": d.as_str(), "size": -1}),
        ] {
            assert!(Descriptor::from_json(&bad).is_err(), "{bad}");
        }
        let att = Descriptor::from_json(&json!({"digest": d.as_str(), "size": 1,
            "platform": {"os": "unknown", "architecture": "unknown"}}))
        .unwrap();
        assert!(att.is_attestation());
    }
}
