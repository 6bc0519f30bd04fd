//! Attestations about the images xarch builds: what is in them (`sbom`), how
//! they were made (`provenance`), and the in-toto statement both travel in
//! (`intoto`). Documents only: signing is `crate::sign`, attaching them to
//! images is the sink's job.

pub mod intoto;
pub mod provenance;
pub mod sbom;
