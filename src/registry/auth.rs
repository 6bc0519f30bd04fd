//! `Credential`s and how registries challenge for them: docker's config
//! (`auths`, `credHelpers`, `credsStore`), containers' `auth.json`, and the
//! `WWW-Authenticate` header. A credential is never printed: its Debug is redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// How long a credential helper may run (it may be waiting on a keychain).
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);
/// Of a helper's output, at most this much is read.
const MAX_HELPER_OUTPUT: u64 = 1 << 20;

/// `docker-credential-<helper>`, for a helper name made of `[A-Za-z0-9._-]`
/// only: a name from a config file must not be a path or an option.
fn helper_program(helper: &str) -> Result<String> {
    let ok = !helper.is_empty()
        && helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        bail!(
            "credential helper name {helper:?} is not allowed: use letters, digits, `.`, `_` and `-` only"
        );
    }
    Ok(format!("docker-credential-{helper}"))
}

/// `docker-credential-<helper> get`, registry on stdin, JSON on stdout.
fn helper_get(helper: &str, registry: &str) -> Result<Option<Credential>> {
    let program = helper_program(helper)?;
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

/// What a helper said: its exit status and (up to 1 MiB of) its stdout.
struct HelperOutput {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
}

fn run_helper(program: &str, verb: &str, input: &[u8]) -> Result<HelperOutput> {
    run_helper_within(program, verb, input, HELPER_TIMEOUT)
}

/// Runs a helper with `input` on stdin; killed, and an error, after `limit`.
fn run_helper_within(
    program: &str,
    verb: &str,
    input: &[u8],
    limit: Duration,
) -> Result<HelperOutput> {
    let mut child = Command::new(program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("credential helper {program} is configured but cannot be run"))?;
    // The input is a few hundred bytes: the pipe takes it without a reader.
    let mut stdin = child.stdin.take().expect("piped");
    let _ = stdin.write_all(input);
    drop(stdin);
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.take(MAX_HELPER_OUTPUT).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    let deadline = Instant::now() + limit;
    let timed_out = || {
        anyhow::anyhow!(
            "{program} {verb} did not finish within {} s",
            limit.as_secs()
        )
    };
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(timed_out());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A helper's child may hold stdout open after the helper has exited.
    let wait = deadline.saturating_duration_since(Instant::now());
    let stdout = rx.recv_timeout(wait).map_err(|_| timed_out())?;
    Ok(HelperOutput { status, stdout })
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
    let file = Locked::open(path)?;
    let mut config = read_config(&file.target)?;
    let helper = helper_for(&config, registry);
    let key = config_key(registry);
    if let Some(h) = helper {
        let program = helper_program(&h)?;
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
    file.write(&config)
}

/// Forgets a registry's credential; true when there was one.
pub fn erase(registry: &str) -> Result<bool> {
    erase_in(&docker_config_path(), registry)
}

/// Removes every `auths` entry that names the registry, whatever its spelling.
fn erase_in(path: &Path, registry: &str) -> Result<bool> {
    let file = Locked::open(path)?;
    let mut config = read_config(&file.target)?;
    let helper = helper_for(&config, registry);
    if let Some(h) = helper {
        let _ = run_helper(
            &helper_program(&h)?,
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
    file.write(&config)?;
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

/// The docker config, held for a read-modify-write: logins and logouts
/// running at once take turns (an exclusive lock on the file's directory), so
/// none loses another's entry. A config that is a symlink stays one: the new
/// content replaces the file the link points to.
struct Locked {
    /// The file itself, symlinks followed.
    target: PathBuf,
    _lock: File,
}

impl Locked {
    fn open(path: &Path) -> Result<Locked> {
        let target = follow_symlinks(path)?;
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", dir.display()))?;
        Ok(Locked {
            target,
            _lock: lock,
        })
    }

    /// Replaces the file atomically (temp file, fsync, rename, fsync of the
    /// directory), mode 0600 whatever the old file's mode was.
    fn write(&self, config: &Value) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.target.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.json")
            .tempfile_in(dir)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        tmp.write_all(serde_json::to_string_pretty(config)?.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.target)
            .with_context(|| format!("cannot write {}", self.target.display()))?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }
}

/// The file `path` names once every symlink on it is followed (the target
/// may not exist yet).
fn follow_symlinks(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(p),
        }
    }
    bail!("{} is a symlink loop", path.display())
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
    fn helper_names_cannot_be_paths_or_options() {
        assert_eq!(
            helper_program("osxkeychain").unwrap(),
            "docker-credential-osxkeychain"
        );
        assert!(helper_program("ecr-login_2.0").is_ok());
        for bad in ["", "../../bin/sh", "a/b", "x y", "pass\0word"] {
            assert!(helper_program(bad).is_err(), "{bad:?}");
        }
        let cfg = json!({"credHelpers": {"r:1": "../evil"}});
        let e = from_config(&cfg, "r:1", Path::new("c.json")).unwrap_err();
        assert!(format!("{e:#}").contains("is not allowed"), "{e:#}");
    }

    #[test]
    fn a_hanging_helper_is_killed_after_its_time() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-hang");
        std::fs::write(&helper, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let start = Instant::now();
        let e = run_helper_within(
            helper.to_str().unwrap(),
            "get",
            b"r",
            Duration::from_millis(300),
        )
        .err()
        .expect("a helper that never answers is an error");
        assert!(e.to_string().contains("did not finish within"), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );

        let ok = dir.path().join("docker-credential-ok");
        std::fs::write(
            &ok,
            "#!/bin/sh\ncat >/dev/null; echo '{\"Username\":\"u\",\"Secret\":\"s\"}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out =
            run_helper_within(ok.to_str().unwrap(), "get", b"r", Duration::from_secs(20)).unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            r#"{"Username":"u","Secret":"s"}"#
        );
    }

    #[test]
    fn a_symlinked_config_stays_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dotfiles = dir.path().join("dotfiles");
        std::fs::create_dir(&dotfiles).unwrap();
        let real = dotfiles.join("docker.json");
        std::fs::write(&real, r#"{"auths":{"old:1":{"auth":"YTpi"}}}"#).unwrap();
        let docker = dir.path().join("docker");
        std::fs::create_dir(&docker).unwrap();
        let link = docker.join("config.json");
        std::os::unix::fs::symlink("../dotfiles/docker.json", &link).unwrap();
        let cred = Credential {
            username: "me".into(),
            secret: "pw".into(),
        };
        store_in(&link, "new:1", &cred).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let config = read_config(&real).unwrap();
        assert_eq!(config["auths"]["old:1"]["auth"], "YTpi");
        assert_eq!(config["auths"]["new:1"]["auth"], B64.encode("me:pw"));
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(erase_in(&link, "old:1").unwrap());
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(read_config(&real).unwrap()["auths"].get("old:1").is_none());
        // Nothing but the file itself was left beside it.
        let names: Vec<_> = std::fs::read_dir(&dotfiles)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["docker.json"]);
    }

    #[test]
    fn logins_at_once_lose_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let cred = Credential {
                        username: format!("u{i}"),
                        secret: "pw".into(),
                    };
                    store_in(&path, &format!("reg{i}:5000"), &cred).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let auths = read_config(&path).unwrap()["auths"]
            .as_object()
            .unwrap()
            .len();
        assert_eq!(auths, 16);
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
