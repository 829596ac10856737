//! `tsh`: the end-user client. `tsh play` replays a session recording read
//! straight from the recording store (`--from`, or the `audit_sessions_uri`
//! of the teleport.yaml given with `-c`); login, ls and ssh arrive with the
//! proxy and node services.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::recordings_cmd::{HostStore, PlayArgs, play_cmd};

/// Teleport client for end users.
#[derive(Debug, Parser)]
#[command(name = "tsh", disable_version_flag = true)]
struct Cli {
    /// Verbose logging to stderr.
    #[arg(short = 'd', long = "debug", global = true)]
    debug: bool,
    /// teleport.yaml naming the recording store (audit_sessions_uri, data_dir).
    #[arg(short = 'c', long = "config", global = true, env = "TELEPORT_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version.
    Version,
    /// Replay a session recording in the terminal.
    Play(PlayArgs),
}

/// Entry point of the `tsh` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    super::init_logging(cli.debug);
    match cli.command {
        Command::Version => {
            println!("{}", super::version_line("tsh"));
            ExitCode::SUCCESS
        }
        Command::Play(args) => {
            let config = cli.config;
            super::run_async("tsh", async move {
                crate::crypto::install_default_provider();
                let host = HostStore::from_config(&super::HostConfig::load(config.as_deref())?);
                play_cmd(&host, args).await
            })
        }
    }
}
