//! xarch's integration tests: one binary, one module per area, sharing the
//! harness in `common` (the xarch binary, real registries, proxies, token
//! servers, test PKI, layout checks).

mod common;

mod archive;
mod attest;
mod build;
mod compress;
mod crash;
mod hostile_registry;
mod hostile_unpack;
mod inspect;
mod layers;
mod manifest;
mod model;
mod rebase;
mod referrers;
mod registry;
mod registry_auth;
mod registry_faults;
mod registry_flags;
mod reuse;
mod run;
mod shard;
mod sign;
mod toolchains;
