//! Registries that lie, beside or in front of a real Distribution: redirects
//! and upload Locations to other hosts that challenge for credentials,
//! endless, drip-fed, oversized and short bodies, wrong digests, giant tokens
//! and error bodies, a plain-HTTP realm for an HTTPS registry. Each case ends
//! in a clear error or a safe result, with no credential sent where it must not
//! go (the liars record every Authorization header), in bounded memory (the
//! real CLI's peak RSS) and bounded time.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::liar::{Body, Liar, Measured, Reply, run_measured};
use common::proxy::{Fault, Proxy};
use common::registry::*;
use common::token::{Policy, TokenServer};
use common::*;
use serde_json::Value;

const USER: &str = "alice";
const PASSWORD: &str = "h0stile-s3cret";
/// Peak RSS allowed to xarch in every case.
const MAX_RSS_KIB: u64 = 100 << 10;
/// Every run here ends (or is killed, and fails) within this.
const LIMIT: Duration = Duration::from_secs(90);

fn basic() -> String {
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    format!("Basic {b64}")
}

/// A docker config dir holding our credential for each of `hosts`.
fn docker_config(dir: &Path, hosts: &[&str]) -> PathBuf {
    let d = dir.join("docker");
    std::fs::create_dir_all(&d).unwrap();
    let auth = basic().trim_start_matches("Basic ").to_string();
    let auths: serde_json::Map<String, Value> = hosts
        .iter()
        .map(|h| (h.to_string(), serde_json::json!({ "auth": auth })))
        .collect();
    let config = serde_json::json!({ "auths": auths });
    std::fs::write(d.join("config.json"), config.to_string()).unwrap();
    d
}

/// A real registry holding the busybox base as `base/busybox:1`, with
/// htpasswd auth (user `alice`) when `with_auth`.
struct World {
    reg: Registry,
    layout: PathBuf,
    tmp: tempfile::TempDir,
}

fn world(with_auth: bool) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let auth = if with_auth {
        require("htpasswd", "apt-get install -y apache2-utils");
        let htpasswd = tmp.path().join("htpasswd");
        run_ok(
            Command::new("htpasswd")
                .arg("-Bbc")
                .arg(&htpasswd)
                .args([USER, PASSWORD]),
        );
        format!(
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            htpasswd.display()
        )
    } else {
        String::new()
    };
    let reg = Registry::start(&auth);
    let layout = busybox_layout(tmp.path());
    let creds = format!("{USER}:{PASSWORD}");
    let flags: &[&str] = if with_auth {
        &["--dest-creds", &creds]
    } else {
        &[]
    };
    skopeo_push_with(&layout, &format!("{}/base/busybox:1", reg.host), flags);
    World { reg, layout, tmp }
}

impl World {
    /// (digest, bytes) of the amd64 image's config.
    fn config(&self) -> (String, Vec<u8>) {
        let top = skopeo_raw(&self.layout, "1");
        let entry = top["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == "amd64")
            .unwrap()
            .clone();
        let m = read_blob(&self.layout, entry["digest"].as_str().unwrap());
        let d = m["config"]["digest"].as_str().unwrap().to_string();
        let bytes = std::fs::read(self.layout.join("blobs/sha256").join(&d[7..])).unwrap();
        (d, bytes)
    }

    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn cached(&self, digest: &str) -> bool {
        self.cache()
            .join("blobs/sha256")
            .join(&digest[7..])
            .exists()
    }
}

/// `xarch inspect HOST/base/busybox:1 --platform linux/amd64 --config`,
/// measured; `env` and `flags` added.
fn inspect_config(w: &World, host: &str, env: &[(&str, &Path)], flags: &[&str]) -> Measured {
    let mut c = xarch();
    c.args(["inspect", &format!("{host}/base/busybox:1")])
        .args(["--platform", "linux/amd64", "--config", "--json"])
        .args(flags)
        .env("XARCH_CACHE_DIR", w.cache());
    for (k, v) in env {
        c.env(k, v);
    }
    bounded(run_measured(&c, LIMIT))
}

/// Checks the two bounds every case shares: time and memory.
fn bounded(m: Measured) -> Measured {
    assert!(
        !m.killed,
        "xarch ran past {LIMIT:?} and was killed:\n{}",
        stderr(&m.out)
    );
    assert!(
        m.peak_rss_kib < MAX_RSS_KIB,
        "xarch peaked at {} KiB:\n{}",
        m.peak_rss_kib,
        stderr(&m.out)
    );
    m
}

fn assert_fails(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`:\n{err}");
    }
    assert!(!err.contains(PASSWORD), "the password leaked:\n{err}");
    err
}

fn is_blob(req: &common::http::Request, digest: &str) -> bool {
    req.method == "GET" && req.path().ends_with(&format!("/blobs/{digest}"))
}

/// The bug reproduced before this fix: a registry redirects a blob GET to
/// another host, which answers 401 with a Bearer realm of its own; xarch
/// asked that realm for a token with the registry's Basic credentials.
#[test]
fn a_redirect_to_another_host_that_challenges_gets_no_credential() {
    require_image_tools();
    let w = world(true);
    let (config, bytes) = w.config();

    // The storage host: its own token realm, anonymous tokens, the blob for
    // whoever holds one.
    let storage = Liar::start(None, move |req| match req.path() {
        "/token" => Reply::new(200, r#"{"token":"anon-token","expires_in":60}"#),
        _ if req.header("authorization") == Some("Bearer anon-token") => {
            Reply::new(200, bytes.clone())
        }
        _ => {
            let host = req.header("host").unwrap_or_default();
            let realm = format!(r#"Bearer realm="http://{host}/token",service="storage""#);
            Reply::new(401, "").header("WWW-Authenticate", &realm)
        }
    });
    let elsewhere = format!("http://{}/signed/config", storage.host);
    let cfg = config.clone();
    let front = Liar::start(Some(&w.reg.host), move |req| {
        if is_blob(req, &cfg) && req.header("authorization").is_some() {
            Reply::new(307, "").header("Location", &elsewhere)
        } else {
            Reply::Forward
        }
    });
    let docker = docker_config(w.tmp.path(), &[&front.host]);
    let m = inspect_config(&w, &front.host, &[("DOCKER_CONFIG", &docker)], &[]);
    assert!(m.out.status.success(), "{}", stderr(&m.out));
    let shown: Value = serde_json::from_slice(&m.out.stdout).unwrap();
    assert_eq!(shown["architecture"], "amd64", "{shown}");
    assert!(
        w.cached(&config),
        "the config did not come through the storage host"
    );

    assert!(
        front.authorizations().contains(&Some(basic())),
        "the registry itself never got the credential"
    );
    let seen = storage.seen();
    assert!(
        seen.iter().all(|s| s.authorization.is_none()
            || s.authorization.as_deref() == Some("Bearer anon-token")),
        "the storage host got a credential: {seen:?}"
    );
    let token_asks: Vec<_> = seen
        .iter()
        .filter(|s| s.target.starts_with("/token"))
        .collect();
    assert_eq!(token_asks.len(), 1, "{seen:?}");
    assert!(!token_asks[0].target.contains("account="), "{seen:?}");

    // A storage host that wants Basic gets nothing, and the error says why.
    let wants_basic = Liar::start(None, |_| {
        Reply::new(401, "").header("WWW-Authenticate", r#"Basic realm="storage""#)
    });
    let elsewhere = format!("http://{}/signed/config", wants_basic.host);
    let cfg = config.clone();
    let front = Liar::start(Some(&w.reg.host), move |req| {
        if is_blob(req, &cfg) && req.header("authorization").is_some() {
            Reply::new(302, "").header("Location", &elsewhere)
        } else {
            Reply::Forward
        }
    });
    let docker = docker_config(w.tmp.path(), &[&front.host]);
    std::fs::remove_dir_all(w.cache()).unwrap();
    let m = inspect_config(&w, &front.host, &[("DOCKER_CONFIG", &docker)], &[]);
    assert_fails(
        &m.out,
        &[
            &format!("http://{}/signed/config: 401", wants_basic.host),
            &format!("gets no credential of {}'s", front.host),
        ],
    );
    assert_eq!(
        wants_basic.authorizations(),
        [None],
        "{:?}",
        wants_basic.seen()
    );
}

/// An upload `Location` on another host: that host's challenge is answered
/// anonymously, and the push fails there, saying why.
#[test]
fn an_upload_location_on_another_host_gets_no_credential() {
    require_image_tools();
    let w = world(true);
    let uploads = Liar::start(None, |req| {
        if req.path() == "/token" {
            return Reply::new(200, r#"{"token":"anon-token"}"#);
        }
        let realm = format!(
            r#"Bearer realm="http://{}/token",service="uploads""#,
            req.header("host").unwrap_or_default()
        );
        Reply::new(401, "").header("WWW-Authenticate", &realm)
    });
    let elsewhere = format!("http://{}/upload/session-1", uploads.host);
    let front = Liar::start(Some(&w.reg.host), move |req| {
        let start = req.method == "POST" && req.path().ends_with("/blobs/uploads/");
        if start && req.header("authorization").is_some() {
            Reply::new(202, "").header("Location", &elsewhere)
        } else {
            Reply::Forward
        }
    });
    let docker = docker_config(w.tmp.path(), &[&front.host]);
    let mut push = xarch();
    push.arg("push")
        .arg(format!("oci:{}:1", w.layout.display()))
        .arg(format!("{}/team/app:1", front.host))
        .args(["-j", "1"])
        .env("DOCKER_CONFIG", &docker)
        .env("XARCH_CACHE_DIR", w.cache());
    let m = bounded(run_measured(&push, LIMIT));
    assert_fails(
        &m.out,
        &[
            &format!("http://{}/upload/session-1", uploads.host),
            "401",
            &format!("gets no credential of {}'s", front.host),
        ],
    );
    let seen = uploads.seen();
    assert!(
        seen.iter().all(|s| s.authorization.is_none()
            || s.authorization.as_deref() == Some("Bearer anon-token")),
        "the upload host got a credential: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.target.starts_with("/token")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|s| s.method == "PUT"), "{seen:?}");
    assert!(front.authorizations().contains(&Some(basic())));
}

/// What a lying registry answers for the amd64 config (a couple of hundred
/// bytes), what xarch must say, and extra flags for the run.
struct BodyCase {
    name: &'static str,
    reply: Reply,
    needles: Vec<String>,
    flags: &'static [&'static str],
}

#[test]
fn lying_blob_bodies_fail_fast_in_bounded_memory() {
    require_image_tools();
    let w = world(false);
    let (config, bytes) = w.config();
    let size = bytes.len();
    let half = bytes[..size / 2].to_vec();
    let mut longer = bytes.clone();
    longer.push(b' ');
    let mut flipped = bytes.clone();
    proxy_flip(&mut flipped);
    let too_large = format!("blob {config} is larger than its descriptor's size ({size} bytes)");
    let cases = vec![
        BodyCase {
            name: "endless",
            reply: Reply::streaming(200, Body::Endless),
            needles: vec![too_large.clone()],
            flags: &[],
        },
        BodyCase {
            name: "one byte more",
            reply: Reply::streaming(200, Body::UntilClose(longer)),
            needles: vec![too_large.clone()],
            flags: &[],
        },
        BodyCase {
            name: "announced 10 GiB",
            reply: Reply::streaming(
                200,
                Body::Declared {
                    declared: 10 << 30,
                    bytes: vec![0; 1 << 20],
                },
            ),
            needles: vec![format!(
                "announced {} bytes for blob {config}, whose descriptor says {size}",
                10u64 << 30
            )],
            flags: &[],
        },
        BodyCase {
            name: "short, without a length",
            reply: Reply::streaming(200, Body::UntilClose(half.clone())),
            needles: vec![format!(
                "blob {config} ended after {} of its {size} bytes",
                half.len()
            )],
            flags: &[],
        },
        BodyCase {
            name: "short of its length",
            reply: Reply::streaming(
                200,
                Body::Declared {
                    declared: size as u64,
                    bytes: half,
                },
            ),
            needles: vec![format!("cannot fetch blob {config}")],
            flags: &[],
        },
        BodyCase {
            name: "wrong digest",
            reply: Reply::new(200, flipped),
            needles: vec![format!("blob {config} from"), "is corrupt".into()],
            flags: &[],
        },
        BodyCase {
            name: "a byte a minute",
            reply: Reply::streaming(
                200,
                Body::Drip {
                    every: Duration::from_secs(60),
                },
            ),
            needles: vec!["no byte moved for 2 s".into(), "--stall-timeout".into()],
            flags: &["--stall-timeout", "2"],
        },
        BodyCase {
            name: "drip-fed under the stall timeout",
            reply: Reply::streaming(
                200,
                Body::Drip {
                    every: Duration::from_millis(500),
                },
            ),
            needles: vec!["not done".into(), "--timeout".into()],
            flags: &["--timeout", "3", "--stall-timeout", "2"],
        },
        BodyCase {
            name: "silence",
            reply: Reply::Silence,
            needles: vec![
                format!("cannot fetch blob {config}"),
                "no byte moved for 1 s".into(),
            ],
            flags: &["--stall-timeout", "1"],
        },
    ];
    for case in cases {
        let (cfg, reply) = (config.clone(), case.reply.clone());
        let liar = Liar::start(Some(&w.reg.host), move |req| {
            if is_blob(req, &cfg) {
                reply.clone()
            } else {
                Reply::Forward
            }
        });
        let m = inspect_config(&w, &liar.host, &[], case.flags);
        let needles: Vec<&str> = case.needles.iter().map(String::as_str).collect();
        let err = assert_fails(&m.out, &needles);
        assert!(!w.cached(&config), "{}: a lie was stored", case.name);
        if case.name == "endless" {
            // Cut off within a chunk of the config's size: what the liar got
            // out is that plus the kernel's socket buffers, not gigabytes.
            assert!(
                liar.sent() < 4 << 20,
                "{}: {} bytes",
                case.name,
                liar.sent()
            );
        }
        eprintln!(
            "{}: {} KiB peak, {:.1}s: {}",
            case.name,
            m.peak_rss_kib,
            m.took.as_secs_f64(),
            err.lines().last().unwrap_or_default()
        );
    }
}

/// Flips one byte in the middle (same size, another digest).
fn proxy_flip(bytes: &mut [u8]) {
    common::proxy::corrupt(bytes);
}

#[test]
fn giant_tokens_and_error_bodies_are_cut_off() {
    require_image_tools();
    let w = world(false);
    // A registry that wants a token from its own realm, which answers 2 MiB
    // (with a length, or chunked without one).
    for (name, token_body) in [
        ("declared", Body::Bytes(giant_token(2 << 20))),
        ("chunked", Body::Endless),
    ] {
        let token_body = token_body.clone();
        let liar = Liar::start(Some(&w.reg.host), move |req| {
            let host = req.header("host").unwrap_or_default().to_string();
            if req.path() == "/token" {
                return Reply::streaming(200, token_body.clone());
            }
            let realm = format!(r#"Bearer realm="http://{host}/token",service="liar""#);
            Reply::new(401, "").header("WWW-Authenticate", &realm)
        });
        let m = inspect_config(&w, &liar.host, &[], &[]);
        assert_fails(
            &m.out,
            &[
                &format!("GET http://{}/token", liar.host),
                "the token response",
                "is larger than 1 MiB",
            ],
        );
        eprintln!("token {name}: {} KiB peak", m.peak_rss_kib);
    }

    // A 404 whose body never ends: the message shows a bounded part, cut.
    let liar = Liar::start(Some(&w.reg.host), |req| {
        if req.path().contains("/manifests/") {
            Reply::streaming(404, Body::Endless)
        } else {
            Reply::Forward
        }
    });
    let m = inspect_config(&w, &liar.host, &[], &[]);
    let err = assert_fails(&m.out, &["404", "…"]);
    assert!(err.len() < 4096, "{} bytes of error:\n{err}", err.len());
    assert!(liar.sent() < 4 << 20, "{} bytes sent", liar.sent());
}

fn giant_token(len: usize) -> Vec<u8> {
    let token = "a".repeat(len);
    format!(r#"{{"token":"{token}","expires_in":60}}"#).into_bytes()
}

/// A TLS registry whose token realm is plain HTTP: the credential would
/// cross the network in the clear, so xarch refuses, before any token request.
#[test]
fn a_plain_http_realm_of_an_https_registry_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki::server_pki(tmp.path());
    let tokens = TokenServer::start(USER, PASSWORD);
    let reg = Registry::start_tls(&tokens.registry_auth(), &pki.cert, &pki.key);
    let docker = docker_config(tmp.path(), &[&reg.host]);
    let mut c = xarch();
    c.args(["inspect", &format!("{}/base/busybox:1", reg.host)])
        .arg("--ca-cert")
        .arg(&pki.ca)
        .env("DOCKER_CONFIG", &docker)
        .env("XARCH_CACHE_DIR", tmp.path().join("cache"));
    let m = bounded(run_measured(&c, LIMIT));
    assert_fails(
        &m.out,
        &[
            &format!(
                "{} is served over HTTPS but announced the plain-HTTP token realm",
                reg.host
            ),
            &tokens.realm,
        ],
    );
    assert!(tokens.take_requests().is_empty(), "a token was asked for");
}

/// `expires_in` beyond any sense (u64::MAX seconds) is clamped, not trusted.
#[test]
fn a_token_lifetime_beyond_reason_is_clamped() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(USER, PASSWORD);
    tokens.set_policy(Policy {
        expires_in: u64::MAX,
        ..Policy::default()
    });
    let reg = Registry::start(&tokens.registry_auth());
    let layout = busybox_layout(tmp.path());
    let docker = docker_config(tmp.path(), &[&reg.host]);
    let mut push = xarch();
    push.arg("push")
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("{}/team/app:1", reg.host))
        .env("DOCKER_CONFIG", &docker)
        .env("XARCH_CACHE_DIR", tmp.path().join("cache"));
    let m = bounded(run_measured(&push, LIMIT));
    assert!(m.out.status.success(), "{}", stderr(&m.out));
    // skopeo cannot read such a token: give it sane ones.
    tokens.set_policy(Policy::default());
    let index = skopeo_raw(&layout, "1");
    let creds = format!("{USER}:{PASSWORD}");
    let pushed = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--creds", &creds])
            .arg(format!("docker://{}/team/app:1", reg.host)),
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&pushed.stdout).unwrap(),
        index
    );
}

/// A token server slow for one repository: requests needing another
/// repository's token go on meanwhile.
#[test]
fn a_slow_token_does_not_hold_up_other_scopes() {
    use xarch::registry::auth::Credential;
    use xarch::registry::{Client, Options, Reference};
    let tokens = TokenServer::start(USER, PASSWORD);
    tokens.set_policy(Policy {
        slow: Some((
            |scopes| scopes.iter().any(|s| s.contains("repository:slow/")),
            Duration::from_secs(8),
        )),
        ..Policy::default()
    });
    let reg = Registry::start(&tokens.registry_auth());
    let client = std::sync::Arc::new(Client::new(Options::default()).unwrap());
    client.set_credential(
        &reg.host,
        Credential {
            username: USER.into(),
            secret: PASSWORD.into(),
        },
    );
    let digest: xarch::oci::Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let exists = |repo: &str| {
            let (client, digest) = (client.clone(), digest.clone());
            let r: Reference = format!("{}/{repo}", reg.host).parse().unwrap();
            async move {
                let scope = xarch::registry::remote::pull_scope(&r);
                client.blob_exists(&r, &digest, &[scope]).await.unwrap()
            }
        };
        let slow = tokio::spawn(exists("slow/app"));
        // Let the slow request reach its token request first.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(!exists("fast/app").await);
        assert!(
            !slow.is_finished(),
            "the fast repository's request waited for the slow one's token"
        );
        assert!(!slow.await.unwrap());
    });
}

/// The one-shot check of whether a loopback host speaks HTTP or HTTPS is
/// retried like any request: its connection dropped once, the push still goes
/// over HTTP.
#[test]
fn a_dropped_scheme_probe_does_not_send_the_push_to_https() {
    require_image_tools();
    let w = world(false);
    let proxy = Proxy::start(&w.reg.host, Fault::DropProbe);
    let mut push = xarch();
    push.arg("push")
        .arg(format!("oci:{}:1", w.layout.display()))
        .arg(format!("{}/team/app:1", proxy.host))
        .env("XARCH_CACHE_DIR", w.cache());
    let m = bounded(run_measured(&push, LIMIT));
    assert!(m.out.status.success(), "{}", stderr(&m.out));
    assert_eq!(proxy.faults(), 1, "the probe was not dropped");
    let pushed = inspect_remote(&format!("{}/team/app:1", w.reg.host));
    assert_eq!(pushed, skopeo_raw(&w.layout, "1"));
}

/// Logins to several registries at once, into one docker config that is a
/// symlink: every entry is kept, and the symlink stays one.
#[test]
fn concurrent_logins_lose_no_entry_and_keep_a_symlinked_config() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start("");
    // Each proxy is one more registry host, all backed by the same registry.
    let proxies: Vec<Proxy> = (0..8)
        .map(|_| Proxy::start(&reg.host, Fault::Status { n: 0, status: 503 }))
        .collect();
    let dotfiles = tmp.path().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let target = dotfiles.join("docker-config.json");
    std::fs::write(
        &target,
        r#"{"auths":{"kept.example:5000":{"auth":"YTpi"}}}"#,
    )
    .unwrap();
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let link = docker.join("config.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let children: Vec<_> = proxies
        .iter()
        .map(|p| {
            let mut child = xarch()
                .args(["login", &p.host, "-u", USER, "--password-stdin"])
                .env("DOCKER_CONFIG", &docker)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(PASSWORD.as_bytes()).unwrap();
            child
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the config is no longer a symlink"
    );
    let config: Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    let auths = config["auths"].as_object().unwrap();
    for p in &proxies {
        assert!(auths.contains_key(&p.host), "lost {}: {config}", p.host);
    }
    assert!(auths.contains_key("kept.example:5000"), "{config}");
    assert_eq!(auths.len(), proxies.len() + 1, "{config}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
