//! Reading a layer's tar out of its blob, by the layer's media type: plain tar,
//! gzip (OCI and Docker) or zstd.

use std::io::Read;

use anyhow::{Result, bail};

use super::media;

/// How a layer's tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type names (non-distributable and
    /// Docker foreign layers included).
    pub fn of(media_type: &str) -> Result<Compression> {
        Ok(match media_type {
            media::OCI_LAYER_TAR
            | media::DOCKER_LAYER_TAR
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Compression::None,
            media::OCI_LAYER_GZIP
            | media::DOCKER_LAYER_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            media::OCI_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
            other => bail!(
                "layers of type `{other}` cannot be unpacked (xarch reads tar, tar+gzip and tar+zstd layers)"
            ),
        })
    }
}

/// The uncompressed tar of a layer of `media_type` read from `reader`.
pub fn decoder<'a>(media_type: &str, reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    Ok(match Compression::of(media_type)? {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        // zstd's default window limit (128 MiB) bounds the decoder's memory.
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn decoded(media_type: &str, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decoder(media_type, bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn each_layer_type_is_read_by_its_compression() {
        let tar = b"not really a tar".to_vec();
        assert_eq!(decoded(media::OCI_LAYER_TAR, &tar), tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decoded(media::DOCKER_LAYER_GZIP, &gz), tar);
        assert_eq!(decoded(media::OCI_LAYER_GZIP, &gz), tar);
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        assert_eq!(decoded(media::OCI_LAYER_ZSTD, &zst), tar);
    }

    #[test]
    fn unknown_layer_types_are_refused_by_name() {
        let e = decoder("application/vnd.example.layer", &b""[..])
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("`application/vnd.example.layer` cannot be unpacked")
        );
    }
}
