//! A real registry (Distribution, Debian's `docker-registry`) on a free loopback
//! port with temp storage, and multi-arch busybox base images built from real
//! Debian packages.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{require, run_ok};

pub struct Registry {
    pub host: String,
    child: Child,
    log: PathBuf,
    access: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; `auth` is an extra YAML block (e.g. htpasswd), or "".
    pub fn start(auth: &str) -> Registry {
        Registry::start_with(auth, "")
    }

    /// Starts a registry that serves HTTPS only, with `cert` and `key` (PEM).
    pub fn start_tls(auth: &str, cert: &Path, key: &Path) -> Registry {
        let tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
        Registry::start_with(auth, &tls)
    }

    /// `http_extra` goes inside the `http:` section.
    fn start_with(auth: &str, http_extra: &str) -> Registry {
        require("docker-registry", "apt-get install -y docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{http_extra}{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = dir.path().join("registry.log");
        // Distribution writes its access log (combined format) to stdout.
        let access = dir.path().join("access.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::from(std::fs::File::create(&access).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let host = format!("127.0.0.1:{port}");
        let start = Instant::now();
        while TcpStream::connect(&host).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "registry did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            host,
            child,
            log,
            access,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.access).unwrap_or_default()
    }

    /// Lines of the access log for requests matching `method` and a path prefix.
    pub fn requests(&self, method: &str, path_prefix: &str) -> usize {
        let needle = format!("\"{method} {path_prefix}");
        self.access_log()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }

    /// Raw GET, for checks independent of xarch's client.
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.host).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: application/vnd.oci.image.index.v1+json\r\n\r\n", self.host).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, resp)
    }
}

impl Registry {
    /// Raw manifest PUT (for documents xarch would refuse to write, such as a
    /// nested index); returns the status.
    pub fn put_manifest(&self, repo: &str, tag: &str, media_type: &str, body: &[u8]) -> u16 {
        let mut s = TcpStream::connect(&self.host).unwrap();
        write!(
            s,
            "PUT /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: {}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The platforms of the busybox base: (OCI platform, Debian arch, qemu name).
pub const BUSYBOX: [(&str, &str, &str); 3] = [
    ("linux/amd64", "amd64", "x86_64"),
    ("linux/arm64", "arm64", "aarch64"),
    ("linux/arm/v7", "armhf", "arm"),
];

fn debs_dir() -> PathBuf {
    std::env::var_os("XARCH_TEST_DEBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/xarch-test-debs")
        })
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let d = sha(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
    (d, bytes.len())
}

/// The busybox-static package for `deb_arch`; the directory also holds other
/// packages for the same architecture (libc6 for the glibc tests).
fn is_busybox_deb(p: &Path, deb_arch: &str) -> bool {
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with("busybox-static_") && name.ends_with(&format!("_{deb_arch}.deb"))
}

/// Writes a multi-arch busybox image (an OCI layout, tag `1`) built from Debian's
/// busybox-static packages; independent of xarch's own writer.
pub fn busybox_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("busybox-layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut manifests = Vec::new();
    for (platform, deb_arch, _) in BUSYBOX {
        let deb = std::fs::read_dir(debs_dir())
            .ok()
            .and_then(|mut r| {
                r.find_map(|e| {
                    e.ok()
                        .map(|e| e.path())
                        .filter(|p| is_busybox_deb(p, deb_arch))
                })
            })
            .unwrap_or_else(|| {
                panic!(
                    "busybox-static for {deb_arch} is missing from {}; run `bash scripts/setup`",
                    debs_dir().display()
                )
            });
        let x = dir.join(format!("deb-{deb_arch}"));
        run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
        let busybox = std::fs::read(x.join("bin/busybox")).unwrap();

        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, "bin/", std::io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(busybox.len() as u64);
        tar.append_data(&mut h, "bin/busybox", busybox.as_slice())
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        tar.append_link(&mut h, "bin/sh", "busybox").unwrap();
        let tar = tar.into_inner().unwrap();
        let diff_id = sha(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let (layer, layer_size) = put_blob(&layout, &gz.finish().unwrap());

        let parts: Vec<&str> = platform.split('/').collect();
        let mut config = json!({
            "architecture": parts[1], "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": {"base": "busybox"}},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "busybox-static from Debian"}],
        });
        let mut plat = json!({"architecture": parts[1], "os": "linux"});
        if let Some(v) = parts.get(2) {
            config["variant"] = json!(v);
            plat["variant"] = json!(v);
        }
        let (cfg, cfg_size) = put_blob(&layout, &serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}],
        });
        let (m, m_size) = put_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
        manifests.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": m_size, "platform": plat}));
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let (i, i_size) = put_blob(&layout, &serde_json::to_vec(&index).unwrap());
    let top = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": i, "size": i_size,
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    layout
}

/// Pushes the busybox layout to `dest` with `skopeo copy --all` (optionally as a
/// Docker manifest list with `--format v2s2`).
pub fn skopeo_push(layout: &Path, dest: &str, docker_format: bool) {
    let flags: &[&str] = if docker_format {
        &["--format", "v2s2"]
    } else {
        &[]
    };
    skopeo_push_with(layout, dest, flags);
}

/// Pushes the busybox layout to `dest` with `skopeo copy --all` and extra flags
/// (e.g. `--dest-creds`).
pub fn skopeo_push_with(layout: &Path, dest: &str, flags: &[&str]) {
    let mut c = Command::new("skopeo");
    c.args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .args(flags);
    c.arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{dest}"));
    run_ok(&mut c);
}

/// `skopeo inspect --raw docker://REF`, parsed.
pub fn inspect_remote(reference: &str) -> Value {
    let out = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Copies one platform of a remote image into a local layout and unpacks it.
pub fn pull_platform(reference: &str, platform: &str, work: &Path) -> (PathBuf, Value) {
    let source = format!("docker://{reference}");
    super::copy_and_unpack(
        &source,
        &["--src-tls-verify=false"],
        platform,
        work,
        "pulled",
    )
}
