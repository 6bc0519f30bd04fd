//! Signing with the user's key, offline, in cosign's formats: keys
//! (`key`, sealed by `encrypted`), image signatures over the simple-signing
//! payload (`cosign`), DSSE envelopes for in-toto statements (`dsse`) and the
//! Sigstore bundle that carries either as an OCI referrer (`bundle`).
//!
//! There is no transparency log and no certificate authority: a signature is
//! checked against the public key the verifier was given, nothing else.

pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod encrypted;
pub mod key;
pub mod password;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};

/// ECDSA P-256 over SHA-256 of `message`, ASN.1 DER, base64: the form cosign
/// stores in `dev.cosignproject.cosign/signature` and DSSE in `sig`.
pub fn sign_b64(key: &SigningKey, message: &[u8]) -> String {
    let sig: DerSignature = key.sign(message);
    B64.encode(sig.as_bytes())
}

/// Checks a base64 DER signature over `message`.
pub fn verify_b64(key: &VerifyingKey, message: &[u8], sig_b64: &str) -> Result<()> {
    let der = B64
        .decode(sig_b64.trim())
        .context("the signature is not base64")?;
    let sig = DerSignature::from_bytes(&der)
        .map_err(|_| anyhow::anyhow!("the signature is not an ASN.1 DER ECDSA signature"))?;
    if key.verify(message, &sig).is_err() {
        bail!("the signature does not match: wrong key, or the signed bytes were changed");
    }
    Ok(())
}

/// Writes a new key pair as `PREFIX.key` (encrypted, mode 0600) and
/// `PREFIX.pub`, as `cosign generate-key-pair` does. Existing files are kept
/// unless `force`.
pub fn write_key_pair(
    prefix: &std::path::Path,
    password: &[u8],
    force: bool,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let with_ext = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let (private, public) = (with_ext(".key"), with_ext(".pub"));
    if !force {
        for p in [&private, &public] {
            if p.exists() {
                bail!(
                    "{} already exists; pass --force to replace it (a signature made with the old key then no longer verifies with the new one)",
                    p.display()
                );
            }
        }
    }
    let k = key::generate()?;
    let private_pem = key::encrypted_pem(&k, password)?;
    let public_pem = key::public_pem(k.verifying_key())?;
    write_atomic(&private, private_pem.as_bytes(), 0o600)?;
    write_atomic(&public, public_pem.as_bytes(), 0o644)?;
    Ok((private, public))
}

/// Temp file in the same directory, then rename: a key file is whole or absent.
fn write_atomic(path: &std::path::Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
