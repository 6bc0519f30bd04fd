//! `Platform`: an OCI platform (os/architecture/variant), parsed and normalized the
//! way containerd does, so `aarch64`, `arm64/v8` and `linux/arm64` are one platform.

use std::fmt;
use std::str::FromStr;

/// An OCI platform, always in normalized form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// A platform string that could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform `{input}`: {reason}")]
pub struct ParsePlatformError {
    pub input: String,
    pub reason: String,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let (architecture, variant) = normalize_arch(architecture, variant.unwrap_or(""));
        Platform {
            os: normalize_os(os),
            architecture,
            variant,
        }
    }

    /// True when this platform can run images built for `other` with no emulation:
    /// equal platforms, or an arm64 entry without a variant against `arm64/v8`.
    pub fn matches(&self, other: &Platform) -> bool {
        self == other
    }

    /// The machine xarch runs on (buildx's BUILDPLATFORM).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// A file-name-safe form: `linux-arm-v7`.
    pub fn slug(&self) -> String {
        self.to_string().replace('/', "-")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = ParsePlatformError;

    /// Accepts `os/arch[/variant]` and, like containerd, a bare `arch[/variant]`
    /// (the OS defaults to linux) or a bare OS is refused.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ParsePlatformError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim().to_ascii_lowercase();
        if s.is_empty() {
            return Err(err("empty platform"));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("empty component"));
        }
        let (os, arch, variant) = match parts.as_slice() {
            [one] if is_known_os(one) => return Err(err("missing architecture")),
            [arch] => ("linux", *arch, ""),
            [a, b] if is_known_os(a) => (*a, *b, ""),
            [arch, variant] => ("linux", *arch, *variant),
            [os, arch, variant] => (*os, *arch, *variant),
            _ => return Err(err("expected os/arch[/variant]")),
        };
        let variant = (!variant.is_empty()).then_some(variant);
        Ok(Platform::new(os, arch, variant))
    }
}

fn is_known_os(s: &str) -> bool {
    matches!(
        s,
        "linux" | "windows" | "darwin" | "macos" | "freebsd" | "netbsd" | "openbsd" | "unknown"
    )
}

fn normalize_os(os: &str) -> String {
    match os {
        "macos" => "darwin".to_string(),
        other => other.to_string(),
    }
}

/// containerd's `normalizeArch`, plus the Debian names users type (`armhf`, `armel`).
fn normalize_arch(arch: &str, variant: &str) -> (String, Option<String>) {
    let v = |s: &str| (!s.is_empty()).then(|| s.to_string());
    match (arch, variant) {
        ("i386" | "i486" | "i586" | "i686" | "x86" | "386", _) => ("386".into(), None),
        ("x86_64" | "x86-64" | "amd64", "" | "v1") => ("amd64".into(), None),
        ("x86_64" | "x86-64" | "amd64", var) => ("amd64".into(), v(var)),
        ("aarch64" | "arm64", "" | "v8" | "8") => ("arm64".into(), None),
        ("aarch64" | "arm64", var) => ("arm64".into(), v(var)),
        ("armhf", _) => ("arm".into(), Some("v7".into())),
        ("armel", _) => ("arm".into(), Some("v6".into())),
        ("arm" | "armv7" | "armv7l", "" | "7" | "v7") => ("arm".into(), Some("v7".into())),
        ("arm" | "armv6" | "armv6l", "6" | "v6") => ("arm".into(), Some("v6".into())),
        ("armv6" | "armv6l", "") => ("arm".into(), Some("v6".into())),
        ("arm" | "armv5" | "armv5l", "5" | "v5") => ("arm".into(), Some("v5".into())),
        ("arm", "8" | "v8") => ("arm".into(), Some("v8".into())),
        ("ppc64el" | "powerpc64le" | "ppc64le", _) => ("ppc64le".into(), v(variant)),
        ("riscv64gc" | "riscv64", _) => ("riscv64".into(), v(variant)),
        (other, var) => (other.to_string(), v(var)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        s.parse::<Platform>().unwrap().to_string()
    }

    #[test]
    fn normalizes_like_containerd() {
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("arm64/v8"), "linux/arm64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("armhf"), "linux/arm/v7");
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("armel"), "linux/arm/v6");
        assert_eq!(p("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(p("x86_64"), "linux/amd64");
        assert_eq!(p("linux/x86_64"), "linux/amd64");
        assert_eq!(p("LINUX/AMD64"), "linux/amd64");
        assert_eq!(p("i686"), "linux/386");
        assert_eq!(p("linux/i386"), "linux/386");
        assert_eq!(p("ppc64el"), "linux/ppc64le");
        assert_eq!(p("linux/s390x"), "linux/s390x");
        assert_eq!(p("linux/amd64/v3"), "linux/amd64/v3");
    }

    #[test]
    fn refuses_malformed() {
        for bad in ["", "linux", "linux//arm", "a/b/c/d", "linux/"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn arm64_variant_v8_equals_none() {
        let a: Platform = "linux/arm64".parse().unwrap();
        let b = Platform::new("linux", "arm64", Some("v8"));
        assert!(a.matches(&b));
    }
}
