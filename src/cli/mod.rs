//! The command line: clap definitions and what each command prints. No bytes
//! are built here; the engine does that.

mod output;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::build::{self, BuildRequest};
use crate::platform::Platform;
use crate::targets;
use crate::ui;

#[derive(Parser)]
#[command(
    name = "xarch",
    version,
    about = "Cross-compile natively for every platform and assemble multi-arch OCI images, no daemon",
    after_help = "Examples:\n  xarch build examples/hello-rust --platform linux/amd64,linux/arm64 --oci-layout out -t hello:1.0\n  xarch targets"
)]
struct Cli {
    /// Print nothing on stderr but errors
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Cross-compile the project for each platform and write a multi-platform image
    Build(Box<BuildArgs>),
    /// Copy an image or index, every platform byte for byte, to registries, layouts or archives
    #[command(
        after_help = "Examples:\n  xarch push oci:out:1.0 reg.example.com/team/app:1.0 reg.example.com/team/app:latest\n  xarch push reg.example.com/team/app:1.0 oci-archive:app.tar\n  xarch push oci:out:1.0 oci:mirror:1.0"
    )]
    Push {
        /// Source: oci:DIR[:TAG], oci-archive:FILE[:TAG] or a registry reference
        source: String,
        /// Destinations: registry references (one repository, one per tag),
        /// oci:DIR[:TAG] layouts, oci-archive:FILE[:TAG] archives
        #[arg(required = true)]
        targets: Vec<String>,
        /// Concurrent uploads
        #[arg(short, long, value_name = "N", default_value_t = 4)]
        jobs: usize,
        /// Print the result as JSON on stdout
        #[arg(long)]
        json: bool,
        /// Write `REGISTRY/REPO@DIGEST` (one line) to this file once pushed
        #[arg(long, value_name = "FILE")]
        digest_file: Option<PathBuf>,
    },
    /// Show an image or index: each platform's manifest, config and layers
    Inspect(InspectArgs),
    /// Make image indexes (multi-platform images) from existing images
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Move an image (every platform of an index) onto a new base: the old base's
    /// layers are swapped for the new one's, the app layers kept byte for byte
    #[command(
        after_help = "Examples:\n  xarch rebase reg.example.com/team/app:1.0 --base reg.example.com/base/busybox:2 -t reg.example.com/team/app:1.0-patched\n  xarch rebase oci:out:1.0 --base busybox:1.37 --old-base busybox:1.36 -t oci:out:1.0-patched"
    )]
    Rebase {
        /// The image: a registry reference or oci:DIR[:TAG]
        image: String,
        /// The new base: a registry reference or oci:DIR[:TAG]
        #[arg(long, value_name = "NEWBASE")]
        base: String,
        /// The base the image was built on (default: each manifest's
        /// org.opencontainers.image.base.name/base.digest annotations)
        #[arg(long, value_name = "OLDBASE")]
        old_base: Option<String>,
        /// Where the result goes: registry references (pushed; one repository) or
        /// oci:DIR:TAG (repeatable; default: IMAGE's own tag, overwritten)
        #[arg(short, long = "tag", value_name = "TARGET")]
        tag: Vec<String>,
        /// Concurrent blob pushes
        #[arg(short, long, value_name = "N", default_value_t = 4)]
        jobs: usize,
        /// Print the result as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// List what is attached to an image: signatures, SBOMs, provenance (OCI 1.1
    /// referrers, or the sha256-<hex> fallback tag)
    Referrers {
        /// The image: a registry reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG]
        #[arg(value_parser = parse_image_ref)]
        image: crate::image::ImageRef,
        /// Only referrers of this artifact type
        #[arg(long, value_name = "TYPE")]
        artifact_type: Option<String>,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Log in to a registry (saved in the docker config, as `docker login` does)
    Login {
        /// Registry host[:port] (Docker Hub: docker.io)
        registry: String,
        #[arg(short, long)]
        username: String,
        /// Read the password from stdin
        #[arg(long)]
        password_stdin: bool,
        /// Password (visible in your shell history: prefer --password-stdin)
        #[arg(short, long, conflicts_with = "password_stdin")]
        password: Option<String>,
    },
    /// Forget a registry's credentials
    Logout {
        /// Registry host[:port] (Docker Hub: docker.io)
        registry: String,
    },
    /// Load one platform of an image into docker or podman (through `docker load`
    /// / `podman load`)
    #[command(
        after_help = "Examples:\n  xarch load oci:target/xarch/oci:1.0\n  xarch load reg.example.com/team/app:1.0 --platform linux/arm64 -t app:arm64"
    )]
    Load {
        /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG] or a registry reference
        #[arg(value_parser = parse_image_ref)]
        image: crate::image::ImageRef,
        /// Platform to load (default: this machine's)
        #[arg(long, value_name = "PLATFORM", value_parser = parse_platform)]
        platform: Option<Platform>,
        /// Name to load it as, NAME[:TAG] (default: the image's own)
        #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
        tag: Option<String>,
        /// docker or podman (default: docker when its daemon answers, else podman)
        #[arg(long, value_parser = ["docker", "podman"])]
        tool: Option<String>,
    },
    /// Smoke-run an image's entrypoint for one platform: natively, or under
    /// qemu-user with the image's filesystem as sysroot (not an isolated container)
    Run {
        /// Platform to run (default: this machine's)
        #[arg(long, value_name = "PLATFORM")]
        platform: Option<String>,
        /// oci:DIR[:TAG] or a registry reference
        image: String,
        /// Arguments in place of the image's cmd (after `--`)
        #[arg(last = true)]
        args: Vec<String>,
        #[command(flatten)]
        unpack: UnpackArgs,
    },
    /// Toolchains: what this machine can build for, and how to fix what it cannot
    #[command(subcommand)]
    Toolchain(ToolchainCommand),
    /// Write a signing key pair in cosign's format: PREFIX.key (ECDSA P-256,
    /// encrypted with a password from XARCH_KEY_PASSWORD, the terminal or stdin)
    /// and PREFIX.pub
    GenerateKeyPair {
        /// Write PREFIX.key and PREFIX.pub
        #[arg(long, value_name = "PREFIX", default_value = "cosign")]
        output_key_prefix: PathBuf,
        /// Overwrite existing key files
        #[arg(long)]
        force: bool,
    },
    /// List the platforms xarch builds for and what each means to the toolchains
    Targets {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  xarch inspect registry.example.com/team/app:1.0\n  xarch inspect oci:out:1.0 --platform linux/arm64 --config\n  xarch inspect --raw registry.example.com/team/app:1.0 | sha256sum"
)]
struct InspectArgs {
    /// Image: a registry reference, or oci:DIR[:TAG] for a local layout
    image: String,
    /// One platform of an index: its manifest (with --config, its config)
    #[arg(long, value_name = "PLATFORM", value_parser = parse_platform)]
    platform: Option<Platform>,
    /// Show the image config (entrypoint, env, user, history)
    #[arg(long)]
    config: bool,
    /// Print the manifest (or config) bytes exactly as stored; their sha256 is the digest
    #[arg(long, conflicts_with = "json")]
    raw: bool,
    /// Print JSON on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Build an index from existing images and push it (or write it to a layout)
    #[command(
        after_help = "Each SOURCE is a registry reference (tag or digest) or oci:DIR[:TAG], optionally followed by #PLATFORM:\n  - a single image: its platform comes from its config; #PLATFORM records another\n  - an index: all its images; #PLATFORM takes only that one (attestations are left out)\nTwo sources giving one platform are refused; nested indexes are refused.\n\nExamples:\n  xarch manifest create reg.example.com/app:1.0 reg.example.com/app@sha256:aaa… reg.example.com/app@sha256:bbb…\n  xarch manifest create --amend reg.example.com/app:1.0 reg.example.com/app:riscv64-build\n  xarch manifest create oci:out:1.0 reg.example.com/base:1#linux/arm64 oci:other:1"
    )]
    Create {
        /// Where the index goes: a registry reference with a tag, or oci:DIR:TAG
        target: String,
        /// Images to include: REF[#PLATFORM]
        #[arg(value_name = "SOURCE", required_unless_present = "from_metadata")]
        sources: Vec<String>,
        /// Shards to merge: metadata files written by `xarch build --metadata-file`
        /// (repeatable; their images in the order given)
        #[arg(long, value_name = "FILE")]
        from_metadata: Vec<PathBuf>,
        /// Annotation on the index, KEY=VALUE (repeatable)
        #[arg(long, value_name = "KEY=VALUE", value_parser = parse_kv)]
        annotation: Vec<(String, String)>,
        /// Add to the index already at TARGET, replacing its images of the same platforms
        #[arg(long)]
        amend: bool,
        /// Concurrent blob copies
        #[arg(short, long, value_name = "N", default_value_t = 4)]
        jobs: usize,
        /// Print the result as JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

/// Bounds on unpacking an image (`run`, `build --smoke`).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Unpacking an image (run, build --smoke)")]
struct UnpackArgs {
    /// Refuse images whose layers unpack to more than this (e.g. 64GiB, 500M)
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "64GiB")]
    max_unpack_size: u64,
    /// Refuse images with more than this many files, directories and links
    #[arg(long, value_name = "N", default_value_t = crate::rootfs::Limits::default().max_entries)]
    max_unpack_entries: u64,
}

impl UnpackArgs {
    fn limits(&self) -> crate::rootfs::Limits {
        crate::rootfs::Limits {
            max_bytes: self.max_unpack_size,
            max_entries: self.max_unpack_entries,
            ..Default::default()
        }
    }
}

/// `123`, `500M`, `64G`, `64GiB`: a byte count, with binary units.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 64GiB, 500M, 1048576)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

fn parse_image_ref(s: &str) -> Result<crate::image::ImageRef, String> {
    s.parse()
        .map_err(|e: crate::registry::reference::BadReference| e.to_string())
}

fn parse_repository(s: &str) -> Result<crate::registry::Reference, String> {
    let r: crate::registry::Reference = s
        .parse()
        .map_err(|e: crate::registry::reference::BadReference| e.to_string())?;
    if r.digest.is_some() {
        return Err(format!("`{s}` names a digest; give a repository"));
    }
    Ok(r)
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    s.parse()
        .map_err(|e: crate::platform::ParsePlatformError| e.to_string())
}

/// How to reach registries (for every command).
#[derive(Args, Clone)]
struct RegistryArgs {
    /// Accept any TLS certificate, and allow plain HTTP, for every registry
    #[arg(long, global = true)]
    insecure: bool,
    /// Trust this CA certificate (PEM) for registry TLS
    #[arg(long, value_name = "FILE", global = true)]
    ca_cert: Option<PathBuf>,
    /// Upload blobs larger than this many MiB in chunks (PATCH) of this size
    #[arg(long, value_name = "MIB", global = true)]
    chunk_size: Option<u64>,
    /// Seconds one registry request may take (plus 1 s per 64 KiB of blob it moves)
    #[arg(long, value_name = "SECS", global = true, env = "XARCH_TIMEOUT",
          default_value_t = crate::registry::client::DEFAULT_TIMEOUT)]
    timeout: u64,
    /// Seconds a registry request may go without a byte moving
    #[arg(long, value_name = "SECS", global = true, env = "XARCH_STALL_TIMEOUT",
          default_value_t = crate::registry::client::DEFAULT_STALL_TIMEOUT)]
    stall_timeout: u64,
}

impl RegistryArgs {
    fn options(&self) -> crate::registry::Options {
        crate::registry::Options {
            insecure: self.insecure,
            ca_cert: self.ca_cert.clone(),
            chunk_size: self.chunk_size.map(|m| m << 20),
            timeout: std::time::Duration::from_secs(self.timeout),
            stall_timeout: std::time::Duration::from_secs(self.stall_timeout),
        }
    }
}

#[derive(Args)]
struct BuildArgs {
    /// Project directory (default: the nearest directory with a Cargo.toml or xarch.toml)
    path: Option<PathBuf>,
    /// Path to the project's Cargo.toml (as in cargo)
    #[arg(long, value_name = "PATH", conflicts_with = "path")]
    manifest_path: Option<PathBuf>,
    /// Platforms, comma-separated or repeated (e.g. linux/amd64,linux/arm64 or `all`)
    #[arg(long, value_name = "LIST", value_parser = parse_platforms)]
    platform: Vec<String>,
    /// Image name and tag, name[:tag] (repeatable)
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    tag: Vec<String>,
    /// Run every platform's image with these arguments (natively or under qemu)
    /// before tagging or pushing; any failure fails the build
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    smoke: Option<String>,
    #[command(flatten)]
    unpack: UnpackArgs,
    /// Build only these of the configuration's [images.NAME] (repeatable; default all)
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    image: Vec<String>,
    /// Write into this OCI image layout directory (created if missing)
    #[arg(long, value_name = "DIR")]
    oci_layout: Option<PathBuf>,
    /// Also write the image here: oci:DIR[:TAG] (a layout) or oci-archive:FILE[:TAG]
    /// (one tar holding every platform, loadable by docker/podman load; repeatable)
    #[arg(short, long, value_name = "DEST", value_parser = parse_image_ref)]
    output: Vec<crate::image::ImageRef>,
    /// Push the image to the registry named by the tags (-t registry/repo:tag)
    #[arg(long)]
    push: bool,
    /// Use only cached base images; never fetch
    #[arg(long)]
    offline: bool,
    /// Base image: `static` (default), `scratch`, or an image reference
    #[arg(long, value_name = "BASE")]
    base: Option<String>,
    /// Package to build (cargo -p)
    #[arg(short, long, value_name = "SPEC")]
    package: Option<String>,
    /// Binary to put in the image (repeatable; default: all of the package's)
    #[arg(long = "bin", value_name = "NAME")]
    bins: Vec<String>,
    /// Cargo features to activate (comma-separated or repeated)
    #[arg(short = 'F', long, value_name = "FEATURES", value_delimiter = ',')]
    features: Vec<String>,
    /// Activate all features
    #[arg(long)]
    all_features: bool,
    /// Do not activate the `default` feature
    #[arg(long)]
    no_default_features: bool,
    /// Cargo profile (default: release)
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Environment variable for the image, KEY=VALUE (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE", value_parser = parse_kv)]
    env: Vec<(String, String)>,
    /// Label for the image config, KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_kv)]
    label: Vec<(String, String)>,
    /// Annotation for the manifests and index, KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_kv)]
    annotation: Vec<(String, String)>,
    /// User the image runs as (default on `static`: 65532:65532, nonroot)
    #[arg(long)]
    user: Option<String>,
    /// Never install missing Rust targets with rustup
    #[arg(long)]
    no_install: bool,
    /// Parallel compile jobs and compression threads
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Layer compression (default gzip; zstd makes the image OCI)
    #[arg(long, value_name = "ALG", value_parser = ["gzip", "zstd", "none"])]
    compression: Option<String>,
    /// Compression level: gzip 0-9 (default 6), zstd 1-22 (default 3)
    #[arg(long, value_name = "N")]
    compression_level: Option<i32>,
    /// Print the result as JSON on stdout
    #[arg(long)]
    json: bool,
    /// With --push: write `REGISTRY/REPO@DIGEST` (the index, one line) to this file
    #[arg(long, value_name = "FILE", requires = "push")]
    digest_file: Option<PathBuf>,
    /// Push by digest only, no tag: one shard of a build split over machines
    /// (merge the shards with `xarch manifest create TAG --from-metadata FILE…`)
    #[arg(long, conflicts_with = "push")]
    push_by_digest: bool,
    /// Reuse each platform image this repository already holds for the same inputs
    /// (sources, config, flags, toolchains, base) instead of compiling it; with a
    /// push, newly built platform images are kept there for the next build
    #[arg(long, value_name = "REPO", value_parser = parse_repository)]
    reuse_from: Option<crate::registry::Reference>,
    /// Write the pushed image's repository, digest and per-platform entries (JSON)
    /// to this file, for `xarch manifest create --from-metadata`
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
}

fn parse_platforms(s: &str) -> Result<String, String> {
    targets::parse_list(&[s.to_string()]).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

#[derive(Subcommand, Debug)]
enum ToolchainCommand {
    /// Every platform × language: ready or not, and by which route
    List {
        #[command(flatten)]
        sel: ToolchainSelect,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Check platforms and print the exact fix for each problem (exit 1 if any)
    Doctor {
        #[command(flatten)]
        sel: ToolchainSelect,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Install what the platforms need: rustup targets or rust-src, zig, go
    Install {
        #[command(flatten)]
        sel: ToolchainSelect,
    },
}

#[derive(clap::Args, Debug)]
struct ToolchainSelect {
    /// Platforms (comma-separated, or `all`; default: all)
    #[arg(long, value_delimiter = ',')]
    platform: Vec<String>,
    /// Languages: rust, go, c (default: all)
    #[arg(long, value_delimiter = ',', value_parser = ["rust", "go", "c"])]
    lang: Vec<String>,
    /// C toolchain recipe to check (default zig)
    #[arg(long, default_value = "zig")]
    toolchain: String,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// Runs the CLI and returns the exit code: 0 ok, 1 failure, 2 usage error.
pub fn main(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    ui::set_quiet(cli.quiet);
    let registry = cli.registry.options();
    if let Command::Run {
        platform,
        image,
        args,
        unpack,
    } = &cli.command
    {
        let run = image.parse().map_err(anyhow::Error::from).and_then(|i| {
            crate::run::run(&i, platform.as_deref(), args, registry, &unpack.limits())
        });
        return match run {
            Ok(code) => code,
            Err(e) => {
                ui::error(&format!("{e:#}"));
                1
            }
        };
    }
    let result = match cli.command {
        Command::Build(args) => build_command(*args, registry),
        Command::Push {
            source,
            targets,
            jobs,
            json,
            digest_file,
        } => push_command(
            &source,
            &targets,
            registry,
            jobs,
            json,
            digest_file.as_deref(),
        ),
        Command::Inspect(args) => inspect_command(args, registry),
        Command::Referrers {
            image,
            artifact_type,
            json,
        } => crate::referrers::list(&image, artifact_type.as_deref(), registry)
            .and_then(|a| output::referrers(&a, json)),
        Command::Load {
            image,
            platform,
            tag,
            tool,
        } => {
            let req = crate::load::Request {
                image,
                platform,
                name: tag,
                tool,
            };
            crate::load::load(&req, registry)
                .map(|(tool, name)| ui::status("Loaded", &format!("{name} into {tool}")))
        }
        Command::Manifest(cmd) => manifest_command(cmd, registry),
        Command::Rebase {
            image,
            base,
            old_base,
            tag,
            jobs,
            json,
        } => rebase_command(
            crate::rebase::Request {
                image,
                base,
                old_base,
                targets: tag,
                registry,
                jobs,
            },
            json,
        ),
        Command::Login {
            registry: host,
            username,
            password_stdin,
            password,
        } => login_command(
            &crate::registry::reference::registry_host(&host),
            username,
            password_stdin,
            password,
            registry,
        ),
        Command::Logout { registry: host } => {
            logout_command(&crate::registry::reference::registry_host(&host))
        }
        Command::Toolchain(cmd) => toolchain_command(cmd),
        Command::Run { .. } => unreachable!("handled above"),
        Command::Targets { json } => output::targets(json),
        Command::GenerateKeyPair {
            output_key_prefix,
            force,
        } => generate_key_pair_command(&output_key_prefix, force),
    };
    match result {
        Ok(()) => 0,
        // `xarch inspect … | head`: the reader left; that is not an error.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            ui::error(&format!("{e:#}"));
            1
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn toolchain_command(cmd: ToolchainCommand) -> anyhow::Result<()> {
    use crate::toolchain::doctor::{self, Action};
    let (sel, action, json) = match cmd {
        ToolchainCommand::List { sel, json } => (sel, Action::List, json),
        ToolchainCommand::Doctor { sel, json } => (sel, Action::Doctor, json),
        ToolchainCommand::Install { sel } => (sel, Action::Install, false),
    };
    let req = doctor::Request {
        action,
        platforms: sel.platform,
        langs: sel.lang,
        c_toolchain: sel.toolchain,
    };
    let (checks, langs) = doctor::run(&req)?;
    output::toolchain_checks(&checks, &langs, action, json)
}

fn build_command(args: BuildArgs, registry: crate::registry::Options) -> anyhow::Result<()> {
    let project_dir =
        build::plan::project_dir(args.path.as_deref(), args.manifest_path.as_deref())?;
    let req = BuildRequest {
        project_dir,
        platforms: args.platform,
        tags: args.tag,
        oci_layout: args.oci_layout,
        outputs: args.output,
        base: args.base,
        package: args.package,
        bins: args.bins,
        features: args.features,
        all_features: args.all_features,
        no_default_features: args.no_default_features,
        profile: args.profile,
        env: args.env,
        labels: args.label,
        annotations: args.annotation,
        user: args.user,
        install: !args.no_install,
        jobs: args.jobs,
        compression: args.compression,
        compression_level: args.compression_level,
        push: args.push,
        push_by_digest: args.push_by_digest,
        reuse_from: args.reuse_from,
        registry,
        offline: args.offline,
        images: args.image,
        smoke: args.smoke,
        unpack_limits: args.unpack.limits(),
    };
    let reports = build::run(&req)?;
    if let Some(file) = &args.digest_file {
        let pinned: Vec<String> = reports.iter().filter_map(|r| r.pinned_index()).collect();
        output::digest_file(file, &pinned)?;
    }
    if let Some(file) = &args.metadata_file {
        output::metadata_file(file, &reports)?;
    }
    output::build_reports(&reports, args.json)
}

fn manifest_command(cmd: ManifestCommand, opts: crate::registry::Options) -> anyhow::Result<()> {
    let ManifestCommand::Create {
        target,
        sources,
        from_metadata,
        annotation,
        amend,
        jobs,
        json,
    } = cmd;
    let req = crate::manifest::CreateRequest {
        target: target.parse()?,
        sources: sources
            .iter()
            .map(|s| s.parse())
            .collect::<anyhow::Result<_>>()?,
        from_metadata,
        annotations: annotation,
        amend,
        jobs,
    };
    let created = crate::manifest::create(&req, opts)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&created)?);
    } else {
        println!("{}", created.pinned);
    }
    Ok(())
}

fn inspect_command(args: InspectArgs, opts: crate::registry::Options) -> anyhow::Result<()> {
    use crate::inspect::{self, Shown};
    let req = inspect::Request {
        image: args.image.parse()?,
        platform: args.platform,
        config: args.config,
        raw: args.raw,
    };
    match inspect::run(&req, opts)? {
        Shown::Raw(bytes) => {
            std::io::Write::write_all(&mut std::io::stdout().lock(), &bytes)?;
            Ok(())
        }
        Shown::Tree(i) => output::inspection(&i, args.json),
        Shown::Config(c) => output::image_config(&c, args.json),
    }
}

fn push_command(
    source: &str,
    targets: &[String],
    opts: crate::registry::Options,
    jobs: usize,
    json: bool,
    digest_file: Option<&Path>,
) -> anyhow::Result<()> {
    let src: crate::image::ImageRef = source.parse()?;
    let refs = targets
        .iter()
        .map(|t| t.parse::<crate::image::ImageRef>())
        .collect::<Result<Vec<_>, _>>()?;
    let pushed = crate::publish::push(&src, &refs, opts, jobs)?;
    if let Some(file) = digest_file {
        let pinned: Vec<String> = refs
            .iter()
            .filter_map(|r| r.registry())
            .take(1)
            .map(|r| r.with_digest(&pushed.digest).to_string())
            .collect();
        output::digest_file(file, &pinned)?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "digest": pushed.digest.as_str(),
                "pushed": pushed.pinned,
                "stats": pushed.stats,
            }))?
        );
    } else {
        for p in &pushed.pinned {
            println!("{p}");
        }
    }
    Ok(())
}

fn rebase_command(req: crate::rebase::Request, json: bool) -> anyhow::Result<()> {
    let report = crate::rebase::run(&req)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for t in &report.targets {
            println!("{t}");
        }
    }
    Ok(())
}

fn login_command(
    host: &str,
    username: String,
    stdin: bool,
    password: Option<String>,
    opts: crate::registry::Options,
) -> anyhow::Result<()> {
    let secret = match (stdin, password) {
        (true, _) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (false, Some(p)) => p,
        (false, None) => anyhow::bail!("give the password with --password-stdin (or -p)"),
    };
    let cred = crate::registry::auth::Credential { username, secret };
    let path = crate::registry::login::login(host, &cred, opts)?;
    ui::status(
        "Saved",
        &format!("credentials for {host} in {}", path.display()),
    );
    Ok(())
}

fn generate_key_pair_command(prefix: &Path, force: bool) -> anyhow::Result<()> {
    let password = crate::sign::password::read(true)?;
    let (key, public) = crate::sign::write_key_pair(prefix, password.as_bytes(), force)?;
    ui::status("Wrote", &format!("private key {}", key.display()));
    ui::status("Wrote", &format!("public key {}", public.display()));
    Ok(())
}

fn logout_command(host: &str) -> anyhow::Result<()> {
    if crate::registry::auth::erase(host)? {
        ui::status("Removed", &format!("credentials for {host}"));
    } else {
        ui::warn(&format!("no credentials for {host} were stored"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("64GiB"), Ok(64 << 30));
        assert_eq!(parse_size("2 tb"), Ok(2 << 40));
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("G").unwrap_err().contains("not a size"));
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }
}
