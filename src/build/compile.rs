//! The compile and check steps: every toolchain checked first (a missing one
//! fails before any compile), each build run, then every binary's ELF header
//! checked against its platform before anything is layered.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use super::Plan;
use super::project::{self, Artifacts, Builder};
use crate::base::BaseSpec;
use crate::cache::Cache;
use crate::elf;
use crate::targets::Target;
use crate::toolchain::Artifact;
use crate::ui;

/// Runs each build; binaries from several builds share one image.
pub fn compile(plan: &Plan, builders: &[Builder], cache: &Cache) -> Result<Artifacts> {
    let tools = cache.root().join("toolchains");
    let jobs = plan.jobs();
    for b in builders {
        b.preflight(&jobs, plan.install, &tools)?;
    }
    let mut all: Artifacts = BTreeMap::new();
    for (i, b) in builders.iter().enumerate() {
        let out = project::out_dir(&plan.target_dir, plan.image_key.as_deref(), i, b);
        for (platform, bins) in b.build(&jobs, &out, &tools, plan.jobs)? {
            let have = all.entry(platform.clone()).or_default();
            for a in bins {
                if have.iter().any(|h| h.name == a.name) {
                    bail!(
                        "two builds produce a binary named `{}` for {platform}; rename one (`output`, `bins`)",
                        a.name
                    );
                }
                have.push(a);
            }
        }
    }
    Ok(all)
}

/// Every binary must be an ELF for its platform before it is layered.
pub fn check(plan: &Plan, artifacts: &Artifacts) -> Result<()> {
    for target in &plan.targets {
        let bins = artifacts
            .get(&target.platform)
            .with_context(|| format!("no binaries were built for {}", target.platform))?;
        for b in bins {
            elf::check(&b.path, &target.elf(), &target.platform.to_string())?;
            warn_if_dynamic_on_builtin(plan, target, b)?;
        }
    }
    Ok(())
}

/// The built-in bases hold no C library: a dynamically linked binary would
/// fail there with "not found", so say so while it can still be fixed.
fn warn_if_dynamic_on_builtin(plan: &Plan, target: &Target, b: &Artifact) -> Result<()> {
    let BaseSpec::Builtin(base) = &plan.bases[&target.platform] else {
        return Ok(());
    };
    if let Some(loader) = elf::interpreter(&b.path)? {
        ui::warn(&format!(
            "{} for {} is dynamically linked (loader {loader}), but the `{base}` base has no C \
             library: it will not start there; use a base with glibc, or libc = \"musl\"",
            b.name, target.platform
        ));
    }
    Ok(())
}
