// Compiles c/arch.c for the target with the C compiler xarch provides
// (CC_<triple>: zig cc for that target).
fn main() {
    println!("cargo:rerun-if-changed=c/arch.c");
    cc::Build::new().file("c/arch.c").compile("arch");
}
