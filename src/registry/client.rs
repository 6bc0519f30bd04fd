//! `Client`: the OCI distribution API over HTTP — transport choice (HTTPS, or
//! plain HTTP for loopback hosts and `--insecure`), auth (anonymous, Basic,
//! Bearer tokens cached by scope), retries with backoff, and registry errors
//! turned into messages that never carry a credential.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};

use super::auth::{self, Challenge, Credential};
use super::reference::Reference;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Accept any TLS certificate, and allow plain HTTP, for every registry.
    pub insecure: bool,
    /// Extra CA certificate (PEM) to trust.
    pub ca_cert: Option<PathBuf>,
    /// Uploads larger than this go in chunks of this size (None: one PUT).
    pub chunk_size: Option<u64>,
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

pub struct Client {
    http: reqwest::Client,
    opts: Options,
    hosts: Mutex<HashMap<String, Host>>,
    /// Held while a token is fetched, so that concurrent requests that met the
    /// same challenge share one token rather than each fetching their own.
    token_fetch: tokio::sync::Mutex<()>,
}

#[derive(Default, Clone)]
struct Host {
    scheme: Option<&'static str>,
    credential: Option<Option<Credential>>,
    basic: bool,
    tokens: HashMap<String, (String, Instant)>,
}

const MAX_TRIES: u32 = 5;
/// How long the HTTPS/HTTP probe of a loopback or `--insecure` host may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

impl Client {
    pub fn new(opts: Options) -> Result<Client> {
        // reqwest's default redirect policy (at most 10) drops the Authorization
        // header when a redirect leads to another host or port.
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("xarch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
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
            hosts: Mutex::new(HashMap::new()),
            token_fetch: tokio::sync::Mutex::new(()),
        })
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    fn host(&self, host: &str) -> Host {
        self.hosts
            .lock()
            .expect("lock")
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    fn update(&self, host: &str, f: impl FnOnce(&mut Host)) {
        f(self
            .hosts
            .lock()
            .expect("lock")
            .entry(host.to_string())
            .or_default());
    }

    /// HTTPS. Loopback hosts, and every host under `--insecure`, may use plain
    /// HTTP instead (as Docker treats insecure registries), but only when HTTPS
    /// fails and the host answers `/v2/` over plain HTTP as a registry does. A
    /// certificate that does not verify is never a reason to fall back: it is
    /// what an attacker in the middle would present.
    async fn scheme(&self, host: &str) -> Result<&'static str> {
        if let Some(s) = self.host(host).scheme {
            return Ok(s);
        }
        if !(self.opts.insecure || is_loopback(host)) {
            return Ok("https");
        }
        let https = self.probe("https", host).await;
        let scheme = match https {
            Ok(_) => "https",
            Err(e) if is_certificate_error(&e) => return Err(certificate_error(host, &e)),
            // Any HTTP answer over plain HTTP (even a 503 from a busy proxy)
            // proves the server speaks HTTP: the status is the request's business.
            Err(_) => match self.probe("http", host).await {
                Ok(_) => "http",
                // Neither answers: let the request itself try HTTPS, retry, and
                // report why it fails; decide next time.
                Err(_) => return Ok("https"),
            },
        };
        self.update(host, |h| h.scheme = Some(scheme));
        Ok(scheme)
    }

    /// `GET /v2/` once: the status, or the transport error as text.
    async fn probe(&self, scheme: &str, host: &str) -> Result<StatusCode, String> {
        self.http
            .get(format!("{scheme}://{host}/v2/"))
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map(|r| r.status())
            .map_err(without_url)
    }

    async fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(c) = self.host(registry).credential {
            return Ok(c);
        }
        let c = auth::lookup(registry)?;
        self.update(registry, |h| h.credential = Some(c.clone()));
        Ok(c)
    }

    /// Uses `cred` for `registry` instead of the configured one (for `login`).
    pub fn set_credential(&self, registry: &str, cred: Credential) {
        self.update(registry, |h| h.credential = Some(Some(cred)));
    }

    /// Checks that the registry accepts the current credentials (`GET /v2/`).
    pub async fn ping(&self, registry: &str) -> Result<()> {
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
            return Err(registry_error(&Method::GET, "/v2/", resp).await);
        }
        Ok(())
    }

    /// Sends a request to `r`'s registry at `path` (or an absolute URL), handling
    /// auth challenges and retrying transient failures. `scopes` are the token
    /// scopes this operation needs (e.g. `repository:team/app:pull,push`).
    pub async fn send(
        &self,
        r: &Reference,
        method: Method,
        path_or_url: &str,
        headers: HeaderMap,
        body: Body,
        scopes: &[String],
    ) -> Result<reqwest::Response> {
        let host = r.api_host().to_string();
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}://{host}{path_or_url}", self.scheme(&host).await?)
        };
        let mut authed_once = false;
        let mut tries = 0;
        loop {
            tries += 1;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .headers(headers.clone());
            // Credentials go only to the registry itself, never to another host an
            // upload Location or redirect points at.
            let same_host = reqwest::Url::parse(&url).ok().and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}") == host,
                    None => {
                        h == host
                            || host.strip_suffix(":443").or(host.strip_suffix(":80")) == Some(h)
                    }
                })
            });
            let auth = if same_host == Some(true) {
                self.auth_header(&r.registry, &host, scopes).await?
            } else {
                None
            };
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a);
            }
            req = attach(req, &body).await?;
            let result = req.send().await;
            let resp = match result {
                Ok(resp) => resp,
                Err(e) => {
                    let transient = e.is_connect() || e.is_timeout() || e.is_request();
                    let why = without_url(e);
                    if is_certificate_error(&why) {
                        return Err(certificate_error(&host, &why));
                    }
                    if transient && tries < MAX_TRIES {
                        tokio::time::sleep(backoff(tries, None)).await;
                        continue;
                    }
                    return Err(anyhow!("{method} {}: {why}", redact(&url)));
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && authed_once {
                let why = registry_error(&method, &url, resp).await;
                if self.credential(&r.registry).await?.is_none() {
                    bail!(
                        "{} requires a login: run `xarch login {}` ({why})",
                        r.registry,
                        r.registry
                    );
                }
                bail!(
                    "{} rejected the credentials ({why}); check them with `xarch login {}`",
                    r.registry,
                    r.registry
                );
            }
            if status == StatusCode::UNAUTHORIZED {
                authed_once = true;
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                if self
                    .answer(challenge, &r.registry, &host, scopes, auth.as_deref())
                    .await?
                {
                    continue;
                }
                return Err(registry_error(&method, &url, resp).await);
            }
            let transient = status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error();
            if transient && tries < MAX_TRIES {
                let wait = backoff(tries, retry_after(resp.headers()));
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(resp);
        }
    }

    /// The Authorization header to send now, from what earlier challenges taught.
    async fn auth_header(
        &self,
        registry: &str,
        host: &str,
        scopes: &[String],
    ) -> Result<Option<String>> {
        if let Some(bearer) = self.cached_token(host, scopes) {
            return Ok(Some(bearer));
        }
        if self.host(host).basic {
            return Ok(self.credential(registry).await?.map(|c| c.basic_header()));
        }
        Ok(None)
    }

    /// `Bearer …` for an unexpired token cached for exactly these scopes.
    fn cached_token(&self, host: &str, scopes: &[String]) -> Option<String> {
        let state = self.host(host);
        let (token, expiry) = state.tokens.get(&scope_key(scopes))?;
        (Instant::now() < *expiry).then(|| format!("Bearer {token}"))
    }

    /// Learns from a 401 challenge to a request that carried `sent`; true when a
    /// retry may now succeed.
    async fn answer(
        &self,
        challenge: Option<Challenge>,
        registry: &str,
        host: &str,
        scopes: &[String],
        sent: Option<&str>,
    ) -> Result<bool> {
        let Some(ch) = challenge else {
            return Ok(false);
        };
        let cred = self.credential(registry).await?;
        match ch.scheme.as_str() {
            "basic" => {
                if cred.is_none() {
                    bail!("{registry} requires a login: run `xarch login {registry}`");
                }
                self.update(host, |h| h.basic = true);
                Ok(true)
            }
            "bearer" => {
                let _one_at_a_time = self.token_fetch.lock().await;
                // Another request may have fetched a token meanwhile. The one this
                // request carried, though, was just refused (expired or revoked).
                if let Some(bearer) = self.cached_token(host, scopes)
                    && sent != Some(bearer.as_str())
                {
                    return Ok(true);
                }
                let (token, ttl) = self
                    .fetch_token(&ch, cred.as_ref(), scopes, registry)
                    .await?;
                self.update(host, |h| {
                    h.tokens
                        .insert(scope_key(scopes), (token, Instant::now() + ttl));
                });
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn fetch_token(
        &self,
        ch: &Challenge,
        cred: Option<&Credential>,
        scopes: &[String],
        registry: &str,
    ) -> Result<(String, Duration)> {
        let realm = ch
            .params
            .get("realm")
            .context("bearer challenge without a realm")?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = ch.params.get("service") {
            query.push(("service", s.clone()));
        }
        let challenged = ch
            .params
            .get("scope")
            .into_iter()
            .flat_map(|s| s.split(' '));
        for s in merge_scopes(scopes.iter().map(String::as_str).chain(challenged)) {
            query.push(("scope", s));
        }
        if let Some(c) = cred {
            query.push(("account", c.username.clone()));
        }
        let mut tries = 0;
        let resp = loop {
            tries += 1;
            let mut req = self.http.get(realm).query(&query);
            if let Some(c) = cred {
                req = req.header(AUTHORIZATION, c.basic_header());
            }
            match req.send().await {
                Ok(r) if r.status().is_server_error() && tries < MAX_TRIES => {
                    tokio::time::sleep(backoff(tries, None)).await;
                }
                Ok(r) => break r,
                Err(e) => {
                    let why = without_url(e);
                    if is_certificate_error(&why) {
                        let host = reqwest::Url::parse(realm)?.authority().to_string();
                        return Err(certificate_error(&host, &why));
                    }
                    if tries >= MAX_TRIES {
                        bail!("token request to {} failed: {why}", redact(realm));
                    }
                    tokio::time::sleep(backoff(tries, None)).await;
                }
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let hint = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                if cred.is_some() {
                    format!(" (check the credentials for {registry}: `xarch login {registry}`)")
                } else {
                    format!(" (run `xarch login {registry}`)")
                }
            } else {
                String::new()
            };
            bail!(
                "{registry} refused a token ({status}): {}{hint}",
                summarize(&text)
            );
        }
        let body = resp.bytes().await?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).context("token response is not JSON")?;
        let token = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .context("token response has no token")?
            .to_string();
        let ttl = v["expires_in"].as_u64().unwrap_or(60).max(10);
        // Renew a little early rather than fail mid-push.
        Ok((token, Duration::from_secs(ttl.saturating_sub(5))))
    }
}

async fn attach(req: reqwest::RequestBuilder, body: &Body) -> Result<reqwest::RequestBuilder> {
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
            let mut f = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?;
            f.seek(std::io::SeekFrom::Start(*offset)).await?;
            let part = f.take(*len);
            const BUF: usize = 256 * 1024;
            let body = match progress {
                Some(bar) => {
                    // A retry starts the bar over from this part's offset.
                    bar.set_position(*offset);
                    let read = bar.wrap_async_read(part);
                    reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                        read, BUF,
                    ))
                }
                None => reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    part, BUF,
                )),
            };
            req.header(CONTENT_LENGTH, *len).body(body)
        }
    })
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

/// URLs may carry signed query strings: show scheme, host and path only.
fn redact(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
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

/// rustls's words for a certificate that does not verify (unknown issuer, wrong
/// name, expired…), somewhere in reqwest's error chain.
fn is_certificate_error(why: &str) -> bool {
    why.contains("invalid peer certificate")
}

fn certificate_error(host: &str, why: &str) -> anyhow::Error {
    anyhow!(
        "the TLS certificate of {host} is not trusted ({why}); if it comes from a private CA, \
         pass that CA with `--ca-cert FILE` (or skip verification with `--insecure`)"
    )
}

/// The registry's own error text for a failed response.
pub async fn registry_error(method: &Method, url: &str, resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    anyhow!("{method} {}: {status}: {}", redact(url), summarize(&text))
}

/// `{"errors":[{"code":…,"message":…}]}` → `CODE: message`; other bodies trimmed.
pub fn summarize(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body)
        && let Some(errs) = v["errors"].as_array()
    {
        let parts: Vec<String> = errs
            .iter()
            .map(|e| {
                let code = e["code"].as_str().unwrap_or("ERROR");
                let msg = e["message"].as_str().unwrap_or("");
                let detail = match &e["detail"] {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => format!(" ({s})"),
                    d => format!(" ({d})"),
                };
                format!("{code}: {msg}{detail}")
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let t = body.trim();
    if t.is_empty() {
        "(empty response)".into()
    } else {
        t.chars().take(300).collect()
    }
}

/// Resolves an upload `Location` header against the request URL's origin.
pub fn location(resp: &reqwest::Response) -> Result<String> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("registry answered without a Location header")?;
    Ok(resp.url().join(loc)?.to_string())
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
    fn registry_errors_are_summarized() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(
            summarize(body),
            r#"MANIFEST_UNKNOWN: manifest unknown ({"Tag":"x"})"#
        );
        assert_eq!(summarize(""), "(empty response)");
    }

    #[test]
    fn urls_lose_query_strings() {
        assert_eq!(redact("https://s3/x?X-Amz-Signature=abc"), "https://s3/x");
    }
}
