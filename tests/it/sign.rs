//! Signing in cosign's formats: keys from `xarch generate-key-pair`, simple
//! signing and DSSE signatures verified by xarch and independently by openssl
//! over the exact signed bytes, and the Sigstore bundle read by sigstore's own
//! protobuf models.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use xarch::oci::Digest;
use xarch::sign::{bundle, cosign, dsse, key};

use crate::common::*;

const PASSWORD: &str = "correct horse battery staple";

/// `xarch generate-key-pair` in `dir` with the password from the environment.
fn generate(dir: &Path, prefix: &str) {
    run_ok(
        xarch()
            .args(["generate-key-pair", "--output-key-prefix", prefix])
            .current_dir(dir)
            .env("XARCH_KEY_PASSWORD", PASSWORD),
    );
}

fn load(dir: &Path, prefix: &str) -> p256::ecdsa::SigningKey {
    let pem = std::fs::read(dir.join(format!("{prefix}.key"))).unwrap();
    key::read_private(&pem, PASSWORD.as_bytes()).unwrap()
}

/// `openssl dgst -sha256 -verify PUB -signature SIG FILE`: true when it verifies.
fn openssl_verifies(public: &Path, message: &[u8], sig_b64: &str, work: &Path) -> bool {
    let msg = work.join("message");
    let sig = work.join("sig.der");
    std::fs::write(&msg, message).unwrap();
    std::fs::write(&sig, B64.decode(sig_b64).unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(
        out.status.success(),
        text.contains("Verified OK"),
        "{text}{}",
        stderr(&out)
    );
    out.status.success()
}

#[test]
fn generated_keys_are_cosign_keys() {
    require("openssl", "apt-get install -y openssl");
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), "cosign");
    let private = std::fs::read_to_string(tmp.path().join("cosign.key")).unwrap();
    assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(!private.contains(PASSWORD));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(tmp.path().join("cosign.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // openssl reads the public key as a P-256 SubjectPublicKeyInfo.
    let out = run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubin", "-noout", "-text", "-in"])
            .arg(tmp.path().join("cosign.pub")),
    );
    assert!(
        stdout(&out).contains("P-256") || stdout(&out).contains("prime256v1"),
        "{}",
        stdout(&out)
    );
    // The key opens with its password only.
    let k = load(tmp.path(), "cosign");
    let public = std::fs::read(tmp.path().join("cosign.pub")).unwrap();
    assert_eq!(&key::read_public(&public).unwrap(), k.verifying_key());
    let err = key::read_private(private.as_bytes(), b"wrong").unwrap_err();
    assert!(err.to_string().contains("wrong password"), "{err}");
    // An existing key is not replaced without --force.
    let out = xarch()
        .args(["generate-key-pair"])
        .current_dir(tmp.path())
        .env("XARCH_KEY_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("cosign.key")).unwrap(),
        private
    );
}

#[test]
fn password_comes_from_stdin_when_not_in_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = xarch()
        .args(["generate-key-pair", "--output-key-prefix", "piped"])
        .current_dir(tmp.path())
        .env_remove("XARCH_KEY_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    load(tmp.path(), "piped");
}

#[test]
fn image_signatures_verify_with_openssl_and_fail_when_anything_changes() {
    require("openssl", "apt-get install -y openssl");
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), "cosign");
    generate(tmp.path(), "other");
    let k = load(tmp.path(), "cosign");
    let public = tmp.path().join("cosign.pub");
    let digest = Digest::of(b"a platform manifest");
    let payload = cosign::simple_signing_payload("reg.example.com/team/app", &digest, None);
    let sig = cosign::sign(&k, &payload);
    // Both verifiers accept the exact payload bytes.
    cosign::verify(k.verifying_key(), &payload, &sig, &digest).unwrap();
    assert!(openssl_verifies(&public, &payload, &sig, tmp.path()));
    // A different image digest: the claim is not about this image.
    assert!(cosign::verify(k.verifying_key(), &payload, &sig, &Digest::of(b"another")).is_err());
    let other_payload =
        cosign::simple_signing_payload("reg.example.com/team/app", &Digest::of(b"another"), None);
    assert!(!openssl_verifies(&public, &other_payload, &sig, tmp.path()));
    assert!(
        cosign::verify(
            k.verifying_key(),
            &other_payload,
            &sig,
            &Digest::of(b"another")
        )
        .is_err()
    );
    // The wrong key.
    let other = load(tmp.path(), "other");
    assert!(cosign::verify(other.verifying_key(), &payload, &sig, &digest).is_err());
    assert!(!openssl_verifies(
        &tmp.path().join("other.pub"),
        &payload,
        &sig,
        tmp.path()
    ));
    // A tampered payload (one byte).
    let mut tampered = payload.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x20;
    assert!(cosign::verify(k.verifying_key(), &tampered, &sig, &digest).is_err());
    assert!(!openssl_verifies(&public, &tampered, &sig, tmp.path()));
}

#[test]
fn dsse_envelopes_and_bundles_verify_with_openssl_and_sigstore_models() {
    require("openssl", "apt-get install -y openssl");
    require("python3", "apt-get install -y python3");
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), "cosign");
    let k = load(tmp.path(), "cosign");
    let public = tmp.path().join("cosign.pub");
    let digest = Digest::of(b"a platform manifest");
    let statement = xarch::attest::intoto::statement(
        &[xarch::attest::intoto::Subject::new(
            "reg.example.com/team/app",
            &digest,
        )],
        xarch::attest::provenance::PREDICATE_TYPE,
        &serde_json::json!({"buildDefinition": {}}),
    )
    .unwrap();
    let env = dsse::sign(xarch::attest::intoto::PAYLOAD_TYPE, &statement, &k);
    // openssl checks the signature over the PAE of exactly these bytes.
    let pae = dsse::pae(&env.payload_type, &statement);
    assert!(openssl_verifies(
        &public,
        &pae,
        &env.signatures[0].sig,
        tmp.path()
    ));
    assert_eq!(
        env.verify(k.verifying_key(), xarch::attest::intoto::PAYLOAD_TYPE)
            .unwrap(),
        statement
    );
    // Not over the bare payload: the type is bound in.
    assert!(!openssl_verifies(
        &public,
        &statement,
        &env.signatures[0].sig,
        tmp.path()
    ));
    // The image-signature bundle: sigstore's models read it, and its envelope
    // verifies with openssl.
    let b = bundle::image_signature(&digest, &k).unwrap();
    let path = tmp.path().join("bundle.json");
    std::fs::write(&path, &b).unwrap();
    let script = r#"
import base64, json, sys
from sigstore_protobuf_specs.dev.sigstore.bundle.v1 import Bundle
b = Bundle.from_dict(json.load(open(sys.argv[1])))
assert b.media_type == "application/vnd.dev.sigstore.bundle.v0.3+json", b.media_type
assert b.verification_material.public_key.hint, "no key hint"
env = b.dsse_envelope
assert env.payload_type == "application/vnd.in-toto+json"
st = json.loads(env.payload)
assert st["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
pae = b"DSSEv1 %d %s %d " % (len(env.payload_type), env.payload_type.encode(), len(env.payload)) + env.payload
open(sys.argv[2], "wb").write(pae)
print(base64.b64encode(env.signatures[0].sig).decode())
"#;
    let pae_path = tmp.path().join("bundle.pae");
    let out = run_ok(
        Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .arg(&pae_path),
    );
    let sig = stdout(&out).trim().to_string();
    assert!(openssl_verifies(
        &public,
        &std::fs::read(&pae_path).unwrap(),
        &sig,
        tmp.path()
    ));
    bundle::verify_image_signature(&b, k.verifying_key(), &digest).unwrap();
    assert!(bundle::verify_image_signature(&b, k.verifying_key(), &Digest::of(b"x")).is_err());
}
