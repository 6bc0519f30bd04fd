//! xarch: cross-compile natively for every platform and assemble multi-arch OCI
//! images — layers, configs, manifests and the index — without a Docker daemon.
//!
//! The engine is usable as a library; `xarch` and `cargo-xarch` are thin CLIs.

pub mod attest;
pub mod base;
pub mod build;
pub mod cache;
pub mod cli;
pub mod config;
pub mod elf;
pub mod epoch;
pub mod image;
pub mod inspect;
pub mod load;
pub mod manifest;
pub mod oci;
pub mod platform;
pub mod publish;
pub mod rebase;
pub mod referrers;
pub mod registry;
pub mod rootfs;
pub mod run;
pub mod runtime;
pub mod sign;
pub mod sink;
pub mod targets;
pub mod template;
pub mod toolchain;
pub mod ui;
