//! Layer compression: the `Compression` a layer is written with, `encode` (a
//! stream of fixed-size blocks → compressed bytes, on several threads, with
//! the same output whatever the thread count), and `decoder`, the one way xarch
//! reads a layer's tar back.
//!
//! gzip is compressed the way pigz does it: the stream is cut into fixed
//! `BLOCK`-byte blocks, each deflated on its own thread with the previous
//! block's last 32 KiB as its dictionary and ended with a sync flush, and the
//! pieces are joined in order into one gzip member whose CRC-32 is combined
//! from the blocks'. Block boundaries depend on the byte offset only, so
//! `-j 1` and `-j 8` give the same bytes. flate2 exposes raw deflate,
//! dictionaries and sync flushes on its zlib-rs backend; `gzp` does the same
//! but primes dictionaries only with a C zlib, so it is not used.
//!
//! zstd uses libzstd's own workers (at least one: with workers the output does
//! not depend on their number, while single-threaded mode differs).

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use flate2::{Compress, Crc, FlushCompress};

use super::media::{self, Family};

/// Bytes per block: the unit the compressors split the stream into. Changing
/// it changes every gzip layer's digest.
pub const BLOCK: usize = 256 * 1024;

/// Bytes per zstd job (each worker compresses one job at a time).
const ZSTD_JOB: usize = 2 * 1024 * 1024;

/// deflate's window: the dictionary each gzip block gets from the one before.
const WINDOW: usize = 32 * 1024;

/// How a layer's tar is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip at a level 0–9.
    Gzip(u32),
    /// zstd at a level 1–22.
    Zstd(i32),
    /// The plain tar.
    None,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip(6)
    }
}

impl Compression {
    /// From the `compression` name and the optional `compression-level`.
    pub fn parse(name: &str, level: Option<i32>) -> Result<Compression> {
        let c = match (name, level) {
            ("gzip", None) => Compression::Gzip(6),
            ("gzip", Some(l @ 0..=9)) => Compression::Gzip(l as u32),
            ("gzip", Some(l)) => bail!("gzip compression level {l} is out of range: use 0–9"),
            ("zstd", None) => Compression::Zstd(3),
            ("zstd", Some(l @ 1..=22)) => Compression::Zstd(l),
            ("zstd", Some(l)) => bail!("zstd compression level {l} is out of range: use 1–22"),
            ("none", None) => Compression::None,
            ("none", Some(_)) => bail!("compression `none` takes no level"),
            (other, _) => bail!("unknown compression `{other}`: use gzip, zstd or none"),
        };
        Ok(c)
    }

    /// Flags over configuration: the flag's name (else the config's, else
    /// gzip), and a level from the flag, or from the config when the config
    /// names the same compression (a gzip level never applies to zstd).
    pub fn choose(
        flag: Option<&str>,
        flag_level: Option<i32>,
        config: Option<&str>,
        config_level: Option<i32>,
    ) -> Result<Compression> {
        let name = flag.or(config).unwrap_or("gzip");
        let level = flag_level.or_else(|| {
            (config.unwrap_or("gzip") == name)
                .then_some(config_level)
                .flatten()
        });
        Compression::parse(name, level)
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip(_) => "gzip",
            Compression::Zstd(_) => "zstd",
            Compression::None => "none",
        }
    }

    /// The level, as the fingerprint of a layer records it.
    pub fn level(self) -> i32 {
        match self {
            Compression::Gzip(l) => l as i32,
            Compression::Zstd(l) => l,
            Compression::None => 0,
        }
    }

    /// The layer media type in an image of `family`. Docker schema 2 has no
    /// zstd layer type: such images must become OCI first (`family_for`).
    pub fn media_type(self, family: Family) -> &'static str {
        match (self, family) {
            (Compression::Gzip(_), f) => f.layer_gzip(),
            (Compression::None, Family::Oci) => media::OCI_LAYER_TAR,
            (Compression::None, Family::Docker) => media::DOCKER_LAYER_TAR,
            (Compression::Zstd(_), _) => media::OCI_LAYER_ZSTD,
        }
    }

    /// The family an image on a `base` family base is written in: zstd
    /// forces OCI media types.
    pub fn family_for(self, base: Family) -> Family {
        match self {
            Compression::Zstd(_) => Family::Oci,
            _ => base,
        }
    }
}

// ------------------------------------------------------------- the pipe

/// The writing end of a layer's stream: cuts what is written into `BLOCK`-byte
/// blocks for `encode`, which runs on another thread. Dropping it ends the
/// stream; `finish` sends the last, shorter block.
pub struct BlockWriter {
    buf: Vec<u8>,
    tx: SyncSender<Vec<u8>>,
}

/// The reading end: whole blocks, each `BLOCK` bytes but the last.
pub struct Blocks(Receiver<Vec<u8>>);

/// A bounded pipe of blocks from a producer thread to `encode`.
pub fn pipe() -> (BlockWriter, Blocks) {
    let (tx, rx) = sync_channel(4);
    let w = BlockWriter {
        buf: Vec::with_capacity(BLOCK),
        tx,
    };
    (w, Blocks(rx))
}

impl BlockWriter {
    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "layer compressor stopped"))
    }

    /// Sends what is left; the stream ends when this writer is dropped.
    pub fn finish(mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl Write for BlockWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.send()?;
        }
        Ok(n)
    }

    /// Blocks are cut by offset only, never by flushes (or the output would
    /// depend on how the producer writes).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------------- encoding

/// Compresses every block into `out` on up to `threads` threads and returns
/// `out`. The bytes depend only on the input and `c`, never on `threads`.
pub fn encode<W: Write>(c: Compression, threads: usize, blocks: Blocks, mut out: W) -> Result<W> {
    let threads = threads.max(1);
    match c {
        Compression::Gzip(level) => gzip(level, threads, blocks.0, &mut out)?,
        Compression::Zstd(level) => zstd(level, threads, blocks.0, &mut out)?,
        Compression::None => {
            for b in blocks.0 {
                out.write_all(&b)?;
            }
        }
    }
    Ok(out)
}

/// gzip header: deflate, no name, mtime 0, no extra flags, OS unknown (255),
/// so equal input gives equal bytes on any machine.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// A final, empty fixed-Huffman deflate block: ends the stream after the
/// blocks' sync flushes.
const DEFLATE_END: [u8; 2] = [0x03, 0x00];

/// One block to deflate, with the block before it (for its dictionary).
struct Job {
    prev: Option<Arc<Vec<u8>>>,
    block: Arc<Vec<u8>>,
    done: SyncSender<io::Result<Deflated>>,
}

struct Deflated {
    bytes: Vec<u8>,
    crc: Crc,
}

fn gzip(level: u32, threads: usize, blocks: Receiver<Vec<u8>>, out: &mut impl Write) -> Result<()> {
    let (job_tx, job_rx) = sync_channel::<Job>(threads);
    let job_rx = Mutex::new(job_rx);
    // Results come back through one channel per block, queued in input order,
    // so the writer below needs no reordering and memory stays bounded.
    let (order_tx, order_rx) = sync_channel::<Receiver<io::Result<Deflated>>>(2 * threads);
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..threads {
            s.spawn(|| deflate_jobs(level, &job_rx));
        }
        s.spawn(move || dispatch(blocks, job_tx, order_tx));
        out.write_all(&GZIP_HEADER)?;
        let mut crc = Crc::new();
        for result in order_rx {
            let d = result
                .recv()
                .context("a gzip worker stopped")?
                .context("deflate failed")?;
            crc.combine(&d.crc);
            out.write_all(&d.bytes)?;
        }
        out.write_all(&DEFLATE_END)?;
        out.write_all(&crc.sum().to_le_bytes())?;
        out.write_all(&crc.amount().to_le_bytes())?;
        Ok(())
    })
}

/// Hands each block to the workers, with the block before it.
fn dispatch(
    blocks: Receiver<Vec<u8>>,
    jobs: SyncSender<Job>,
    order: SyncSender<Receiver<io::Result<Deflated>>>,
) {
    let mut prev = None;
    for block in blocks {
        let block = Arc::new(block);
        let (done, result) = sync_channel(1);
        let job = Job {
            prev: prev.replace(block.clone()),
            block,
            done,
        };
        // Either send fails only when the writer has stopped.
        if order.send(result).is_err() || jobs.send(job).is_err() {
            return;
        }
    }
}

fn deflate_jobs(level: u32, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let dict = job
            .prev
            .as_deref()
            .map_or(&[][..], |p| &p[p.len() - WINDOW..]);
        let result = deflate_block(level, dict, &job.block).map(|bytes| {
            let mut crc = Crc::new();
            crc.update(&job.block);
            Deflated { bytes, crc }
        });
        // The writer may have stopped; its error is the one reported.
        let _ = job.done.send(result);
    }
}

/// Raw deflate of one block, primed with `dict`, ended by a sync flush (so
/// the next block starts on a byte boundary).
///
/// A fresh compressor each time: zlib-rs's `reset` keeps the old window, and
/// stale bytes past the input's end can change which match is chosen, so a
/// reused compressor made a block's bytes depend on the block the same
/// thread compressed before (found with this module's test data).
fn deflate_block(level: u32, dict: &[u8], input: &[u8]) -> io::Result<Vec<u8>> {
    let mut z = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        z.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 16 + 64);
    loop {
        let read = z.total_in() as usize;
        z.compress_vec(&input[read..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // The flush is complete once all input is taken and output space is left.
        if z.total_in() as usize == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

fn zstd(level: i32, threads: usize, blocks: Receiver<Vec<u8>>, out: &mut impl Write) -> Result<()> {
    let mut z = zstd::stream::write::Encoder::new(out, level)?;
    // Always at least one worker: output is then the same for any number.
    z.multithread(threads as u32)
        .context("zstd was built without multi-threading")?;
    z.include_checksum(true)?;
    // A fixed job size (libzstd's default grows with the level's window): the
    // output depends on it, and memory is a few jobs per worker.
    z.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB as u32))?;
    for b in blocks {
        z.write_all(&b)?;
    }
    z.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Mixed input: incompressible runs and text, `len` bytes.
    pub(super) fn sample(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (out.len() >> 20) % 2 == 0 {
                out.extend_from_slice(&x.to_le_bytes());
            } else {
                let line = format!(
                    "2026-11-23T{:02} INFO id={} took {}ms request handler\n",
                    x % 24,
                    (x >> 8) % 1_000_001,
                    (x >> 32) % 501
                );
                out.extend_from_slice(line.as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    /// Encodes `data`, written in uneven pieces of `step` bytes.
    fn encode_all(c: Compression, threads: usize, data: &[u8], step: usize) -> Vec<u8> {
        let (mut w, blocks) = pipe();
        std::thread::scope(|s| {
            s.spawn(move || {
                for piece in data.chunks(step) {
                    w.write_all(piece).unwrap();
                    w.flush().unwrap();
                }
                w.finish().unwrap();
            });
            encode(c, threads, blocks, Vec::new()).unwrap()
        })
    }

    /// Read back the way every layer reader does (`oci::decoder`).
    fn decode(media_type: &str, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        super::super::decoder::decoder(media_type, bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn gzip_is_the_same_whatever_the_threads_and_writes() {
        let data = sample(6 * 1024 * 1024 + 12_345);
        let one = encode_all(Compression::Gzip(6), 1, &data, 1 << 20);
        for (threads, step) in [(2, 4096), (8, 777_777), (3, 100)] {
            assert!(
                one == encode_all(Compression::Gzip(6), threads, &data, step),
                "gzip output changed with {threads} threads"
            );
        }
        assert_eq!(&one[..10], &GZIP_HEADER);
        assert_eq!(decode(media::OCI_LAYER_GZIP, &one), data);
        // A single-member gzip a plain decoder reads whole.
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data);
        // Compressed, and not far from one-stream deflate.
        assert!(one.len() < data.len() * 3 / 4, "{} bytes", one.len());
    }

    #[test]
    fn gzip_edges_empty_small_and_whole_blocks() {
        for len in [0, 1, 100, WINDOW, BLOCK, 2 * BLOCK, BLOCK + 1] {
            let data = sample(len);
            let a = encode_all(Compression::Gzip(6), 1, &data, 1000);
            let b = encode_all(Compression::Gzip(6), 4, &data, 333);
            assert_eq!(a, b, "len {len}");
            assert_eq!(decode(media::OCI_LAYER_GZIP, &a), data, "len {len}");
        }
        let tiny = sample(5000);
        assert_eq!(
            encode_all(Compression::Gzip(9), 2, &tiny, 1),
            encode_all(Compression::Gzip(9), 1, &tiny, 5000)
        );
        let stored = encode_all(Compression::Gzip(0), 2, &sample(BLOCK + 7), 4096);
        assert_eq!(decode(media::OCI_LAYER_GZIP, &stored), sample(BLOCK + 7));
    }

    #[test]
    fn zstd_is_the_same_whatever_the_threads() {
        let data = sample(20 * 1024 * 1024);
        let one = encode_all(Compression::Zstd(3), 1, &data, 1 << 20);
        for threads in [2, 8] {
            assert!(
                one == encode_all(Compression::Zstd(3), threads, &data, 65_536),
                "zstd output changed with {threads} threads"
            );
        }
        assert_eq!(&one[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(decode(media::OCI_LAYER_ZSTD, &one), data);
        let empty = encode_all(Compression::Zstd(3), 2, &[], 1);
        assert!(decode(media::OCI_LAYER_ZSTD, &empty).is_empty());
    }

    #[test]
    fn none_is_the_tar_itself() {
        let data = sample(BLOCK * 2 + 99);
        assert_eq!(encode_all(Compression::None, 4, &data, 5000), data);
        assert_eq!(decode(media::OCI_LAYER_TAR, &data), data);
    }

    #[test]
    fn levels_and_names() {
        assert_eq!(
            Compression::parse("gzip", None).unwrap(),
            Compression::Gzip(6)
        );
        assert_eq!(
            Compression::parse("zstd", None).unwrap(),
            Compression::Zstd(3)
        );
        assert_eq!(
            Compression::parse("zstd", Some(19)).unwrap(),
            Compression::Zstd(19)
        );
        assert!(Compression::parse("gzip", Some(10)).is_err());
        assert!(Compression::parse("zstd", Some(0)).is_err());
        assert!(Compression::parse("none", Some(1)).is_err());
        let e = Compression::parse("brotli", None).unwrap_err().to_string();
        assert!(e.contains("use gzip, zstd or none"), "{e}");
        // The flag wins; a config level applies only to the config's algorithm.
        let c = Compression::choose(Some("zstd"), None, Some("gzip"), Some(9)).unwrap();
        assert_eq!(c, Compression::Zstd(3));
        let c = Compression::choose(None, None, Some("zstd"), Some(7)).unwrap();
        assert_eq!(c, Compression::Zstd(7));
        let c = Compression::choose(None, Some(1), None, None).unwrap();
        assert_eq!(c, Compression::Gzip(1));
        assert_eq!(
            Compression::Zstd(3).media_type(Family::Docker),
            media::OCI_LAYER_ZSTD
        );
        assert_eq!(Compression::Zstd(3).family_for(Family::Docker), Family::Oci);
        assert_eq!(
            Compression::None.media_type(Family::Docker),
            media::DOCKER_LAYER_TAR
        );
    }

    #[test]
    fn a_block_does_not_depend_on_the_block_compressed_before_it() {
        // With a reused zlib-rs compressor, block 15 of this sample came out
        // different after block 13 than from a fresh one.
        let data = sample(16 * BLOCK);
        let b: Vec<&[u8]> = data.chunks(BLOCK).collect();
        let dict = |i: usize| &b[i - 1][BLOCK - WINDOW..];
        let alone = deflate_block(6, dict(15), b[15]).unwrap();
        deflate_block(6, dict(13), b[13]).unwrap();
        assert!(alone == deflate_block(6, dict(15), b[15]).unwrap());
    }
}
