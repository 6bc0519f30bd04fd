//! Resolving a (multi-arch) base image per platform: index or Docker manifest
//! list, or a single manifest for its own platform. Only manifests and configs
//! are fetched — layers stay remote until something needs their bytes.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use oci_spec::image::Descriptor;
use serde_json::Value;

use super::client::Client;
use super::reference::Reference;
use super::remote::Fetched;
use crate::cache::Cache;
use crate::oci::image::Base;
use crate::oci::{Digest, Family, media};
use crate::platform::Platform;

/// Fetches a manifest, from the cache when its digest is known (a digest-pinned
/// reference needs no network), storing what it fetches.
pub async fn manifest(
    client: &Client,
    r: &Reference,
    cache: &Cache,
    offline: bool,
) -> Result<Fetched> {
    let known = r
        .digest
        .clone()
        .or_else(|| offline.then(|| cache.tag_digest(r)).flatten());
    if let Some(d) = known
        && cache.blobs().has(&d)
    {
        let bytes = cache.blobs().read(&d)?;
        return Ok(Fetched {
            media_type: media::of_document(&bytes),
            bytes,
            digest: d,
        });
    }
    if offline {
        bail!("{r} is not in the cache and --offline forbids fetching it");
    }
    let f = client.get_manifest(r).await?;
    cache.blobs().put(&f.bytes)?;
    if r.digest.is_none() {
        cache.remember_tag(r, &f.digest)?;
    }
    Ok(f)
}

/// The base image for each requested platform.
pub async fn resolve(
    client: &Client,
    r: &Reference,
    platforms: &[Platform],
    cache: &Cache,
    offline: bool,
) -> Result<BTreeMap<Platform, Base>> {
    let top = manifest(client, r, cache, offline).await?;
    let mut out = BTreeMap::new();
    if media::is_index(&top.media_type) {
        let index: Value = serde_json::from_slice(&top.bytes)
            .with_context(|| format!("{r}: index is not JSON"))?;
        let entries = platform_entries(&index);
        for p in platforms {
            let Some((_, digest)) = entries.iter().find(|(ep, _)| ep == p) else {
                let offered: Vec<String> = entries.iter().map(|(p, _)| p.to_string()).collect();
                bail!("base {r} has no {p}; it offers: {}", offered.join(", "));
            };
            let child = r.with_digest(digest);
            let m = manifest(client, &child, cache, offline).await?;
            out.insert(p.clone(), base_from(client, r, &m, cache, offline).await?);
        }
    } else {
        let base = base_from(client, r, &top, cache, offline).await?;
        let own = config_platform(&base.config);
        for p in platforms {
            if *p != own {
                bail!("base {r} is a single-platform image for {own}; it cannot be used for {p}");
            }
            out.insert(p.clone(), base.clone());
        }
    }
    Ok(out)
}

/// (platform, digest) of each image in an index, skipping attestation entries
/// (`unknown/unknown`) and anything that is not an image manifest.
fn platform_entries(index: &Value) -> Vec<(Platform, Digest)> {
    let mut out = Vec::new();
    for m in index["manifests"].as_array().into_iter().flatten() {
        let p = &m["platform"];
        let (Some(os), Some(arch)) = (p["os"].as_str(), p["architecture"].as_str()) else {
            continue;
        };
        if os == "unknown" || arch == "unknown" {
            continue;
        }
        let Some(d) = m["digest"].as_str().and_then(|d| d.parse().ok()) else {
            continue;
        };
        out.push((Platform::new(os, arch, p["variant"].as_str()), d));
    }
    out
}

fn config_platform(config: &Value) -> Platform {
    Platform::new(
        config["os"].as_str().unwrap_or("linux"),
        config["architecture"].as_str().unwrap_or("amd64"),
        config["variant"].as_str(),
    )
}

async fn base_from(
    client: &Client,
    r: &Reference,
    m: &Fetched,
    cache: &Cache,
    offline: bool,
) -> Result<Base> {
    let manifest: Value =
        serde_json::from_slice(&m.bytes).with_context(|| format!("{r}: manifest is not JSON"))?;
    let config_digest: Digest = manifest["config"]["digest"]
        .as_str()
        .context("manifest has no config")?
        .parse()?;
    if !cache.blobs().has(&config_digest) {
        if offline {
            bail!("config of {r} is not in the cache and --offline forbids fetching it");
        }
        let size = manifest["config"]["size"]
            .as_u64()
            .context("manifest config has no size")?;
        client
            .fetch_blob(r, &config_digest, size, cache.blobs(), None)
            .await?;
    }
    let config =
        crate::oci::image::parse_config(&cache.blobs().read(&config_digest)?, &config_digest)?;
    let layers: Vec<Descriptor> = serde_json::from_value(manifest["layers"].clone())
        .with_context(|| format!("{r}: manifest layers are malformed"))?;
    Ok(Base {
        family: Family::of(&m.media_type),
        config,
        layers,
        name: Some(r.to_string()),
        digest: Some(m.digest.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_normalize_and_skip_attestations() {
        let d = Digest::of(b"x");
        let index = serde_json::json!({"manifests": [
            {"digest": d.as_str(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": d.as_str(), "platform": {"os": "linux", "architecture": "arm"}},
            {"digest": d.as_str(), "platform": {"os": "unknown", "architecture": "unknown"}},
        ]});
        let e: Vec<String> = platform_entries(&index)
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(e, ["linux/arm64", "linux/arm/v7"]);
    }
}
