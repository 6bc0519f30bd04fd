//! A small HTTP/1.1 proxy in front of a real registry, for the faults a healthy
//! registry never produces: corrupted blob bytes, oversized manifests, 503/429
//! with `Retry-After`, dropped connections. Everything else is forwarded as is,
//! one upstream connection per request. std only: a thread per connection.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug, Clone)]
pub enum Fault {
    /// GETs of this blob (`sha256:…`) get its bytes with one byte flipped.
    CorruptBlob(String),
    /// Every manifest GET gets a body over 4 MiB, with a `Content-Length` or
    /// (`chunked`) without one.
    HugeManifest { chunked: bool },
    /// The first `n` requests are answered `status` with `Retry-After: 1`.
    Status { n: usize, status: u16 },
    /// The first `n` requests are read, then the connection is closed unanswered.
    Drop { n: usize },
    /// The first `GET /v2/` (xarch's check of which scheme the host speaks)
    /// is read, then its connection is closed unanswered.
    DropProbe,
}

pub struct Proxy {
    pub host: String,
    state: Arc<State>,
}

struct State {
    upstream: String,
    fault: Fault,
    requests: AtomicUsize,
    faults: AtomicUsize,
    stop: AtomicBool,
}

/// Flips one byte in the middle: same length, different digest.
pub fn corrupt(bytes: &mut [u8]) {
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
}

/// Size of the body served for `HugeManifest`: just over the 4 MiB limit.
pub const HUGE: usize = (4 << 20) + 4096;

impl Proxy {
    pub fn start(upstream: &str, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            fault,
            requests: AtomicUsize::new(0),
            faults: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
        });
        Proxy { host, state }
    }

    /// HTTP requests received (TLS probes not counted).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Faults injected so far.
    pub fn faults(&self) -> usize {
        self.state.faults.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.host);
    }
}

struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or("")
    }

    fn path(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

fn serve(conn: TcpStream, s: &State) -> std::io::Result<()> {
    let mut client = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let first = client.fill_buf()?;
        // EOF, or a TLS ClientHello (xarch probes HTTPS first): hang up, as a
        // plain-HTTP server that cannot speak TLS would.
        if first.is_empty() || first[0] == 0x16 {
            return Ok(());
        }
        let req = read_message(&mut client, false)?;
        // `GET /v2/` alone is xarch's one-shot check of which scheme the host
        // speaks, not an API call: faults are for the requests that follow.
        if req.path() == "/v2/" {
            if matches!(s.fault, Fault::DropProbe)
                && s.faults
                    .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                return Ok(());
            }
            let resp = forward(&s.upstream, &req)?;
            write_response(&mut out, &req, &resp, false)?;
            continue;
        }
        let n = s.requests.fetch_add(1, Ordering::SeqCst);
        match &s.fault {
            Fault::Status { n: max, status } if n < *max => {
                s.faults.fetch_add(1, Ordering::SeqCst);
                write!(
                    out,
                    "HTTP/1.1 {status} Injected\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
                )?;
                continue;
            }
            Fault::Drop { n: max } if n < *max => {
                s.faults.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            _ => {}
        }
        let mut resp = forward(&s.upstream, &req)?;
        let chunked = inject(s, &req, &mut resp);
        write_response(&mut out, &req, &resp, chunked)?;
    }
}

/// Applies a response fault; true when the body must go out chunked.
fn inject(s: &State, req: &Message, resp: &mut Message) -> bool {
    let get = req.method() == "GET" && resp.status() == 200;
    match &s.fault {
        Fault::CorruptBlob(d) if get && req.path().ends_with(&format!("/blobs/{d}")) => {
            s.faults.fetch_add(1, Ordering::SeqCst);
            corrupt(&mut resp.body);
            false
        }
        Fault::HugeManifest { chunked } if get && req.path().contains("/manifests/") => {
            s.faults.fetch_add(1, Ordering::SeqCst);
            // Valid JSON, padded past the limit.
            let mut body = resp.body.clone();
            body.resize(HUGE, b' ');
            resp.body = body;
            *chunked
        }
        _ => false,
    }
}

/// One request to the registry on a fresh connection; the whole response.
fn forward(upstream: &str, req: &Message) -> std::io::Result<Message> {
    let mut up = TcpStream::connect(upstream)?;
    let mut head = format!("{}\r\n", req.start);
    for (k, v) in &req.headers {
        if !hop_by_hop(k) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if !req.body.is_empty() || matches!(req.method(), "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    let mut r = BufReader::new(up);
    read_message(&mut r, req.method() == "HEAD")
}

fn write_response(
    out: &mut TcpStream,
    req: &Message,
    resp: &Message,
    chunked: bool,
) -> std::io::Result<()> {
    let mut head = format!("{}\r\n", resp.start);
    for (k, v) in &resp.headers {
        // A HEAD answer keeps the registry's Content-Length (the blob's size).
        let keep_length = req.method() == "HEAD" && k.eq_ignore_ascii_case("content-length");
        if keep_length || !hop_by_hop(k) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        out.write_all(head.as_bytes())?;
        for c in resp.body.chunks(64 * 1024) {
            write!(out, "{:x}\r\n", c.len())?;
            out.write_all(c)?;
            out.write_all(b"\r\n")?;
        }
        return out.write_all(b"0\r\n\r\n");
    }
    if req.method() != "HEAD" {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(&resp.body)
}

/// Headers the proxy sets itself.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Reads a request or response: head, then the body by Content-Length, chunked
/// encoding, or (a response without either) to EOF.
fn read_message(r: &mut impl BufRead, head_only: bool) -> std::io::Result<Message> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let start = start.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut m = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let is_response = m.start.starts_with("HTTP/");
    let no_body = head_only || (is_response && matches!(m.status(), 100..=199 | 204 | 304));
    if no_body {
        return Ok(m);
    }
    if let Some(n) = m.header("content-length").and_then(|v| v.parse().ok()) {
        m.body = vec![0; n];
        r.read_exact(&mut m.body)?;
    } else if m
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        m.body = read_chunked(r)?;
    } else if is_response {
        r.read_to_end(&mut m.body)?;
    }
    Ok(m)
}

fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                let mut line = String::new();
                if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let at = body.len();
        body.resize(at + size, 0);
        r.read_exact(&mut body[at..])?;
        let mut crlf = String::new();
        r.read_line(&mut crlf)?;
    }
}
