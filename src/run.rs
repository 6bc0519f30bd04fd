//! `xarch run` and `build --smoke`: unpack one platform's filesystem into the
//! cache and run the image's entrypoint with its env and workdir — natively for
//! this machine's platform, under `qemu-<arch>-static` with the rootfs as its
//! sysroot otherwise. A smoke run, not an isolated container: the program sees
//! the host's network, processes and, outside the rootfs, its files.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::cache::Cache;
use crate::image::{Ctx, Homes, ImageRef, Source};
use crate::oci::{BlobStore, Descriptor};
use crate::platform::Platform;
use crate::{elf, rootfs, targets, ui};

/// What to run: one platform's config, and its layers with the local store
/// that holds each (verified).
pub struct Image {
    pub config: Value,
    pub layers: Vec<(Descriptor, BlobStore)>,
    pub platform: Platform,
}

/// `image` (a registry reference, `oci:DIR[:TAG]` …) for `platform`, with
/// every layer made local (a registry image's layers fetched into the cache).
pub async fn resolve(ctx: &Ctx, image: &ImageRef, platform: &Platform) -> Result<Image> {
    let src = Source::open(image, ctx)?;
    let img = src.for_platform(platform).await?;
    let mut homes = Homes::new(ctx.cache.blobs(), ctx);
    homes.add(&src.home(), &img.manifest.layers);
    local_image(ctx, &homes, &img).await
}

/// An image whose layers are found through `homes` (fetched when remote).
pub async fn local_image(ctx: &Ctx, homes: &Homes, img: &crate::image::Image) -> Result<Image> {
    let mut layers = Vec::new();
    for l in &img.manifest.layers {
        layers.push((l.clone(), homes.ensure_local(ctx, l).await?));
    }
    Ok(Image {
        config: img.config.json.clone(),
        layers,
        platform: img.platform.clone(),
    })
}

/// Runs every platform's image with `args` (`--smoke`); any failure fails the
/// build before anything is tagged or pushed.
pub fn smoke(
    ctx: &Ctx,
    homes: &Homes,
    index: &Descriptor,
    platforms: &[Platform],
    args: &str,
    limits: &rootfs::Limits,
) -> Result<()> {
    let argv =
        shlex::split(args).with_context(|| format!("--smoke `{args}`: unbalanced quotes"))?;
    let index = homes.manifest(index)?.index()?;
    let mut failed = Vec::new();
    for p in platforms {
        let img = homes.image(index.select(p, "the image")?)?;
        let img = crate::runtime::block_on(local_image(ctx, homes, &img))??;
        // A fresh image each build: unpacked into a temp dir, not kept in the
        // cache (which would grow by a whole rootfs per build).
        let root = tempfile::tempdir_in(ctx.cache.root())?.keep();
        ui::status("Smoke", &format!("{p} {args}"));
        let ran = unpack(&img, &root, limits).and_then(|()| exec(&img, &root, &argv, true));
        rootfs::remove_tree(&root)?;
        let status = ran?;
        if !status.success() {
            failed.push(format!("{p} ({status})"));
        }
    }
    if !failed.is_empty() {
        bail!(
            "--smoke `{args}` failed on {}; nothing was tagged or pushed",
            failed.join(", ")
        );
    }
    Ok(())
}

/// The unpacked filesystem of `img` in the cache, keyed by its layer chain;
/// unpacked into a temp dir and renamed, so an interrupted run leaves nothing
/// half-written behind.
pub fn rootfs(img: &Image, cache: &Cache, limits: &rootfs::Limits) -> Result<PathBuf> {
    let mut h = Sha256::new();
    for (l, _) in &img.layers {
        h.update(l.digest.as_str());
        h.update([0]);
    }
    let key = hex::encode(h.finalize());
    let dir = cache.root().join("rootfs").join(&key[..32]);
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(dir.parent().expect("has a parent"))?;
    let staged = tempfile::tempdir_in(dir.parent().expect("has a parent"))?.keep();
    // Removed through handles: a finished tree may hold 0555 directories.
    if let Err(e) = unpack(img, &staged, limits) {
        let _ = rootfs::remove_tree(&staged);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&staged, &dir) {
        let _ = rootfs::remove_tree(&staged);
        // Another run unpacked the same chain first: use theirs.
        if !dir.is_dir() {
            return Err(e).with_context(|| format!("cannot move the rootfs to {}", dir.display()));
        }
    }
    Ok(dir)
}

/// Unpacks every layer of `img` into `dir` (empty, made by xarch) within
/// `limits`, then applies directory modes.
pub fn unpack(img: &Image, dir: &Path, limits: &rootfs::Limits) -> Result<()> {
    ui::status(
        "Unpacking",
        &format!("{} layers for {}", img.layers.len(), img.platform),
    );
    let mut unpack = rootfs::Unpack::new(dir, *limits)?;
    for (l, store) in &img.layers {
        let file = store
            .open_blob(&l.digest)
            .with_context(|| format!("layer {} is missing", l.digest))?;
        unpack.layer(std::io::BufReader::new(file), &l.digest, &l.media_type)?;
    }
    unpack.finish()
}

/// Runs the image's entrypoint (+ cmd, or `args` in cmd's place) in `root`;
/// `quiet_stdout` sends the program's stdout to stderr (a build's stdout is
/// its report).
pub fn exec(img: &Image, root: &Path, args: &[String], quiet_stdout: bool) -> Result<ExitStatus> {
    let cfg = &img.config["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let mut argv = strings(&cfg["Entrypoint"]);
    if args.is_empty() {
        argv.extend(strings(&cfg["Cmd"]));
    } else {
        argv.extend(args.iter().cloned());
    }
    let Some(program) = argv.first().cloned() else {
        bail!("the image has no entrypoint or cmd, and no command was given");
    };
    let env = strings(&cfg["Env"]);
    let exe = find_program(root, &program, &env)?;
    let target = targets::find(&img.platform)
        .with_context(|| format!("no qemu known for {}", img.platform))?;
    let native = is_native(&img.platform) && elf::interpreter(&exe)?.is_none();
    // argv[0] is the name the image uses (`sh`, not the busybox it links to):
    // multi-call binaries choose their applet by it.
    let mut cmd = if native {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(&exe);
        c.arg0(&program);
        c
    } else {
        // Found on the host's PATH now: the child's PATH is the image's.
        let name = format!("qemu-{}-static", target.qemu);
        let qemu = host_program(&name).unwrap_or_else(|| PathBuf::from(&name));
        let mut c = Command::new(qemu);
        c.arg("-L").arg(root).arg("-0").arg(&program).arg(&exe);
        c
    };
    cmd.args(&argv[1..]).env_clear();
    for kv in &env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let workdir = cfg["WorkingDir"].as_str().unwrap_or("/");
    let wd = rootfs::secure_join(root, Path::new(workdir.trim_start_matches('/')))?;
    cmd.current_dir(if wd.is_dir() { wd } else { root.to_path_buf() });
    if quiet_stdout {
        use std::os::fd::AsFd;
        cmd.stdout(std::io::stderr().as_fd().try_clone_to_owned()?);
    }
    cmd.status().map_err(|e| {
        if native {
            anyhow::anyhow!("cannot run {}: {e}", exe.display())
        } else {
            anyhow::anyhow!(
                "cannot run qemu-{}-static for {}: {e}; install it with: apt-get install -y qemu-user-static",
                target.qemu,
                img.platform
            )
        }
    })
}

/// `name` on this machine's PATH.
fn host_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `program` inside the rootfs: an absolute path, or looked up on the image's PATH.
fn find_program(root: &Path, program: &str, env: &[String]) -> Result<PathBuf> {
    if program.starts_with('/') {
        let p = rootfs::secure_join(root, Path::new(program.trim_start_matches('/')))?;
        if p.is_file() {
            return Ok(p);
        }
        bail!("{program} is not in the image");
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    for dir in path.split(':') {
        let candidate = Path::new(dir.trim_start_matches('/')).join(program);
        let p = rootfs::secure_join(root, &candidate)?;
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("`{program}` is not on the image's PATH ({path})")
}

/// True when this machine runs `p`'s binaries itself: its own platform, and
/// 32-bit x86 on x86-64 (the kernel runs those too).
pub fn is_native(p: &Platform) -> bool {
    let host = Platform::host();
    *p == host || (host.architecture == "amd64" && p.architecture == "386")
}

/// `xarch run`: prints that this is a smoke run, then returns the program's
/// exit code.
pub fn run(
    image: &ImageRef,
    platform: Option<&str>,
    args: &[String],
    opts: crate::registry::Options,
    limits: &rootfs::Limits,
) -> Result<i32> {
    let ctx = Ctx::new(opts, false)?;
    let platform: Platform = match platform {
        Some(p) => targets::lookup(p)?.platform.clone(),
        None => Platform::host(),
    };
    let img = crate::runtime::block_on(resolve(&ctx, image, &platform))??;
    let root = rootfs(&img, &ctx.cache, limits)?;
    ui::note(&format!(
        "smoke run of {image} for {platform}: not an isolated container (host network, processes and files)"
    ));
    let status = exec(&img, &root, args, false)?;
    Ok(status.code().unwrap_or(128))
}
