//! `Meter`: bounds what one image's layers may make xarch read. It sits between
//! the decompressor and the tar parser, so it counts the unpacked stream, and
//! it caps how much the parser may read while it looks for the next entry —
//! GNU long names, long link names and PAX records are read whole into memory
//! by the `tar` crate, so they are bounded before they are read, not after.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// A limit an image went over (carried inside an `io::Error` through the tar
/// parser, so the message reaches the user as it is).
#[derive(Debug)]
pub struct Exceeded(pub String);

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Exceeded {}

pub fn exceeded(msg: String) -> io::Error {
    io::Error::other(Exceeded(msg))
}

/// Counts shared by every layer of one image.
pub struct Meter {
    max_bytes: u64,
    max_header: u64,
    read: Cell<u64>,
    /// While the parser reads headers: how much it may still read.
    header_left: Cell<Option<u64>>,
}

impl Meter {
    pub fn new(max_bytes: u64, max_header: u64) -> Rc<Meter> {
        Rc::new(Meter {
            max_bytes,
            max_header,
            read: Cell::new(0),
            header_left: Cell::new(None),
        })
    }

    /// The parser is about to look for the next entry.
    pub fn headers(&self) {
        self.header_left.set(Some(self.max_header));
    }

    /// The parser found it; what follows is the entry's body.
    pub fn body(&self) {
        self.header_left.set(None);
    }
}

pub struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Metered<R> {
    pub fn new(inner: R, meter: Rc<Meter>) -> Self {
        Metered { inner, meter }
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let m = &self.meter;
        let mut want = buf.len();
        if let Some(left) = m.header_left.get() {
            if left == 0 && want > 0 {
                return Err(exceeded(format!(
                    "an entry's headers (GNU long name, long link name or PAX records) \
                     are larger than {}",
                    crate::ui::size(m.max_header)
                )));
            }
            want = want.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        let n = self.inner.read(&mut buf[..want])?;
        let read = m.read.get() + n as u64;
        m.read.set(read);
        if read > m.max_bytes {
            return Err(exceeded(format!(
                "the image's layers unpack to more than {}; raise the limit with --max-unpack-size",
                crate::ui::size(m.max_bytes)
            )));
        }
        if let Some(left) = m.header_left.get() {
            m.header_left.set(Some(left - n as u64));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_cut_at_their_budget_and_bodies_are_not() {
        let meter = Meter::new(1 << 20, 1000);
        let mut r = Metered::new(&[7u8; 5000][..], meter.clone());
        meter.headers();
        let mut buf = vec![0; 4096];
        assert_eq!(r.read(&mut buf).unwrap(), 1000);
        let e = r.read(&mut buf).unwrap_err();
        assert!(e.to_string().contains("larger than 1000 B"), "{e}");
        meter.body();
        assert_eq!(r.read(&mut buf).unwrap(), 4000);
    }

    #[test]
    fn the_stream_is_cut_at_the_size_limit() {
        let meter = Meter::new(100, 1000);
        let mut r = Metered::new(&[7u8; 5000][..], meter);
        let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(e.to_string().contains("--max-unpack-size"), "{e}");
    }
}
