//! `teleport`: the daemon and operator tool. Commands: `start`, `version`,
//! `configure` (a sample teleport.yaml), and the `backend` group that works
//! directly on a cluster-state store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::backend_cmd::{self, BackendArgs};
use super::configure_cmd::{self, ConfigureArgs};
use super::start_cmd::{self, StartArgs};

/// Teleport: access cluster daemon and operator tools.
#[derive(Debug, Parser)]
#[command(name = "teleport", disable_version_flag = true)]
struct Cli {
    /// Verbose logging to stderr.
    #[arg(short = 'd', long = "debug", global = true)]
    debug: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version.
    Version,
    /// Start the services teleport.yaml enables (or --roles), until SIGTERM or SIGINT.
    Start(StartArgs),
    /// Print a sample teleport.yaml (auth, proxy and SSH services, SQLite
    /// storage), write it to a file with -o, or check a file with --test.
    Configure(ConfigureArgs),
    /// Work directly on a cluster-state store (list, read, delete and edit
    /// items) without a running auth service.
    Backend(BackendArgs),
}

/// The default config file, as upstream.
pub const DEFAULT_CONFIG: &str = "/etc/teleport.yaml";

/// Entry point of the `teleport` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `start` sets up logging from teleport.yaml's `log` section; the other
    // commands log warnings (or everything with -d) to stderr.
    if !matches!(cli.command, Command::Start(_)) {
        super::init_logging(cli.debug);
    }
    match cli.command {
        Command::Start(args) => start_cmd::run(args, cli.debug),
        Command::Version => {
            println!("{}", super::version_line("teleport"));
            ExitCode::SUCCESS
        }
        Command::Configure(args) => match configure_cmd::run(args) {
            Ok(code) => code,
            Err(e) => super::report("teleport", &e),
        },
        Command::Backend(args) => super::run_async("teleport", backend_cmd::run(args)),
    }
}

/// The config file to use: the one given, or the default if it exists.
pub(crate) fn config_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) => Ok(p),
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG);
            if p.exists() {
                Ok(p)
            } else {
                anyhow::bail!(
                    "required flag --config/-c not provided and {DEFAULT_CONFIG} does not exist; \
                     pass -c with a teleport.yaml or a storage block (type: sqlite, path: /var/lib/teleport/backend)"
                )
            }
        }
    }
}
