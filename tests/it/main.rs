//! xarch's integration tests: one binary, one module per area, sharing the
//! harness in `common` (the xarch binary, real registries, proxies, token
//! servers, test PKI, layout checks).

mod common;

mod build;
mod hostile_unpack;
mod inspect;
mod manifest;
mod rebase;
mod registry;
mod registry_auth;
mod registry_faults;
mod registry_flags;
mod run;
mod toolchains;
