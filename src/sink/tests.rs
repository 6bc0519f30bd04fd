//! The sink against the in-process registry: fast checks of what a push
//! uploads, skips and tags. The same paths against Debian's docker-registry
//! are in tests/it (registry, referrers, shard).

use serde_json::{Value, json};

use super::{Destination, deliver, deliver_with};
use crate::image::{Ctx, Homes, ImageRef, Source};
use crate::oci::{BlobStore, Descriptor, Digest};
use crate::platform::Platform;
use crate::registry::memory::MemoryRegistry;
use crate::registry::{Client, Options, Reference};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn ctx(dir: &std::path::Path) -> Ctx {
    Ctx {
        client: Client::new(Options::default()).unwrap(),
        cache: crate::cache::Cache::open(&dir.join("cache")).unwrap(),
        offline: false,
    }
}

fn put(store: &BlobStore, media_type: &str, bytes: &[u8]) -> Descriptor {
    let d = store.put(bytes).unwrap();
    Descriptor::new(media_type, &d, bytes.len() as u64)
}

fn put_json(store: &BlobStore, media_type: &str, v: &Value) -> Descriptor {
    put(store, media_type, v.to_string().as_bytes())
}

/// An image for `arch` (a one-file uncompressed layer) and its descriptor.
fn image(store: &BlobStore, arch: &str) -> Descriptor {
    let layer = put(
        store,
        "application/vnd.oci.image.layer.v1.tar",
        format!("layer for {arch}").as_bytes(),
    );
    let config = put_json(
        store,
        "application/vnd.oci.image.config.v1+json",
        &json!({"architecture": arch, "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer.digest.as_str()]}}),
    );
    let m = put_json(
        store,
        MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": MANIFEST,
                "config": config.json, "layers": [layer.json]}),
    );
    m.with_platform(&Platform::new("linux", arch, None))
}

fn index(store: &BlobStore) -> Descriptor {
    let images: Vec<Value> = ["amd64", "arm64"]
        .iter()
        .map(|a| image(store, a).json)
        .collect();
    put_json(
        store,
        INDEX,
        &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": images}),
    )
}

fn target(reg: &MemoryRegistry, name: &str) -> Reference {
    format!("{}/{name}", reg.host).parse().unwrap()
}

#[test]
fn an_index_is_pushed_once_and_reads_back_through_the_one_model() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = ctx(tmp.path());
    let store = BlobStore::open(&tmp.path().join("local")).unwrap();
    let root = index(&store);
    let homes = Homes::new(&store, &ctx);
    let reg = MemoryRegistry::start();
    let dest = Destination::Registry {
        refs: vec![target(&reg, "team/app:1")],
    };

    let rt = crate::runtime::block_on(deliver(&ctx, &root, &homes, &dest, 4)).unwrap();
    let stats = rt.unwrap().push.unwrap();
    assert_eq!((stats.uploaded, stats.existing), (4, 0), "{stats:?}");
    assert_eq!((stats.manifests, stats.manifests_existing), (3, 0));
    let (_, bytes) = reg.manifest("team/app", "1").unwrap();
    assert_eq!(Digest::of(&bytes), root.digest, "the index's exact bytes");

    // Again: every blob and manifest is there, nothing is uploaded.
    let uploads = reg.requests("POST", "/v2/team/app/blobs/uploads/");
    let again = crate::runtime::block_on(deliver(&ctx, &root, &homes, &dest, 4)).unwrap();
    let stats = again.unwrap().push.unwrap();
    assert_eq!((stats.uploaded, stats.existing), (0, 4), "{stats:?}");
    assert_eq!(reg.requests("POST", "/v2/team/app/blobs/uploads/"), uploads);

    // Pulled back through image::Source, the arm64 image is the one pushed.
    let src_ref = ImageRef::Registry(target(&reg, "team/app:1"));
    let src = Source::open(&src_ref, &ctx).unwrap();
    let arm = Platform::new("linux", "arm64", None);
    let img = crate::runtime::block_on(src.for_platform(&arm))
        .unwrap()
        .unwrap();
    assert_eq!(img.config.json["architecture"], "arm64");
    assert_eq!(img.manifest.layers.len(), 1);
}

#[test]
fn a_referrer_follows_its_subject_and_is_listed_in_the_fallback_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = ctx(tmp.path());
    let store = BlobStore::open(&tmp.path().join("local")).unwrap();
    let subject = image(&store, "amd64");
    let empty = put(&store, "application/vnd.oci.empty.v1+json", b"{}");
    let note = put(&store, "text/plain", b"a note");
    let referrer = put_json(
        &store,
        MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": MANIFEST,
                "artifactType": "text/plain", "config": empty.json,
                "layers": [note.json], "subject": subject.json}),
    );
    let homes = Homes::new(&store, &ctx);
    let reg = MemoryRegistry::start();
    let dest = Destination::Registry {
        refs: vec![target(&reg, "team/app:1")],
    };
    crate::runtime::block_on(deliver_with(
        &ctx,
        &subject,
        std::slice::from_ref(&referrer),
        &homes,
        &dest,
        2,
    ))
    .unwrap()
    .unwrap();

    assert!(reg.has_blob("team/app", note.digest.as_str()));
    let tag = crate::image::referrers::fallback_tag(&subject.digest);
    let (media_type, bytes) = reg.manifest("team/app", &tag).expect("the fallback tag");
    assert_eq!(media_type, INDEX);
    let listed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(listed["manifests"][0]["digest"], referrer.digest.as_str());
    assert_eq!(listed["manifests"][0]["artifactType"], "text/plain");
}

#[test]
fn a_blob_the_registry_lacks_and_no_home_holds_is_an_error_before_any_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = ctx(tmp.path());
    let store = BlobStore::open(&tmp.path().join("local")).unwrap();
    let root = image(&store, "amd64");
    let doc: Value = serde_json::from_slice(&store.read(&root.digest).unwrap()).unwrap();
    let layer: Digest = doc["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    std::fs::remove_file(store.path(&layer)).unwrap();
    let homes = Homes::new(&store, &ctx);
    let reg = MemoryRegistry::start();
    let dest = Destination::Registry {
        refs: vec![target(&reg, "team/app:1")],
    };
    let err = crate::runtime::block_on(deliver(&ctx, &root, &homes, &dest, 2))
        .unwrap()
        .unwrap_err();
    assert!(format!("{err:#}").contains(layer.as_str()), "{err:#}");
    assert!(
        reg.manifest("team/app", "1").is_none(),
        "no tag names a partial image"
    );
}
