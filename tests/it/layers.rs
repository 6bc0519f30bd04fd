//! The modules' dependency direction (like go-containerregistry's depcheck):
//! a module may use only modules of a lower rank, so `oci` never knows a
//! registry, `registry` never a layout or a toolchain, and nothing below `cli`
//! prints for a command. The ranks are written down in docs/architecture.md.

use std::collections::BTreeMap;
use std::path::Path;

/// Rank of each top-level module of `src/`; imports must go strictly down.
const RANKS: &[(&str, u8)] = &[
    ("platform", 0),
    ("ui", 0),
    ("runtime", 0),
    ("template", 0),
    ("epoch", 0),
    ("targets", 1),
    ("oci", 1),
    ("elf", 2),
    ("registry", 2),
    ("rootfs", 2),
    ("config", 2),
    ("cache", 3),
    ("image", 4),
    ("toolchain", 4),
    ("sink", 5),
    ("base", 5),
    ("attest", 5),
    ("run", 6),
    ("sign", 6),
    ("build", 7),
    ("inspect", 7),
    ("manifest", 7),
    ("rebase", 7),
    ("publish", 7),
    ("load", 7),
    ("referrers", 7),
    ("cli", 8),
];

fn rank(m: &str) -> Option<u8> {
    RANKS.iter().find(|(n, _)| *n == m).map(|(_, r)| *r)
}

/// (file, NAME) for every `crate::NAME` in `path`, a file or a directory tree.
fn uses(path: &Path, out: &mut Vec<(String, String)>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            uses(&e.unwrap().path(), out);
        }
        return;
    }
    if path.extension().is_none_or(|x| x != "rs") {
        return;
    }
    let text = std::fs::read_to_string(path).unwrap();
    // Code only: a comment may name any module.
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            // `crate::{a, b::c}`: the first segment of each path in the group.
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .map(|p| p.trim().split("::").next().unwrap_or(""))
                .filter(|n| !n.is_empty())
                .collect(),
            None => vec![ident(rest)],
        };
        for n in names {
            out.push((path.display().to_string(), ident(n).to_string()));
        }
    }
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

#[test]
fn lower_modules_never_use_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    let mut unranked = BTreeMap::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let module = p.file_stem().unwrap().to_string_lossy().to_string();
        if ["lib", "main", "bin"].contains(&module.as_str()) {
            continue;
        }
        let Some(r) = rank(&module) else {
            unranked.insert(module, ());
            continue;
        };
        let mut found = Vec::new();
        uses(&p, &mut found);
        for (file, used) in found {
            if used == module {
                continue;
            }
            match rank(&used) {
                Some(u) if u < r => {}
                Some(u) => bad.push(format!(
                    "{file}: {module} (rank {r}) uses {used} (rank {u})"
                )),
                None => bad.push(format!("{file}: uses unknown module {used}")),
            }
        }
    }
    assert!(
        unranked.is_empty(),
        "modules with no rank (add them to RANKS and docs/architecture.md): {:?}",
        unranked.keys().collect::<Vec<_>>()
    );
    assert!(bad.is_empty(), "upward dependencies:\n{}", bad.join("\n"));
}
