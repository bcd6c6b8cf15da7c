fn main() {
    std::process::exit(ferrovpn::cli::main());
}
