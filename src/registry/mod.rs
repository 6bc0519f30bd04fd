//! Talking to OCI registries: references, credentials, the HTTP client, pulling
//! bases per platform and pushing images. Knows nothing about toolchains.

pub mod auth;
pub mod client;
pub mod error;
pub mod pull;
pub mod push;
pub mod reference;
pub mod remote;

pub use client::{Client, Options};
pub use error::Error;
pub use reference::{ImageRef, Reference};
