//! Prints what Rust and the linked C code each believe about the CPU: they must
//! agree on every platform, or the C was compiled for the wrong target.
use std::ffi::CStr;
use std::os::raw::c_char;

extern "C" {
    fn c_arch() -> *const c_char;
    fn c_checksum(p: *const u8, n: u32) -> u32;
}

fn main() {
    let c = unsafe { CStr::from_ptr(c_arch()) }.to_str().unwrap();
    let data = b"xarch";
    let sum = unsafe { c_checksum(data.as_ptr(), data.len() as u32) };
    println!(
        "rust-with-c: rust={} c={c} fnv1a={sum:08x} endian={}",
        std::env::consts::ARCH,
        if cfg!(target_endian = "big") { "big" } else { "little" }
    );
}
