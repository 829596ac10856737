fn main() -> std::process::ExitCode {
    teleport::cli::tctl::main()
}
