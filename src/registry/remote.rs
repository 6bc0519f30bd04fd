//! Distribution API operations on a `Client`: manifests and blobs, read and
//! written. Everything received is bounded (a manifest by 4 MiB, a blob by its
//! descriptor's size) and checked against its digest.

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use reqwest::{Method, StatusCode};

use super::client::{Body, Call, Client, Error, file_body, headers, location};
use super::error::redact;
use super::reference::Reference;
use crate::oci::{BlobStore, Digest, media};

/// Manifests larger than this are refused (as containerd and ggcr do).
pub const MAX_MANIFEST: usize = 4 << 20;

const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A manifest as served: exact bytes, media type, digest (verified).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

pub fn pull_scope(r: &Reference) -> String {
    format!("repository:{}:pull", r.repository)
}

pub fn push_scope(r: &Reference) -> String {
    format!("repository:{}:pull,push", r.repository)
}

impl Client {
    /// GETs a manifest by tag or digest; refuses oversized ones and checks the
    /// digest (against the reference's digest, else the registry's header).
    pub async fn get_manifest(&self, r: &Reference) -> Result<Fetched> {
        let path = format!("/v2/{}/manifests/{}", r.repository, r.manifest_ref());
        let h = headers(&[("accept", ACCEPT_MANIFESTS)]);
        let resp = self
            .send(r, Method::GET, &path, h, Body::Empty, &[pull_scope(r)])
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            let e = self.status_error(&Method::GET, resp).await;
            return Err(anyhow::Error::new(e).context(format!("{r} not found")));
        }
        if !resp.status().is_success() {
            return Err(self.status_error(&Method::GET, resp).await)
                .with_context(|| format!("cannot fetch {r}"));
        }
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
            .unwrap_or_default();
        let served: Option<Digest> = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok());
        let bytes = self
            .body(&Method::GET, resp, MAX_MANIFEST, "the manifest")
            .await
            .with_context(|| format!("manifest {r}"))?;
        let digest = Digest::of(&bytes);
        if let Some(want) = r.digest.as_ref().or(served.as_ref())
            && *want != digest
        {
            bail!("manifest {r}: digest mismatch: expected {want}, got {digest}");
        }
        let media_type = if media_type.is_empty() || media_type == "application/json" {
            media::of_document(&bytes)
        } else {
            media_type
        };
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// HEAD a manifest: its digest when it exists.
    pub async fn head_manifest(&self, r: &Reference) -> Result<Option<Digest>> {
        let path = format!("/v2/{}/manifests/{}", r.repository, r.manifest_ref());
        let h = headers(&[("accept", ACCEPT_MANIFESTS)]);
        let resp = self
            .send(r, Method::HEAD, &path, h, Body::Empty, &[push_scope(r)])
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse().ok())
                .or_else(|| r.digest.clone())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error(&Method::HEAD, resp).await.into()),
        }
    }

    /// PUTs a manifest; returns the subject digest a registry with the
    /// referrers API acknowledges (`OCI-Subject`), if any.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Option<Digest>> {
        let path = format!("/v2/{}/manifests/{}", r.repository, r.manifest_ref());
        let h = headers(&[("content-type", media_type)]);
        let resp = self
            .send(
                r,
                Method::PUT,
                &path,
                h,
                Body::Bytes(bytes.to_vec()),
                &[push_scope(r)],
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&Method::PUT, resp).await)
                .with_context(|| format!("cannot push {r}"));
        }
        Ok(resp
            .headers()
            .get("oci-subject")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok()))
    }

    /// The referrers API (`GET /v2/<repo>/referrers/<digest>`): the index of
    /// manifests whose subject is `digest`, or None when the registry has no
    /// such API (then the `sha256-<hex>` tag is the fallback).
    pub async fn referrers(&self, r: &Reference, digest: &Digest) -> Result<Option<Fetched>> {
        let path = format!("/v2/{}/referrers/{digest}", r.repository);
        let h = headers(&[("accept", crate::oci::media::OCI_INDEX)]);
        let resp = self
            .send(r, Method::GET, &path, h, Body::Empty, &[pull_scope(r)])
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => {
                return Ok(None);
            }
            s if !s.is_success() => return Err(self.status_error(&Method::GET, resp).await.into()),
            _ => {}
        }
        let bytes = self
            .body(&Method::GET, resp, MAX_MANIFEST, "the referrers index")
            .await
            .with_context(|| format!("the referrers of {digest} in {}", r.name()))?;
        let digest = Digest::of(&bytes);
        Ok(Some(Fetched {
            bytes,
            media_type: crate::oci::media::OCI_INDEX.to_string(),
            digest,
        }))
    }

    /// True when the repository already has the blob.
    pub async fn blob_exists(
        &self,
        r: &Reference,
        digest: &Digest,
        scopes: &[String],
    ) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        let resp = self
            .send(r, Method::HEAD, &path, headers(&[]), Body::Empty, scopes)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(&Method::HEAD, resp).await.into()),
        }
    }

    /// Downloads a blob of `size` bytes (its descriptor's) into `store`,
    /// verifying its digest on the way and advancing `progress` (if any) by the
    /// bytes received. A body that announces or sends another size is refused
    /// as soon as that shows, so a registry streaming endless bytes is cut off
    /// within one chunk of `size`.
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        store: &BlobStore,
        progress: Option<&ProgressBar>,
    ) -> Result<u64> {
        use std::io::Write;
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        let scopes = [pull_scope(r)];
        let call = Call {
            method: Method::GET,
            target: &path,
            headers: headers(&[]),
            body: Body::Empty,
            scopes: &scopes,
            size,
        };
        let context = || format!("cannot fetch blob {digest} from {}", r.name());
        let mut resp = self.exchange(r, call).await.with_context(context)?;
        if !resp.status().is_success() {
            return Err(self.status_error(&Method::GET, resp).await).with_context(context);
        }
        let url = redact(resp.url().as_str());
        let what = format!("blob {digest}");
        if let Some(n) = resp.content_length().filter(|n| *n != size) {
            let why = format!(
                "the registry announced {n} bytes for {what}, whose descriptor says {size}"
            );
            return Err(Error::Protocol {
                method: Method::GET,
                url,
                why,
            })
            .with_context(context);
        }
        let mut w = store.writer()?;
        let mut got = 0u64;
        while let Some(chunk) = self
            .chunk(&Method::GET, &mut resp)
            .await
            .with_context(context)?
        {
            if got + chunk.len() as u64 > size {
                let e = Error::TooLarge {
                    method: Method::GET,
                    url,
                    what,
                    limit: format!("its descriptor's size ({size} bytes)"),
                };
                return Err(e).with_context(context);
            }
            w.write_all(&chunk)?;
            got += chunk.len() as u64;
            if let Some(bar) = progress {
                bar.inc(chunk.len() as u64);
            }
        }
        if got < size {
            let e = Error::Short {
                method: Method::GET,
                url,
                what,
                expected: size,
                got,
            };
            return Err(e).with_context(context);
        }
        // A corrupt blob is stored nowhere; the error names both digests.
        let (got, size) = w
            .commit_expect(digest)
            .with_context(|| format!("blob {digest} from {} is corrupt", r.name()))?;
        debug_assert_eq!(&got, digest);
        Ok(size)
    }

    /// Cross-repository mount; true when the registry mounted it (201). On 202 the
    /// registry opened an upload instead, which the caller then fills.
    pub async fn mount_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        from: &Reference,
    ) -> Result<bool> {
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={digest}&from={}",
            target.repository, from.repository
        );
        let scopes = [push_scope(target), pull_scope(from)];
        let resp = self
            .send(
                target,
                Method::POST,
                &path,
                headers(&[]),
                Body::Empty,
                &scopes,
            )
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false),
            _ => Err(self.status_error(&Method::POST, resp).await.into()),
        }
    }

    /// Uploads a blob from a file: POST, then one streamed PUT — or PATCH chunks
    /// and a closing PUT when the blob is larger than the chunk size. `progress`
    /// follows the bytes sent.
    pub async fn upload_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        file: &std::path::Path,
        size: u64,
        progress: Option<&ProgressBar>,
    ) -> Result<()> {
        let scopes = [push_scope(target)];
        let start = format!("/v2/{}/blobs/uploads/", target.repository);
        let resp = self
            .send(
                target,
                Method::POST,
                &start,
                headers(&[]),
                Body::Empty,
                &scopes,
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&Method::POST, resp).await)
                .with_context(|| format!("cannot start upload of {digest} to {}", target.name()));
        }
        let mut url = location(&Method::POST, &resp)?;
        let chunk = self.options().chunk_size.filter(|c| *c > 0 && size > *c);
        let last = match chunk {
            None => file_body(file, 0, size, progress),
            Some(c) => {
                let mut offset = 0;
                while offset < size {
                    let len = c.min(size - offset);
                    let range = format!("{}-{}", offset, offset + len - 1);
                    let h = headers(&[
                        ("content-type", "application/octet-stream"),
                        ("content-range", &range),
                    ]);
                    let resp = self
                        .send(
                            target,
                            Method::PATCH,
                            &url,
                            h,
                            file_body(file, offset, len, progress),
                            &scopes,
                        )
                        .await?;
                    if resp.status() != StatusCode::ACCEPTED {
                        return Err(self.status_error(&Method::PATCH, resp).await.into());
                    }
                    url = location(&Method::PATCH, &resp)?;
                    offset += len;
                }
                Body::Empty
            }
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let put = format!("{url}{sep}digest={digest}");
        let h = headers(&[("content-type", "application/octet-stream")]);
        let resp = self
            .send(target, Method::PUT, &put, h, last, &scopes)
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.status_error(&Method::PUT, resp).await)
                .with_context(|| format!("upload of {digest} to {} failed", target.name()));
        }
        Ok(())
    }
}
