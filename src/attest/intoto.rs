//! in-toto Statement v1: the envelope every attestation shares — which
//! artifacts it is about (`subject`, here a platform manifest digest), what
//! kind of claim (`predicateType`) and the claim itself (`predicate`).

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::oci::Digest;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of a statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The media type of a statement stored as a blob (a referrer's layer).
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";

/// One subject: a name (optional in v1) and the sha256 it is identified by.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub name: Option<String>,
    pub digest: Digest,
}

impl Subject {
    pub fn new(name: &str, digest: &Digest) -> Subject {
        Subject {
            name: Some(name.to_string()),
            digest: digest.clone(),
        }
    }

    /// A subject named by its digest alone, as cosign's signatures are.
    pub fn digest_only(digest: &Digest) -> Subject {
        Subject {
            name: None,
            digest: digest.clone(),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"digest": {"sha256": self.digest.hex()}});
        if let Some(n) = &self.name {
            v["name"] = n.clone().into();
        }
        v
    }
}

/// The statement's bytes: canonical JSON, so equal inputs give equal bytes
/// (and equal digests once stored).
pub fn statement(subjects: &[Subject], predicate_type: &str, predicate: &Value) -> Result<Vec<u8>> {
    if subjects.is_empty() {
        bail!("an in-toto statement needs at least one subject");
    }
    let doc = json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects.iter().map(Subject::to_json).collect::<Vec<_>>(),
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    crate::oci::json::to_vec(&doc)
}

/// Fails unless `statement` is a v1 statement with `digest` among its subjects.
pub fn check_subject(statement: &Value, digest: &Digest) -> Result<()> {
    if statement["_type"] != STATEMENT_TYPE {
        bail!("not an in-toto v1 statement (_type {})", statement["_type"]);
    }
    let found = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["digest"]["sha256"] == digest.hex());
    if !found {
        bail!("the statement is not about {digest}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_shape_and_subject_check() {
        let d = Digest::of(b"m");
        let bytes = statement(
            &[Subject::new("reg.example.com/app", &d)],
            "https://slsa.dev/provenance/v1",
            &json!({"b": 1, "a": 2}),
        )
        .unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"a":2,"b":1}"#
            ),
            "{text}"
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["subject"][0]["name"], "reg.example.com/app");
        check_subject(&v, &d).unwrap();
        assert!(check_subject(&v, &Digest::of(b"n")).is_err());
        assert!(statement(&[], "x", &json!({})).is_err());
    }
}
