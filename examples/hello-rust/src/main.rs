//! Prints facts about where it runs: what the image's platform must match.

use std::env::consts::{ARCH, OS};

fn main() {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hi".into());
    let endian = if cfg!(target_endian = "big") { "big" } else { "little" };
    let bits = usize::BITS;
    println!("{greeting} from hello-rust: arch={ARCH} os={OS} bits={bits} endian={endian}");
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "--message" {
            let msg = std::fs::read_to_string("/usr/share/hello/message.txt")
                .unwrap_or_else(|e| format!("no message: {e}"));
            print!("{msg}");
        }
    }
}
