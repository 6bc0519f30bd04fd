//! `ProjectConfig`: what `xarch.toml` or `[package.metadata.xarch]` in Cargo.toml
//! says about the image. Unknown keys, wrong types and bad values fail with
//! `file:line:col` and the key's name.

pub mod error;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

pub use error::ConfigError;

use crate::targets;

/// The image section: top level of `xarch.toml`, or `[package.metadata.xarch]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageConfig {
    /// Repository name for the image (default: the package name).
    pub name: Option<String>,
    /// Tags to write (default: `latest`).
    pub tags: Option<Vec<String>>,
    /// Platforms to build (default: linux/amd64 and linux/arm64).
    pub platforms: Option<Vec<Spanned<String>>>,
    /// `static`, `scratch`, or an image reference.
    pub base: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub ports: Option<Vec<Port>>,
    pub files: Option<Vec<FileEntry>>,
    /// Where binaries land in the image (default `/usr/local/bin`).
    pub bin_dir: Option<String>,
    /// Layer compression: `gzip` (default), `zstd` or `none`.
    pub compression: Option<String>,
    /// gzip 0–9 (default 6), zstd 1–22 (default 3).
    pub compression_level: Option<i32>,
    /// Rust: binaries of the package to put in the image (default: all).
    pub bins: Option<Vec<String>>,
    pub package: Option<String>,
    pub features: Option<Vec<String>>,
    pub all_features: Option<bool>,
    pub no_default_features: Option<bool>,
    pub profile: Option<String>,
    pub rustflags: Option<Vec<String>>,
    /// Version for annotations and templates (default: Cargo's, else none).
    pub version: Option<String>,
    /// The language keys of `[[build]]` may sit at the top level for a
    /// one-language project (see `Component`).
    pub lang: Option<Lang>,
    pub packages: Option<Vec<String>>,
    pub ldflags: Option<Vec<String>>,
    pub cgo: Option<bool>,
    pub sources: Option<Vec<String>>,
    pub output: Option<String>,
    pub cflags: Option<Vec<String>>,
    pub command: Option<String>,
    pub artifacts: Option<Vec<String>>,
    pub toolchain: Option<String>,
    pub libc: Option<String>,
    /// Directory of the top-level build, relative to the project (default `.`).
    pub dir: Option<String>,
    /// Several builds into one image (mixed languages).
    pub build: Option<Vec<Component>>,
    /// Several images from one configuration (`[images.NAME]`), built together.
    /// Each inherits the top-level image settings it does not set.
    pub images: Option<BTreeMap<String, ImageConfig>>,
    /// Per-platform overrides, keyed by platform (`[platform."linux/arm64"]`).
    pub platform: Option<BTreeMap<Spanned<String>, PlatformOverride>>,
}

/// One build of binaries: a Rust package, a Go module or C sources/command.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Component {
    /// `rust`, `go` or `c` (default: from Cargo.toml or go.mod in `dir`).
    pub lang: Option<Lang>,
    /// Directory of this build, relative to the project (default `.`).
    pub dir: Option<String>,
    /// Go: package patterns (default `./...`, every main package).
    pub packages: Option<Vec<String>>,
    /// Go and C: linker flags; `{{version}}`, `{{git.sha}}` … are expanded.
    pub ldflags: Option<Vec<String>>,
    /// Go: build with cgo (CC is zig for the target).
    pub cgo: Option<bool>,
    /// C: sources compiled and linked into `output`.
    pub sources: Option<Vec<String>>,
    pub output: Option<String>,
    pub cflags: Option<Vec<String>>,
    /// C: a build command run once per platform (`make`, a script …).
    pub command: Option<String>,
    /// C: the files `command` writes under `$OUT`.
    pub artifacts: Option<Vec<String>>,
    /// C toolchain recipe: `zig` (default) or `gcc`.
    pub toolchain: Option<String>,
    /// C library: `musl` (default, static), `gnu` or `gnu.2.28`.
    pub libc: Option<String>,
    /// Rust keys, for a Rust build listed in `[[build]]`.
    pub package: Option<String>,
    pub bins: Option<Vec<String>>,
    pub features: Option<Vec<String>>,
}

/// Fills each unset field of `$child` from `$parent`.
macro_rules! inherit {
    ($child:ident, $parent:ident, $($f:ident),*) => {
        $( if $child.$f.is_none() { $child.$f = $parent.$f.clone(); } )*
    };
}

impl ImageConfig {
    /// The images this configuration defines, by name: `[images.NAME]` with
    /// the top-level settings inherited, or the top level itself (name None).
    pub fn image_list(&self) -> Vec<(Option<String>, ImageConfig)> {
        let Some(images) = &self.images else {
            return vec![(None, self.clone())];
        };
        images
            .iter()
            .map(|(name, own)| {
                let mut c = own.clone();
                let top = self;
                inherit!(
                    c,
                    top,
                    tags,
                    platforms,
                    base,
                    env,
                    workdir,
                    user,
                    labels,
                    annotations,
                    ports,
                    files,
                    bin_dir,
                    compression,
                    compression_level,
                    profile,
                    rustflags,
                    version,
                    platform,
                    libc,
                    toolchain,
                    all_features,
                    no_default_features
                );
                if c.name.is_none() {
                    c.name = Some(name.clone());
                }
                (Some(name.clone()), c)
            })
            .collect()
    }

    /// The builds of this image: `[[build]]`, else one from the top-level keys.
    pub fn components(&self) -> Vec<Component> {
        if let Some(b) = &self.build {
            return b.clone();
        }
        vec![Component {
            lang: self.lang,
            dir: self.dir.clone(),
            packages: self.packages.clone(),
            ldflags: self.ldflags.clone(),
            cgo: self.cgo,
            sources: self.sources.clone(),
            output: self.output.clone(),
            cflags: self.cflags.clone(),
            command: self.command.clone(),
            artifacts: self.artifacts.clone(),
            toolchain: self.toolchain.clone(),
            libc: self.libc.clone(),
            package: self.package.clone(),
            bins: self.bins.clone(),
            features: self.features.clone(),
        }]
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Go,
    C,
}

/// `[platform."os/arch"]`: changes for one platform only.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlatformOverride {
    /// Base image for this platform only.
    pub base: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub features: Option<Vec<String>>,
    pub rustflags: Option<Vec<String>>,
    /// Go/C linker flags added for this platform.
    pub ldflags: Option<Vec<String>>,
    /// C toolchain recipe for this platform (`zig`, `gcc`).
    pub toolchain: Option<String>,
}

/// `[[files]]`: a file or directory from the project copied into the image.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the project directory; a directory is copied whole.
    pub src: String,
    /// Absolute path in the image.
    pub dest: String,
    /// Permission bits for files (directories get 0755): `0o644` or `"0644"`.
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

/// An exposed port: `8080` (tcp) or `"53/udp"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port(pub String);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a file mode such as 0o644 or \"0644\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Mode, E> {
                // Files rarely need setuid/setgid/sticky bits; a larger number is
                // almost always a decimal typo for an octal mode (644 for 0o644).
                if (0..=0o777).contains(&v) {
                    Ok(Mode(v as u32))
                } else if (0..=0o7777).contains(&v) {
                    // Either a decimal typo (644) or an octal literal with
                    // setuid/setgid/sticky bits (0o4755 reads as 2541): say both.
                    Err(E::custom(format!(
                        "mode {v} is not a plain file mode; if you meant octal {v}, write 0o{v} or \"{v}\"; \
                         for 0o{v:o} (special bits) write \"{v:o}\""
                    )))
                } else {
                    Err(E::custom(format!(
                        "mode {v} is not a file mode; write it in octal: 0o{v} or \"{v}\""
                    )))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Mode, E> {
                let digits = v.trim_start_matches("0o");
                match u32::from_str_radix(digits, 8) {
                    Ok(m) if m <= 0o7777 => Ok(Mode(m)),
                    _ => Err(E::custom(format!(
                        "`{v}` is not an octal file mode like \"0644\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port such as 8080 or \"53/udp\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                if (1..=65535).contains(&v) {
                    Ok(Port(format!("{v}/tcp")))
                } else {
                    Err(E::custom(format!("port {v} is out of range (1 to 65535)")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                parse_port(v).map(Port).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `8080` → `8080/tcp`; `53/udp` stays; anything else is refused.
pub fn parse_port(v: &str) -> Result<String, String> {
    let (num, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    let ok_num = num.parse::<u16>().map(|n| n > 0).unwrap_or(false);
    let ok_proto = matches!(proto, "tcp" | "udp" | "sctp");
    if ok_num && ok_proto {
        Ok(format!("{num}/{proto}"))
    } else {
        Err(format!(
            "`{v}` is not a port like 8080, \"8080/tcp\" or \"53/udp\""
        ))
    }
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub image: ImageConfig,
    /// The file it was read from (None: no configuration found).
    pub file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct CargoToml {
    package: Option<CargoPackage>,
}

#[derive(Deserialize)]
struct CargoPackage {
    metadata: Option<CargoMetadata>,
}

#[derive(Deserialize)]
struct CargoMetadata {
    xarch: Option<ImageConfig>,
}

/// Loads `xarch.toml` from `dir`, else `[package.metadata.xarch]` from its
/// Cargo.toml, else an empty configuration.
pub fn load(dir: &Path) -> Result<Loaded, ConfigError> {
    let xarch = dir.join("xarch.toml");
    if xarch.is_file() {
        let source = read(&xarch)?;
        let image: ImageConfig =
            toml::from_str(&source).map_err(|e| ConfigError::from_toml(&xarch, &source, &e))?;
        validate(&image, &xarch, &source)?;
        return Ok(Loaded {
            image,
            file: Some(xarch),
        });
    }
    let cargo = dir.join("Cargo.toml");
    if cargo.is_file() {
        let source = read(&cargo)?;
        let parsed: CargoToml =
            toml::from_str(&source).map_err(|e| ConfigError::from_toml(&cargo, &source, &e))?;
        if let Some(image) = parsed
            .package
            .and_then(|p| p.metadata)
            .and_then(|m| m.xarch)
        {
            validate(&image, &cargo, &source)?;
            return Ok(Loaded {
                image,
                file: Some(cargo),
            });
        }
    }
    Ok(Loaded::default())
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 1,
        col: 1,
        key: None,
        message: format!("cannot read: {e}"),
        snippet: String::new(),
    })
}

/// Checks values serde cannot: platforms exist, paths are absolute.
fn validate(c: &ImageConfig, file: &Path, source: &str) -> Result<(), ConfigError> {
    let platform_err = |s: &Spanned<String>| {
        let e = targets::lookup(s.get_ref()).err()?;
        Some(ConfigError::at(
            file,
            source,
            Some(s.span()),
            &e.to_string(),
        ))
    };
    for p in c.platforms.iter().flatten() {
        if p.get_ref() == "all" {
            continue;
        }
        if let Some(e) = platform_err(p) {
            return Err(e);
        }
    }
    for key in c.platform.iter().flat_map(|m| m.keys()) {
        if let Some(e) = platform_err(key) {
            return Err(e);
        }
    }
    let find = |needle: &str| source.find(needle).map(|i| i..i + needle.len());
    for f in c.files.iter().flatten() {
        if !f.dest.starts_with('/') {
            let span = find(&format!("\"{}\"", f.dest));
            let msg = format!(
                "files: dest `{}` must be an absolute path in the image",
                f.dest
            );
            return Err(ConfigError::at(file, source, span, &msg));
        }
    }
    if let Some(d) = c.bin_dir.as_ref().filter(|d| !d.starts_with('/')) {
        let msg = format!("`{d}` must be an absolute path in the image");
        return Err(ConfigError::at(
            file,
            source,
            find(&format!("\"{d}\"")),
            &msg,
        ));
    }
    if c.compression.is_some() || c.compression_level.is_some() {
        let name = c.compression.as_deref().unwrap_or("gzip");
        if let Err(e) = crate::oci::Compression::parse(name, c.compression_level) {
            return Err(ConfigError::at(
                file,
                source,
                find("compression"),
                &e.to_string(),
            ));
        }
    }
    if c.images.is_some() && c.build.is_some() {
        let msg = "[[build]] at the top level is not used when [images.NAME] lists the images: \
                   move it under [images.NAME]";
        return Err(ConfigError::at(file, source, find("[[build]]"), msg));
    }
    if c.images.is_some()
        && let Some(key) = top_level_build_key(c).filter(|k| !matches!(*k, "libc" | "toolchain"))
    {
        let msg = format!(
            "`{key}` at the top level is not used when [images.NAME] lists the images: move it under [images.NAME]"
        );
        return Err(ConfigError::at(file, source, find(key), &msg));
    }
    if c.build.is_some()
        && let Some(key) = top_level_build_key(c)
    {
        let msg = format!(
            "`{key}` at the top level is ignored when [[build]] lists the builds: move it into a [[build]]"
        );
        return Err(ConfigError::at(file, source, find(key), &msg));
    }
    for (name, img) in c.images.iter().flatten() {
        if img.images.is_some() {
            let msg = format!("images.{name}: an image cannot define `images` of its own");
            return Err(ConfigError::at(file, source, find("images"), &msg));
        }
        validate(img, file, source)?;
    }
    Ok(())
}

/// The first build key set at the top level, if any.
fn top_level_build_key(c: &ImageConfig) -> Option<&'static str> {
    [
        ("lang", c.lang.is_some()),
        ("dir", c.dir.is_some()),
        ("packages", c.packages.is_some()),
        ("ldflags", c.ldflags.is_some()),
        ("cgo", c.cgo.is_some()),
        ("sources", c.sources.is_some()),
        ("output", c.output.is_some()),
        ("cflags", c.cflags.is_some()),
        ("command", c.command.is_some()),
        ("artifacts", c.artifacts.is_some()),
        ("toolchain", c.toolchain.is_some()),
        ("libc", c.libc.is_some()),
        ("package", c.package.is_some()),
        ("bins", c.bins.is_some()),
        ("features", c.features.is_some()),
    ]
    .into_iter()
    .find_map(|(k, set)| set.then_some(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(name: &str, text: &str) -> Result<Loaded, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), text).unwrap();
        let r = load(dir.path());
        drop(dir);
        r
    }

    #[test]
    fn reads_every_key() {
        let text = r#"
name = "app"
tags = ["1.0"]
platforms = ["linux/amd64", "arm64"]
base = "static"
entrypoint = ["/usr/local/bin/app"]
cmd = ["--help"]
env = { RUST_LOG = "info" }
workdir = "/data"
user = "nonroot"
labels = { team = "core" }
annotations = { "org.example.k" = "v" }
ports = [8080, "53/udp"]
bin-dir = "/app"
bins = ["app"]
features = ["fast"]
profile = "release"
rustflags = ["-Copt-level=3"]

[[files]]
src = "static"
dest = "/srv/static"
mode = 0o644

[platform."linux/arm64"]
env = { ARCH = "arm64" }
features = ["neon"]
"#;
        let c = load_str("xarch.toml", text).unwrap().image;
        assert_eq!(c.name.as_deref(), Some("app"));
        assert_eq!(
            c.ports.unwrap(),
            vec![Port("8080/tcp".into()), Port("53/udp".into())]
        );
        assert_eq!(c.files.unwrap()[0].mode, Some(Mode(0o644)));
        let over = c.platform.unwrap();
        assert_eq!(
            over.values().next().unwrap().features.as_ref().unwrap()[0],
            "neon"
        );
    }

    #[test]
    fn builds_and_images_are_checked_like_the_top_level() {
        let e = load_str(
            "xarch.toml",
            "[[build]]\nlang = \"go\"\n\n[[build]]\nsoruces = [\"a.c\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.to_string().contains("soruces"), "{e}");
        let e = load_str(
            "xarch.toml",
            "sources = [\"a.c\"]\n[[build]]\nlang = \"go\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert!(e.message.contains("move it into a [[build]]"), "{e}");
        let e = load_str("xarch.toml", "[[build]]\nlang = \"cobol\"\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 8), "{e}");
        let e = load_str(
            "xarch.toml",
            "platforms = [\"amd64\"]\n[images.api]\nplatforms = [\"linux/vax\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let c = load_str(
            "xarch.toml",
            "tags = [\"1\"]\nbase = \"scratch\"\n[images.api]\ndir = \"api\"\n[images.web]\nbase = \"static\"\n",
        )
        .unwrap()
        .image;
        let list = c.image_list();
        assert_eq!(list.len(), 2);
        let (name, api) = &list[0];
        assert_eq!(name.as_deref(), Some("api"));
        assert_eq!(api.name.as_deref(), Some("api"));
        assert_eq!(api.base.as_deref(), Some("scratch"));
        assert_eq!(api.tags, Some(vec!["1".to_string()]));
        assert_eq!(api.components()[0].dir.as_deref(), Some("api"));
        assert_eq!(list[1].1.base.as_deref(), Some("static"));
    }

    #[test]
    fn unknown_key_has_file_line_col_and_name() {
        let e = load_str("xarch.toml", "name = \"a\"\nentrypont = [\"x\"]\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("xarch.toml:2:1"), "{s}");
        assert!(s.contains("entrypont"), "{s}");
    }

    #[test]
    fn type_error_names_the_key() {
        let e = load_str(
            "xarch.toml",
            "name = \"a\"\n[platform.\"linux/arm64\"]\nenv = 5\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.col), (3, 7));
        assert_eq!(e.key.as_deref(), Some("platform.\"linux/arm64\".env"));
    }

    #[test]
    fn bad_platform_is_pinned_and_lists_valid() {
        let e = load_str(
            "xarch.toml",
            "platforms = [\"linux/amd64\", \"linux/sparc\"]\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.col), (1, 29));
        assert!(e.message.contains("valid platforms"), "{}", e.message);
    }

    #[test]
    fn cargo_metadata_section_is_read_with_cargo_positions() {
        let text = "[package]\nname = \"x\"\nversion = \"0.1.0\"\n\n[package.metadata.xarch]\nbase = \"scratch\"\nport = 1\n";
        let e = load_str("Cargo.toml", text).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{}", e.file.display())));
        assert_eq!(e.line, 7);
        assert!(e.file.ends_with("Cargo.toml"));
        let ok = "[package]\nname = \"x\"\n[package.metadata.xarch]\nbase = \"scratch\"\n";
        assert_eq!(
            load_str("Cargo.toml", ok).unwrap().image.base.as_deref(),
            Some("scratch")
        );
    }

    #[test]
    fn bad_mode_and_port() {
        assert!(
            load_str(
                "xarch.toml",
                "[[files]]\nsrc=\"a\"\ndest=\"/a\"\nmode=\"9z\"\n"
            )
            .is_err()
        );
        assert!(load_str("xarch.toml", "ports = [70000]\n").is_err());
        let e = load_str(
            "xarch.toml",
            "[[files]]\nsrc=\"a\"\ndest=\"/a\"\nmode=644\n",
        )
        .unwrap_err();
        assert!(e.message.contains("0o644"), "{}", e.message);
        let e = load_str("xarch.toml", "[[files]]\nsrc=\"a\"\ndest=\"rel\"\n").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
