//! `cargo xarch …`: cargo runs this as `cargo-xarch xarch …`; drop the extra word
//! and run the same CLI.

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "xarch") {
        args.remove(1);
    }
    if let Some(first) = args.first_mut() {
        *first = "cargo xarch".into();
    }
    std::process::exit(xarch::cli::main(args));
}
