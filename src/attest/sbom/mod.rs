//! SBOMs per platform image, from what the build compiled rather than from a
//! scan of the finished filesystem: the Rust dependency graph resolved for the
//! target triple and features (`rust`), a Go binary's embedded build info
//! (`go`), the C compiler and libc (`c`), the base image and the files layers.
//!
//! Everything lands in one small model (`Document`: packages and relations),
//! which `spdx` and `cyclonedx` write out. Documents are deterministic: sorted
//! packages and relations, the timestamp from the build's epoch, and the SPDX
//! namespace / CycloneDX serial number derived from a digest of the content.

pub mod c;
pub mod cyclonedx;
pub mod go;
pub mod inputs;
pub mod rust;
pub mod spdx;

use std::collections::BTreeSet;

use anyhow::Result;
use sha2::{Digest as _, Sha256};

pub use inputs::{BaseImage, Binary, Compiled, FilesLayer, PlatformInputs};

use crate::oci::Digest;

/// The SBOM formats xarch writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SPDX 2.3 JSON (the default).
    Spdx,
    /// CycloneDX 1.6 JSON.
    CycloneDx,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Spdx => spdx::MEDIA_TYPE,
            Format::CycloneDx => cyclonedx::MEDIA_TYPE,
        }
    }

    /// The in-toto predicate type of a statement carrying this document.
    pub fn predicate_type(self) -> &'static str {
        match self {
            Format::Spdx => spdx::PREDICATE_TYPE,
            Format::CycloneDx => cyclonedx::PREDICATE_TYPE,
        }
    }

    pub fn write(self, doc: &Document) -> Result<Vec<u8>> {
        match self {
            Format::Spdx => spdx::write(doc),
            Format::CycloneDx => cyclonedx::write(doc),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "spdx" | "spdx-json" => Ok(Format::Spdx),
            "cyclonedx" | "cyclonedx-json" | "cdx" => Ok(Format::CycloneDx),
            other => anyhow::bail!("unknown SBOM format `{other}`; use spdx or cyclonedx"),
        }
    }
}

/// What a package is, which decides its SPDX purpose and CycloneDX type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The image the document describes.
    Image,
    /// A base image the image was built on.
    BaseImage,
    /// A binary in the image.
    Application,
    /// The project's own source package (the crate, Go module or C sources).
    Source,
    /// A dependency: crate, Go module, the Go standard library, a libc.
    Library,
    /// A compiler or linker that made a binary (rustc, go, zig, gcc).
    Tool,
    /// A layer of files from `[[files]]`.
    Files,
}

/// Whether a package ends up in the image's binaries or only built them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Runtime,
    /// Build scripts, proc-macros and their dependencies; compilers.
    Build,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Unique and stable within a document, e.g. `cargo:serde@1.0.0 registry+…`.
    pub id: String,
    pub name: String,
    pub version: Option<String>,
    pub kind: Kind,
    pub scope: Scope,
    pub purl: Option<String>,
    /// `Organization: …` or `Person: …` (SPDX's form).
    pub supplier: Option<String>,
    /// Declared license, an SPDX expression.
    pub license: Option<String>,
    /// Lowercase hex SHA-256 of the thing itself (a binary, a crate archive, a
    /// layer), when there is one.
    pub sha256: Option<String>,
    /// Where the package came from (SPDX downloadLocation form).
    pub download: Option<String>,
    pub homepage: Option<String>,
    pub description: Option<String>,
    /// Facts that fit no standard field: build settings, the target triple,
    /// go.sum hashes. Sorted by key when written.
    pub properties: Vec<(String, String)>,
}

impl Package {
    pub fn new(id: impl Into<String>, name: impl Into<String>, kind: Kind) -> Package {
        Package {
            id: id.into(),
            name: name.into(),
            version: None,
            kind,
            scope: Scope::Runtime,
            purl: None,
            supplier: None,
            license: None,
            sha256: None,
            download: None,
            homepage: None,
            description: None,
            properties: Vec::new(),
        }
    }

    pub fn version(mut self, v: impl Into<String>) -> Package {
        self.version = Some(v.into());
        self
    }

    pub fn supplier(mut self, s: impl Into<String>) -> Package {
        self.supplier = Some(s.into());
        self
    }

    pub fn purl(mut self, p: impl Into<String>) -> Package {
        self.purl = Some(p.into());
        self
    }

    pub fn scope(mut self, s: Scope) -> Package {
        self.scope = s;
        self
    }

    pub fn property(mut self, k: impl Into<String>, v: impl Into<String>) -> Package {
        self.properties.push((k.into(), v.into()));
        self
    }
}

/// How two packages relate: `from` REL `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rel {
    /// The image (or a files layer) contains the package.
    Contains,
    /// Needed at run time (linked into the binary).
    DependsOn,
    /// Needed only to build (build scripts, proc-macros).
    BuildDependsOn,
    /// `from` was compiled from the source package `to`.
    GeneratedFrom,
    /// `from` was built by the tool `to`.
    BuiltWith,
    StaticLink,
    DynamicLink,
    /// The image was built on the base image `to`.
    DescendantOf,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Relation {
    pub from: String,
    pub rel: Rel,
    pub to: String,
}

/// One SBOM: the image (`root`) and everything related to it.
#[derive(Debug, Clone)]
pub struct Document {
    /// A title, e.g. `reg.example.com/app linux/arm64`.
    pub name: String,
    /// The id of the package the document describes.
    pub root: String,
    /// Seconds since the Unix epoch (the build's reproducible timestamp).
    pub created: u64,
    pub packages: Vec<Package>,
    pub relations: Vec<Relation>,
}

impl Document {
    pub fn new(name: &str, root: Package, created: u64) -> Document {
        Document {
            name: name.to_string(),
            root: root.id.clone(),
            created,
            packages: vec![root],
            relations: Vec::new(),
        }
    }

    /// Adds a package unless one with the same id is there (a crate shared by
    /// two binaries appears once).
    pub fn add(&mut self, p: Package) {
        if !self.packages.iter().any(|q| q.id == p.id) {
            self.packages.push(p);
        }
    }

    pub fn relate(&mut self, from: &str, rel: Rel, to: &str) {
        self.relations.push(Relation {
            from: from.to_string(),
            rel,
            to: to.to_string(),
        });
    }

    pub fn get(&self, id: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.id == id)
    }

    /// Sorted packages (the root first), sorted and deduplicated relations,
    /// sorted properties: equal inputs, equal bytes.
    pub fn normalize(&mut self) {
        let root = self.root.clone();
        self.packages
            .sort_by(|a, b| (a.id != root, &a.id).cmp(&(b.id != root, &b.id)));
        for p in &mut self.packages {
            p.properties.sort();
            p.properties.dedup();
        }
        let set: BTreeSet<Relation> = self.relations.drain(..).collect();
        self.relations = set.into_iter().collect();
    }

    /// A digest of the content (not of any one format's bytes), for the SPDX
    /// namespace and the CycloneDX serial number.
    pub fn content_digest(&self) -> Digest {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update(self.created.to_be_bytes());
        for p in &self.packages {
            h.update(format!("{p:?}").as_bytes());
        }
        for r in &self.relations {
            h.update(format!("{r:?}").as_bytes());
        }
        format!("sha256:{}", hex::encode(h.finalize()))
            .parse()
            .expect("a sha256 digest")
    }
}

/// The SBOM of one platform image, from what the build hands over.
pub fn for_platform(inputs: &PlatformInputs) -> Result<Document> {
    let image = inputs::image_package(inputs);
    let title = format!("{} {}", inputs.image, inputs.platform);
    let mut doc = Document::new(&title, image, inputs.epoch);
    let root = doc.root.clone();
    for build in &inputs.builds {
        match build {
            Compiled::Rust(r) => rust::add(&mut doc, &root, r)?,
            Compiled::Go(g) => go::add(&mut doc, &root, g)?,
            Compiled::C(c) => c::add(&mut doc, &root, c, inputs)?,
        }
    }
    if let Some(base) = &inputs.base {
        inputs::add_base(&mut doc, &root, base);
    }
    for layer in &inputs.files_layers {
        inputs::add_files(&mut doc, &root, layer);
    }
    doc.normalize();
    Ok(doc)
}

/// The SBOM of an index: the index as the root, each platform image (by its
/// manifest digest) as a package it contains, each described by that
/// platform's own SBOM (named by the digest of its document).
pub fn for_index(
    image: &str,
    index_digest: &Digest,
    platforms: &[(crate::platform::Platform, Digest, Digest)],
    epoch: u64,
) -> Document {
    let root = Package::new(format!("oci:{image}@{index_digest}"), image, Kind::Image)
        .version(index_digest.to_string())
        .purl(inputs::oci_purl(image, index_digest, None))
        .supplier(inputs::registry_supplier(image));
    let mut doc = Document::new(&format!("{image} (index)"), root, epoch);
    let root = doc.root.clone();
    for (platform, manifest, sbom) in platforms {
        let id = format!("oci:{image}@{manifest}");
        doc.add(
            Package::new(id.clone(), format!("{image} {platform}"), Kind::Image)
                .version(manifest.to_string())
                .purl(inputs::oci_purl(image, manifest, Some(platform)))
                .supplier(inputs::registry_supplier(image))
                .property("xarch:platform", platform.to_string())
                .property("xarch:sbom-digest", sbom.to_string()),
        );
        doc.relate(&root, Rel::Contains, &id);
    }
    doc.normalize();
    doc
}

/// Lowercase hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    use anyhow::Context as _;
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot read {} for the SBOM", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}
