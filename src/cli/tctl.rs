//! `tctl`: the cluster administration tool. For now it reports its version;
//! the admin commands arrive with the auth service.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Teleport cluster administration.
#[derive(Debug, Parser)]
#[command(name = "tctl", disable_version_flag = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version.
    Version,
}

/// Entry point of the `tctl` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("{}", super::version_line("tctl"));
            ExitCode::SUCCESS
        }
    }
}
