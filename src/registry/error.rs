//! `Error`: what went wrong talking to a registry, or to a host it sent xarch
//! to. Callers branch on `status()`, `codes()` and `is_retryable()`, never on
//! the text; users read the text, which names the URL without its query string
//! and never holds a credential.

use std::time::Duration;

use reqwest::{Method, StatusCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error status, with the registry's own codes and message.
    #[error("{method} {url}: {status}: {message}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        /// OCI error codes from the body (`MANIFEST_UNKNOWN`, `DENIED`…).
        codes: Vec<String>,
        message: String,
    },
    /// A 401 from the registry, and xarch has no credential for it.
    #[error("{registry} requires a login: run `xarch login {registry}` ({detail})")]
    LoginRequired {
        registry: String,
        detail: Box<Error>,
    },
    /// A 401 from the registry although xarch sent its credential.
    #[error(
        "{registry} rejected the credentials ({detail}); check them with `xarch login {registry}`"
    )]
    CredentialsRejected {
        registry: String,
        detail: Box<Error>,
    },
    /// A 401 from a host the registry redirected xarch to, which gets no
    /// credential of the registry's.
    #[error("{detail} (a host {registry} sent xarch to; it gets no credential of {registry}'s)")]
    UnauthorizedElsewhere {
        registry: String,
        detail: Box<Error>,
    },
    /// The token endpoint answered with an error status.
    #[error("{registry} refused a token ({status}): {message}{hint}")]
    TokenRefused {
        registry: String,
        status: StatusCode,
        message: String,
        hint: String,
    },
    /// The token endpoint answered, but not with a usable token.
    #[error("token from {realm}: {why}")]
    Token { realm: String, why: String },
    /// An HTTPS registry named a plain-HTTP token realm.
    #[error(
        "{host} is served over HTTPS but announced the plain-HTTP token realm {realm}; \
         xarch sends no credential over plain HTTP to an HTTPS registry's realm"
    )]
    InsecureRealm { host: String, realm: String },
    #[error(
        "the TLS certificate of {host} is not trusted ({why}); if it comes from a private CA, \
         pass that CA with `--ca-cert FILE` (or skip verification with `--insecure`)"
    )]
    Certificate { host: String, why: String },
    /// The connection failed or broke.
    #[error("{method} {url}: {why}")]
    Transport {
        method: Method,
        url: String,
        why: String,
        retryable: bool,
    },
    #[error(
        "{method} {url}: no byte moved for {} s (raise the limit with --stall-timeout or XARCH_STALL_TIMEOUT)",
        .after.as_secs()
    )]
    Stalled {
        method: Method,
        url: String,
        after: Duration,
    },
    #[error(
        "{method} {url}: not done after {} s (raise the limit with --timeout or XARCH_TIMEOUT)",
        .after.as_secs()
    )]
    Deadline {
        method: Method,
        url: String,
        after: Duration,
    },
    /// A body longer than its limit (a descriptor's size, or a fixed cap).
    #[error("{method} {url}: {what} is larger than {limit}; refusing it")]
    TooLarge {
        method: Method,
        url: String,
        what: String,
        /// The limit, in words (`4 MiB`, `its descriptor's 86 bytes`).
        limit: String,
    },
    /// A body that ended before its declared size.
    #[error("{method} {url}: {what} ended after {got} of its {expected} bytes")]
    Short {
        method: Method,
        url: String,
        what: String,
        expected: u64,
        got: u64,
    },
    #[error("{method} {url}: {why}")]
    Protocol {
        method: Method,
        url: String,
        why: String,
    },
    /// The configured credential could not be read (bad config, failing helper).
    #[error("{why}")]
    Credentials { why: String },
    #[error("cannot read {path}: {source}")]
    Local {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status that caused the error, if one did.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } | Error::TokenRefused { status, .. } => Some(*status),
            Error::LoginRequired { .. }
            | Error::CredentialsRejected { .. }
            | Error::UnauthorizedElsewhere { .. } => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }

    /// The OCI error codes the registry gave (`MANIFEST_UNKNOWN`, …).
    pub fn codes(&self) -> &[String] {
        match self {
            Error::Status { codes, .. } => codes,
            Error::LoginRequired { detail, .. }
            | Error::CredentialsRejected { detail, .. }
            | Error::UnauthorizedElsewhere { detail, .. } => detail.codes(),
            _ => &[],
        }
    }

    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Status { status, .. } => is_transient(*status),
            Error::Transport { retryable, .. } => *retryable,
            Error::Stalled { .. } | Error::Deadline { .. } => true,
            _ => false,
        }
    }

    /// The URL the error is about, without its query string.
    pub fn url(&self) -> Option<&str> {
        match self {
            Error::Status { url, .. }
            | Error::Transport { url, .. }
            | Error::Stalled { url, .. }
            | Error::Deadline { url, .. }
            | Error::TooLarge { url, .. }
            | Error::Short { url, .. }
            | Error::Protocol { url, .. } => Some(url),
            Error::Token { realm, .. } | Error::InsecureRealm { realm, .. } => Some(realm),
            Error::LoginRequired { detail, .. }
            | Error::CredentialsRejected { detail, .. }
            | Error::UnauthorizedElsewhere { detail, .. } => detail.url(),
            _ => None,
        }
    }

    /// The registry error in an error chain, if there is one.
    pub fn find(e: &anyhow::Error) -> Option<&Error> {
        e.chain().find_map(|c| c.downcast_ref::<Error>())
    }
}

/// Statuses worth a retry: timeouts, throttling, server trouble.
pub fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// URLs may carry signed query strings: scheme, host and path only.
pub fn redact(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_string()
}

/// One message part shown of an error body, at most this many characters.
const MAX_SHOWN: usize = 1000;

/// `{"errors":[{"code":…,"message":…,"detail":…}]}` → the codes and
/// `CODE: message (detail)`; another body, trimmed. `cut`: the body was longer
/// than what was read, and the text ends with "…".
pub fn parse_body(body: &[u8], cut: bool) -> (Vec<String>, String) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(errs) = v["errors"].as_array()
        && !errs.is_empty()
    {
        let codes = errs
            .iter()
            .map(|e| e["code"].as_str().unwrap_or("ERROR").to_string())
            .collect();
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
                shorten(&format!("{code}: {msg}{detail}"), false)
            })
            .collect();
        return (codes, parts.join("; "));
    }
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    if t.is_empty() && !cut {
        return (Vec::new(), "(empty response)".into());
    }
    (Vec::new(), shorten(t, cut))
}

/// At most `MAX_SHOWN` characters, with "…" when anything was left out.
/// Control characters (a terminal's escape sequences, NULs) and runs of
/// white space become one space: the text is the registry's, not ours.
fn shorten(text: &str, cut: bool) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let mut shown = 0;
    while let Some(c) = chars.next() {
        if shown == MAX_SHOWN {
            out.push('…');
            return out;
        }
        if c.is_control() || c.is_whitespace() {
            while chars
                .next_if(|c| c.is_control() || c.is_whitespace())
                .is_some()
            {}
            out.push(' ');
        } else {
            out.push(c);
        }
        shown += 1;
    }
    let trimmed = out.trim();
    let mut out = trimmed.to_string();
    if cut {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_are_summarized() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        let (codes, msg) = parse_body(body, false);
        assert_eq!(codes, ["MANIFEST_UNKNOWN"]);
        assert_eq!(msg, r#"MANIFEST_UNKNOWN: manifest unknown ({"Tag":"x"})"#);
        assert_eq!(parse_body(b"", false).1, "(empty response)");
    }

    #[test]
    fn long_and_cut_bodies_end_with_an_ellipsis() {
        let long = "x".repeat(5000);
        let (_, msg) = parse_body(long.as_bytes(), false);
        assert_eq!(msg.chars().count(), MAX_SHOWN + 1);
        assert!(msg.ends_with('…'));
        assert_eq!(parse_body(b"short", true).1, "short…");
        let hostile = b"\x1b]0;owned\x07 red \x1b[31mtext\0\0\0\n\n end";
        let (_, msg) = parse_body(hostile, false);
        assert!(!msg.chars().any(char::is_control), "{msg:?}");
        assert_eq!(msg, "]0;owned red [31mtext end");
        assert_eq!(parse_body(&[0u8; 100], true).1, "…");
    }

    #[test]
    fn urls_lose_query_strings() {
        assert_eq!(redact("https://s3/x?X-Amz-Signature=abc"), "https://s3/x");
    }

    #[test]
    fn callers_branch_on_kinds_not_text() {
        let e = Error::Status {
            method: Method::GET,
            url: "https://r/v2/".into(),
            status: StatusCode::SERVICE_UNAVAILABLE,
            codes: vec![],
            message: "busy".into(),
        };
        assert!(e.is_retryable());
        let login = Error::LoginRequired {
            registry: "r".into(),
            detail: Box::new(e),
        };
        assert_eq!(login.status(), Some(StatusCode::UNAUTHORIZED));
        assert!(!login.is_retryable());
        let any = anyhow::Error::new(login).context("cannot fetch r/x:1");
        assert_eq!(
            Error::find(&any).and_then(Error::status),
            Some(401.try_into().unwrap())
        );
    }
}
