//! cosign's image signature: the simple-signing payload (which manifest digest,
//! under which repository), signed, stored base64 in the
//! `dev.cosignproject.cosign/signature` annotation of a layer whose bytes are
//! the payload, under the tag `sha256-<hex>.sig`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::oci::Digest;

/// The annotation holding the base64 signature on the payload's layer.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload layer's media type.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The simple-signing claim, field for field as cosign marshals it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub critical: Critical,
    pub optional: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

/// The exact bytes cosign signs for `digest` in `repository` (the repository
/// without tag, e.g. `registry.example.com/team/app`, as cosign writes it).
/// `optional` holds cosign's `-a KEY=VALUE` annotations (`null` when none).
pub fn simple_signing_payload(
    repository: &str,
    digest: &Digest,
    optional: Option<&BTreeMap<String, Value>>,
) -> Vec<u8> {
    let payload = Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: repository.to_string(),
            },
            image: Image {
                docker_manifest_digest: digest.to_string(),
            },
            kind: SIGNATURE_TYPE.to_string(),
        },
        optional: optional.cloned(),
    };
    // Struct order, no whitespace: the same bytes as Go's json.Marshal.
    serde_json::to_vec(&payload).expect("a payload always serializes")
}

/// The base64 signature for the annotation.
pub fn sign(key: &SigningKey, payload: &[u8]) -> String {
    super::sign_b64(key, payload)
}

/// Checks the signature over the payload's exact bytes, then that the payload is
/// a cosign claim for `digest`. Returns the claim.
pub fn verify(
    key: &VerifyingKey,
    payload: &[u8],
    signature: &str,
    digest: &Digest,
) -> Result<Payload> {
    super::verify_b64(key, payload, signature)?;
    let claim: Payload =
        serde_json::from_slice(payload).context("the signed payload is not a cosign claim")?;
    if claim.critical.kind != SIGNATURE_TYPE {
        bail!(
            "the signed payload's type is `{}`, not `{SIGNATURE_TYPE}`",
            claim.critical.kind
        );
    }
    if claim.critical.image.docker_manifest_digest != digest.as_str() {
        bail!(
            "the signature is for {}, not for {digest}",
            claim.critical.image.docker_manifest_digest
        );
    }
    Ok(claim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bytes_are_cosigns() {
        let d = Digest::of(b"manifest");
        let p = simple_signing_payload("reg.example.com/team/app", &d, None);
        assert_eq!(
            String::from_utf8(p).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"reg.example.com/team/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        let mut opt = BTreeMap::new();
        opt.insert("b".to_string(), Value::from("2"));
        opt.insert("a".to_string(), Value::from("1"));
        let p = simple_signing_payload("r/a", &d, Some(&opt));
        assert!(
            String::from_utf8(p)
                .unwrap()
                .ends_with(r#""optional":{"a":"1","b":"2"}}"#)
        );
    }

    #[test]
    fn verify_checks_key_bytes_and_digest() {
        let key = crate::sign::key::generate().unwrap();
        let d = Digest::of(b"manifest");
        let payload = simple_signing_payload("r/app", &d, None);
        let sig = sign(&key, &payload);
        verify(key.verifying_key(), &payload, &sig, &d).unwrap();
        let other = crate::sign::key::generate().unwrap();
        assert!(verify(other.verifying_key(), &payload, &sig, &d).is_err());
        let mut tampered = payload.clone();
        tampered[10] ^= 1;
        assert!(verify(key.verifying_key(), &tampered, &sig, &d).is_err());
        let err = verify(key.verifying_key(), &payload, &sig, &Digest::of(b"x")).unwrap_err();
        assert!(err.to_string().contains("not for"), "{err}");
    }
}
