//! `Target`: what one OCI platform means to each toolchain, from the built-in
//! `targets.toml` table (embedded at compile time).

use std::sync::OnceLock;

use serde::Deserialize;
use target_lexicon::{Architecture, Endianness, Environment, PointerWidth, Triple};

use crate::platform::Platform;

const TABLE: &str = include_str!("../targets.toml");

/// One row of `targets.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(deserialize_with = "de_platform")]
    pub platform: Platform,
    pub rust: String,
    pub rust_gnu: String,
    pub goos: String,
    pub goarch: String,
    pub goarm: Option<String>,
    pub go386: Option<String>,
    pub zig: String,
    pub zig_cpu: Option<String>,
    pub gcc: String,
    pub qemu: String,
    /// The glibc dynamic loader for this platform.
    pub interp: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    target: Vec<Target>,
}

fn de_platform<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Platform, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// Every built-in target, in table order.
pub fn all() -> &'static [Target] {
    static TARGETS: OnceLock<Vec<Target>> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let table: Table = toml::from_str(TABLE).expect("built-in targets.toml is valid");
        table.target
    })
}

/// An unknown or unsupported platform; the message lists the valid ones.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown platform `{input}`; valid platforms: {}", valid_list())]
pub struct UnknownPlatform {
    pub input: String,
}

pub fn valid_list() -> String {
    let names: Vec<String> = all().iter().map(|t| t.platform.to_string()).collect();
    format!("{} (or `all`)", names.join(", "))
}

/// The target for a platform string such as `arm64` or `linux/arm/v7`.
pub fn lookup(input: &str) -> Result<&'static Target, UnknownPlatform> {
    let unknown = || UnknownPlatform {
        input: input.to_string(),
    };
    let platform: Platform = input.parse().map_err(|_| unknown())?;
    find(&platform).ok_or_else(unknown)
}

pub fn find(platform: &Platform) -> Option<&'static Target> {
    all().iter().find(|t| t.platform.matches(platform))
}

/// Parses a comma-separated list (`linux/amd64,arm64`, `all`), keeping order and
/// dropping duplicates.
pub fn parse_list(list: &[String]) -> Result<Vec<&'static Target>, UnknownPlatform> {
    let mut out: Vec<&'static Target> = Vec::new();
    for item in list.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let found: Vec<&'static Target> = if item == "all" {
            all().iter().collect()
        } else {
            vec![lookup(item)?]
        };
        for t in found {
            if !out.iter().any(|o| o.platform == t.platform) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// What an ELF binary built for a triple looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfExpectation {
    pub machine: u16,
    pub class64: bool,
    pub little_endian: bool,
    /// For 32-bit ARM: Some(true) = hard-float ABI, Some(false) = soft-float.
    pub arm_hard_float: Option<bool>,
    pub description: String,
    /// The glibc loader a dynamically linked binary must ask for (empty: any).
    pub glibc_interp: String,
}

impl Target {
    pub fn triple(&self) -> Triple {
        self.rust.parse().expect("built-in triple parses")
    }

    /// The ELF header fields a binary for this target must carry, derived from the
    /// Rust triple through target-lexicon.
    pub fn elf(&self) -> ElfExpectation {
        ElfExpectation {
            glibc_interp: self.interp.clone(),
            ..elf_for(&self.triple())
        }
    }

    /// Rust's std for this triple is musl (static by default).
    pub fn is_musl(&self) -> bool {
        self.rust.contains("-musl")
    }

    /// Every column by name, for `{column}` templates in toolchain recipes.
    pub fn columns(&self) -> Vec<(&'static str, String)> {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        vec![
            ("platform", self.platform.to_string()),
            ("rust", self.rust.clone()),
            ("rust_gnu", self.rust_gnu.clone()),
            ("goos", self.goos.clone()),
            ("goarch", self.goarch.clone()),
            ("goarm", opt(&self.goarm)),
            ("go386", opt(&self.go386)),
            ("zig", self.zig.clone()),
            ("zig_cpu", opt(&self.zig_cpu)),
            ("gcc", self.gcc.clone()),
            ("qemu", self.qemu.clone()),
            ("interp", self.interp.clone()),
        ]
    }

    /// buildx's TARGETARCH/TARGETVARIANT names.
    pub fn buildx_env(&self) -> Vec<(String, String)> {
        let p = &self.platform;
        vec![
            ("TARGETPLATFORM".into(), p.to_string()),
            ("TARGETOS".into(), p.os.clone()),
            ("TARGETARCH".into(), p.architecture.clone()),
            (
                "TARGETVARIANT".into(),
                p.variant.clone().unwrap_or_default(),
            ),
        ]
    }
}

pub fn elf_for(triple: &Triple) -> ElfExpectation {
    use goblin::elf::header::*;
    let machine = match triple.architecture {
        Architecture::X86_64 => EM_X86_64,
        Architecture::X86_32(_) => EM_386,
        Architecture::Aarch64(_) => EM_AARCH64,
        Architecture::Arm(_) => EM_ARM,
        Architecture::Powerpc64 | Architecture::Powerpc64le => EM_PPC64,
        Architecture::Powerpc => EM_PPC,
        Architecture::S390x => EM_S390,
        Architecture::Riscv64(_) | Architecture::Riscv32(_) => EM_RISCV,
        Architecture::Mips32(_) | Architecture::Mips64(_) => EM_MIPS,
        _ => EM_NONE,
    };
    let class64 = triple
        .pointer_width()
        .map(|w| w == PointerWidth::U64)
        .unwrap_or(true);
    let little_endian = triple
        .endianness()
        .map(|e| e == Endianness::Little)
        .unwrap_or(true);
    let arm_hard_float = matches!(triple.architecture, Architecture::Arm(_)).then(|| {
        matches!(
            triple.environment,
            Environment::Gnueabihf | Environment::Musleabihf | Environment::Eabihf
        )
    });
    ElfExpectation {
        machine,
        class64,
        little_endian,
        arm_hard_float,
        description: describe(machine, class64, little_endian, arm_hard_float),
        glibc_interp: String::new(),
    }
}

/// A human name such as `ELF 32-bit LSB ARM (hard-float)`.
pub fn describe(machine: u16, class64: bool, little: bool, hard_float: Option<bool>) -> String {
    let bits = if class64 { 64 } else { 32 };
    let endian = if little { "LSB" } else { "MSB" };
    let name = goblin::elf::header::machine_to_str(machine);
    let abi = match hard_float {
        Some(true) => " (hard-float)",
        Some(false) => " (soft-float)",
        None => "",
    };
    format!("ELF {bits}-bit {endian} {name}{abi}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_the_platforms_that_matter() {
        for p in [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/386",
            "linux/ppc64le",
            "linux/s390x",
            "linux/riscv64",
        ] {
            let t = lookup(p).unwrap();
            assert_eq!(t.platform.to_string(), p);
            t.triple();
        }
    }

    #[test]
    fn unknown_platform_lists_valid_ones() {
        let e = lookup("linux/mips").unwrap_err().to_string();
        assert!(e.contains("unknown platform `linux/mips`"), "{e}");
        assert!(
            e.contains("linux/arm/v7") && e.contains("linux/riscv64"),
            "{e}"
        );
    }

    #[test]
    fn list_parsing_dedupes_and_expands_all() {
        let l = parse_list(&["amd64,linux/amd64".into(), "aarch64".into()]).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(parse_list(&["all".into()]).unwrap().len(), all().len());
    }

    #[test]
    fn elf_expectations_follow_the_triple() {
        let s390 = lookup("linux/s390x").unwrap().elf();
        assert!(!s390.little_endian && s390.class64);
        let armv7 = lookup("linux/arm/v7").unwrap().elf();
        assert_eq!(armv7.arm_hard_float, Some(true));
        assert!(!armv7.class64);
        let i386 = lookup("linux/386").unwrap().elf();
        assert_eq!(i386.machine, goblin::elf::header::EM_386);
    }
}
