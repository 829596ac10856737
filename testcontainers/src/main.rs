//! `teleport-testcontainers`: starts real backend servers for tests and
//! scenario scripts; all of it lives in [`testcontainers::cli`].

fn main() -> std::process::ExitCode {
    testcontainers::cli::run()
}
