//! `CcSet`: the C toolchain for one target (cc, c++, ar, ranlib, strip) from a
//! recipe (zig by default, or a system gcc), as small wrapper scripts so every
//! consumer — cargo's linker setting, the `cc` crate, make, cgo — gets one path
//! per tool, the way cargo-zigbuild does it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};

use super::recipe::{self, Found, Missing, Recipe};
use crate::targets::Target;

/// The C library a C toolchain targets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Libc {
    /// Static musl (the default: runs on any base, `static` and `scratch` too).
    #[default]
    Musl,
    /// glibc, optionally a minimum version such as `2.28` (zig only).
    Glibc(Option<String>),
}

impl Libc {
    /// `musl`, `gnu`, `glibc`, `gnu.2.28` or `glibc.2.28`.
    pub fn parse(s: &str) -> Result<Libc, String> {
        match s {
            "musl" => Ok(Libc::Musl),
            "gnu" | "glibc" => Ok(Libc::Glibc(None)),
            _ => match s.strip_prefix("gnu.").or_else(|| s.strip_prefix("glibc.")) {
                Some(v) if v.split('.').all(|p| p.parse::<u32>().is_ok()) => {
                    Ok(Libc::Glibc(Some(v.to_string())))
                }
                _ => Err(format!(
                    "`{s}` is not a C library; use \"musl\", \"gnu\" or \"gnu.2.28\""
                )),
            },
        }
    }
}

/// Wrapper scripts for one (toolchain, target, libc).
#[derive(Debug, Clone)]
pub struct CcSet {
    pub toolchain: String,
    pub cc: PathBuf,
    pub cxx: PathBuf,
    pub ar: PathBuf,
    pub ranlib: PathBuf,
    pub strip: PathBuf,
    /// zig's -target (or the gcc prefix), for messages.
    pub target_name: String,
    /// The tool's version line: part of build stamps, so an upgrade rebuilds.
    pub version: String,
}

/// The tool behind a toolchain recipe, found once per call site.
pub fn find(name: &str, target: &Target) -> Result<(Recipe, std::result::Result<Found, Missing>)> {
    let r = recipe::get(name)?;
    let found = r.find_tool(Some(target));
    Ok((r, found))
}

/// zig's `-target` for a platform and C library: `aarch64-linux-musl`,
/// `arm-linux-gnueabihf.2.28` …
pub fn zig_target(target: &Target, libc: &Libc) -> String {
    match libc {
        Libc::Musl => target.zig.clone(),
        Libc::Glibc(v) => {
            let gnu = target.zig.replace("musl", "gnu");
            match v {
                Some(v) => format!("{gnu}.{v}"),
                None => gnu,
            }
        }
    }
}

impl CcSet {
    /// Resolves the toolchain `name` for `target` and writes its wrappers under
    /// `dir`. Fails with the install command when the tool is missing.
    pub fn prepare(name: &str, target: &Target, libc: &Libc, dir: &Path) -> Result<CcSet> {
        let (recipe, found) = find(name, target)?;
        let found = found.map_err(|m| {
            anyhow::anyhow!(
                "{}: C toolchain for {}: {m}",
                target.platform,
                target.platform
            )
        })?;
        let zt = zig_target(target, libc);
        let cpu_flag = target
            .zig_cpu
            .as_ref()
            .map(|c| format!("-mcpu={c}"))
            .unwrap_or_default();
        let vars = [
            ("zig_target", zt.as_str()),
            ("zig_cpu_flag", cpu_flag.as_str()),
        ];
        let mut scripts = Vec::new();
        for (cmd, file) in [
            ("cc", "cc"),
            ("cxx", "c++"),
            ("ar", "ar"),
            ("ranlib", "ranlib"),
            ("strip", "strip"),
        ] {
            let argv = recipe.command(cmd, &found, target, &vars)?;
            scripts.push((file, argv));
        }
        let key = hash_key(&scripts);
        let out = dir.join(format!("{name}-{}-{key}", target.platform.slug()));
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        for (file, argv) in &scripts {
            let filter = matches!(*file, "cc" | "c++");
            write_script(&out.join(file), argv, filter)?;
        }
        Ok(CcSet {
            toolchain: name.to_string(),
            cc: out.join("cc"),
            cxx: out.join("c++"),
            ar: out.join("ar"),
            ranlib: out.join("ranlib"),
            strip: out.join("strip"),
            target_name: if name == "zig" {
                zt
            } else {
                target.gcc.clone()
            },
            version: found.version.clone(),
        })
    }

    /// `CC`, `CXX`, `AR`, `RANLIB`, `STRIP` for a build command.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("CC", &self.cc),
            ("CXX", &self.cxx),
            ("AR", &self.ar),
            ("RANLIB", &self.ranlib),
            ("STRIP", &self.strip),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.display().to_string()))
        .collect()
    }
}

fn hash_key(scripts: &[(&str, Vec<String>)]) -> String {
    let mut h = Sha256::new();
    for (f, argv) in scripts {
        h.update(f.as_bytes());
        for a in argv {
            h.update([0]);
            h.update(a.as_bytes());
        }
        h.update([1]);
    }
    hex::encode(&h.finalize()[..6])
}

/// Drops the `--target=<rust triple>` the `cc` crate adds for clang-like
/// compilers (zig has its own `-target` and rejects Rust's triples), and swaps
/// rustc's `-lgcc_s` for zig's libunwind (zig ships no libgcc_s), as
/// cargo-zigbuild does.
const FILTER: &str = "for a in \"$@\"; do shift; case \"$a\" in --target=*) ;; -lgcc_s) set -- \"$@\" -lunwind;; *) set -- \"$@\" \"$a\";; esac; done\n";

/// `#!/bin/sh` + `exec ARGV "$@"`, written atomically and only when it changed,
/// so concurrent builds never see half a script.
fn write_script(path: &Path, argv: &[String], filter: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    let text = format!(
        "#!/bin/sh\n{}exec {} \"$@\"\n",
        if filter { FILTER } else { "" },
        quoted.join(" ")
    );
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    let dir = path.parent().expect("script has a parent");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=+:,@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_parsing() {
        assert_eq!(Libc::parse("musl").unwrap(), Libc::Musl);
        assert_eq!(
            Libc::parse("gnu.2.28").unwrap(),
            Libc::Glibc(Some("2.28".into()))
        );
        assert!(Libc::parse("gnu.x").is_err());
    }

    #[test]
    fn zig_targets_follow_libc() {
        let t = crate::targets::lookup("linux/arm/v7").unwrap();
        assert_eq!(zig_target(t, &Libc::Musl), "arm-linux-musleabihf");
        assert_eq!(
            zig_target(t, &Libc::Glibc(Some("2.28".into()))),
            "arm-linux-gnueabihf.2.28"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("-mcpu=generic+v7a"), "-mcpu=generic+v7a");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
