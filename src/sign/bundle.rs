//! The Sigstore bundle (v0.3, JSON): a DSSE envelope with the material to
//! verify it, the document cosign 3 attaches to an image as an OCI referrer
//! (artifact type = this media type). Keyed signing without a transparency
//! log: the verification material is only a hint naming the public key, and
//! there are no `tlogEntries` (verify with cosign's `--insecure-ignore-tlog`).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde_json::{Value, json};

use super::dsse::{self, Envelope};
use crate::attest::intoto;
use crate::oci::Digest;

pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// cosign 3's predicate type for an image signature.
pub const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Annotations cosign puts on the referrer manifest, so readers can filter
/// without fetching the bundle.
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
pub const PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// A bundle for an envelope signed by `key`.
pub fn for_envelope(envelope: &Envelope, key: &VerifyingKey) -> Result<Vec<u8>> {
    let signatures: Vec<Value> = envelope
        .signatures
        .iter()
        .map(|s| json!({"sig": s.sig}))
        .collect();
    let bundle = json!({
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": super::key::hint(key)?}},
        "dsseEnvelope": {
            "payload": envelope.payload,
            "payloadType": envelope.payload_type,
            "signatures": signatures,
        },
    });
    crate::oci::json::to_vec(&bundle)
}

/// cosign 3's image signature: an in-toto statement about `digest` with the
/// `sign/v1` predicate type and an empty predicate, signed in a DSSE envelope,
/// in a bundle.
pub fn image_signature(digest: &Digest, key: &SigningKey) -> Result<Vec<u8>> {
    let subject = intoto::Subject::digest_only(digest);
    let statement = intoto::statement(&[subject], SIGN_PREDICATE_TYPE, &json!({}))?;
    let env = dsse::sign(intoto::PAYLOAD_TYPE, &statement, key);
    for_envelope(&env, key.verifying_key())
}

/// The annotations for the referrer manifest that carries a bundle.
pub fn referrer_annotations(predicate_type: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CONTENT_ANNOTATION.to_string(), "dsse-envelope".to_string()),
        (
            PREDICATE_TYPE_ANNOTATION.to_string(),
            predicate_type.to_string(),
        ),
    ])
}

/// Verifies a bundle's envelope with `key`; returns the in-toto statement.
pub fn verify(bundle: &[u8], key: &VerifyingKey) -> Result<Value> {
    let doc: Value = serde_json::from_slice(bundle).context("the bundle is not JSON")?;
    if doc["mediaType"] != MEDIA_TYPE {
        bail!(
            "unsupported bundle media type {} (expected {MEDIA_TYPE})",
            doc["mediaType"]
        );
    }
    let env: Envelope = serde_json::from_value(doc["dsseEnvelope"].clone())
        .context("the bundle has no DSSE envelope")?;
    let payload = env.verify(key, intoto::PAYLOAD_TYPE)?;
    serde_json::from_slice(&payload).context("the signed payload is not JSON")
}

/// Verifies an image-signature bundle: the key, then that it signs `digest`.
pub fn verify_image_signature(bundle: &[u8], key: &VerifyingKey, digest: &Digest) -> Result<()> {
    let statement = verify(bundle, key)?;
    if statement["predicateType"] != SIGN_PREDICATE_TYPE {
        bail!(
            "the bundle's statement is a {}, not an image signature",
            statement["predicateType"]
        );
    }
    intoto::check_subject(&statement, digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_signature_bundle_verifies_only_for_its_digest_and_key() {
        let key = crate::sign::key::generate().unwrap();
        let d = Digest::of(b"manifest");
        let b = image_signature(&d, &key).unwrap();
        let doc: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(doc["mediaType"], MEDIA_TYPE);
        assert_eq!(
            doc["verificationMaterial"]["publicKey"]["hint"],
            crate::sign::key::hint(key.verifying_key()).unwrap()
        );
        verify_image_signature(&b, key.verifying_key(), &d).unwrap();
        assert!(verify_image_signature(&b, key.verifying_key(), &Digest::of(b"x")).is_err());
        let other = crate::sign::key::generate().unwrap();
        assert!(verify_image_signature(&b, other.verifying_key(), &d).is_err());
    }
}
