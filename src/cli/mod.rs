//! The command line: clap definitions and what each command prints. No bytes
//! are built here; the engine does that.

mod output;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::build::{self, BuildRequest};
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Cross-compile the project for each platform and write a multi-platform image
    Build(Box<BuildArgs>),
    /// List the platforms xarch builds for and what each means to the toolchains
    Targets {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct BuildArgs {
    /// Project directory (default: the nearest directory with a Cargo.toml)
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
    /// Write into this OCI image layout directory (created if missing)
    #[arg(long, value_name = "DIR")]
    oci_layout: Option<PathBuf>,
    /// Base image: `static` (default) or `scratch`
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
    /// User the image runs as (default on `static`: 65532, nonroot)
    #[arg(long)]
    user: Option<String>,
    /// Never install missing Rust targets with rustup
    #[arg(long)]
    no_install: bool,
    /// Parallel compile jobs
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Print the result as JSON on stdout
    #[arg(long)]
    json: bool,
}

fn parse_platforms(s: &str) -> Result<String, String> {
    targets::parse_list(&[s.to_string()]).map_err(|e| e.to_string())?;
    Ok(s.to_string())
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
    let result = match cli.command {
        Command::Build(args) => build_command(*args),
        Command::Targets { json } => output::targets(json),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            ui::error(&format!("{e:#}"));
            1
        }
    }
}

fn build_command(args: BuildArgs) -> anyhow::Result<()> {
    let project_dir = project_dir(args.path.as_deref(), args.manifest_path.as_deref())?;
    let req = BuildRequest {
        project_dir,
        platforms: args.platform,
        tags: args.tag,
        oci_layout: args.oci_layout,
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
    };
    let report = build::run(&req)?;
    output::build_report(&report, args.json)
}

/// The project directory: the given one, the manifest's parent, or the nearest
/// ancestor of the working directory holding a Cargo.toml or xarch.toml.
fn project_dir(path: Option<&Path>, manifest: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(m) = manifest {
        let parent = m.parent().filter(|p| !p.as_os_str().is_empty());
        return Ok(parent.map(Path::to_path_buf).unwrap_or_else(|| ".".into()));
    }
    if let Some(p) = path {
        if !p.is_dir() {
            anyhow::bail!("{} is not a directory", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir()?;
    cwd.ancestors()
        .find(|d| d.join("Cargo.toml").is_file() || d.join("xarch.toml").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no Cargo.toml or xarch.toml in {} or any parent; pass the project directory",
                cwd.display()
            )
        })
}
