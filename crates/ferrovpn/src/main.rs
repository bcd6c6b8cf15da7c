fn main() {
    eprintln!("ferrovpn: daemon not implemented yet");
    std::process::exit(1);
}
