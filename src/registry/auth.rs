//! `Credential`s and how registries challenge for them: docker's config
//! (`auths`, `credHelpers`, `credsStore`), containers' `auth.json`, and the
//! `WWW-Authenticate` header. A credential is never printed: its Debug is redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::reference::DOCKER_HUB;

/// Docker Hub's key in the docker config, as `docker login` writes it.
pub const HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credential {{ username: {:?}, secret: <redacted> }}",
            self.username
        )
    }
}

impl Credential {
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            B64.encode(format!("{}:{}", self.username, self.secret))
        )
    }
}

/// The docker config file: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => home().join(".docker").join("config.json"),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/".into())
}

/// Files consulted, in order: `$REGISTRY_AUTH_FILE`, containers' auth.json, then
/// the docker config.
fn auth_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(d).join("containers/auth.json"));
    }
    files.push(home().join(".config/containers/auth.json"));
    files.push(docker_config_path());
    files
}

/// The credential for `registry` (a host[:port]), if any is configured.
pub fn lookup(registry: &str) -> Result<Option<Credential>> {
    for file in auth_files() {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let config: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid JSON", file.display()))?;
        if let Some(c) = from_config(&config, registry, &file)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn from_config(config: &Value, registry: &str, file: &Path) -> Result<Option<Credential>> {
    if let Some(helper) = own_helper(config, registry) {
        return helper_get(helper, registry);
    }
    if let Some(auths) = config["auths"].as_object() {
        let mut entries: Vec<(&String, &Value)> = auths
            .iter()
            .filter(|(key, _)| key_matches(key, registry))
            .collect();
        // The key `xarch login` writes first: a fresh login beats an older entry
        // under another spelling (`docker.io` sorts before the hub's URL).
        entries.sort_by_key(|(key, _)| key.as_str() != config_key(registry));
        for (key, entry) in entries {
            if let Some(c) = decode_entry(entry)
                .with_context(|| format!("bad entry for {key} in {}", file.display()))?
            {
                return Ok(Some(c));
            }
        }
    }
    if let Some(store) = config["credsStore"].as_str() {
        return helper_get(store, registry);
    }
    Ok(None)
}

fn decode_entry(entry: &Value) -> Result<Option<Credential>> {
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        let raw = B64.decode(auth.trim()).context("`auth` is not base64")?;
        let text = String::from_utf8(raw).context("`auth` is not UTF-8")?;
        let (u, p) = text
            .split_once(':')
            .context("`auth` is not user:password")?;
        return Ok(Some(Credential {
            username: u.to_string(),
            secret: p.to_string(),
        }));
    }
    match (entry["username"].as_str(), entry["password"].as_str()) {
        (Some(u), Some(p)) => Ok(Some(Credential {
            username: u.into(),
            secret: p.into(),
        })),
        _ => Ok(None),
    }
}

/// Whether an `auths` key names `registry` (`https://host:5000/v1/` names `host:5000`).
fn key_matches(key: &str, registry: &str) -> bool {
    normalize_key(key) == registry || (registry == DOCKER_HUB && is_hub_key(key))
}

/// The key a registry's credential is saved under, and the server name given to
/// credential helpers: the docker CLI's `https://index.docker.io/v1/` for Docker
/// Hub, else the host[:port].
fn config_key(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        HUB_KEY
    } else {
        registry
    }
}

/// `credHelpers` for this registry (the docker CLI keys Docker Hub's by its URL).
fn own_helper<'a>(config: &'a Value, registry: &str) -> Option<&'a str> {
    let helpers = &config["credHelpers"];
    helpers[config_key(registry)]
        .as_str()
        .or_else(|| helpers[registry].as_str())
}

/// `https://host:5000/v1/` → `host:5000`.
fn normalize_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn is_hub_key(key: &str) -> bool {
    matches!(
        normalize_key(key),
        "index.docker.io" | "registry-1.docker.io" | "docker.io"
    )
}

/// `docker-credential-<helper> get`, registry on stdin, JSON on stdout.
fn helper_get(helper: &str, registry: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{helper}");
    let out = run_helper(&program, "get", config_key(registry).as_bytes())?;
    if !out.status.success() {
        // Helpers answer "credentials not found" on stdout with a failure status.
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{program} get: output is not JSON"))?;
    match (v["Username"].as_str(), v["Secret"].as_str()) {
        (Some(u), Some(s)) if !s.is_empty() => Ok(Some(Credential {
            username: u.into(),
            secret: s.into(),
        })),
        _ => Ok(None),
    }
}

fn run_helper(program: &str, verb: &str, input: &[u8]) -> Result<std::process::Output> {
    let mut child = Command::new(program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("credential helper {program} is configured but cannot be run"))?;
    child.stdin.take().expect("piped").write_all(input)?;
    Ok(child.wait_with_output()?)
}

/// The credential helper configured for `registry`: its own, else the store.
fn helper_for(config: &Value, registry: &str) -> Option<String> {
    own_helper(config, registry)
        .or_else(|| config["credsStore"].as_str())
        .map(String::from)
}

/// Saves a credential the way `docker login` does: through the configured
/// helper/store, else base64 in `auths` of the docker config (file mode 0600).
pub fn store(registry: &str, cred: &Credential) -> Result<PathBuf> {
    let path = docker_config_path();
    store_in(&path, registry, cred)?;
    Ok(path)
}

fn store_in(path: &Path, registry: &str, cred: &Credential) -> Result<()> {
    let mut config = read_config(path)?;
    let helper = helper_for(&config, registry);
    let key = config_key(registry);
    if let Some(h) = helper {
        let program = format!("docker-credential-{h}");
        let input = json!({"ServerURL": key, "Username": cred.username, "Secret": cred.secret});
        let out = run_helper(&program, "store", input.to_string().as_bytes())?;
        if !out.status.success() {
            bail!(
                "{program} store failed: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        config["auths"][key] = json!({});
    } else {
        let auth = B64.encode(format!("{}:{}", cred.username, cred.secret));
        config["auths"][key] = json!({ "auth": auth });
    }
    write_config(path, &config)
}

/// Forgets a registry's credential; true when there was one.
pub fn erase(registry: &str) -> Result<bool> {
    erase_in(&docker_config_path(), registry)
}

/// Removes every `auths` entry that names the registry, whatever its spelling.
fn erase_in(path: &Path, registry: &str) -> Result<bool> {
    let mut config = read_config(path)?;
    let helper = helper_for(&config, registry);
    if let Some(h) = helper {
        let _ = run_helper(
            &format!("docker-credential-{h}"),
            "erase",
            config_key(registry).as_bytes(),
        )?;
    }
    let removed = config["auths"]
        .as_object_mut()
        .map(|a| {
            let before = a.len();
            a.retain(|key, _| !key_matches(key, registry));
            a.len() < before
        })
        .unwrap_or(false);
    write_config(path, &config)?;
    Ok(removed)
}

fn read_config(path: &Path) -> Result<Value> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_config(path: &Path, config: &Value) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().context("config path has no directory")?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json")
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    tmp.write_all(serde_json::to_string_pretty(config)?.as_bytes())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Keep 0600 even if the file existed with wider permissions.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="a,b"` (quoted values may hold commas).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example.com/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(b.scheme, "basic");
    }

    #[test]
    fn hub_logins_use_the_docker_cli_key_and_beat_older_spellings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let old = json!({"auths": {"docker.io": {"auth": B64.encode("old:pw")}}});
        std::fs::write(&path, old.to_string()).unwrap();
        let cred = Credential {
            username: "new".into(),
            secret: "pw2".into(),
        };
        store_in(&path, DOCKER_HUB, &cred).unwrap();
        let config = read_config(&path).unwrap();
        assert_eq!(config["auths"][HUB_KEY]["auth"], B64.encode("new:pw2"));
        let found = from_config(&config, DOCKER_HUB, &path).unwrap().unwrap();
        assert_eq!(found, cred);

        assert!(erase_in(&path, DOCKER_HUB).unwrap());
        let config = read_config(&path).unwrap();
        assert_eq!(config["auths"], json!({}), "every spelling is forgotten");
    }

    #[test]
    fn config_entries_and_keys() {
        let cfg = json!({"auths": {
            "https://index.docker.io/v1/": {"auth": B64.encode("hub:pw")},
            "127.0.0.1:5000": {"auth": B64.encode("me:s3cret:with:colons")},
        }});
        let f = Path::new("config.json");
        let c = from_config(&cfg, "127.0.0.1:5000", f).unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.secret.as_str()),
            ("me", "s3cret:with:colons")
        );
        assert_eq!(
            from_config(&cfg, "docker.io", f).unwrap().unwrap().username,
            "hub"
        );
        assert!(from_config(&cfg, "other:1", f).unwrap().is_none());
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
