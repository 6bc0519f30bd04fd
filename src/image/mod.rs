//! The one image model. Every command that reads an image — `build` (bases),
//! `push`, `inspect`, `run`, `rebase`, `manifest create` — names it with an
//! `ImageRef`, opens it as a `Source` and reads typed documents through it;
//! `Homes` says where each blob's bytes can be had. Nothing here writes an
//! image: `crate::sink` delivers them.

pub mod document;
pub mod homes;
pub mod metadata;
pub mod reference;
pub mod referrers;
pub mod source;

pub use document::{Config, Document, Index, Manifest};
pub use homes::Homes;
pub use metadata::Metadata;
pub use reference::ImageRef;
pub use source::{Home, Source, Tree};

use anyhow::Result;

use crate::cache::Cache;
use crate::oci::Descriptor;
use crate::oci::image::Base;
use crate::platform::Platform;
use crate::registry::{Client, Options};

/// What every command needs to reach images: the registry client, the cache
/// and whether the network may be used.
pub struct Ctx {
    pub client: Client,
    pub cache: Cache,
    pub offline: bool,
}

impl Ctx {
    pub fn new(opts: Options, offline: bool) -> Result<Ctx> {
        Ok(Ctx {
            client: Client::new(opts)?,
            cache: Cache::open_default()?,
            offline,
        })
    }
}

/// One platform's image as read: its manifest (exact bytes and typed) and
/// config, and the descriptor that names it (its index entry, every field kept,
/// or one made for a single manifest with its config's platform).
#[derive(Debug, Clone)]
pub struct Image {
    pub platform: Platform,
    pub descriptor: Descriptor,
    pub document: crate::image::Document,
    pub manifest: Manifest,
    pub config: Config,
}

impl Image {
    /// The image as a base to build on, named `name` in `base.name`.
    pub fn as_base(&self, name: Option<String>) -> Base {
        Base {
            family: self.manifest.family(),
            config: self.config.json.clone(),
            layers: self.manifest.layers.clone(),
            name,
            digest: Some(self.document.digest.clone()),
        }
    }
}
