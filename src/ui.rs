//! `Ui`: cargo-style status lines on stderr (`   Compiling hello for …`), colored
//! when stderr is a terminal, silenced by `--quiet`; progress bars for pushes.

mod progress;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

pub use progress::Progress;

static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// A right-aligned green verb and a message, like cargo's progress lines.
pub fn status(verb: &str, message: &str) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    let _ = writeln!(std::io::stderr().lock(), "{}", status_line(verb, message));
}

fn status_line(verb: &str, message: &str) -> String {
    if color() {
        format!("\x1b[1;32m{verb:>12}\x1b[0m {message}")
    } else {
        format!("{verb:>12} {message}")
    }
}

pub fn warn(message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = if color() {
        writeln!(err, "\x1b[1;33mwarning\x1b[0m: {message}")
    } else {
        writeln!(err, "warning: {message}")
    };
}

/// A note on stderr, hidden by `-q`.
pub fn note(message: &str) {
    if is_quiet() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = if color() {
        writeln!(err, "\x1b[1;36mnote\x1b[0m: {message}")
    } else {
        writeln!(err, "note: {message}")
    };
}

pub fn error(message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = if color() {
        writeln!(err, "\x1b[1;31merror\x1b[0m: {message}")
    } else {
        writeln!(err, "error: {message}")
    };
}

/// `1.2 MiB`-style sizes.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(1536), "1.5 KiB");
        assert_eq!(super::size(3 * 1024 * 1024), "3.0 MiB");
    }
}
