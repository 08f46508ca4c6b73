//! The `bohai` binary: see `bohai --help`.

fn main() -> std::process::ExitCode {
    bohai_hub::cli::main()
}
