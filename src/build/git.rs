//! `GitInfo`: the revision, commit time and source URL of the project's checkout,
//! for annotations and the reproducible timestamp.

use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GitInfo {
    pub revision: Option<String>,
    pub commit_time: Option<u64>,
    pub source: Option<String>,
    /// The checked-out branch (None when detached).
    pub branch: Option<String>,
    /// A tag pointing exactly at HEAD.
    pub tag: Option<String>,
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

pub fn read(dir: &Path) -> GitInfo {
    GitInfo {
        revision: git(dir, &["rev-parse", "HEAD"]),
        commit_time: git(dir, &["log", "-1", "--format=%ct"]).and_then(|s| s.parse().ok()),
        source: git(dir, &["remote", "get-url", "origin"])
            .filter(|u| is_remote_url(u))
            .map(|u| public_url(&u)),
        branch: git(dir, &["symbolic-ref", "--short", "-q", "HEAD"]),
        tag: git(dir, &["describe", "--tags", "--exact-match", "HEAD"]),
    }
}

/// A remote on another machine (`https://…`, `ssh://…`, `git@host:org/repo`),
/// not a local path: a path names nothing for the image's users and leaks the
/// build machine's layout.
fn is_remote_url(u: &str) -> bool {
    if u.starts_with("file://") {
        return false;
    }
    if u.contains("://") {
        return true;
    }
    // scp-like `[user@]host:path`: a colon before any slash.
    match (u.find(':'), u.find('/')) {
        (Some(c), Some(s)) => c < s && c > 0,
        (Some(c), None) => c > 0,
        _ => false,
    }
}

/// Drops credentials from a remote URL and turns scp-style `git@host:org/repo`
/// into `https://host/org/repo`: a URL fit for a public annotation.
pub fn public_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let rest = match rest.split_once('@') {
            Some((userinfo, host)) if !userinfo.contains('/') => host,
            _ => rest,
        };
        let scheme = if scheme == "ssh" || scheme == "git" {
            "https"
        } else {
            scheme
        };
        return format!("{scheme}://{}", rest.trim_end_matches(".git"));
    }
    if let Some((user_host, path)) = url.split_once(':') {
        let host = user_host.rsplit('@').next().unwrap_or(user_host);
        return format!("https://{host}/{}", path.trim_end_matches(".git"));
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::public_url;

    #[test]
    fn local_paths_are_not_sources() {
        assert!(!super::is_remote_url("/work/main"));
        assert!(!super::is_remote_url("../other"));
        assert!(!super::is_remote_url("file:///srv/git/app"));
        assert!(super::is_remote_url("git@example.com:o/r.git"));
        assert!(super::is_remote_url("https://example.com/o/r"));
    }

    #[test]
    fn urls_lose_credentials() {
        assert_eq!(
            public_url("https://user:tok@example.com/o/r.git"),
            "https://example.com/o/r"
        );
        assert_eq!(
            public_url("git@example.com:o/r.git"),
            "https://example.com/o/r"
        );
        assert_eq!(
            public_url("ssh://git@example.com/o/r"),
            "https://example.com/o/r"
        );
        assert_eq!(
            public_url("https://example.com/o/r"),
            "https://example.com/o/r"
        );
    }
}
