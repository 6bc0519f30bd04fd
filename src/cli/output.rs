//! What commands print: short human summaries, or JSON for scripts.

use std::io::Write;

use anyhow::Result;

use serde_json::Value;

use crate::build::Report;
use crate::inspect::{ConfigView, Image, Inspection};
use crate::oci::annotations as ann;
use crate::targets;
use crate::ui;

/// One report as before; several (from `[images.NAME]`) one after another, or
/// as a JSON array.
pub fn build_reports(reports: &[Report], json: bool) -> Result<()> {
    match reports {
        [one] => build_report(one, json),
        many if json => {
            println!("{}", serde_json::to_string_pretty(many)?);
            Ok(())
        }
        many => many.iter().try_for_each(|r| build_report(r, false)),
    }
}

pub fn build_report(r: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}  {}  index, {} platforms",
        r.index.digest,
        r.refs.join(", "),
        r.images.len()
    )?;
    for i in &r.images {
        writeln!(
            out,
            "  {:<16} {}  {:>9}  {}  on {}",
            i.platform,
            i.digest,
            ui::size(i.size),
            i.binaries.join(", "),
            i.base
        )?;
    }
    if let Some(layout) = &r.layout {
        for name in &r.refs {
            let tag = name.rsplit(':').next().unwrap_or(name);
            writeln!(
                out,
                "written to {} (oci:{}:{tag})",
                layout.display(),
                layout.display()
            )?;
        }
    }
    for p in &r.pushed {
        writeln!(out, "{p}")?;
    }
    Ok(())
}

pub fn targets(json: bool) -> Result<()> {
    let all = targets::all();
    if json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|t| {
                serde_json::json!({
                    "platform": t.platform.to_string(),
                    "rust": t.rust, "rust_gnu": t.rust_gnu,
                    "goos": t.goos, "goarch": t.goarch, "goarm": t.goarm, "go386": t.go386,
                    "zig": t.zig, "zig_cpu": t.zig_cpu, "gcc": t.gcc, "qemu": t.qemu,
                    "interp": t.interp,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<15} {:<32} {:<22} {:<24} {:<20} QEMU",
        "PLATFORM", "RUST", "GO", "ZIG", "GCC"
    )?;
    for t in all {
        let mut go = format!("{}/{}", t.goos, t.goarch);
        if let Some(arm) = &t.goarm {
            go.push_str(&format!(" GOARM={arm}"));
        }
        if let Some(x) = &t.go386 {
            go.push_str(&format!(" GO386={x}"));
        }
        writeln!(
            out,
            "{:<15} {:<32} {:<22} {:<24} {:<20} qemu-{}-static",
            t.platform.to_string(),
            t.rust,
            go,
            t.zig,
            t.gcc,
            t.qemu
        )?;
    }
    Ok(())
}

/// `xarch toolchain list` (a table), `doctor` (problems and fixes) or JSON.
pub fn toolchain_checks(
    checks: &[crate::toolchain::doctor::Check],
    langs: &[&str],
    action: crate::toolchain::doctor::Action,
    json: bool,
) -> Result<()> {
    use crate::toolchain::doctor::Action;
    let problems = checks.iter().filter(|c| !c.ready).count();
    if json {
        println!("{}", serde_json::to_string_pretty(checks)?);
    } else if action == Action::List {
        let cell = |c: &crate::toolchain::doctor::Check| {
            if c.ready {
                format!("ready: {}", c.detail)
            } else {
                format!("missing: {}", c.fixes.join(" && "))
            }
        };
        // Each column as wide as its widest cell, so rows line up.
        let widths: Vec<usize> = (0..langs.len())
            .map(|i| {
                checks
                    .chunks(langs.len())
                    .map(|row| cell(&row[i]).chars().count())
                    .chain([langs[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = std::io::stdout().lock();
        write!(out, "{:<15}", "PLATFORM")?;
        for (l, w) in langs.iter().zip(&widths) {
            write!(out, " {:<w$}", l.to_uppercase())?;
        }
        writeln!(out)?;
        // Rows are platforms, in `langs` order.
        for row in checks.chunks(langs.len()) {
            write!(out, "{:<15}", row[0].platform)?;
            for (c, w) in row.iter().zip(&widths) {
                write!(out, " {:<w$}", cell(c))?;
            }
            writeln!(out)?;
        }
    } else {
        let mut out = std::io::stdout().lock();
        for c in checks {
            let mark = if c.ready { "ok " } else { "ERR" };
            writeln!(out, "{mark} {:<14} {:<5} {}", c.platform, c.lang, c.detail)?;
            for f in &c.fixes {
                writeln!(out, "      fix: {f}")?;
            }
        }
        if problems == 0 {
            writeln!(out, "all {} checks passed", checks.len())?;
        }
    }
    if problems > 0 && action == Action::Doctor {
        anyhow::bail!(
            "{problems} of {} checks failed; run the fixes above (or `xarch toolchain install`)",
            checks.len()
        );
    }
    Ok(())
}

/// `xarch inspect`: the manifest or index, then each image as a branch with its
/// config and layers (full digests, so they can be compared and copied).
pub fn inspection(i: &Inspection, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(i)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", i.reference)?;
    writeln!(out, "  digest      {}", i.digest)?;
    writeln!(out, "  type        {}", i.media_type)?;
    writeln!(out, "  size        {}", ui::size(i.size))?;
    if !i.index {
        // A single manifest: its details sit right under it.
        let img = &i.images[0];
        let platform = img.platform.as_deref().unwrap_or("(unknown)");
        writeln!(out, "  platform    {platform}")?;
        writeln!(out, "  total       {}", ui::size(img.total_size))?;
        return image_lines(&mut out, img, "  ");
    }
    if let Some(c) = i.annotations.get(ann::CREATED) {
        writeln!(out, "  created     {c}")?;
    }
    annotation_lines(&mut out, &i.annotations, "  ")?;
    writeln!(out, "  images      {}", i.images.len())?;
    for (n, img) in i.images.iter().enumerate() {
        let last = n + 1 == i.images.len();
        let (branch, rest) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        writeln!(
            out,
            "  {branch}{}  {}  {}",
            img.platform.as_deref().unwrap_or("(no platform)"),
            img.digest,
            ui::size(img.total_size)
        )?;
        writeln!(out, "  {rest}type        {}", img.media_type)?;
        image_lines(&mut out, img, &format!("  {rest}"))?;
    }
    Ok(())
}

fn image_lines(out: &mut impl Write, img: &Image, pad: &str) -> Result<()> {
    if let Some(note) = &img.note {
        writeln!(out, "{pad}{note}")?;
        return Ok(());
    }
    if let Some(c) = &img.created {
        writeln!(out, "{pad}created     {c}")?;
    }
    if let Some(b) = &img.base {
        let name = b.name.as_deref().unwrap_or("?");
        match &b.digest {
            Some(d) => writeln!(out, "{pad}base        {name}@{d}")?,
            None => writeln!(out, "{pad}base        {name}")?,
        }
    }
    annotation_lines(out, &img.annotations, pad)?;
    if let Some(c) = &img.config {
        writeln!(out, "{pad}config      {}  {}", c.digest, ui::size(c.size))?;
    }
    for l in &img.layers {
        writeln!(
            out,
            "{pad}layer       {}  {:>10}  {}",
            l.digest,
            ui::size(l.size),
            l.media_type
        )?;
    }
    Ok(())
}

/// Annotations other than those shown on their own lines (created, base).
fn annotation_lines(
    out: &mut impl Write,
    a: &std::collections::BTreeMap<String, String>,
    pad: &str,
) -> Result<()> {
    for (k, v) in a {
        if [ann::CREATED, ann::BASE_NAME, ann::BASE_DIGEST].contains(&k.as_str()) {
            continue;
        }
        writeln!(out, "{pad}annotation  {k}={v}")?;
    }
    Ok(())
}

/// `xarch inspect --config`: what a container of this image runs, and how the
/// image was made.
pub fn image_config(c: &ConfigView, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&c.json)?);
        return Ok(());
    }
    let cfg = &c.json["config"];
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}  {}", c.reference, c.platform)?;
    writeln!(out, "  manifest    {}", c.manifest)?;
    writeln!(
        out,
        "  config      {}  {}",
        c.config.digest,
        ui::size(c.config.size)
    )?;
    if let Some(t) = c.json["created"].as_str() {
        writeln!(out, "  created     {t}")?;
    }
    let text = |k: &str| cfg[k].as_str().filter(|s| !s.is_empty()).map(String::from);
    // Arrays as JSON: exactly what the runtime gets, quoting included.
    let list = |k: &str| {
        cfg[k]
            .as_array()
            .map(|a| Value::Array(a.clone()).to_string())
    };
    let rows = [
        ("user", text("User")),
        ("entrypoint", list("Entrypoint")),
        ("cmd", list("Cmd")),
        ("workdir", text("WorkingDir")),
    ];
    for (k, v) in rows {
        writeln!(out, "  {k:<11} {}", v.as_deref().unwrap_or("(none)"))?;
    }
    if let Some(s) = text("StopSignal") {
        writeln!(out, "  stopsignal  {s}")?;
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect()
    };
    let labels: Vec<String> = cfg["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for (k, vals) in [
        ("env", strings(&cfg["Env"])),
        ("ports", keys(&cfg["ExposedPorts"])),
        ("volumes", keys(&cfg["Volumes"])),
        ("labels", labels),
    ] {
        for (n, v) in vals.iter().enumerate() {
            let key = if n == 0 { k } else { "" };
            writeln!(out, "  {key:<11} {v}")?;
        }
    }
    let history = c.json["history"].as_array().cloned().unwrap_or_default();
    let steps = if history.len() == 1 { "step" } else { "steps" };
    writeln!(out, "  history     {} {steps}", history.len())?;
    for h in &history {
        let created = h["created"].as_str().unwrap_or("-");
        let by = h["created_by"].as_str().unwrap_or("");
        let empty = if h["empty_layer"].as_bool() == Some(true) {
            "  (no layer)"
        } else {
            ""
        };
        writeln!(out, "    {created}  {by}{empty}")?;
    }
    Ok(())
}

/// What a CI merge job needs from a platform job: one `REGISTRY/REPO@sha256:…`
/// line per pushed image, ready to pass to `xarch manifest create`.
pub fn digest_file(path: &std::path::Path, pinned: &[String]) -> Result<()> {
    let text: String = pinned.iter().map(|p| format!("{p}\n")).collect();
    write_atomic(path, text.as_bytes())
}

/// The shard's metadata (one pushed image; several images: a JSON array).
pub fn metadata_file(path: &std::path::Path, reports: &[Report]) -> Result<()> {
    let all: Vec<_> = reports.iter().filter_map(Report::metadata).collect();
    let json = match all.as_slice() {
        [] => anyhow::bail!("--metadata-file: nothing was pushed (add --push or --push-by-digest)"),
        [one] => serde_json::to_vec_pretty(one)?,
        many => serde_json::to_vec_pretty(many)?,
    };
    write_atomic(path, &json)
}

/// Writes a file through a temp file and a rename, so a reader never sees half.
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use anyhow::Context;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.write_all(bytes)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `xarch referrers`: per subject (the root, then each image), its referrers.
pub fn referrers(all: &[crate::referrers::Attached], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(all)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for a in all {
        let what = a.platform.as_deref().unwrap_or("(root)");
        writeln!(out, "{} {what}", a.subject)?;
        if a.referrers.is_empty() {
            writeln!(out, "  (nothing attached)")?;
        }
        for r in &a.referrers {
            let kind = r.artifact_type.as_deref().unwrap_or(&r.media_type);
            writeln!(out, "  {}  {kind}  {}", r.digest, ui::size(r.size))?;
        }
    }
    Ok(())
}
