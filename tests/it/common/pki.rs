//! Keys and certificates made with the `openssl` CLI: a test CA with a server
//! certificate for 127.0.0.1, and a self-signed token-signing certificate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{require, run_ok};

fn openssl() -> Command {
    require("openssl", "apt-get install -y openssl");
    Command::new("openssl")
}

/// A self-signed certificate and its RSA key: (key.pem, cert.pem) in `dir`.
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.pem"));
    run_ok(
        openssl()
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", &format!("/CN=xarch test {name}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (key, cert)
}

/// A CA, and a server certificate it signed for IP 127.0.0.1 and DNS localhost.
pub struct ServerPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn server_pki(dir: &Path) -> ServerPki {
    let (ca_key, ca) = self_signed(dir, "ca");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    run_ok(
        openssl()
            .args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
            .args(["-subj", "/CN=127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run_ok(
        openssl()
            .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert),
    );
    ServerPki { ca, cert, key }
}

/// RS256 signature of `data` with an RSA key (`openssl dgst -sha256 -sign`).
pub fn rs256(key: &Path, data: &[u8]) -> Vec<u8> {
    let mut child = openssl()
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl dgst failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The base64 DER body of a PEM certificate (what a JWT `x5c` entry holds).
pub fn pem_body(cert: &Path) -> String {
    std::fs::read_to_string(cert)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}
