//! `Client`: the OCI distribution API over HTTP — transport choice (HTTPS, or
//! plain HTTP for loopback hosts and `--insecure`), auth (anonymous, Basic,
//! Bearer tokens cached by scope), redirects, retries with backoff, and a bound
//! on every response's size and time.
//!
//! A credential goes only to its registry's own origin (scheme, host and port)
//! and to the token realm that registry announces. Any other host a redirect or
//! an upload `Location` leads to is spoken to anonymously, its own challenges
//! included.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::{self, Challenge, Credential};
pub use super::error::Error;
use super::error::{is_transient, parse_body, redact};
use super::reference::Reference;

/// Default of `--timeout`: seconds a request may take, besides its blob bytes.
pub const DEFAULT_TIMEOUT: u64 = 300;
/// Default of `--stall-timeout`: seconds without a byte moving either way.
pub const DEFAULT_STALL_TIMEOUT: u64 = 60;
/// A request moving a blob gets one more second per this many bytes, so a big
/// layer on a slow link still moves while a drip-fed body is cut off.
pub const MIN_RATE: u64 = 64 << 10;
/// Token responses larger than this are refused.
pub const MAX_TOKEN_RESPONSE: usize = 1 << 20;
/// Of an error body, only this much is read (and the message says it was cut).
pub const MAX_ERROR_BODY: usize = 64 << 10;
const MAX_REDIRECTS: u32 = 10;
const MAX_TRIES: u32 = 5;
/// How long the HTTPS/HTTP probe of a loopback or `--insecure` host may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Token lifetimes, whatever `expires_in` says (renewed 5 s before the end).
const TOKEN_TTL: (f64, f64) = (10.0, 3600.0);

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct Options {
    /// Accept any TLS certificate, and allow plain HTTP, for every registry.
    pub insecure: bool,
    /// Extra CA certificate (PEM) to trust.
    pub ca_cert: Option<PathBuf>,
    /// Uploads larger than this go in chunks of this size (None: one PUT).
    pub chunk_size: Option<u64>,
    /// How long one request may take, plus a second per `MIN_RATE` bytes of
    /// blob it moves.
    pub timeout: Duration,
    /// A request fails when no byte has moved for this long.
    pub stall_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            insecure: false,
            ca_cert: None,
            chunk_size: None,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT),
            stall_timeout: Duration::from_secs(DEFAULT_STALL_TIMEOUT),
        }
    }
}

/// A request body that can be made again for a retry.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// `len` bytes of a file from `offset`; `progress` (a bar counting the
    /// whole blob) is set to `offset` and advanced as the bytes are read.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        progress: Option<indicatif::ProgressBar>,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}

/// One API request, with the blob bytes it moves either way (for its deadline).
pub struct Call<'a> {
    pub method: Method,
    /// A path on the registry, or an absolute URL (an upload `Location`).
    pub target: &'a str,
    pub headers: HeaderMap,
    pub body: Body,
    /// Token scopes the operation needs (`repository:team/app:pull,push`).
    pub scopes: &'a [String],
    pub size: u64,
}

pub struct Client {
    http: reqwest::Client,
    opts: Options,
    state: Mutex<State>,
    /// One scheme probe at a time: requests that start together share its answer.
    probing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// API host → the scheme it answered on.
    schemes: HashMap<String, &'static str>,
    /// Registry → its configured credential, looked up once.
    credentials: HashMap<String, Option<Credential>>,
    learned: HashMap<Party, Learned>,
    /// Held while a token for (party, scopes) is fetched, so that requests
    /// that met the same challenge share one token, while requests needing
    /// other scopes go on.
    token_locks: HashMap<(Party, String), Arc<tokio::sync::Mutex<()>>>,
}

/// Whom a request goes to, and as whom: an origin (`scheme://host:port`) and
/// the registry whose credential may go there. `registry` is `None` for every
/// origin but the registry's own: those are spoken to anonymously.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Party {
    origin: String,
    registry: Option<String>,
}

impl Party {
    fn scheme(&self) -> &str {
        self.origin.split("://").next().unwrap_or("")
    }

    /// The registry, else the origin: who a message should name.
    fn name(&self) -> String {
        self.registry.clone().unwrap_or_else(|| self.origin.clone())
    }
}

/// What challenges taught about a party.
#[derive(Default)]
struct Learned {
    basic: bool,
    tokens: HashMap<String, (String, Instant)>,
}

impl Client {
    pub fn new(opts: Options) -> anyhow::Result<Client> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("xarch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            // `exchange` follows redirects itself: it decides at each hop what
            // credential, if any, may go there.
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(opts.insecure);
        if let Some(ca) = &opts.ca_cert {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read --ca-cert {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} holds no PEM certificate", ca.display()))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        Ok(Client {
            http: b.build()?,
            opts,
            state: Mutex::new(State::default()),
            probing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("client state lock"))
    }

    /// HTTPS. Loopback hosts, and every host under `--insecure`, may use plain
    /// HTTP instead (as Docker treats insecure registries), but only when HTTPS
    /// fails and the host answers `/v2/` over plain HTTP as a registry does. A
    /// certificate that does not verify is never a reason to fall back: it is
    /// what an attacker in the middle would present.
    async fn scheme(&self, host: &str) -> Result<&'static str, Error> {
        let cached = |c: &Client| c.with_state(|s| s.schemes.get(host).copied());
        if let Some(s) = cached(self) {
            return Ok(s);
        }
        if !(self.opts.insecure || is_loopback(host)) {
            return Ok("https");
        }
        let _one = self.probing.lock().await;
        if let Some(s) = cached(self) {
            return Ok(s);
        }
        let scheme = match self.probe("https", host, 1).await {
            Ok(_) => "https",
            Err(e @ Error::Certificate { .. }) => return Err(e),
            // The HTTP probe is retried like any request: a connection dropped
            // once must not send the whole run to HTTPS.
            Err(_) => match self.probe("http", host, MAX_TRIES).await {
                Ok(StatusCode::OK | StatusCode::UNAUTHORIZED) => "http",
                // Neither answers as a registry: let the request itself try
                // HTTPS, retry, and report why it fails; decide next time.
                _ => return Ok("https"),
            },
        };
        self.with_state(|s| s.schemes.insert(host.to_string(), scheme));
        Ok(scheme)
    }

    /// `GET /v2/`, tried up to `tries` times while it fails transiently; the
    /// status of the last answer.
    async fn probe(&self, scheme: &str, host: &str, tries: u32) -> Result<StatusCode, Error> {
        let url = parse_url(&format!("{scheme}://{host}/v2/"))?;
        let mut failures = 0;
        loop {
            let req = self.http.get(url.clone()).timeout(PROBE_TIMEOUT);
            let wait = match req.send().await {
                Ok(resp) if !is_transient(resp.status()) || failures + 1 >= tries => {
                    return Ok(resp.status());
                }
                Ok(resp) => retry_after(resp.headers()),
                Err(e) => {
                    let e = transport_error(&Method::GET, &url, e, PROBE_TIMEOUT);
                    if !e.is_retryable() || failures + 1 >= tries {
                        return Err(e);
                    }
                    None
                }
            };
            failures += 1;
            tokio::time::sleep(backoff(failures, wait)).await;
        }
    }

    async fn credential(&self, registry: &str) -> Result<Option<Credential>, Error> {
        if let Some(c) = self.with_state(|s| s.credentials.get(registry).cloned()) {
            return Ok(c);
        }
        let c = auth::lookup(registry).map_err(|e| Error::Credentials {
            why: format!("{e:#}"),
        })?;
        self.with_state(|s| s.credentials.insert(registry.to_string(), c.clone()));
        Ok(c)
    }

    /// Uses `cred` for `registry` instead of the configured one (for `login`).
    pub fn set_credential(&self, registry: &str, cred: Credential) {
        self.with_state(|s| s.credentials.insert(registry.to_string(), Some(cred)));
    }

    /// Checks that the registry accepts the current credentials (`GET /v2/`).
    pub async fn ping(&self, registry: &str) -> Result<(), Error> {
        let r = Reference {
            registry: registry.to_string(),
            repository: "xarch/ping".into(),
            tag: None,
            digest: None,
        };
        let resp = self
            .send(&r, Method::GET, "/v2/", HeaderMap::new(), Body::Empty, &[])
            .await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&Method::GET, resp).await);
        }
        Ok(())
    }

    /// Sends a request to `r`'s registry at `path_or_url` (a path, or an
    /// absolute URL), following redirects, answering auth challenges and
    /// retrying transient failures. `scopes` are the token scopes the operation
    /// needs (e.g. `repository:team/app:pull,push`).
    pub async fn send(
        &self,
        r: &Reference,
        method: Method,
        path_or_url: &str,
        headers: HeaderMap,
        body: Body,
        scopes: &[String],
    ) -> Result<Response, Error> {
        let size = body.len();
        let call = Call {
            method,
            target: path_or_url,
            headers,
            body,
            scopes,
            size,
        };
        self.exchange(r, call).await
    }

    /// `send`, for a call that says how many blob bytes it moves.
    pub async fn exchange(&self, r: &Reference, call: Call<'_>) -> Result<Response, Error> {
        let host = r.api_host();
        let scheme = self.scheme(host).await?;
        let home = origin(&parse_url(&format!("{scheme}://{host}/"))?);
        let start = if call.target.starts_with("http://") || call.target.starts_with("https://") {
            parse_url(call.target)?
        } else {
            parse_url(&format!("{scheme}://{host}{}", call.target))?
        };
        let (mut url, mut method, mut body) =
            (start.clone(), call.method.clone(), call.body.clone());
        let (mut failures, mut hops) = (0, 0);
        // Parties whose challenge was answered: a second 401 from one is final.
        let mut answered = HashSet::new();
        loop {
            let here = origin(&url);
            let party = Party {
                registry: (here == home).then(|| r.registry.clone()),
                origin: here,
            };
            let sent = self.auth_header(&party, call.scopes).await?;
            let attempt = self
                .attempt(
                    &method,
                    &url,
                    &call.headers,
                    &body,
                    sent.as_deref(),
                    call.size,
                )
                .await;
            let retry_wait = match attempt {
                Err(e) if e.is_retryable() && failures + 1 < MAX_TRIES => None,
                Err(e) => return Err(e),
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                        hops += 1;
                        url = next_hop(&method, &resp, hops)?;
                        if status == StatusCode::SEE_OTHER {
                            (method, body) = (Method::GET, Body::Empty);
                        }
                        continue;
                    }
                    if status == StatusCode::UNAUTHORIZED {
                        if answered.insert(party.clone())
                            && self
                                .answer(&resp, &party, call.scopes, sent.as_deref())
                                .await?
                        {
                            continue;
                        }
                        return Err(self.unauthorized(&method, resp, &party, r).await);
                    }
                    if !(is_transient(status) && failures + 1 < MAX_TRIES) {
                        return Ok(resp);
                    }
                    retry_after(resp.headers())
                }
            };
            // A retry starts over at the registry: a redirect's signed URL
            // may have expired.
            failures += 1;
            tokio::time::sleep(backoff(failures, retry_wait)).await;
            (url, method, body) = (start.clone(), call.method.clone(), call.body.clone());
        }
    }

    /// One HTTP request, bounded by the deadline for `size` bytes and by the
    /// stall timeout until its response's headers arrive.
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: &Body,
        auth: Option<&str>,
        size: u64,
    ) -> Result<Response, Error> {
        let activity = Activity::new();
        let deadline = self.deadline(size);
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .headers(headers.clone())
            .timeout(deadline);
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        let req = attach(req, body, &activity).await?;
        match activity.watch(req.send(), self.opts.stall_timeout).await {
            Some(Ok(resp)) => Ok(resp),
            Some(Err(e)) => Err(transport_error(method, url, e, self.opts.timeout)),
            None => Err(Error::Stalled {
                method: method.clone(),
                url: redact(url.as_str()),
                after: self.opts.stall_timeout,
            }),
        }
    }

    /// `--timeout`, plus a second per `MIN_RATE` bytes moved.
    fn deadline(&self, size: u64) -> Duration {
        self.opts.timeout + Duration::from_secs(size / MIN_RATE)
    }

    /// The Authorization header to send now, from what earlier challenges taught.
    async fn auth_header(&self, party: &Party, scopes: &[String]) -> Result<Option<String>, Error> {
        if let Some(bearer) = self.cached_token(party, scopes) {
            return Ok(Some(bearer));
        }
        let basic = self.with_state(|s| s.learned.get(party).is_some_and(|l| l.basic));
        match &party.registry {
            Some(registry) if basic => {
                Ok(self.credential(registry).await?.map(|c| c.basic_header()))
            }
            _ => Ok(None),
        }
    }

    /// `Bearer …` for an unexpired token cached for exactly these scopes.
    fn cached_token(&self, party: &Party, scopes: &[String]) -> Option<String> {
        self.with_state(|s| {
            let (token, expiry) = s.learned.get(party)?.tokens.get(&scope_key(scopes))?;
            (Instant::now() < *expiry).then(|| format!("Bearer {token}"))
        })
    }

    fn token_lock(&self, party: &Party, scopes: &[String]) -> Arc<tokio::sync::Mutex<()>> {
        let key = (party.clone(), scope_key(scopes));
        self.with_state(|s| s.token_locks.entry(key).or_default().clone())
    }

    /// Learns from a 401 to a request that carried `sent`; true when a retry
    /// may now succeed. Only the registry's own origin is answered with its
    /// credential; any other is answered anonymously, or not at all.
    async fn answer(
        &self,
        resp: &Response,
        party: &Party,
        scopes: &[String],
        sent: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(ch) = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge)
        else {
            return Ok(false);
        };
        match ch.scheme.as_str() {
            "basic" => {
                let Some(registry) = &party.registry else {
                    return Ok(false);
                };
                // The credential went already, or there is none to send.
                if sent.is_some_and(|s| s.starts_with("Basic "))
                    || self.credential(registry).await?.is_none()
                {
                    return Ok(false);
                }
                self.with_state(|s| s.learned.entry(party.clone()).or_default().basic = true);
                Ok(true)
            }
            "bearer" => {
                let lock = self.token_lock(party, scopes);
                let _one_at_a_time = lock.lock().await;
                // Another request may have fetched a token meanwhile. The one this
                // request carried, though, was just refused (expired or revoked).
                if let Some(bearer) = self.cached_token(party, scopes)
                    && sent != Some(bearer.as_str())
                {
                    return Ok(true);
                }
                let (token, ttl) = self.fetch_token(&ch, party, scopes).await?;
                self.with_state(|s| {
                    s.learned
                        .entry(party.clone())
                        .or_default()
                        .tokens
                        .insert(scope_key(scopes), (token, Instant::now() + ttl));
                });
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The error for a 401 xarch could not answer.
    async fn unauthorized(
        &self,
        method: &Method,
        resp: Response,
        party: &Party,
        r: &Reference,
    ) -> Error {
        let detail = Box::new(self.status_error(method, resp).await);
        let Some(registry) = party.registry.clone() else {
            return Error::UnauthorizedElsewhere {
                registry: r.registry.clone(),
                detail,
            };
        };
        match self.credential(&registry).await {
            Ok(Some(_)) => Error::CredentialsRejected { registry, detail },
            _ => Error::LoginRequired { registry, detail },
        }
    }

    /// A token from the challenge's realm: with the registry's credential when
    /// the registry itself challenged, anonymously otherwise. A plain-HTTP
    /// realm is refused unless the challenger speaks plain HTTP itself.
    async fn fetch_token(
        &self,
        ch: &Challenge,
        party: &Party,
        scopes: &[String],
    ) -> Result<(String, Duration), Error> {
        let realm = ch.params.get("realm").map(String::as_str).unwrap_or("");
        let bad = |why: &str| Error::Token {
            realm: redact(realm),
            why: why.to_string(),
        };
        let mut url =
            Url::parse(realm).map_err(|_| bad("the bearer challenge's realm is not a URL"))?;
        match (url.scheme(), party.scheme()) {
            ("https", _) | ("http", "http") => {}
            ("http", _) => {
                return Err(Error::InsecureRealm {
                    host: party.name(),
                    realm: redact(realm),
                });
            }
            _ => return Err(bad("the realm is neither HTTPS nor HTTP")),
        }
        let cred = match &party.registry {
            Some(registry) => self.credential(registry).await?,
            None => None,
        };
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = ch.params.get("service") {
                q.append_pair("service", s);
            }
            let challenged = ch
                .params
                .get("scope")
                .into_iter()
                .flat_map(|s| s.split(' '));
            for s in merge_scopes(scopes.iter().map(String::as_str).chain(challenged)) {
                q.append_pair("scope", &s);
            }
            if let Some(c) = &cred {
                q.append_pair("account", &c.username);
            }
        }
        let mut resp = self.token_request(url, cred.as_ref()).await?;
        let status = resp.status();
        if !status.is_success() {
            let (body, cut) = self.read_capped(&mut resp, MAX_ERROR_BODY).await;
            let (_, message) = parse_body(&body, cut);
            let hint = match &party.registry {
                Some(reg)
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
                {
                    if cred.is_some() {
                        format!(" (check the credentials for {reg}: `xarch login {reg}`)")
                    } else {
                        format!(" (run `xarch login {reg}`)")
                    }
                }
                _ => String::new(),
            };
            return Err(Error::TokenRefused {
                registry: party.name(),
                status,
                message,
                hint,
            });
        }
        let body = self
            .body(&Method::GET, resp, MAX_TOKEN_RESPONSE, "the token response")
            .await?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| bad("the response is not JSON"))?;
        let token = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("the response has no token"))?;
        if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Err(bad("the token cannot be sent in a header"));
        }
        Ok((token.to_string(), token_ttl(&v["expires_in"])))
    }

    /// `GET` a token, retried like any request. Redirects are followed, but the
    /// credential goes only to the realm's own origin.
    async fn token_request(
        &self,
        start: Url,
        cred: Option<&Credential>,
    ) -> Result<Response, Error> {
        let realm = origin(&start);
        let (mut url, mut failures, mut hops) = (start.clone(), 0, 0);
        loop {
            let auth = cred
                .filter(|_| origin(&url) == realm)
                .map(Credential::basic_header);
            let attempt = self
                .attempt(
                    &Method::GET,
                    &url,
                    &HeaderMap::new(),
                    &Body::Empty,
                    auth.as_deref(),
                    0,
                )
                .await;
            let wait = match attempt {
                Err(e) if e.is_retryable() && failures + 1 < MAX_TRIES => None,
                Err(e) => return Err(e),
                Ok(resp) if resp.status().is_redirection() => {
                    hops += 1;
                    url = next_hop(&Method::GET, &resp, hops)?;
                    continue;
                }
                Ok(resp) if resp.status().is_server_error() && failures + 1 < MAX_TRIES => {
                    retry_after(resp.headers())
                }
                Ok(resp) => return Ok(resp),
            };
            failures += 1;
            tokio::time::sleep(backoff(failures, wait)).await;
            url = start.clone();
        }
    }

    /// The next chunk of a response body, within the stall timeout (and the
    /// request's deadline, which reqwest applies to the body too).
    pub async fn chunk(
        &self,
        method: &Method,
        resp: &mut Response,
    ) -> Result<Option<Bytes>, Error> {
        match tokio::time::timeout(self.opts.stall_timeout, resp.chunk()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(transport_error(method, resp.url(), e, self.opts.timeout)),
            Err(_) => Err(Error::Stalled {
                method: method.clone(),
                url: redact(resp.url().as_str()),
                after: self.opts.stall_timeout,
            }),
        }
    }

    /// A whole body of at most `limit` bytes; `what` names it in errors.
    pub async fn body(
        &self,
        method: &Method,
        mut resp: Response,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, Error> {
        let url = redact(resp.url().as_str());
        let too_large = |what: String| Error::TooLarge {
            method: method.clone(),
            url: url.clone(),
            what,
            limit: in_units(limit),
        };
        if let Some(n) = resp.content_length().filter(|n| *n > limit as u64) {
            return Err(too_large(format!("{what} ({n} bytes)")));
        }
        let mut out = Vec::new();
        while let Some(c) = self.chunk(method, &mut resp).await? {
            if out.len() + c.len() > limit {
                return Err(too_large(format!("{what} (more was sent)")));
            }
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    /// Up to `limit` bytes of a body, and whether anything was left out (more
    /// bytes, or a body that broke off or stalled).
    async fn read_capped(&self, resp: &mut Response, limit: usize) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        loop {
            match self.chunk(&Method::GET, resp).await {
                Ok(Some(c)) if out.len() + c.len() > limit => {
                    out.extend_from_slice(&c[..limit - out.len()]);
                    return (out, true);
                }
                Ok(Some(c)) => out.extend_from_slice(&c),
                Ok(None) => return (out, false),
                Err(_) => return (out, true),
            }
        }
    }

    /// The registry's own error for a failed response: its status, OCI error
    /// codes and message (from the first 64 KiB of the body).
    pub async fn status_error(&self, method: &Method, mut resp: Response) -> Error {
        let url = redact(resp.url().as_str());
        let status = resp.status();
        let (body, cut) = self.read_capped(&mut resp, MAX_ERROR_BODY).await;
        let (codes, message) = parse_body(&body, cut);
        Error::Status {
            method: method.clone(),
            url,
            status,
            codes,
            message,
        }
    }
}

/// When a request's bytes last moved, for the stall timeout.
#[derive(Clone)]
struct Activity {
    start: tokio::time::Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: tokio::time::Instant::now(),
            last_ms: Arc::default(),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// `f`'s output, or None once nothing has moved for `limit`.
    async fn watch<F: Future>(&self, f: F, limit: Duration) -> Option<F::Output> {
        tokio::pin!(f);
        loop {
            let wait = limit.saturating_sub(self.idle());
            if wait.is_zero() {
                return None;
            }
            tokio::select! {
                out = &mut f => return Some(out),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

async fn attach(
    req: reqwest::RequestBuilder,
    body: &Body,
    activity: &Activity,
) -> Result<reqwest::RequestBuilder, Error> {
    Ok(match body {
        Body::Empty => req,
        Body::Bytes(b) => req.header(CONTENT_LENGTH, b.len()).body(b.clone()),
        Body::File {
            path,
            offset,
            len,
            progress,
        } => {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let local = |source| Error::Local {
                path: path.clone(),
                source,
            };
            let mut f = tokio::fs::File::open(path).await.map_err(local)?;
            f.seek(std::io::SeekFrom::Start(*offset))
                .await
                .map_err(local)?;
            let part = f.take(*len);
            const BUF: usize = 256 * 1024;
            let moved = activity.clone();
            let stream = match progress {
                Some(bar) => {
                    // A retry starts the bar over from this part's offset.
                    bar.set_position(*offset);
                    tokio_util::io::ReaderStream::with_capacity(bar.wrap_async_read(part), BUF)
                        .inspect(move |_| moved.touch())
                        .boxed()
                }
                None => tokio_util::io::ReaderStream::with_capacity(part, BUF)
                    .inspect(move |_| moved.touch())
                    .boxed(),
            };
            req.header(CONTENT_LENGTH, *len)
                .body(reqwest::Body::wrap_stream(stream))
        }
    })
}

/// The URL a redirect leads to (at most `MAX_REDIRECTS` hops).
fn next_hop(method: &Method, resp: &Response, hops: u32) -> Result<Url, Error> {
    let fail = |why: String| Error::Protocol {
        method: method.clone(),
        url: redact(resp.url().as_str()),
        why,
    };
    if hops > MAX_REDIRECTS {
        return Err(fail(format!("more than {MAX_REDIRECTS} redirects")));
    }
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| fail(format!("{} without a Location", resp.status())))?;
    let next = resp
        .url()
        .join(loc)
        .map_err(|_| fail("a redirect to an invalid URL".into()))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(fail(format!("a redirect to a {} URL", next.scheme())));
    }
    Ok(next)
}

/// `4 MiB`, `64 KiB`, or `1000 bytes`: a limit as it is written down.
fn in_units(n: usize) -> String {
    match n {
        n if n > 0 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n > 0 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// `scheme://host:port`, the port always written: where a credential may go.
fn origin(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

fn parse_url(url: &str) -> Result<Url, Error> {
    Url::parse(url).map_err(|e| Error::Protocol {
        method: Method::GET,
        url: redact(url),
        why: format!("not a valid URL: {e}"),
    })
}

/// A transport failure as a typed error.
fn transport_error(method: &Method, url: &Url, e: reqwest::Error, timeout: Duration) -> Error {
    let url_text = redact(url.as_str());
    if is_certificate_error(&e) {
        return Error::Certificate {
            host: url.authority().to_string(),
            why: without_url(e),
        };
    }
    if e.is_timeout() && !e.is_connect() {
        return Error::Deadline {
            method: method.clone(),
            url: url_text,
            after: timeout,
        };
    }
    let retryable = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
    Error::Transport {
        method: method.clone(),
        url: url_text,
        why: without_url(e),
        retryable,
    }
}

/// A TLS certificate that does not verify (unknown issuer, wrong name,
/// expired…): rustls's error, somewhere in reqwest's error chain. An
/// `io::Error` (hyper-rustls nests two) hides the error it wraps from
/// `source()`: look inside each.
fn is_certificate_error(e: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if matches!(
            err.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(_))
        ) {
            return true;
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|i| i as _),
            None => err.source(),
        };
    }
    false
}

/// reqwest's error text, without the URL it sometimes embeds.
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// `expires_in` clamped to `TOKEN_TTL` (60 s when absent or not a number),
/// less 5 s: renew a little early rather than fail mid-push.
fn token_ttl(expires_in: &serde_json::Value) -> Duration {
    let secs = expires_in
        .as_f64()
        .filter(|s| s.is_finite())
        .unwrap_or(60.0)
        .clamp(TOKEN_TTL.0, TOKEN_TTL.1);
    Duration::from_secs(secs as u64 - 5)
}

/// Scopes with the actions on each resource merged, in first-seen order: the
/// registry's challenge may name `repository:a:push,pull` for our
/// `repository:a:pull,push`, and the token server should see it once.
fn merge_scopes<'a>(scopes: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut merged: Vec<(&str, Vec<&str>)> = Vec::new();
    for scope in scopes {
        let Some((resource, actions)) = scope.rsplit_once(':') else {
            continue;
        };
        let i = match merged.iter().position(|(r, _)| *r == resource) {
            Some(i) => i,
            None => {
                merged.push((resource, Vec::new()));
                merged.len() - 1
            }
        };
        for a in actions.split(',').filter(|a| !a.is_empty()) {
            if !merged[i].1.contains(&a) {
                merged[i].1.push(a);
            }
        }
    }
    merged
        .into_iter()
        .map(|(r, a)| format!("{r}:{}", a.join(",")))
        .collect()
}

fn scope_key(scopes: &[String]) -> String {
    let mut s = scopes.to_vec();
    s.sort();
    s.join(" ")
}

pub fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .filter(|(h, p)| {
            !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':')
        })
        .map(|(h, _)| h)
        .unwrap_or(host);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn backoff(tries: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or_else(|| Duration::from_millis(200 * 2u64.pow(tries.min(6))))
        .min(Duration::from_secs(30))
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Resolves an upload `Location` header (of the answer to `method`) against
/// the request URL.
pub fn location(method: &Method, resp: &Response) -> Result<String, Error> {
    let fail = |why: &str| Error::Protocol {
        method: method.clone(),
        url: redact(resp.url().as_str()),
        why: why.to_string(),
    };
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| fail("the registry answered without a Location header"))?;
    let url = resp
        .url()
        .join(loc)
        .map_err(|_| fail("the upload Location is not a URL"))?;
    Ok(url.to_string())
}

/// Helper for the common headers.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        let name = match *k {
            "accept" => ACCEPT,
            "content-type" => CONTENT_TYPE,
            other => {
                reqwest::header::HeaderName::from_bytes(other.as_bytes()).expect("valid header")
            }
        };
        h.append(name, v.parse().expect("valid header value"));
    }
    h
}

pub fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
    progress: Option<&indicatif::ProgressBar>,
) -> Body {
    Body::File {
        path: path.to_path_buf(),
        offset,
        len,
        progress: progress.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["registry.example.com", "10.0.0.1:5000", "example.com:443"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn challenge_scopes_merge_into_ours() {
        let merged = merge_scopes(
            [
                "repository:team/app:pull,push",
                "repository:base/x:pull",
                "repository:team/app:push,pull",
                "repository:base/x:pull",
            ]
            .into_iter(),
        );
        assert_eq!(
            merged,
            ["repository:team/app:pull,push", "repository:base/x:pull"]
        );
    }

    #[test]
    fn origins_tell_scheme_and_port_apart() {
        let o = |u: &str| origin(&Url::parse(u).unwrap());
        assert_eq!(o("https://r.example/v2/"), o("https://r.example:443/x"));
        assert_ne!(o("https://r.example/v2/"), o("http://r.example/v2/"));
        assert_ne!(o("http://r.example/v2/"), o("http://r.example:8080/v2/"));
        assert_ne!(o("https://r.example/"), o("https://cdn.r.example/"));
        assert_eq!(o("http://[::1]:5000/v2/"), "http://[::1]:5000");
    }

    #[test]
    fn token_lifetimes_are_clamped() {
        use serde_json::json;
        let ttl = |v| token_ttl(&v).as_secs();
        assert_eq!(ttl(json!(null)), 55);
        assert_eq!(ttl(json!(2)), 5);
        assert_eq!(ttl(json!(-40)), 5);
        assert_eq!(ttl(json!(300.5)), 295);
        assert_eq!(ttl(json!(1e300)), 3595);
        assert_eq!(ttl(json!(u64::MAX)), 3595);
        assert_eq!(ttl(json!("300")), 55);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_is_cut_off_and_activity_keeps_a_request_alive() {
        let a = Activity::new();
        let never = std::future::pending::<()>();
        assert!(a.watch(never, Duration::from_secs(5)).await.is_none());

        // A body that moves every 3 s outlives a 5 s stall limit.
        let b = Activity::new();
        let moving = b.clone();
        let work = async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                moving.touch();
            }
            "done"
        };
        assert_eq!(b.watch(work, Duration::from_secs(5)).await, Some("done"));
    }
}
