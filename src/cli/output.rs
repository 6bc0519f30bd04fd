//! What commands print: short human summaries, or JSON for scripts.

use std::io::Write;

use anyhow::Result;

use crate::build::Report;
use crate::targets;
use crate::ui;

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
                    "zig": t.zig, "gcc": t.gcc, "qemu": t.qemu,
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
