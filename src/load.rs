//! `xarch load IMAGE`: one platform of an image (default: this machine's) into
//! the local docker or podman image store, through an OCI archive piped to
//! `docker load` / `podman load` — for running a multi-platform build locally
//! without pushing it anywhere.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::image::{Ctx, Homes, ImageRef, Source};
use crate::oci::DEFAULT_TAG;
use crate::oci::annotations::CONTAINERD_NAME;
use crate::platform::Platform;
use crate::registry::Options;
use crate::sink::{self, Destination, LayoutTag};
use crate::{runtime, ui};

pub struct Request {
    pub image: ImageRef,
    pub platform: Option<Platform>,
    /// `name:tag` to load it as (default: the image's own name).
    pub name: Option<String>,
    /// `docker` or `podman` (default: docker when its daemon answers, else podman).
    pub tool: Option<String>,
}

/// Loads the image; returns the tool used and the name loaded.
pub fn load(req: &Request, opts: Options) -> Result<(String, String)> {
    let tool = match &req.tool {
        Some(t) => t.clone(),
        None => pick_tool()?,
    };
    let ctx = Ctx::new(opts, false)?;
    let platform = req.platform.clone().unwrap_or_else(Platform::host);
    let tmp = tempfile::tempdir_in(ctx.cache.root())?;
    let file = tmp.path().join("image.tar");
    let name = runtime::block_on(write_archive(&ctx, req, &platform, &file))??;
    ui::status("Loading", &format!("{name} ({platform}) into {tool}"));
    let mut child = Command::new(&tool)
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run `{tool} load`"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let copied = std::io::copy(&mut std::fs::File::open(&file)?, &mut stdin);
    drop(stdin);
    let status = child.wait()?;
    if !status.success() {
        bail!("`{tool} load` failed ({status})");
    }
    copied.with_context(|| format!("cannot pipe the image to `{tool} load`"))?;
    Ok((tool, name))
}

/// One platform's image as an OCI archive (its manifest the archive's only
/// entry, so either image store loads just it); returns its name.
async fn write_archive(
    ctx: &Ctx,
    req: &Request,
    platform: &Platform,
    file: &std::path::Path,
) -> Result<String> {
    let src = Source::open(&req.image, ctx)?;
    let img = src.for_platform(platform).await?;
    let name = match &req.name {
        Some(n) => n.clone(),
        None => default_name(&req.image, &src)?,
    };
    let mut homes = Homes::new(ctx.cache.blobs(), ctx);
    homes.add(&src.home(), img.manifest.blobs());
    let tag = crate::registry::reference::split_name_tag(&name).1;
    let dest = Destination::Archive {
        file: file.to_path_buf(),
        tag: LayoutTag {
            tag: tag.unwrap_or(DEFAULT_TAG).to_string(),
            name: Some(name.clone()),
        },
        platform: Some(platform.clone()),
    };
    let entry = img.document.descriptor().with_platform(platform);
    sink::deliver(ctx, &entry, &homes, &dest, 4).await?;
    Ok(name)
}

/// A registry image keeps its name; a layout's image the name it was built as
/// (its `io.containerd.image.name`), else `xarch-image:TAG`.
fn default_name(image: &ImageRef, src: &Source<'_>) -> Result<String> {
    let tag = src.tag()?.unwrap_or_else(|| DEFAULT_TAG.into());
    if let ImageRef::Registry(r) = image {
        return Ok(format!("{}:{tag}", r.name()));
    }
    if let ImageRef::Layout { dir, .. } = image
        && let Ok(layout) = crate::oci::Layout::open(dir)
        && let Ok(Some(d)) = layout.find(&tag)
        && let Some(n) = d.annotation(CONTAINERD_NAME)
    {
        return Ok(n.to_string());
    }
    Ok(format!("xarch-image:{tag}"))
}

/// docker when its daemon answers, else podman, else an error saying what to
/// install.
fn pick_tool() -> Result<String> {
    let answers = |tool: &str, args: &[&str]| {
        Command::new(tool)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if answers("docker", &["version", "--format", "{{.Server.Version}}"]) {
        return Ok("docker".into());
    }
    if answers("podman", &["--version"]) {
        return Ok("podman".into());
    }
    bail!(
        "neither docker (with a running daemon) nor podman is installed; install one \
         (apt-get install -y podman), or write an archive with `xarch push IMAGE oci-archive:FILE`"
    )
}
