//! SPDX 2.3 JSON. Every package is a `package` (binaries carry their SHA-256,
//! so no file entries are needed); relations become `relationships`; facts
//! without an SPDX field go into the package `comment`, one `key=value` a line.

use anyhow::Result;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Document, Kind, Package, Rel, Scope};

pub const MEDIA_TYPE: &str = "application/spdx+json";
pub const PREDICATE_TYPE: &str = "https://spdx.dev/Document/v2.3";
/// Where document namespaces live (unique per content; not fetched).
const NAMESPACE: &str = "https://github.com/xarch-dev/xarch/sbom/spdx";

pub fn write(doc: &Document) -> Result<Vec<u8>> {
    let packages: Vec<Value> = doc.packages.iter().map(package).collect();
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": spdx_id(&doc.root),
    })];
    for r in &doc.relations {
        let (a, kind, b) = match r.rel {
            Rel::Contains => (&r.from, "CONTAINS", &r.to),
            Rel::DependsOn => (&r.from, "DEPENDS_ON", &r.to),
            Rel::BuildDependsOn => (&r.to, "BUILD_DEPENDENCY_OF", &r.from),
            Rel::GeneratedFrom => (&r.from, "GENERATED_FROM", &r.to),
            Rel::BuiltWith => (&r.to, "BUILD_TOOL_OF", &r.from),
            Rel::StaticLink => (&r.from, "STATIC_LINK", &r.to),
            Rel::DynamicLink => (&r.from, "DYNAMIC_LINK", &r.to),
            Rel::DescendantOf => (&r.from, "DESCENDANT_OF", &r.to),
        };
        relationships.push(json!({
            "spdxElementId": spdx_id(a),
            "relationshipType": kind,
            "relatedSpdxElement": spdx_id(b),
        }));
    }
    let out = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": doc.name,
        "documentNamespace": format!(
            "{NAMESPACE}/{}-{}",
            sanitize(&doc.name),
            doc.content_digest().hex()
        ),
        "creationInfo": {
            "created": crate::epoch::rfc3339(doc.created),
            "creators": [format!("Tool: xarch-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    let mut bytes = serde_json::to_vec_pretty(&out)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn package(p: &Package) -> Value {
    let mut v = json!({
        "SPDXID": spdx_id(&p.id),
        "name": p.name,
        "versionInfo": p.version.as_deref().unwrap_or("NOASSERTION"),
        "supplier": p.supplier.as_deref().unwrap_or("NOASSERTION"),
        "downloadLocation": p.download.as_deref().unwrap_or("NOASSERTION"),
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": p.license.as_deref().unwrap_or("NOASSERTION"),
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": purpose(p.kind),
    });
    if let Some(sum) = &p.sha256 {
        v["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
    }
    if let Some(purl) = &p.purl {
        v["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }]);
    }
    if let Some(h) = &p.homepage {
        v["homepage"] = h.clone().into();
    }
    if let Some(d) = &p.description {
        v["description"] = d.clone().into();
    }
    let mut notes: Vec<String> = p
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if p.scope == Scope::Build {
        notes.insert(0, "xarch:scope=build".into());
    }
    if !notes.is_empty() {
        v["comment"] = notes.join("\n").into();
    }
    v
}

fn purpose(k: Kind) -> &'static str {
    match k {
        Kind::Image | Kind::BaseImage => "CONTAINER",
        Kind::Application | Kind::Tool => "APPLICATION",
        Kind::Source => "SOURCE",
        Kind::Library => "LIBRARY",
        Kind::Files => "ARCHIVE",
    }
}

/// `SPDXRef-<readable part>-<8 hex of the id's hash>`: readable, valid
/// (letters, digits, `.` and `-` only) and unique.
pub fn spdx_id(id: &str) -> String {
    let hash = hex::encode(Sha256::digest(id.as_bytes()));
    let mut readable = sanitize(id);
    readable.truncate(80);
    format!("SPDXRef-{}-{}", readable.trim_matches('-'), &hash[..8])
}

fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out
}
