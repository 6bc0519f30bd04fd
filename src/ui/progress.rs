//! `Progress`: what a push shows while blobs move. On a terminal, a bar per blob
//! in flight (indicatif), with each finished step printed above the bars; when
//! stderr is not a terminal, one status line per finished step (logs stay
//! readable); nothing with `--quiet`.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Lines,
    Bars(MultiProgress),
}

impl Progress {
    pub fn new() -> Progress {
        let mode = if super::is_quiet() {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Progress { mode }
    }

    /// A bar for `total` bytes of `what`, shown only on a terminal.
    pub fn bar(&self, verb: &str, what: &str, total: u64) -> Bar {
        let Mode::Bars(multi) = &self.mode else {
            return Bar(None);
        };
        let template = if super::color() {
            "{prefix:>12.cyan.bold} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
        } else {
            "{prefix:>12} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
        };
        let style = ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> ");
        let bar = ProgressBar::new(total)
            .with_style(style)
            .with_prefix(verb.to_string())
            .with_message(what.to_string());
        Bar(Some(multi.add(bar)))
    }

    /// A finished step: above the bars on a terminal, else a status line.
    pub fn done(&self, verb: &str, message: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => super::status(verb, message),
            Mode::Bars(multi) => {
                let _ = multi.println(super::status_line(verb, message));
            }
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// One blob's bar (or nothing off a terminal); cleared when dropped.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// The bar to advance as bytes move, if one is drawn.
    pub fn get(&self) -> Option<&ProgressBar> {
        self.0.as_ref()
    }

    /// Starts over under a new verb (a copy: first fetched, then uploaded).
    pub fn restart(&self, verb: &str) {
        if let Some(b) = &self.0 {
            b.set_prefix(verb.to_string());
            b.set_position(0);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
