//! The password-encrypted envelope cosign keeps private keys in (the scheme of
//! go-securesystemslib's `encrypted` package): a key derived from the password
//! with scrypt, the secret sealed with NaCl secretbox (XSalsa20-Poly1305), and
//! both described in a small JSON document:
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"…"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"…"},"ciphertext":"…"}
//! ```

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// scrypt's cost parameters. Only the reference sets are accepted when
/// decrypting: a file naming N = 2^40 must not make xarch spin for hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScryptParams {
    #[serde(rename = "N")]
    pub n: u64,
    pub r: u32,
    pub p: u32,
}

impl ScryptParams {
    /// What cosign writes today (securesystemslib's "standard" strength).
    pub const STANDARD: ScryptParams = ScryptParams {
        n: 65536,
        r: 8,
        p: 1,
    };
    /// Older cosign keys ("legacy").
    pub const LEGACY: ScryptParams = ScryptParams {
        n: 32768,
        r: 8,
        p: 1,
    };
    /// securesystemslib's "OWASP" strength.
    pub const OWASP: ScryptParams = ScryptParams {
        n: 131072,
        r: 8,
        p: 1,
    };

    fn check(&self) -> Result<scrypt::Params> {
        if ![Self::LEGACY, Self::STANDARD, Self::OWASP].contains(self) {
            bail!(
                "unsupported scrypt parameters N={} r={} p={} (cosign keys use N=32768, 65536 or 131072 with r=8, p=1)",
                self.n,
                self.r,
                self.p
            );
        }
        let log_n = self.n.trailing_zeros() as u8;
        scrypt::Params::new(log_n, self.r, self.p).context("scrypt parameters")
    }
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Field order as cosign writes it (Go's encoding/json keeps struct order).
#[derive(Serialize, Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

/// Encrypts `plaintext` under `password` with a fresh salt and nonce.
pub fn encrypt(plaintext: &[u8], password: &[u8], params: ScryptParams) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    let key = derive(password, &salt, &params)?;
    let ciphertext = XSalsa20Poly1305::new(key.as_slice().into())
        .encrypt(&nonce.into(), plaintext)
        .map_err(|_| anyhow::anyhow!("secretbox encryption failed"))?;
    let sealed = Sealed {
        kdf: Kdf {
            name: KDF_NAME.into(),
            params,
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: CIPHER_NAME.into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(ciphertext),
    };
    Ok(serde_json::to_vec(&sealed)?)
}

/// Decrypts a sealed document; a wrong password or a changed byte fails.
pub fn decrypt(sealed: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let s: Sealed = serde_json::from_slice(sealed)
        .context("the encrypted key is not the JSON document cosign writes")?;
    if s.kdf.name != KDF_NAME {
        bail!(
            "unsupported key derivation `{}` (expected scrypt)",
            s.kdf.name
        );
    }
    if s.cipher.name != CIPHER_NAME {
        bail!(
            "unsupported cipher `{}` (expected nacl/secretbox)",
            s.cipher.name
        );
    }
    let salt = B64.decode(&s.kdf.salt).context("salt is not base64")?;
    let nonce: [u8; NONCE_LEN] = B64
        .decode(&s.cipher.nonce)
        .context("nonce is not base64")?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the nonce is not {NONCE_LEN} bytes"))?;
    let ciphertext = B64
        .decode(&s.ciphertext)
        .context("ciphertext is not base64")?;
    let key = derive(password, &salt, &s.kdf.params)?;
    XSalsa20Poly1305::new(key.as_slice().into())
        .decrypt(&nonce.into(), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| anyhow::anyhow!("wrong password, or the key file was changed"))
}

fn derive(password: &[u8], salt: &[u8], params: &ScryptParams) -> Result<Zeroizing<Vec<u8>>> {
    let p = params.check()?;
    let mut key = Zeroizing::new(vec![0u8; KEY_LEN]);
    scrypt::scrypt(password, salt, &p, &mut key).context("scrypt")?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    // go-securesystemslib's own test vectors (encrypted/encrypted_test.go):
    // "reallyimportant" sealed under "supersecret" at each strength, through
    // its Marshal (so the plaintext is the JSON of the base64 of the bytes).
    const VECTORS: [&str; 3] = [
        r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"WO3mVvyTwJ9vwT5/Tk5OW5WPIBUofMjcpEfrLnfY4uA="},"cipher":{"name":"nacl/secretbox","nonce":"tCy7HcTFr4uxv4Nrg/DWmncuZ148U1MX"},"ciphertext":"08n43p5G5yviPEZpO7tPPF4aZQkWiWjkv4taFdhDBA0tamKH4nw="}"#,
        r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"FhzPOt9/bJG4PTq6lQ6ecG6GzaOuOy/ynG5+yRiFlNs="},"cipher":{"name":"nacl/secretbox","nonce":"aw1ng1jHaDz/tQ7V2gR9O2+IGQ8xJEuE"},"ciphertext":"HycvuLZL4sYH0BrYTh4E/H20VtAW6u5zL5Pr+IBjYLYnCPzDkq8="}"#,
        r#"{"kdf":{"name":"scrypt","params":{"N":131072,"r":8,"p":1},"salt":"m38E3kouJTtiheLQN22NQ8DTito5hrjpUIskqcd375k="},"cipher":{"name":"nacl/secretbox","nonce":"Y6PM13yA+o44pE/W1ZBwczeGnTV/m9Zc"},"ciphertext":"6H8sqj1K6B6yDjtH5AQ6lbFigg/C2yDDJc4rYJ79w9aVPImFIPI="}"#,
    ];

    #[test]
    fn reference_vectors_decrypt() {
        for v in VECTORS {
            let plain = decrypt(v.as_bytes(), b"supersecret").unwrap();
            let json: String = serde_json::from_slice(&plain).unwrap();
            assert_eq!(B64.decode(json).unwrap(), b"reallyimportant");
            assert!(decrypt(v.as_bytes(), b"supersecreT").is_err());
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let sealed = encrypt(b"secret key", b"pw", ScryptParams::LEGACY).unwrap();
        assert_eq!(decrypt(&sealed, b"pw").unwrap().as_slice(), b"secret key");
        let mut doc: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
        let mut ct = B64.decode(doc["ciphertext"].as_str().unwrap()).unwrap();
        ct[0] ^= 1;
        doc["ciphertext"] = B64.encode(ct).into();
        let err = decrypt(&serde_json::to_vec(&doc).unwrap(), b"pw").unwrap_err();
        assert!(err.to_string().contains("wrong password"), "{err}");
    }

    #[test]
    fn absurd_costs_are_refused_before_any_work() {
        let v = r#"{"kdf":{"name":"scrypt","params":{"N":1099511627776,"r":8,"p":1},"salt":"AA=="},"cipher":{"name":"nacl/secretbox","nonce":"tCy7HcTFr4uxv4Nrg/DWmncuZ148U1MX"},"ciphertext":"AA=="}"#;
        let err = decrypt(v.as_bytes(), b"x").unwrap_err();
        assert!(err.to_string().contains("unsupported scrypt"), "{err}");
    }
}
