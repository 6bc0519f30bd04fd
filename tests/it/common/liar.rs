//! A lying registry: an HTTP/1.1 server on a free loopback port that answers
//! each request as the test's script says — forwarded to a real registry as it
//! is, or a crafted lie (a redirect, a 401 challenge, an endless, drip-fed,
//! oversized or short body, silence) — and records every request with its
//! `Authorization` header. One request per connection. std only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::Request;

/// A body as the liar sends it.
#[derive(Debug, Clone)]
pub enum Body {
    /// These bytes, with their `Content-Length`.
    Bytes(Vec<u8>),
    /// `Content-Length: declared`, then `bytes` (fewer, or more, than
    /// declared), then the connection closes.
    Declared { declared: u64, bytes: Vec<u8> },
    /// These bytes without a `Content-Length`: the body ends when the
    /// connection closes.
    UntilClose(Vec<u8>),
    /// Zeros, chunked, for as long as the client reads.
    Endless,
    /// One byte every `every`, chunked, for as long as the client waits.
    Drip { every: Duration },
}

/// How the liar answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Forward to the upstream registry as it is.
    Forward,
    Lie {
        status: u16,
        headers: Vec<(String, String)>,
        body: Body,
    },
    /// Read the request, then say nothing until the client gives up.
    Silence,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Lie {
            status,
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
        }
    }

    pub fn streaming(status: u16, body: Body) -> Reply {
        Reply::Lie {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Lie { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

/// One request the liar received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub authorization: Option<String>,
}

pub struct Liar {
    /// `127.0.0.1:PORT`
    pub host: String,
    state: Arc<State>,
}

struct State {
    upstream: Option<String>,
    seen: Mutex<Vec<Seen>>,
    /// Body bytes written by lies (what a client that reads forever would get).
    sent: AtomicU64,
    stop: AtomicBool,
}

type Script = dyn Fn(&Request) -> Reply + Send + Sync;

impl Liar {
    /// A liar in front of `upstream` (a real registry's host:port) when given;
    /// `Reply::Forward` without one is a 502.
    pub fn start(
        upstream: Option<&str>,
        script: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            upstream: upstream.map(String::from),
            seen: Mutex::default(),
            sent: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let script: Arc<Script> = Arc::new(script);
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, script) = (s.clone(), script.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &s, &*script);
                });
            }
        });
        Liar { host, state }
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The `Authorization` headers received (None for a request without one).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.seen().into_iter().map(|s| s.authorization).collect()
    }

    /// Body bytes the lies have written so far.
    pub fn sent(&self) -> u64 {
        self.state.sent.load(Ordering::SeqCst)
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.host);
    }
}

fn serve(conn: TcpStream, s: &State, script: &Script) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    // A TLS ClientHello (xarch probes HTTPS first on loopback): hang up, as a
    // plain-HTTP server that cannot speak TLS would.
    if reader.fill_buf()?.first().is_none_or(|b| *b == 0x16) {
        return Ok(());
    }
    let (head, req) = read_head(&mut reader)?;
    let len = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    let mut body = Vec::new();
    reader.by_ref().take(len).read_to_end(&mut body)?;
    s.seen.lock().unwrap().push(Seen {
        method: req.method.clone(),
        target: req.target.clone(),
        authorization: req.header("authorization").map(String::from),
    });
    let mut out = conn;
    match script(&req) {
        Reply::Forward => match &s.upstream {
            Some(up) => forward(up, &head, &body, &mut out),
            None => out.write_all(b"HTTP/1.1 502 No upstream\r\nContent-Length: 0\r\n\r\n"),
        },
        Reply::Silence => {
            let until = Instant::now() + Duration::from_secs(120);
            // Wait for the client to hang up (a read returns 0) or the test to end.
            out.set_read_timeout(Some(Duration::from_millis(200)))?;
            let mut byte = [0u8; 1];
            while Instant::now() < until && !s.stop.load(Ordering::SeqCst) {
                match out.read(&mut byte) {
                    Ok(0) => break,
                    _ => continue,
                }
            }
            Ok(())
        }
        Reply::Lie {
            status,
            headers,
            body,
        } => lie(&mut out, s, status, &headers, body),
    }
}

/// The request head as received (for forwarding) and parsed.
fn read_head(r: &mut impl BufRead) -> std::io::Result<(Vec<u8>, Request)> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&line);
    }
    let req =
        Request::parse(&String::from_utf8_lossy(&head)).ok_or(std::io::ErrorKind::InvalidData)?;
    Ok((head, req))
}

/// Sends the request on to the real registry (asking it to close after its
/// answer) and relays its answer byte for byte.
fn forward(upstream: &str, head: &[u8], body: &[u8], out: &mut TcpStream) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream)?;
    let text = String::from_utf8_lossy(head);
    let mut rewritten = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    up.write_all(rewritten.as_bytes())?;
    up.write_all(body)?;
    std::io::copy(&mut up, out)?;
    Ok(())
}

fn lie(
    out: &mut TcpStream,
    s: &State,
    status: u16,
    headers: &[(String, String)],
    body: Body,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} Lie\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let count = |n: usize| s.sent.fetch_add(n as u64, Ordering::SeqCst);
    match body {
        Body::Bytes(b) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            out.write_all(head.as_bytes())?;
            out.write_all(&b)?;
            count(b.len());
        }
        Body::Declared { declared, bytes } => {
            head.push_str(&format!("Content-Length: {declared}\r\n\r\n"));
            out.write_all(head.as_bytes())?;
            out.write_all(&bytes)?;
            count(bytes.len());
        }
        Body::UntilClose(b) => {
            head.push_str("\r\n");
            out.write_all(head.as_bytes())?;
            out.write_all(&b)?;
            count(b.len());
        }
        Body::Endless => {
            small_send_buffer(out);
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            out.write_all(head.as_bytes())?;
            let zeros = vec![0u8; 16 << 10];
            while !s.stop.load(Ordering::SeqCst) {
                write!(out, "{:x}\r\n", zeros.len())?;
                out.write_all(&zeros)?;
                out.write_all(b"\r\n")?;
                count(zeros.len());
            }
        }
        Body::Drip { every } => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            out.write_all(head.as_bytes())?;
            loop {
                let next = Instant::now() + every;
                while Instant::now() < next {
                    if s.stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(50).min(every));
                }
                out.write_all(b"1\r\n{\r\n")?;
                count(1);
            }
        }
    }
    Ok(())
}

/// A 4 KiB socket send buffer: what `sent` counts then stays close to what
/// the client has taken (plus its own receive buffer).
fn small_send_buffer(out: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt on a socket we own, with a c_int we own.
    unsafe {
        libc::setsockopt(
            out.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// What running a command cost: its output, its peak resident memory (KiB)
/// and its wall time.
pub struct Measured {
    pub out: std::process::Output,
    pub peak_rss_kib: u64,
    pub took: Duration,
    /// It outlived its time limit and was killed.
    pub killed: bool,
}

/// Runs `cmd` under GNU time, killing it after `limit`. (The kernel's rusage
/// of a child of this test process would count this process's own memory,
/// inherited until the exec; GNU time's child starts small.)
pub fn run_measured(cmd: &std::process::Command, limit: Duration) -> Measured {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    super::require("time", "apt-get install -y time");
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(cmd.get_program())
        .args(cmd.get_args())
        // Its own process group, so that a kill reaches xarch too.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let start = Instant::now();
    let mut child = timed.spawn().unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if !killed && start.elapsed() > limit {
            // SAFETY: a signal to the process group of a child not yet reaped.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    let text = std::fs::read_to_string(report.path()).unwrap_or_default();
    let peak_rss_kib = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or(u64::MAX);
    let out = std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    Measured {
        out,
        peak_rss_kib,
        took,
        killed,
    }
}
