//! An in-process registry for unit tests: the distribution API's blob,
//! upload, mount, manifest and tag routes over HTTP/1.1 on a free loopback
//! port, kept in memory. It checks digests as a registry does and has no
//! referrers API (like Distribution 2.x), so the fallback tag is exercised.
//! Tests of the real thing talk to Debian's `docker-registry` (tests/it); this
//! one makes pull, push and sink tests take milliseconds.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

#[derive(Default)]
struct State {
    /// Blobs by digest (shared by every repository, as in Distribution's
    /// storage), and which repositories hold each one.
    blobs: HashMap<String, Vec<u8>>,
    linked: HashMap<(String, String), ()>,
    /// (repository, tag or digest) → (media type, bytes).
    manifests: HashMap<(String, String), (String, Vec<u8>)>,
    uploads: HashMap<String, Vec<u8>>,
    next_upload: u64,
    /// (method, path) of every request, in order.
    requests: Vec<(String, String)>,
}

/// A running in-memory registry; it stops with the test process.
#[derive(Clone)]
pub struct MemoryRegistry {
    /// `127.0.0.1:PORT`
    pub host: String,
    state: Arc<Mutex<State>>,
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    body: Vec<u8>,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Response {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    fn body(mut self, b: Vec<u8>) -> Response {
        self.body = b;
        self
    }

    fn error(status: u16, code: &str) -> Response {
        let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{code}"}}]}}"#);
        Response::new(status)
            .header("Content-Type", "application/json")
            .body(body.into_bytes())
    }
}

impl MemoryRegistry {
    pub fn start() -> MemoryRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let host = listener.local_addr().unwrap().to_string();
        let reg = MemoryRegistry {
            host,
            state: Arc::default(),
        };
        let served = reg.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let reg = served.clone();
                std::thread::spawn(move || reg.serve(conn));
            }
        });
        reg
    }

    /// How many requests had this method and a path starting with `prefix`.
    pub fn requests(&self, method: &str, prefix: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.requests
            .iter()
            .filter(|(m, p)| m == method && p.starts_with(prefix))
            .count()
    }

    /// The manifest `repo` holds under `reference` (tag or digest).
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let s = self.state.lock().unwrap();
        s.manifests
            .get(&(repo.to_string(), reference.to_string()))
            .cloned()
    }

    pub fn has_blob(&self, repo: &str, digest: &str) -> bool {
        let s = self.state.lock().unwrap();
        s.linked
            .contains_key(&(repo.to_string(), digest.to_string()))
    }

    fn serve(&self, mut conn: TcpStream) {
        // Keep-alive: answer requests until the client closes the connection.
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        while let Some(req) = read_request(&mut reader) {
            let resp = self.handle(&req);
            let mut head = format!(
                "HTTP/1.1 {} X\r\nContent-Length: {}\r\nDocker-Distribution-API-Version: registry/2.0\r\n",
                resp.status,
                resp.body.len()
            );
            for (k, v) in &resp.headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let head_only = req.method == "HEAD";
            if conn.write_all(head.as_bytes()).is_err()
                || (!head_only && conn.write_all(&resp.body).is_err())
            {
                return;
            }
        }
    }

    fn handle(&self, req: &Request) -> Response {
        let mut s = self.state.lock().unwrap();
        s.requests.push((req.method.clone(), req.path.clone()));
        if req.path == "/v2/" || req.path == "/v2" {
            return Response::new(200);
        }
        let Some(rest) = req.path.strip_prefix("/v2/") else {
            return Response::error(404, "NAME_UNKNOWN");
        };
        for route in [
            "/blobs/uploads/",
            "/blobs/",
            "/manifests/",
            "/tags/list",
            "/referrers/",
        ] {
            if let Some((repo, arg)) = rest.rsplit_once(route) {
                let (repo, arg) = (repo.to_string(), arg.to_string());
                return match route {
                    "/blobs/uploads/" => upload(&mut s, req, &repo, &arg),
                    "/blobs/" => blob(&s, req, &repo, &arg),
                    "/manifests/" => manifest(&mut s, req, &repo, &arg),
                    "/tags/list" => tags(&s, &repo),
                    _ => Response::error(404, "UNSUPPORTED"),
                };
            }
        }
        Response::error(404, "NAME_UNKNOWN")
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

fn blob(s: &State, req: &Request, repo: &str, digest: &str) -> Response {
    if !s
        .linked
        .contains_key(&(repo.to_string(), digest.to_string()))
    {
        return Response::error(404, "BLOB_UNKNOWN");
    }
    let b = &s.blobs[digest];
    let resp = Response::new(200)
        .header("Docker-Content-Digest", digest)
        .header("Content-Type", "application/octet-stream");
    match req.method.as_str() {
        "GET" | "HEAD" => resp.body(b.clone()),
        _ => Response::error(405, "UNSUPPORTED"),
    }
}

fn upload(s: &mut State, req: &Request, repo: &str, id: &str) -> Response {
    let q = |k: &str| {
        req.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let location = |id: &str| format!("/v2/{repo}/blobs/uploads/{id}");
    match (req.method.as_str(), id) {
        ("POST", "") => {
            if let (Some(d), Some(from)) = (q("mount"), q("from"))
                && s.linked.contains_key(&(from, d.clone()))
            {
                s.linked.insert((repo.to_string(), d.clone()), ());
                return Response::new(201)
                    .header("Location", format!("/v2/{repo}/blobs/{d}"))
                    .header("Docker-Content-Digest", d);
            }
            s.next_upload += 1;
            let id = s.next_upload.to_string();
            s.uploads.insert(id.clone(), req.body.clone());
            if let Some(d) = q("digest") {
                return finish(s, repo, &id, &d);
            }
            Response::new(202)
                .header("Location", location(&id))
                .header("Range", "0-0")
        }
        ("PATCH", id) => {
            let Some(buf) = s.uploads.get_mut(id) else {
                return Response::error(404, "BLOB_UPLOAD_UNKNOWN");
            };
            buf.extend_from_slice(&req.body);
            let end = buf.len().saturating_sub(1);
            Response::new(202)
                .header("Location", location(id))
                .header("Range", format!("0-{end}"))
        }
        ("PUT", id) => {
            let Some(buf) = s.uploads.get_mut(id) else {
                return Response::error(404, "BLOB_UPLOAD_UNKNOWN");
            };
            buf.extend_from_slice(&req.body);
            match q("digest") {
                Some(d) => finish(s, repo, id, &d),
                None => Response::error(400, "DIGEST_INVALID"),
            }
        }
        _ => Response::error(405, "UNSUPPORTED"),
    }
}

/// Ends upload `id`: its bytes must hash to `digest`.
fn finish(s: &mut State, repo: &str, id: &str, digest: &str) -> Response {
    let bytes = s.uploads.remove(id).unwrap_or_default();
    if sha256(&bytes) != digest {
        return Response::error(400, "DIGEST_INVALID");
    }
    s.blobs.insert(digest.to_string(), bytes);
    s.linked.insert((repo.to_string(), digest.to_string()), ());
    Response::new(201)
        .header("Location", format!("/v2/{repo}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest)
}

fn manifest(s: &mut State, req: &Request, repo: &str, reference: &str) -> Response {
    let key = (repo.to_string(), reference.to_string());
    match req.method.as_str() {
        "GET" | "HEAD" => match s.manifests.get(&key) {
            Some((media_type, bytes)) => Response::new(200)
                .header("Content-Type", media_type.clone())
                .header("Docker-Content-Digest", sha256(bytes))
                .body(bytes.clone()),
            None => Response::error(404, "MANIFEST_UNKNOWN"),
        },
        "PUT" => {
            let digest = sha256(&req.body);
            if reference.starts_with("sha256:") && reference != digest {
                return Response::error(400, "DIGEST_INVALID");
            }
            let media_type = req.content_type.clone().unwrap_or_default();
            let entry = (media_type, req.body.clone());
            s.manifests
                .insert((repo.to_string(), digest.clone()), entry.clone());
            s.manifests.insert(key, entry);
            Response::new(201)
                .header("Location", format!("/v2/{repo}/manifests/{digest}"))
                .header("Docker-Content-Digest", digest)
        }
        _ => Response::error(405, "UNSUPPORTED"),
    }
}

fn tags(s: &State, repo: &str) -> Response {
    let mut tags: Vec<&str> = s
        .manifests
        .keys()
        .filter(|(r, t)| r == repo && !t.starts_with("sha256:"))
        .map(|(_, t)| t.as_str())
        .collect();
    tags.sort();
    let body = serde_json::json!({"name": repo, "tags": tags});
    Response::new(200)
        .header("Content-Type", "application/json")
        .body(body.to_string().into_bytes())
}

/// Reads one request: its head, then a `Content-Length` or chunked body.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut parts = first.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let (mut length, mut chunked, mut content_type) = (0usize, false, None);
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().ok()?,
            "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
            "content-type" => content_type = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(r)?
    } else {
        let mut b = vec![0; length];
        r.read_exact(&mut b).ok()?;
        b
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%2F", "/")))
        .collect();
    Some(Request {
        method,
        path: path.to_string(),
        query,
        content_type,
        body,
    })
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).ok()?;
        let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; n + 2]; // the chunk and its CRLF
        r.read_exact(&mut chunk).ok()?;
        if n == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..n]);
    }
}
