fn main() -> std::process::ExitCode {
    teleport::cli::teleport::main()
}
