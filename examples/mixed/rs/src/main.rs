fn main() {
    println!("mixed-rs: ARCH={}", std::env::consts::ARCH);
}
