//! CycloneDX 1.6 JSON. The image is the metadata component; every other
//! package is a component (build-only ones with scope `excluded`), and every
//! relation an edge of the `dependencies` graph.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{Value, json};

use super::{Document, Kind, Package, Scope};

pub const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";
pub const PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";

pub fn write(doc: &Document) -> Result<Vec<u8>> {
    let root = doc
        .packages
        .iter()
        .find(|p| p.id == doc.root)
        .expect("the root package is in the document");
    let components: Vec<Value> = doc
        .packages
        .iter()
        .filter(|p| p.id != doc.root)
        .map(component)
        .collect();
    let mut graph: BTreeMap<&str, Vec<&str>> = doc
        .packages
        .iter()
        .map(|p| (p.id.as_str(), vec![]))
        .collect();
    for r in &doc.relations {
        let deps = graph.entry(r.from.as_str()).or_default();
        if !deps.contains(&r.to.as_str()) {
            deps.push(r.to.as_str());
        }
    }
    let dependencies: Vec<Value> = graph
        .into_iter()
        .map(|(r, mut d)| {
            d.sort();
            json!({"ref": r, "dependsOn": d})
        })
        .collect();
    let out = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial(doc),
        "version": 1,
        "metadata": {
            "timestamp": crate::epoch::rfc3339(doc.created),
            "tools": {"components": [{
                "type": "application",
                "name": "xarch",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": component(root),
        },
        "components": components,
        "dependencies": dependencies,
    });
    let mut bytes = serde_json::to_vec_pretty(&out)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn component(p: &Package) -> Value {
    let kind = match p.kind {
        Kind::Image | Kind::BaseImage => "container",
        Kind::Application | Kind::Tool => "application",
        Kind::Source | Kind::Library => "library",
        Kind::Files => "file",
    };
    let mut v = json!({"type": kind, "bom-ref": p.id, "name": p.name});
    if let Some(ver) = &p.version {
        v["version"] = ver.clone().into();
    }
    if let Some(s) = &p.supplier {
        let name = s
            .strip_prefix("Organization: ")
            .or_else(|| s.strip_prefix("Person: "))
            .unwrap_or(s);
        v["supplier"] = json!({"name": name});
    }
    if let Some(purl) = &p.purl {
        v["purl"] = purl.clone().into();
    }
    if let Some(l) = &p.license {
        v["licenses"] = json!([{"expression": l}]);
    }
    if let Some(sum) = &p.sha256 {
        v["hashes"] = json!([{"alg": "SHA-256", "content": sum}]);
    }
    if let Some(d) = &p.description {
        v["description"] = d.clone().into();
    }
    v["scope"] = match p.scope {
        Scope::Runtime => "required",
        Scope::Build => "excluded",
    }
    .into();
    let mut refs = vec![];
    if let Some(d) = p.download.as_deref().filter(|d| d.contains("://")) {
        let url = d.strip_prefix("git+").unwrap_or(d);
        refs.push(json!({"type": "distribution", "url": url}));
    }
    if let Some(h) = &p.homepage {
        refs.push(json!({"type": "website", "url": h}));
    }
    if !refs.is_empty() {
        v["externalReferences"] = refs.into();
    }
    if !p.properties.is_empty() {
        v["properties"] = p
            .properties
            .iter()
            .map(|(k, val)| json!({"name": k, "value": val}))
            .collect();
    }
    v
}

/// `urn:uuid:` from the content digest, shaped as a version-5 UUID (the
/// schema accepts versions 1–5): the same content, the same serial number.
fn serial(doc: &Document) -> String {
    let d = doc.content_digest();
    let mut b = hex::decode(d.hex()).expect("hex digest");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(&b[..16]);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
