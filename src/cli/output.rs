//! What commands print: short human summaries, or JSON for scripts.

use std::io::Write;

use anyhow::Result;

use crate::build::Report;
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
    mode: &str,
) -> Result<()> {
    let problems = checks.iter().filter(|c| !c.ready).count();
    if mode.ends_with("json") {
        println!("{}", serde_json::to_string_pretty(checks)?);
    } else if mode == "list" {
        let mut out = std::io::stdout().lock();
        write!(out, "{:<15}", "PLATFORM")?;
        for l in langs {
            write!(out, " {:<34}", l.to_uppercase())?;
        }
        writeln!(out)?;
        // Rows are platforms, in `langs` order.
        for row in checks.chunks(langs.len()) {
            write!(out, "{:<15}", row[0].platform)?;
            for c in row {
                let cell = if c.ready {
                    format!("ready: {}", c.detail)
                } else {
                    format!("missing: {}", c.fixes.join(" && "))
                };
                write!(out, " {:<34}", cell)?;
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
    if problems > 0 && mode.starts_with("doctor") {
        anyhow::bail!(
            "{problems} of {} checks failed; run the fixes above (or `xarch toolchain install`)",
            checks.len()
        );
    }
    Ok(())
}
