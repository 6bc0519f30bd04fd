//! DSSE envelopes (Dead Simple Signing Envelope, v1), the wrapper cosign and
//! in-toto sign attestations in: the signature covers the pre-authentication
//! encoding (PAE) of the payload type and the payload, never the JSON around it.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The envelope's media type when it is stored as a blob (cosign's `.att`).
pub const MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// Field names and order as go-securesystemslib's `dsse.Envelope`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// base64 (standard, padded) of the payload bytes.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` as `payload_type` (cosign leaves `keyid` empty for keys).
pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
    Envelope {
        payload_type: payload_type.to_string(),
        payload: B64.encode(payload),
        signatures: vec![Signature {
            keyid: String::new(),
            sig: super::sign_b64(key, &pae(payload_type, payload)),
        }],
    }
}

impl Envelope {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Envelope> {
        serde_json::from_slice(bytes).context("not a DSSE envelope")
    }

    /// The payload bytes, once one signature verifies with `key` over their
    /// PAE and the payload type is `expected_type`.
    pub fn verify(&self, key: &VerifyingKey, expected_type: &str) -> Result<Vec<u8>> {
        if self.payload_type != expected_type {
            bail!(
                "the envelope holds `{}`, expected `{expected_type}`",
                self.payload_type
            );
        }
        let payload = B64
            .decode(&self.payload)
            .context("the envelope's payload is not base64")?;
        let message = pae(&self.payload_type, &payload);
        if self.signatures.is_empty() {
            bail!("the envelope has no signature");
        }
        let mut last = None;
        for s in &self.signatures {
            match super::verify_b64(key, &message, &s.sig) {
                Ok(()) => return Ok(payload),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one signature"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn sign_verify_and_tamper() {
        let key = crate::sign::key::generate().unwrap();
        let t = "application/vnd.in-toto+json";
        let env = sign(t, br#"{"a":1}"#, &key);
        let back = Envelope::from_json(&env.to_json()).unwrap();
        assert_eq!(back.verify(key.verifying_key(), t).unwrap(), br#"{"a":1}"#);
        let mut changed = back.clone();
        changed.payload = B64.encode(br#"{"a":2}"#);
        assert!(changed.verify(key.verifying_key(), t).is_err());
        let mut retyped = back.clone();
        retyped.payload_type = "text/plain".into();
        assert!(retyped.verify(key.verifying_key(), "text/plain").is_err());
        let other = crate::sign::key::generate().unwrap();
        assert!(back.verify(other.verifying_key(), t).is_err());
    }
}
