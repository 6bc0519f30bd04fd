//! `xarch login`: like `docker login`, only credentials the registry accepts
//! are saved (in the docker config, or the credential helper it names).

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::auth::{self, Credential};
use super::{Client, Options};

/// Checks `cred` against `host` (`GET /v2/` with it), then stores it; returns
/// where it was saved.
pub fn login(host: &str, cred: &Credential, opts: Options) -> Result<PathBuf> {
    if cred.secret.is_empty() {
        bail!("empty password");
    }
    let client = Client::new(opts)?;
    client.set_credential(host, cred.clone());
    crate::runtime::block_on(client.ping(host))?
        .map_err(|e| anyhow::anyhow!("login to {host} failed: {e:#}"))?;
    auth::store(host, cred)
}
