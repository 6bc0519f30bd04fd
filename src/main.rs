fn main() {
    std::process::exit(xarch::cli::main(std::env::args_os().collect()));
}
