//! The `teleport-testcontainers` command: `up` starts servers, prints how
//! to reach them as `export TELEPORT_TEST_<SERVER>_<FIELD>=...` lines (for
//! `eval` in shells and scenario scripts) and keeps them running until
//! Ctrl-C or SIGTERM; `check` shows where each server's program was found.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{Error, Fixture, Server, find_binary};

/// Real backend servers for Teleport's tests and scenario scripts.
#[derive(Debug, Parser)]
#[command(name = "teleport-testcontainers", version)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start servers, print `export` lines for them on stdout, and keep
    /// them running until Ctrl-C (or SIGTERM), then stop them.
    ///
    /// It keeps running, so run it in the background with stdout sent to a
    /// file, wait for the `# ready` line, then `source` the file.
    Up {
        /// Servers to start: etcd, dynamodb, s3, s3-versioned, gcs, azure,
        /// firestore, postgres (default: all).
        servers: Vec<Server>,
    },
    /// Show where the local provider finds each server's programs, or how
    /// to install the missing ones. Exits 1 if any is missing.
    Check {
        /// Servers to check (default: all).
        servers: Vec<Server>,
    },
}

/// Parses the command line and runs; the binary's whole `main`.
pub fn run() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("teleport-testcontainers: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.command {
        Command::Up { servers } => runtime.block_on(up(or_all(servers))),
        Command::Check { servers } => check(&or_all(servers)),
    }
}

fn or_all(mut servers: Vec<Server>) -> Vec<Server> {
    if servers.is_empty() {
        servers = Server::ALL.to_vec();
    }
    let mut seen = Vec::new();
    servers.retain(|s| {
        let first = !seen.contains(s);
        seen.push(*s);
        first
    });
    servers
}

async fn up(servers: Vec<Server>) -> ExitCode {
    // Listen for SIGINT/SIGTERM before anything starts: a signal that arrives
    // right after `# ready` must stop the servers, not kill this process.
    let stop = StopSignals::install();
    let mut running: Vec<Box<dyn Fixture>> = Vec::new();
    let mut stdout = std::io::stdout();
    for server in servers {
        eprintln!("# starting {server}...");
        match crate::start(server).await {
            Ok(fixture) => {
                let mut text = String::new();
                for (name, value) in fixture.exports() {
                    text.push_str(&format!("export {name}={}\n", shell_quote(&value)));
                }
                if let Some(log) = fixture.log_path() {
                    eprintln!("# {server}: log {}", log.display());
                }
                if stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_err() {
                    eprintln!("teleport-testcontainers: stdout closed; stopping");
                    return ExitCode::FAILURE;
                }
                running.push(fixture);
            }
            Err(err) => {
                report(&err);
                eprintln!("# stopping the {} server(s) already started", running.len());
                drop(running);
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = writeln!(stdout, "# ready");
    let _ = stdout.flush();
    eprintln!("# {} server(s) running; press Ctrl-C to stop them", running.len());
    stop.wait().await;
    eprintln!("# stopping...");
    drop(running);
    eprintln!("# stopped");
    ExitCode::SUCCESS
}

fn report(err: &Error) {
    eprintln!("teleport-testcontainers: {err}");
}

/// SIGINT and SIGTERM listeners, registered up front.
struct StopSignals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals { int: signal(SignalKind::interrupt()).ok(), term: signal(SignalKind::terminate()).ok() }
    }

    async fn wait(mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.int) => {}
            _ = recv(&mut self.term) => {}
        }
    }
}

/// The programs the local provider needs for `server`.
fn programs(server: Server) -> &'static [&'static str] {
    match server {
        Server::Etcd => &["etcd"],
        Server::DynamoDb | Server::S3Versioned => &["moto_server"],
        Server::S3 => &["s3s-fs"],
        Server::Gcs => &["gcp-storage-emulator"],
        Server::Azure => &["azurite-blob"],
        // The in-process test server: nothing to find.
        Server::Firestore => &[],
        Server::Postgres => &["initdb"],
    }
}

fn check(servers: &[Server]) -> ExitCode {
    println!("# services dir: {}", crate::services_dir().display());
    let mut missing = 0;
    for &server in servers {
        if programs(server).is_empty() {
            println!("{:<13} built in ({})", server.name(), server.program());
        }
        for program in programs(server) {
            match find_binary(server, program) {
                Ok(path) => println!("{:<13} {}", server.name(), path.display()),
                Err(err) => {
                    missing += 1;
                    println!("{:<13} MISSING: {err}", server.name());
                }
            }
        }
    }
    if missing > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Quotes `value` for a POSIX shell, only when it needs it.
fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain { value.to_string() } else { format!("'{}'", value.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("http://127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(shell_quote("a;b=c"), "'a;b=c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn no_servers_means_all_and_duplicates_are_dropped() {
        assert_eq!(or_all(vec![]), Server::ALL.to_vec());
        assert_eq!(or_all(vec![Server::S3, Server::Etcd, Server::S3]), vec![Server::S3, Server::Etcd]);
    }

    #[test]
    fn cli_parses_server_names() {
        let args = Args::try_parse_from(["x", "up", "etcd", "dynamodb", "s3", "gcs", "azure", "firestore", "postgres"])
            .unwrap();
        match args.command {
            Command::Up { servers } => assert_eq!(servers.len(), 7),
            other => panic!("{other:?}"),
        }
        assert!(Args::try_parse_from(["x", "up", "mysql"]).is_err());
    }
}
