//! A token server for a real Distribution registry configured with
//! `auth: token`: it checks one user's Basic credentials, grants that user the
//! scopes asked for, and signs RS256 JWTs (with `openssl`) carrying its
//! self-signed certificate in `x5c`; the registry trusts that certificate as its
//! `rootcertbundle`. Every request is recorded for the tests to inspect.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use super::http::{Request, Response, Server};
use super::pki;

pub const SERVICE: &str = "xarch-test-registry";
const ISSUER: &str = "xarch-test-tokens";
/// Distribution accepts a token until 60 s after its `exp` (clock-skew leeway).
const REGISTRY_LEEWAY: u64 = 60;

/// One request the token server received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The `account` query parameter.
    pub account: Option<String>,
    /// The `scope` query parameters, in order.
    pub scopes: Vec<String>,
    /// 200, or 401 for a wrong password.
    pub status: u16,
}

impl TokenRequest {
    /// The actions asked for on one repository, sorted (`["pull", "push"]`).
    pub fn actions(&self, repository: &str) -> Vec<String> {
        let mut actions: Vec<String> = self
            .scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(|s| s.strip_prefix("repository:"))
            .filter_map(|s| s.rsplit_once(':'))
            .filter(|(name, _)| *name == repository)
            .flat_map(|(_, a)| a.split(','))
            .map(String::from)
            .collect();
        actions.sort();
        actions.dedup();
        actions
    }
}

/// Which token requests to slow down, by their scopes.
pub type ScopeFilter = fn(&[String]) -> bool;

/// How tokens are issued.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Seconds the registry accepts a token for.
    pub lifetime: u64,
    /// The `expires_in` reported to the client.
    pub expires_in: u64,
    /// Requests whose scopes match are answered after a delay.
    pub slow: Option<(ScopeFilter, Duration)>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            lifetime: 300,
            expires_in: 300,
            slow: None,
        }
    }
}

struct State {
    requests: Vec<TokenRequest>,
    policy: Policy,
}

pub struct TokenServer {
    pub realm: String,
    cert: PathBuf,
    state: Arc<Mutex<State>>,
    _server: Server,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    /// A token server that knows one user.
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = pki::self_signed(dir.path(), "token-signer");
        let x5c = pki::pem_body(&cert);
        let state = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            policy: Policy::default(),
        }));
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let user = user.to_string();
        let shared = state.clone();
        let serial = AtomicU64::new(0);
        let server = Server::start(move |req: &Request| {
            let query = req.query();
            let scopes: Vec<String> = param_all(&query, "scope");
            let account = param_all(&query, "account").pop();
            let auth = req.header("authorization");
            let policy = shared.lock().unwrap().policy.clone();
            let record = |status| {
                shared.lock().unwrap().requests.push(TokenRequest {
                    account: account.clone(),
                    scopes: scopes.clone(),
                    status,
                })
            };
            let subject = match auth {
                None => None, // anonymous: a token that grants nothing
                Some(a) if a == expected => Some(user.as_str()),
                Some(_) => {
                    record(401);
                    return Response::new(401, r#"{"details":"incorrect username or password"}"#)
                        .header("Content-Type", "application/json");
                }
            };
            if let Some((matches, delay)) = policy.slow
                && matches(&scopes)
            {
                std::thread::sleep(delay);
            }
            let access = match subject {
                Some(_) => grants(&scopes),
                None => Vec::new(),
            };
            let jti = serial.fetch_add(1, Ordering::SeqCst);
            let jwt = sign(&key, &x5c, subject.unwrap_or(""), access, &policy, jti);
            record(200);
            let body = json!({"token": jwt, "expires_in": policy.expires_in});
            Response::new(200, body.to_string()).header("Content-Type", "application/json")
        });
        TokenServer {
            realm: format!("http://{}/token", server.addr),
            cert,
            state,
            _server: server,
            _dir: dir,
        }
    }

    /// The YAML block that points a registry at this server.
    pub fn registry_auth(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm,
            self.cert.display()
        )
    }

    pub fn set_policy(&self, policy: Policy) {
        self.state.lock().unwrap().policy = policy;
    }

    /// The requests received since the last call (and forgets them).
    pub fn take_requests(&self) -> Vec<TokenRequest> {
        std::mem::take(&mut self.state.lock().unwrap().requests)
    }
}

fn param_all(query: &[(String, String)], key: &str) -> Vec<String> {
    query
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// `repository:NAME:ACTIONS` scopes → the token's `access` claim (pull and push only).
fn grants(scopes: &[String]) -> Vec<serde_json::Value> {
    scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter_map(|s| s.strip_prefix("repository:"))
        .filter_map(|s| s.rsplit_once(':'))
        .map(|(name, actions)| {
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| matches!(*a, "pull" | "push"))
                .collect();
            json!({"type": "repository", "name": name, "actions": actions})
        })
        .collect()
}

fn sign(
    key: &std::path::Path,
    x5c: &str,
    subject: &str,
    access: Vec<serde_json::Value>,
    policy: &Policy,
    jti: u64,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        // The registry adds its leeway to `exp`; take it off so that the token
        // really stops working `lifetime` seconds from now.
        "exp": now + policy.lifetime - REGISTRY_LEEWAY,
        "nbf": now - 1,
        "iat": now,
        "jti": format!("xarch-test-{jti}"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = pki::rs256(key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
