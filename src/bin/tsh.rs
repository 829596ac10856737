fn main() -> std::process::ExitCode {
    teleport::cli::tsh::main()
}
