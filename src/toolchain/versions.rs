//! Tool versions remembered on disk, so a no-op rebuild runs no `zig version`
//! or `go version`: each answer is kept under the cache's `toolchains/versions/`,
//! keyed by the command line, the program's real path, size and mtime (ns).
//!
//! Only a native executable (ELF) is remembered: its version follows from its
//! bytes, and an upgrade in place changes its mtime. A script — a pyenv shim,
//! `python3 -m ziglang`'s interpreter wrapper — may dispatch to anything that
//! changes while the script does not, so those are asked once per process.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The version `argv + args` printed last time, if its program is unchanged.
pub fn remembered(argv: &[String], args: &[String]) -> Option<String> {
    let text = std::fs::read_to_string(file(argv, args)?).ok()?;
    let line = text.trim();
    (!line.is_empty() && !line.contains('\n')).then(|| line.to_string())
}

/// Remembers `version` for `argv + args` (best effort: a cache that cannot be
/// written only costs the next run a probe).
pub fn remember(argv: &[String], args: &[String], version: &str) {
    if let Some(path) = file(argv, args) {
        write(&path, version);
    }
}

/// An answer remembered under `key` (a hash of everything it depends on).
pub fn remembered_answer(key: &str) -> Option<String> {
    let path = crate::cache::default_root()?
        .join("toolchains/versions")
        .join(key);
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.trim();
    (!line.is_empty() && !line.contains('\n')).then(|| line.to_string())
}

/// Remembers `answer` under `key` (best effort).
pub fn remember_answer(key: &str, answer: &str) {
    if let Some(root) = crate::cache::default_root() {
        write(&root.join("toolchains/versions").join(key), answer);
    }
}

fn write(path: &Path, text: &str) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
        let _ = std::io::Write::write_all(&mut tmp, text.as_bytes());
        let _ = tmp.persist(path);
    }
}

/// The real path, size and mtime (ns) of `program` (looked up on `PATH`).
pub fn stamp(program: &str) -> Option<String> {
    let real = std::fs::canonicalize(on_path(program)?).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    Some(format!(
        "{}\0{}\0{}.{}",
        real.display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

fn file(argv: &[String], args: &[String]) -> Option<PathBuf> {
    file_in(&crate::cache::default_root()?, argv, args)
}

/// `<cache>/toolchains/versions/<key>` for a single native program; None
/// for anything else (see the module doc).
fn file_in(root: &Path, argv: &[String], args: &[String]) -> Option<PathBuf> {
    let [program] = argv else { return None };
    let real = std::fs::canonicalize(on_path(program)?).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    if !is_elf(&real) {
        return None;
    }
    let mut h = Sha256::new();
    h.update(format!(
        "{}\0{}\0{}\0{}.{}\0",
        args.join(" "),
        real.display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ));
    Some(
        root.join("toolchains")
            .join("versions")
            .join(hex::encode(h.finalize())),
    )
}

/// `program` itself when it names a path, else its first hit on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_programs_are_remembered_scripts_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let bin = dir.path().join("tool");
        // A copy of a real ELF program stands in for a toolchain binary.
        std::fs::copy("/bin/true", &bin).unwrap();
        let shim = dir.path().join("shim");
        std::fs::write(&shim, "#!/bin/sh\nexec true \"$@\"\n").unwrap();
        let args = vec!["version".to_string()];
        let key = |p: &Path| file_in(&cache, &[p.display().to_string()], &args);
        assert!(key(&shim).is_none(), "a script is never remembered");
        let first = key(&bin).unwrap();
        assert!(first.starts_with(cache.join("toolchains/versions")));
        assert_eq!(key(&bin).unwrap(), first);
        // Replacing the program in place changes the key.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::copy("/bin/false", &bin).unwrap();
        assert_ne!(key(&bin).unwrap(), first);
        // A command line of several words (`python3 -m ziglang`) is not either.
        let words = ["/bin/true".to_string(), "-m".to_string()];
        assert!(file_in(&cache, &words, &args).is_none());
    }
}
