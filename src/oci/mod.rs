//! OCI image plumbing: digests, blobs, layers, images, indexes and the on-disk
//! image layout. Nothing here touches the network or knows about toolchains.

pub mod archive;
pub mod blobs;
pub mod compress;
pub mod decoder;
pub mod descriptor;
pub mod digest;
pub mod image;
pub mod index;
pub mod json;
pub mod layer;
pub mod layout;
pub mod media;

pub use blobs::{BlobStore, Corrupt};
pub use compress::Compression;
pub use descriptor::Descriptor;
pub use digest::Digest;
pub use layer::{Layer, LayerBuilder, LayerOptions};
pub use layout::Layout;
pub use media::Family;

/// The tag an image reference means when it names none (docker, crane, skopeo).
pub const DEFAULT_TAG: &str = "latest";

/// The annotation keys xarch writes.
pub mod annotations {
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    pub const CREATED: &str = "org.opencontainers.image.created";
    pub const VERSION: &str = "org.opencontainers.image.version";
    pub const SOURCE: &str = "org.opencontainers.image.source";
    pub const REVISION: &str = "org.opencontainers.image.revision";
    pub const TITLE: &str = "org.opencontainers.image.title";
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
    /// containerd's name for an image in an OCI archive/layout (`ctr import`).
    pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
}
