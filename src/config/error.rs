//! `ConfigError`: a configuration problem pinned to `file:line:col`, with the key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub key: Option<String>,
    pub message: String,
    pub snippet: String,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if let Some(k) = &self.key {
            write!(f, "key `{k}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if !self.snippet.is_empty() {
            write!(f, "\n{}", self.snippet)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// An error at byte range `span` of `source` (the text of `file`).
    pub fn at(file: &Path, source: &str, span: Option<Range<usize>>, message: &str) -> Self {
        let start = span
            .as_ref()
            .map(|s| s.start)
            .unwrap_or(0)
            .min(source.len());
        let (line, col) = line_col(source, start);
        let line_text = source.lines().nth(line - 1).unwrap_or("");
        let snippet = if span.is_some() {
            format!(
                "  {line:>4} | {line_text}\n       | {}^",
                " ".repeat(col - 1)
            )
        } else {
            String::new()
        };
        ConfigError {
            file: file.to_path_buf(),
            line,
            col,
            key: span
                .map(|_| key_at(source, start))
                .filter(|k| !k.is_empty()),
            message: tidy(message),
            snippet,
        }
    }

    pub fn from_toml(file: &Path, source: &str, e: &toml::de::Error) -> Self {
        Self::at(file, source, e.span(), e.message())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, source[line_start..offset].chars().count() + 1)
}

/// The dotted key whose value sits at `offset`: the `[table]` header above it plus
/// the `key =` on its line (or the header itself when the offset is inside one).
fn key_at(source: &str, offset: usize) -> String {
    let line_start = source[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = source[line_start..].lines().next().unwrap_or("");
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        return trimmed
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    }
    let key = match line.split_once('=') {
        Some((k, _)) if line_start + k.len() <= offset || offset == line_start => k.trim(),
        _ => "",
    };
    let header = source[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[\""))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    match (header, key) {
        (Some(h), "") => h,
        (Some(h), k) => format!("{h}.{k}"),
        (None, k) => k.to_string(),
    }
}

/// toml's messages end with a newline and sometimes repeat themselves.
fn tidy(message: &str) -> String {
    message.trim().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let s = "a = 1\nbb = [\n  2]\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, s.find("2]").unwrap()), (3, 3));
    }

    #[test]
    fn key_includes_the_table() {
        let s = "name = \"x\"\n[platform.\"linux/arm64\"]\nenv = 5\n";
        let at = s.find('5').unwrap();
        assert_eq!(key_at(s, at), "platform.\"linux/arm64\".env");
        assert_eq!(key_at(s, 0), "name");
    }
}
