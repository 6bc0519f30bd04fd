//! The build orchestrator: plan → compile → check → assemble → write.

pub mod git;
pub mod plan;
pub mod project;
pub mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::base::{self, BaseSpec};
use crate::cache::Cache;
use crate::elf;
use crate::oci::annotations as ann;
use crate::oci::image::Base;
use crate::oci::image::{self, ImageSpec, NewLayer};
use crate::oci::{BlobStore, Digest, Family, Layer};
use crate::oci::{LayerOptions, Layout, index};
use crate::platform::Platform;
use crate::registry::push::{self, PushSet, PushStats};
use crate::registry::{Client, Reference, pull};
use crate::targets::Target;
use crate::toolchain::Artifact;

use crate::ui;
use project::{Artifacts, Builder};

pub use plan::{BuildRequest, Plan};

/// What a build wrote, for the summary and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `name:tag` for each tag.
    pub refs: Vec<String>,
    /// The OCI layout written, if any.
    pub layout: Option<PathBuf>,
    pub index: Written,
    pub images: Vec<PlatformImage>,
    /// `ref@digest` for each pushed tag.
    pub pushed: Vec<String>,
    pub push: Option<PushStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformImage {
    pub platform: String,
    pub digest: String,
    pub size: u64,
    pub binaries: Vec<String>,
    pub base: String,
}

/// Builds every image the project's configuration defines (or those chosen
/// with `--image`), each into the OCI layout and/or a registry.
pub fn run(req: &BuildRequest) -> Result<Vec<Report>> {
    let loaded = crate::config::load(&req.project_dir)?;
    let images = select_images(req, loaded.image.image_list())?;
    if images.len() > 1 && !req.tags.is_empty() {
        let names: Vec<&str> = images.iter().filter_map(|(n, _)| n.as_deref()).collect();
        anyhow::bail!(
            "-t names one image, but this configuration builds {} ({}): choose one with --image, \
             or set `name`/`tags` under [images.NAME]",
            images.len(),
            names.join(", ")
        );
    }
    images
        .iter()
        .map(|(name, cfg)| {
            if let Some(n) = name {
                ui::status("Building", &format!("image `{n}`"));
            }
            run_image(req, cfg, name.as_deref())
        })
        .collect()
}

/// `--image` picks from `[images.NAME]`; an unknown name lists the known ones.
fn select_images(
    req: &BuildRequest,
    all: Vec<(Option<String>, crate::config::ImageConfig)>,
) -> Result<Vec<(Option<String>, crate::config::ImageConfig)>> {
    if req.images.is_empty() {
        return Ok(all);
    }
    let known: Vec<String> = all.iter().filter_map(|(n, _)| n.clone()).collect();
    for want in &req.images {
        if !known.contains(want) {
            anyhow::bail!(
                "no image `{want}` in the configuration; images: {}",
                if known.is_empty() {
                    "none (no [images.NAME] tables)".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    Ok(all
        .into_iter()
        .filter(|(n, _)| n.as_ref().is_some_and(|n| req.images.contains(n)))
        .collect())
}

/// Builds one image.
fn run_image(
    req: &BuildRequest,
    cfg: &crate::config::ImageConfig,
    key: Option<&str>,
) -> Result<Report> {
    let (plan, builders) = plan::load(req, cfg, key)?;
    let rt = runtime()?;
    let cache = Cache::open_default()?;
    let client = Client::new(req.registry.clone())?;
    // Targets and bases first: a bad tag or a missing platform fails before
    // anything compiles.
    let targets = if req.push {
        push_targets(&plan)?
    } else {
        vec![]
    };
    let remote = rt.block_on(remote_bases(&client, &plan, &cache, req.offline))?;
    let writes_layout = req.oci_layout.is_some() || !req.push;
    if req.offline && writes_layout {
        offline_layers(&remote, &cache, &plan.layout_dir())?;
    }
    let artifacts = compile(&plan, &builders, &cache)?;
    check_artifacts(&plan, &artifacts)?;

    let layout = match (&req.oci_layout, req.push) {
        (None, true) => None,
        _ => Some(Layout::open_or_create(&plan.layout_dir())?),
    };
    let store = layout
        .as_ref()
        .map(|l| l.blobs().clone())
        .unwrap_or_else(|| cache.blobs().clone());
    let opts = LayerOptions {
        mtime: plan.epoch,
        level: 6,
    };
    let files = plan.files_layer()?;
    let mut files_layers: BTreeMap<&'static str, Layer> = BTreeMap::new();
    let mut manifests = Vec::new();
    let mut images = Vec::new();
    let mut families = Vec::new();
    let mut remote_blobs = HashMap::new();
    let mut builtins: BTreeMap<String, base::Builtin> = BTreeMap::new();
    for target in &plan.targets {
        let platform = &target.platform;
        let bins = &artifacts[&target.platform];
        let base = match remote.get(platform) {
            Some((b, r)) => {
                for l in &b.layers {
                    remote_blobs.insert(l.digest().to_string().parse()?, r.clone());
                }
                b.clone()
            }
            None => {
                let BaseSpec::Builtin(name) = &plan.bases[platform] else {
                    unreachable!("remote bases resolved above")
                };
                if !builtins.contains_key(name) {
                    builtins.insert(name.clone(), base::builtin(name, plan.epoch, &store)?);
                }
                builtins[name].for_platform(platform)
            }
        };
        let mut layers = Vec::new();
        if let Some(f) = &files {
            let media = base.family.layer_gzip();
            let l = match files_layers.get(media) {
                Some(l) => l.clone(),
                None => {
                    let l = layer(&cache, f, opts, media, &store, "files")?;
                    files_layers.insert(media, l.clone());
                    l
                }
            };
            layers.push(NewLayer {
                layer: l,
                created_by: "xarch: files".into(),
            });
        }
        let builder = plan.bin_layer(bins)?;
        let what = format!("{} for {platform}", names(bins).join(", "));
        let bin_layer = layer(
            &cache,
            &builder,
            opts,
            base.family.layer_gzip(),
            &store,
            &what,
        )?;
        layers.push(NewLayer {
            layer: bin_layer,
            created_by: format!("xarch: {} → {}", names(bins).join(", "), plan.bin_dir),
        });
        let edits = plan.edits_for(platform);
        let mut annotations = plan.annotations.clone();
        if let (Some(n), Some(d)) = (&base.name, &base.digest) {
            annotations.insert(ann::BASE_NAME.into(), n.clone());
            annotations.insert(ann::BASE_DIGEST.into(), d.to_string());
        }
        let spec = ImageSpec {
            base: &base,
            platform,
            layers: &layers,
            edits: &edits,
            created: &time::rfc3339(plan.epoch),
            annotations: &annotations,
        };
        let written = image::write(&spec, &store)?;
        images.push(PlatformImage {
            platform: platform.to_string(),
            digest: written.descriptor.digest().to_string(),
            size: written.total_size,
            binaries: names(bins),
            base: base
                .name
                .clone()
                .unwrap_or_else(|| plan.bases[platform].to_string()),
        });
        families.push(base.family);
        manifests.push(written.descriptor);
    }
    // A Docker manifest list only when every image is Docker schema 2.
    let family = if families.iter().all(|f| *f == Family::Docker) {
        Family::Docker
    } else {
        Family::Oci
    };
    let index_desc = index::write(family, manifests, &plan.annotations, &store)?;
    let index_digest: Digest = index_desc.digest().to_string().parse()?;

    // A layout must hold every blob, and a smoke run needs every layer.
    if layout.is_some() || req.smoke.is_some() {
        rt.block_on(fill_base_layers(
            &client,
            &cache,
            &store,
            &remote_blobs,
            req.offline,
        ))?;
    }
    if let Some(args) = &req.smoke {
        smoke(
            &plan,
            &store,
            &cache,
            &index_digest,
            args,
            &req.unpack_limits,
        )?;
    }
    if let Some(layout) = &layout {
        for (name, tag) in &plan.refs {
            // containerd's import reads the full name; skopeo and umoci the ref name.
            let full = vec![(ann::CONTAINERD_NAME.to_string(), format!("{name}:{tag}"))];
            layout.set_refs(&index_desc, std::slice::from_ref(tag), &full)?;
        }
    }
    let (pushed, stats) = if req.push {
        let set = PushSet {
            store: &store,
            root: index_digest.clone(),
            remote: remote_blobs,
            cache: &cache,
        };
        ui::status(
            "Pushing",
            &format!("{} to {}", index_digest.short(), targets[0].name()),
        );
        let stats = rt.block_on(push::push(&client, &set, &targets, req.push_jobs()))?;
        let pushed = targets
            .iter()
            .map(|t| format!("{t}@{index_digest}"))
            .collect();
        (pushed, Some(stats))
    } else {
        (vec![], None)
    };
    Ok(Report {
        refs: plan.refs.iter().map(|(n, t)| format!("{n}:{t}")).collect(),
        layout: layout.map(|l| absolute(l.root())),
        index: Written {
            digest: index_desc.digest().to_string(),
            media_type: index_desc.media_type().to_string(),
            size: index_desc.size(),
        },
        images,
        pushed,
        push: stats,
    })
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Resolves every registry base, grouping platforms that share one.
async fn remote_bases(
    client: &Client,
    plan: &Plan,
    cache: &Cache,
    offline: bool,
) -> Result<BTreeMap<Platform, (Base, Reference)>> {
    let mut by_ref: BTreeMap<String, (Reference, Vec<Platform>)> = BTreeMap::new();
    for (p, spec) in &plan.bases {
        if let BaseSpec::Registry(r) = spec {
            by_ref
                .entry(r.to_string())
                .or_insert_with(|| (r.clone(), vec![]))
                .1
                .push(p.clone());
        }
    }
    let mut out = BTreeMap::new();
    for (r, platforms) in by_ref.into_values() {
        ui::status("Resolving", &format!("base {r} for {}", join(&platforms)));
        for (p, b) in pull::resolve(client, &r, &platforms, cache, offline).await? {
            out.insert(p, (b, r.clone()));
        }
    }
    Ok(out)
}

fn join(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--offline` never fetches, so a layout must get every base layer from the
/// cache or hold it already. Checked before compiling, to fail early.
fn offline_layers(
    remote: &BTreeMap<Platform, (Base, Reference)>,
    cache: &Cache,
    dir: &Path,
) -> Result<()> {
    let layout = Layout::open(dir).ok();
    for (base, r) in remote.values() {
        for l in &base.layers {
            let d: Digest = l.digest().to_string().parse()?;
            let held = layout.as_ref().is_some_and(|l| l.blobs().has(&d));
            if !held && !cache.blobs().has(&d) {
                anyhow::bail!(
                    "base layer {d} of {r} is in neither the cache nor {}, and --offline forbids fetching it",
                    dir.display()
                );
            }
        }
    }
    Ok(())
}

/// A layout must hold every blob: copy base layers in from the cache, or fetch them.
async fn fill_base_layers(
    client: &Client,
    cache: &Cache,
    store: &BlobStore,
    remote: &HashMap<Digest, Reference>,
    offline: bool,
) -> Result<()> {
    for (d, r) in remote {
        if store.has(d) {
            continue;
        }
        if cache.blobs().has(d) {
            let mut w = store.writer()?;
            std::io::copy(&mut cache.blobs().open_blob(d)?, &mut w)?;
            w.commit_expect(d)?;
        } else {
            if offline {
                anyhow::bail!(
                    "base layer {d} of {r} is not cached and --offline forbids fetching it"
                );
            }
            ui::status(
                "Fetching",
                &format!("base layer {} from {}", d.short(), r.name()),
            );
            client.fetch_blob(r, d, store, None).await?;
        }
    }
    Ok(())
}

/// Writes a layer into `store`, or reuses the one an identical earlier build
/// wrote (by fingerprint: entries, modes, and each file's size, mtime, inode).
fn layer(
    cache: &Cache,
    b: &crate::oci::LayerBuilder,
    opts: LayerOptions,
    media: &str,
    store: &BlobStore,
    what: &str,
) -> Result<Layer> {
    let key = b.fingerprint(opts, media)?;
    if let Some(l) = cache.find_layer(&key, media, store) {
        ui::status("Fresh", what);
        return Ok(l);
    }
    ui::status("Layering", what);
    let l = b.write(opts, media, store)?;
    cache.remember_layer(&key, &l)?;
    Ok(l)
}

/// Runs every platform's image with `args` (`--smoke`); any failure fails the
/// build before anything is tagged or pushed.
fn smoke(
    plan: &Plan,
    store: &BlobStore,
    cache: &Cache,
    index: &Digest,
    args: &str,
    limits: &crate::rootfs::Limits,
) -> Result<()> {
    let argv =
        shlex::split(args).with_context(|| format!("--smoke `{args}`: unbalanced quotes"))?;
    let mut failed = Vec::new();
    for t in &plan.targets {
        let img = crate::run::from_store(store, index, &t.platform)?;
        // A fresh image each build: unpacked into a temp dir, not kept in the
        // cache (which would grow by a whole rootfs per build).
        let root = tempfile::tempdir_in(cache.root())?.keep();
        ui::status("Smoke", &format!("{} {args}", t.platform));
        let ran = crate::run::unpack(&img, store, &root, limits)
            .and_then(|()| crate::run::exec(&img, &root, &argv, true));
        crate::rootfs::remove_tree(&root)?;
        let status = ran?;
        if !status.success() {
            failed.push(format!("{} ({status})", t.platform));
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "--smoke `{args}` failed on {}; nothing was tagged or pushed",
            failed.join(", ")
        );
    }
    Ok(())
}

/// The references to push to: every tag, all in one repository.
fn push_targets(plan: &Plan) -> Result<Vec<Reference>> {
    let targets: Vec<Reference> = plan
        .refs
        .iter()
        .map(|(n, t)| {
            format!("{n}:{t}")
                .parse::<Reference>()
                .map_err(|e| anyhow::anyhow!("cannot push to `{n}:{t}`: {e}"))
        })
        .collect::<Result<_>>()?;
    if let Some(first) = targets.first()
        && let Some(other) = targets.iter().find(|t| t.name() != first.name())
    {
        anyhow::bail!(
            "--push sends one image to one repository; the tags name {} and {}",
            first.name(),
            other.name()
        );
    }
    Ok(targets)
}

fn names(bins: &[Artifact]) -> Vec<String> {
    bins.iter().map(|b| b.name.clone()).collect()
}

/// Checks every toolchain first (a missing one fails before any compile), then
/// runs each build; binaries from several builds share one image.
fn compile(plan: &Plan, builders: &[Builder], cache: &Cache) -> Result<Artifacts> {
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
                    anyhow::bail!(
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
fn check_artifacts(plan: &Plan, artifacts: &Artifacts) -> Result<()> {
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

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Annotations for the index and every manifest.
pub fn annotations(
    created: &str,
    version: Option<&str>,
    git: &git::GitInfo,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(ann::CREATED.to_string(), created.to_string());
    if let Some(v) = version {
        a.insert(ann::VERSION.to_string(), v.to_string());
    }
    if let Some(r) = &git.revision {
        a.insert(ann::REVISION.to_string(), r.clone());
    }
    if let Some(s) = &git.source {
        a.insert(ann::SOURCE.to_string(), s.clone());
    }
    a.extend(extra.clone());
    a
}
