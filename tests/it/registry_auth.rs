//! Registry authentication and transport against real Distribution processes:
//! bearer tokens from a token server the registry trusts, HTTPS with a test CA,
//! and (fault injection) a redirect to another host.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::registry::*;
use common::token::{Policy, TokenServer};
use common::*;
use serde_json::Value;

const USER: &str = "alice";
const PASSWORD: &str = "t0ken-s3cret";

/// `xarch build --platform linux/amd64 --push --json -t TAG [flags]` of hello-rust.
fn build_push(project: &Path, tag: &str, docker_config: &Path, flags: &[&str]) -> Output {
    xarch()
        .arg("build")
        .arg(project)
        .args(["--platform", "linux/amd64", "--push", "--json", "-t", tag])
        .args(flags)
        .env("DOCKER_CONFIG", docker_config)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("XARCH_CACHE_DIR", project.join("xarch-cache"))
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn login(registry: &str, password: &str, docker_config: &Path) -> Output {
    let mut child = xarch()
        .args(["login", registry, "-u", USER, "--password-stdin"])
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// `skopeo inspect --raw` with extra flags (credentials, TLS), parsed.
fn inspect(reference: &str, flags: &[&str]) -> Value {
    let out = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .args(flags)
            .arg(format!("docker://{reference}")),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn creds() -> String {
    format!("{USER}:{PASSWORD}")
}

fn assert_no_secret(out: &Output, secret: &str) {
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{secret}"),
    );
    for text in [stdout(out), stderr(out)] {
        assert!(
            !text.contains(secret) && !text.contains(&b64),
            "a credential leaked: {text}"
        );
    }
}

#[test]
fn token_auth_login_push_mount_and_one_token_per_scope() {
    require_image_tools();
    let tokens = TokenServer::start(USER, PASSWORD);
    let reg = Registry::start(&tokens.registry_auth());
    let tmp = tempfile::tempdir().unwrap();
    let docker_config = tmp.path().join("docker");
    let (_ptmp, project) = copy_example("hello-rust");
    let app = format!("{}/team/app:1", reg.host);

    // Anonymous: the token server grants nothing, so the push must ask for a login.
    let out = build_push(&project, &app, &docker_config, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("requires a login: run `xarch login {}`", reg.host)),
        "{}",
        stderr(&out)
    );
    let anonymous = tokens.take_requests();
    assert!(!anonymous.is_empty() && anonymous.iter().all(|r| r.account.is_none()));

    // A wrong password: the token server refuses it, nothing is saved, nothing leaks.
    let out = login(&reg.host, "wrong-pw", &docker_config);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("login to {} failed", reg.host))
            && err.contains("401")
            && err.contains("incorrect username or password"),
        "{err}"
    );
    assert_no_secret(&out, "wrong-pw");
    assert!(!docker_config.join("config.json").exists());
    let refused = tokens.take_requests();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].status, 401);
    assert_eq!(refused[0].account.as_deref(), Some(USER));

    // A wrong password already saved: the push fails the same way.
    let stale = tmp.path().join("stale-docker");
    std::fs::create_dir_all(&stale).unwrap();
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:wrong-pw"),
    );
    std::fs::write(
        stale.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host),
    )
    .unwrap();
    let out = build_push(&project, &app, &stale, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{} refused a token (401 Unauthorized)", reg.host))
            && err.contains(&format!("xarch login {}", reg.host)),
        "{err}"
    );
    assert_no_secret(&out, "wrong-pw");
    assert!(tokens.take_requests().iter().all(|r| r.status == 401));

    let out = login(&reg.host, PASSWORD, &docker_config);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_secret(&out, PASSWORD);
    let checked = tokens.take_requests();
    assert_eq!(checked.len(), 1, "login asks for one token: {checked:?}");
    assert_eq!(checked[0].status, 200);

    // Every blob and manifest of the push shares one token for the target.
    let out = build_push(&project, &app, &docker_config, &[]);
    let pushed = report(&out);
    assert_no_secret(&out, PASSWORD);
    assert_eq!(pushed["push"]["uploaded"], 4, "{pushed}");
    let asked = tokens.take_requests();
    assert_eq!(asked.len(), 1, "one token for the whole push: {asked:?}");
    assert_eq!(asked[0].account.as_deref(), Some(USER));
    assert_eq!(asked[0].actions("team/app"), ["pull", "push"]);
    assert!(reg.requests("HEAD", "/v2/team/app/blobs/") >= 4);
    let index = inspect(&app, &["--tls-verify=false", "--creds", &creds()]);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);

    // A base on the same registry: its layer is mounted, which needs pull on the
    // source and push,pull on the target.
    let base = busybox_layout(tmp.path());
    let base_ref = format!("{}/base/busybox:1", reg.host);
    skopeo_push_with(&base, &base_ref, &["--dest-creds", &creds()]);
    tokens.take_requests();
    let mounted = format!("{}/team/mounted:1", reg.host);
    let out = build_push(&project, &mounted, &docker_config, &["--base", &base_ref]);
    let pushed = report(&out);
    assert_eq!(pushed["push"]["mounted"], 1, "{pushed}");
    let asked = tokens.take_requests();
    assert!(
        asked.iter().any(|r| r.actions("base/busybox") == ["pull"]
            && r.actions("team/mounted") == ["pull", "push"]),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .all(|r| !r.actions("base/busybox").contains(&"push".to_string())),
        "{asked:?}"
    );
    // Resolving the base, the target's blobs and manifests, the mount: one token each.
    assert_eq!(asked.len(), 3, "{asked:?}");
    let flags = ["--tls-verify=false", "--creds", &creds()];
    let index = inspect(&mounted, &flags);
    let manifest = inspect(
        &format!(
            "{}/team/mounted@{}",
            reg.host,
            index["manifests"][0]["digest"].as_str().unwrap()
        ),
        &flags,
    );
    let base_index = inspect(&base_ref, &flags);
    let base_amd64 = inspect(
        &format!(
            "{}/base/busybox@{}",
            reg.host,
            base_index["manifests"][0]["digest"].as_str().unwrap()
        ),
        &flags,
    );
    assert_eq!(
        manifest["layers"][0]["digest"],
        base_amd64["layers"][0]["digest"]
    );
}

#[test]
fn a_token_the_registry_stops_accepting_is_renewed_on_its_401() {
    require_image_tools();
    let tokens = TokenServer::start(USER, PASSWORD);
    let reg = Registry::start(&tokens.registry_auth());
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_layout(tmp.path());
    let base_ref = format!("{}/base/busybox:1", reg.host);
    skopeo_push_with(&base, &base_ref, &["--dest-creds", &creds()]);
    let docker_config = tmp.path().join("docker");
    assert!(login(&reg.host, PASSWORD, &docker_config).status.success());

    // Tokens live 2 s (and say so). The mount's token, the only request with two
    // scopes, takes 3 s to come: by then the target's token has expired at the
    // registry, though xarch (which keeps a token at least 5 s) still holds it
    // for the manifests.
    tokens.set_policy(Policy {
        lifetime: 2,
        expires_in: 2,
        slow: Some((|scopes| scopes.len() > 1, std::time::Duration::from_secs(3))),
    });
    tokens.take_requests();
    let (_ptmp, project) = copy_example("hello-rust");
    let app = format!("{}/team/app:1", reg.host);
    let out = build_push(&project, &app, &docker_config, &["--base", &base_ref]);
    let pushed = report(&out);
    assert_eq!(pushed["push"]["mounted"], 1, "{pushed}");
    assert!(
        reg.log().contains("token not to be used after"),
        "the registry never saw an expired token"
    );
    let target_only: Vec<_> = tokens
        .take_requests()
        .into_iter()
        .filter(|r| r.scopes.len() == 1 && r.actions("team/app") == ["pull", "push"])
        .collect();
    assert!(target_only.len() >= 2, "never renewed: {target_only:?}");
    let index = inspect(&app, &["--tls-verify=false", "--creds", &creds()]);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}
/// A directory for `skopeo --cert-dir`: the CA as `ca.crt`.
fn cert_dir(ca: &Path, dir: &Path) -> PathBuf {
    let d = dir.join("certs.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(ca, d.join("ca.crt")).unwrap();
    d
}

#[test]
fn tls_registry_needs_its_ca_or_insecure_and_never_falls_back_to_http() {
    require_image_tools();
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki::server_pki(tmp.path());
    let reg = Registry::start_tls("", &pki.cert, &pki.key);
    let docker_config = tmp.path().join("docker");
    let (_ptmp, project) = copy_example("hello-rust");
    let tag = |t: &str| format!("{}/tls/app:{t}", reg.host);

    // An unknown CA is an error that says how to trust it; no retry over HTTP.
    let out = build_push(&project, &tag("1"), &docker_config, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("certificate") && err.contains("--ca-cert"),
        "{err}"
    );
    assert!(!err.contains("http://"), "fell back to plain HTTP: {err}");

    let ca = pki.ca.to_str().unwrap();
    let out = build_push(&project, &tag("1"), &docker_config, &["--ca-cert", ca]);
    report(&out);
    let certs = cert_dir(&pki.ca, tmp.path());
    let certs = format!("--cert-dir={}", certs.display());
    let index = inspect(&tag("1"), &[&certs]);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);

    // --insecure skips verification.
    let out = build_push(&project, &tag("2"), &docker_config, &["--insecure"]);
    report(&out);
    assert_eq!(
        inspect(&tag("2"), &[&certs])["manifests"],
        index["manifests"]
    );
}

/// Fault injection: Distribution's filesystem storage never redirects, but
/// registries on S3 or a CDN answer blob GETs with a redirect to another host,
/// which must not receive the registry credential.
#[test]
fn a_redirect_to_another_host_gets_no_credential() {
    use common::http::{Response, Server};
    use std::sync::{Arc, Mutex};
    use xarch::registry::auth::Credential;
    use xarch::registry::client::{Body, headers};
    use xarch::registry::{Client, Options, Reference};

    // (method, Authorization) of each request the storage host received.
    type Seen = Vec<(String, Option<String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let record = seen.clone();
    let storage = Server::start(move |req| {
        let auth = req.header("authorization").map(String::from);
        record.lock().unwrap().push((req.method.clone(), auth));
        Response::new(200, "blob bytes")
    });
    let elsewhere = format!("http://{}/signed/blob", storage.addr);
    let registry = Server::start(move |req| match req.header("authorization") {
        None => Response::new(401, "").header("WWW-Authenticate", r#"Basic realm="test""#),
        Some(_) if req.path() == "/v2/" => Response::new(200, "{}"),
        Some(_) => Response::new(307, "").header("Location", &elsewhere),
    });

    let client = Client::new(Options::default()).unwrap();
    client.set_credential(
        &registry.addr,
        Credential {
            username: USER.into(),
            secret: PASSWORD.into(),
        },
    );
    let r: Reference = format!("{}/team/app", registry.addr).parse().unwrap();
    let path = format!("/v2/team/app/blobs/sha256:{}", "0".repeat(64));
    let body = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let resp = client
            .send(
                &r,
                reqwest::Method::GET,
                &path,
                headers(&[]),
                Body::Empty,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    });
    assert_eq!(body, "blob bytes");
    assert_eq!(
        *seen.lock().unwrap(),
        [("GET".to_string(), None)],
        "the credential followed the redirect"
    );
}

#[test]
fn logout_forgets_docker_hub_under_the_docker_cli_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"auths":{"https://index.docker.io/v1/":{"auth":"YTpi"},"127.0.0.1:5000":{"auth":"YzpkMQ=="}}}"#,
    )
    .unwrap();
    let out = run_ok(
        xarch()
            .args(["logout", "index.docker.io"])
            .env("DOCKER_CONFIG", tmp.path()),
    );
    assert!(stderr(&out).contains("Removed"), "{}", stderr(&out));
    let left: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(
        left["auths"],
        serde_json::json!({"127.0.0.1:5000": {"auth": "YzpkMQ=="}})
    );
}
