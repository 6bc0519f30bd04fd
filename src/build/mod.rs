//! The build: a short pipeline, each step a function with a typed input and
//! output — plan → bases → compile → check → assemble → smoke → deliver.
//! Nothing is written to an output until every binary has been compiled and
//! checked; nothing is tagged or pushed until the smoke runs pass.

pub mod assemble;
pub mod bases;
pub mod compile;
pub mod git;
pub mod inputs;
pub mod plan;
pub mod project;
pub mod report;
pub mod reuse;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::image::{Ctx, Homes, ImageRef};
use crate::oci::Layout;
use crate::oci::annotations as ann;
use crate::registry::Reference;
use crate::sink::{self, Destination, LayoutTag};
use crate::{runtime, ui};

pub use plan::{BuildRequest, Plan};
pub use report::{PlatformImage, Report, Written};

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

/// Builds one image: the pipeline.
fn run_image(
    req: &BuildRequest,
    cfg: &crate::config::ImageConfig,
    key: Option<&str>,
) -> Result<Report> {
    let (plan, builders) = plan::load(req, cfg, key)?;
    let ctx = Ctx::new(req.registry.clone(), req.offline)?;
    // Destinations and bases first: a bad tag or a missing platform fails
    // before anything compiles.
    let dests = destinations(req, &plan)?;
    let bases = runtime::block_on(bases::resolve(&ctx, &plan))??;
    let layout_dir = layout_dir(&dests);
    if req.offline {
        bases::check_offline(&bases, &ctx, layout_dir)?;
    }
    let inputs = inputs::digests(req, cfg, &plan, &builders, &bases, ctx.cache.root())?;
    let reused = match &req.reuse_from {
        Some(repo) => runtime::block_on(reuse::lookup(&ctx, repo, &inputs))??,
        None => BTreeMap::new(),
    };
    let artifacts = compile::compile(&plan, &builders, &ctx.cache, &reused)?;
    compile::check(&plan, &artifacts, &reused)?;
    // Written straight into the output layout, else into the cache.
    let store = match layout_dir {
        Some(dir) => Layout::open_or_create(dir)?.blobs().clone(),
        None => ctx.cache.blobs().clone(),
    };
    let parts = assemble::Parts {
        bases: &bases,
        artifacts: &artifacts,
        inputs: &inputs,
        reused: &reused,
    };
    let built = assemble::assemble(&plan, &parts, &ctx.cache, &store)?;
    let mut homes = Homes::new(&store, &ctx);
    bases::add_homes(&bases, &mut homes);
    if let Some(repo) = &req.reuse_from {
        reuse::add_homes(repo, &reused, &mut homes);
    }
    if let Some(args) = &req.smoke {
        let platforms: Vec<_> = plan.targets.iter().map(|t| t.platform.clone()).collect();
        crate::run::smoke(
            &ctx,
            &homes,
            &built.index,
            &platforms,
            args,
            &req.unpack_limits,
        )?;
    }
    let (pushed, stats) = deliver(req, &ctx, &built, &homes, &dests, &inputs, &reused)?;
    let repository = dests.iter().find_map(|d| match d {
        Destination::Registry { refs } => refs.first().map(|r| r.name()),
        _ => None,
    });
    Ok(Report {
        repository,
        entries: built.entries,
        annotations: plan.annotations.clone(),
        refs: plan.refs.iter().map(|(n, t)| format!("{n}:{t}")).collect(),
        layout: layout_dir.map(absolute),
        index: Written {
            digest: built.index.digest.to_string(),
            media_type: built.index.media_type.clone(),
            size: built.index.size,
        },
        images: built.images,
        pushed,
        push: stats,
    })
}

/// Delivers the image to every destination; with `--reuse-from` and a push,
/// the newly built platform images are tagged by their inputs for later builds.
/// Returns what the registry destination got.
fn deliver(
    req: &BuildRequest,
    ctx: &Ctx,
    built: &assemble::Assembled,
    homes: &Homes,
    dests: &[Destination],
    inputs: &BTreeMap<crate::platform::Platform, crate::oci::Digest>,
    reused: &BTreeMap<crate::platform::Platform, crate::image::Image>,
) -> Result<(Vec<String>, Option<sink::PushStats>)> {
    let mut pushed = (Vec::new(), None);
    for d in dests {
        let done = runtime::block_on(sink::deliver(ctx, &built.index, homes, d, req.push_jobs()))??;
        if let Destination::Registry { .. } = d {
            pushed = (done.pinned, done.push);
        }
    }
    if let (Some(repo), Some(_)) = (&req.reuse_from, &pushed.1) {
        let new: Vec<_> = built
            .entries
            .iter()
            .filter(|e| e.platform.as_ref().is_some_and(|p| !reused.contains_key(p)))
            .cloned()
            .collect();
        runtime::block_on(reuse::remember(
            ctx,
            repo,
            &new,
            inputs,
            homes,
            req.push_jobs(),
        ))??;
    }
    Ok(pushed)
}

/// The layout (`--oci-layout`, or the default one unless `--push` or
/// `--output` says where the image goes), the `--output`s, then the registry
/// (`--push`: every tag, one repository).
fn destinations(req: &BuildRequest, plan: &Plan) -> Result<Vec<Destination>> {
    let mut out = Vec::new();
    let tags: Vec<LayoutTag> = plan
        .refs
        .iter()
        .map(|(name, tag)| LayoutTag {
            tag: tag.clone(),
            name: Some(format!("{name}:{tag}")),
        })
        .collect();
    let pushing = req.push || req.push_by_digest;
    if req.oci_layout.is_some() || (!pushing && req.outputs.is_empty()) {
        out.push(Destination::Layout {
            dir: plan.layout_dir(),
            tags: tags.clone(),
        });
    }
    for o in &req.outputs {
        out.push(match o {
            ImageRef::Layout { dir, .. } => Destination::Layout {
                dir: dir.clone(),
                tags: tags.clone(),
            },
            ImageRef::Archive { file, tag } => {
                // The archive's one tag: the one given, else the build's first.
                let named = match tag {
                    Some(t) => LayoutTag {
                        tag: t.clone(),
                        name: Some(format!("{}:{t}", plan.refs[0].0)),
                    },
                    None => tags[0].clone(),
                };
                Destination::Archive {
                    file: file.clone(),
                    tag: named,
                    platform: None,
                }
            }
            ImageRef::Registry(r) => anyhow::bail!(
                "--output {r}: a registry is a --push target (-t {r} --push); --output takes \
                 oci:DIR or oci-archive:FILE"
            ),
        });
    }
    if pushing {
        let mut refs = plan
            .refs
            .iter()
            .map(|(n, t)| {
                format!("{n}:{t}")
                    .parse::<Reference>()
                    .map_err(|e| anyhow::anyhow!("cannot push to `{n}:{t}`: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        if req.push_by_digest {
            // No tag: the shard is found by its digest (in the metadata file).
            refs.truncate(1);
            refs[0].tag = None;
        }
        if let Some(first) = refs.first()
            && let Some(other) = refs.iter().find(|t| t.name() != first.name())
        {
            anyhow::bail!(
                "--push sends one image to one repository; the tags name {} and {}",
                first.name(),
                other.name()
            );
        }
        out.push(Destination::Registry { refs });
    }
    Ok(out)
}

fn layout_dir(dests: &[Destination]) -> Option<&Path> {
    dests.iter().find_map(|d| match d {
        Destination::Layout { dir, .. } => Some(dir.as_path()),
        _ => None,
    })
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
