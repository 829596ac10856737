//! `tsh`: the end-user client. For now it reports its version; login, ls,
//! ssh and play arrive with the proxy and node services.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Teleport client for end users.
#[derive(Debug, Parser)]
#[command(name = "tsh", disable_version_flag = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version.
    Version,
}

/// Entry point of the `tsh` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("{}", super::version_line("tsh"));
            ExitCode::SUCCESS
        }
    }
}
