//! Talking to OCI registries: references, credentials, the HTTP client and the
//! distribution API. Knows nothing about caches, layouts or toolchains.

pub mod auth;
pub mod client;
pub mod error;
pub mod login;
#[cfg(test)]
pub mod memory;
pub mod reference;
pub mod remote;

pub use client::{Client, Options};
pub use error::Error;
pub use reference::Reference;
