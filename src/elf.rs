//! `ElfCheck`: proves a binary was built for the platform it is about to ship on,
//! so an "exec format error" never reaches an image.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use goblin::elf::header::{self, EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, ELFMAG, SELFMAG};

use crate::targets::{ElfExpectation, describe};

const EF_ARM_ABI_FLOAT_SOFT: u32 = 0x200;
const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;

/// What an ELF file's header says about the CPU it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub machine: u16,
    pub class64: bool,
    pub little_endian: bool,
    pub arm_hard_float: Option<bool>,
}

impl ElfInfo {
    pub fn describe(&self) -> String {
        describe(
            self.machine,
            self.class64,
            self.little_endian,
            self.arm_hard_float,
        )
    }
}

/// Reads only the ELF header (64 bytes), never the whole binary.
pub fn read(path: &Path) -> Result<Option<ElfInfo>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut header = Vec::with_capacity(64);
    file.take(64).read_to_end(&mut header)?;
    Ok(parse(&header))
}

/// Parses an ELF header; None when the bytes are not ELF.
pub fn parse(bytes: &[u8]) -> Option<ElfInfo> {
    if bytes.len() < 0x34 || &bytes[..SELFMAG] != ELFMAG {
        return None;
    }
    let class64 = bytes[EI_CLASS] == ELFCLASS64;
    let little_endian = bytes[EI_DATA] == ELFDATA2LSB;
    let u16_at = |o: usize| {
        let b = [bytes[o], bytes[o + 1]];
        if little_endian {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let u32_at = |o: usize| {
        let b = [bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]];
        if little_endian {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let machine = u16_at(0x12);
    // e_flags sits after e_entry/e_phoff/e_shoff, whose width depends on the class.
    let flags_at = if class64 { 0x30 } else { 0x24 };
    if bytes.len() < flags_at + 4 {
        return None;
    }
    let flags = u32_at(flags_at);
    // EABI v5 marks soft-float explicitly; an unmarked binary (Go's linker writes
    // no float flag) is taken as compatible with either ABI.
    let arm_hard_float = (machine == header::EM_ARM && !class64)
        .then_some(flags & EF_ARM_ABI_FLOAT_HARD != 0 || flags & EF_ARM_ABI_FLOAT_SOFT == 0);
    Some(ElfInfo {
        machine,
        class64,
        little_endian,
        arm_hard_float,
    })
}

/// Fails unless `path` is an ELF binary for `expected`, naming the file, what it is
/// and what was expected.
pub fn check(path: &Path, expected: &ElfExpectation, platform: &str) -> Result<()> {
    let Some(info) = read(path)? else {
        bail!(
            "{} is not an ELF binary, expected {} for {platform}",
            path.display(),
            expected.description
        );
    };
    let arch_ok = info.machine == expected.machine
        && info.class64 == expected.class64
        && info.little_endian == expected.little_endian;
    let abi_ok = match (expected.arm_hard_float, info.arm_hard_float) {
        (Some(want), Some(got)) => want == got,
        _ => true,
    };
    if !(arch_ok && abi_ok) {
        bail!(
            "{} is {}, but {platform} needs {}",
            path.display(),
            info.describe(),
            expected.description
        );
    }
    check_interp(path, expected, platform)
}

/// A dynamically linked binary must ask for its platform's loader: the glibc
/// one from targets.toml, or musl's `ld-musl-*`. A glibc loader for another
/// CPU means the binary came from the wrong sysroot and would never start.
fn check_interp(path: &Path, expected: &ElfExpectation, platform: &str) -> Result<()> {
    let Some(interp) = interpreter(path)? else {
        return Ok(());
    };
    let musl = interp.contains("/ld-musl-");
    if musl || expected.glibc_interp.is_empty() || interp == expected.glibc_interp {
        return Ok(());
    }
    bail!(
        "{} asks for the dynamic loader {interp}, but {platform}'s glibc loader is {}",
        path.display(),
        expected.glibc_interp
    )
}

/// The PT_INTERP path of a dynamically linked ELF binary (None: static).
pub fn interpreter(path: &Path) -> Result<Option<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let elf = goblin::elf::Elf::parse(&bytes)
        .with_context(|| format!("{} is not a well-formed ELF file", path.display()))?;
    Ok(elf.interpreter.map(String::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class64: bool, little: bool, machine: u16, flags: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(ELFMAG);
        b[EI_CLASS] = if class64 { 2 } else { 1 };
        b[EI_DATA] = if little { 1 } else { 2 };
        let m = if little {
            machine.to_le_bytes()
        } else {
            machine.to_be_bytes()
        };
        b[0x12..0x14].copy_from_slice(&m);
        let at = if class64 { 0x30 } else { 0x24 };
        let f = if little {
            flags.to_le_bytes()
        } else {
            flags.to_be_bytes()
        };
        b[at..at + 4].copy_from_slice(&f);
        b
    }

    #[test]
    fn reads_machine_class_endianness() {
        let i = parse(&header(true, false, header::EM_S390, 0)).unwrap();
        assert_eq!(i.machine, header::EM_S390);
        assert!(i.class64 && !i.little_endian);
        assert_eq!(i.arm_hard_float, None);
    }

    #[test]
    fn reads_arm_float_abi() {
        let hard = parse(&header(false, true, header::EM_ARM, 0x0500_0400)).unwrap();
        assert_eq!(hard.arm_hard_float, Some(true));
        let soft = parse(&header(false, true, header::EM_ARM, 0x0500_0200)).unwrap();
        assert_eq!(soft.arm_hard_float, Some(false));
    }

    #[test]
    fn not_elf_is_none() {
        assert!(parse(b"#!/bin/sh\necho hi\n").is_none());
        assert!(parse(&[0x7f, b'E', b'L', b'F']).is_none());
    }

    #[test]
    fn mismatch_names_file_and_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app");
        std::fs::write(&f, header(true, true, header::EM_X86_64, 0)).unwrap();
        let t = crate::targets::lookup("linux/arm64").unwrap();
        let e = check(&f, &t.elf(), "linux/arm64").unwrap_err().to_string();
        assert!(e.contains("app is ELF 64-bit LSB X86_64"), "{e}");
        assert!(
            e.contains("linux/arm64 needs ELF 64-bit LSB AARCH64"),
            "{e}"
        );
        let amd = crate::targets::lookup("linux/amd64").unwrap();
        check(&f, &amd.elf(), "linux/amd64").unwrap();
    }
}
