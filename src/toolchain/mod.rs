//! Toolchains: how each language compiles for a target. Rust today; the recipes
//! for Go and C live in `toolchains/` as data.

pub mod rust;
