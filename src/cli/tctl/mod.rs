//! `tctl`: the cluster administration tool. It talks to the Auth API over
//! mutual TLS: on the auth host with the admin identity the auth service
//! writes into its data dir (found through `-c teleport.yaml`, or
//! `/etc/teleport.yaml`, or the default data dir), elsewhere with
//! `--auth-server` and an identity file (`-i`, from `tctl auth sign
//! --format=file`).

mod auth_cmd;
mod events_cmd;
mod resources_cmd;
mod tokens_cmd;
mod users_cmd;

pub(crate) use events_cmd::parse_time_flag;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use crate::cluster::client::ApiClient;
use crate::cluster::identity::Identity;

/// The default data dir, as upstream.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/teleport";
/// The default auth API address.
pub const DEFAULT_AUTH_ADDR: &str = "127.0.0.1:3025";

/// Teleport cluster administration.
#[derive(Debug, Parser)]
#[command(name = "tctl", disable_version_flag = true)]
struct Cli {
    /// Verbose logging to stderr.
    #[arg(short = 'd', long = "debug", global = true)]
    debug: bool,

    #[command(flatten)]
    conn: Conn,

    #[command(subcommand)]
    command: Command,
}

/// How tctl reaches the auth service.
#[derive(Debug, Args, Clone)]
pub struct Conn {
    /// teleport.yaml of the auth host (for its data dir and listen address).
    #[arg(short = 'c', long = "config", global = true, env = "TELEPORT_CONFIG_FILE")]
    config: Option<PathBuf>,
    /// Address of the auth server (host:port).
    #[arg(long = "auth-server", global = true, env = "TELEPORT_AUTH_SERVER")]
    auth_server: Option<String>,
    /// Identity file (from `tctl auth sign --format=file`); default: the
    /// admin identity in the auth server's data dir.
    #[arg(short = 'i', long = "identity", global = true, env = "TELEPORT_IDENTITY_FILE")]
    identity: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version.
    Version,
    /// Cluster name, version, certificate authorities and the CA pin.
    Status,
    /// Manage users.
    #[command(subcommand)]
    Users(users_cmd::UsersCmd),
    /// Manage join tokens.
    #[command(subcommand)]
    Tokens(tokens_cmd::TokensCmd),
    /// Manage nodes (`nodes add` creates a node join token).
    #[command(subcommand)]
    Nodes(tokens_cmd::NodesCmd),
    /// Print resources: `tctl get roles`, `tctl get user/alice`.
    Get(resources_cmd::GetArgs),
    /// Create or update resources from a YAML or JSON file.
    Create(resources_cmd::CreateArgs),
    /// Delete a resource: `tctl rm role/auditor`.
    Rm(resources_cmd::RmArgs),
    /// Certificate authorities: export public keys, sign certificates.
    #[command(subcommand)]
    Auth(auth_cmd::AuthCmd),
    /// Audit events, read and written directly in the store (no auth
    /// service needed): export, import, search.
    #[command(subcommand)]
    Events(events_cmd::EventsCmd),
    /// Session recordings, read and copied directly in the object stores (no
    /// auth service needed): ls, download, export, import, play.
    #[command(subcommand)]
    Recordings(super::recordings_cmd::RecordingsCmd),
}

/// Entry point of the `tctl` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    super::init_logging(cli.debug);
    match cli.command {
        Command::Version => {
            println!("{}", super::version_line("tctl"));
            ExitCode::SUCCESS
        }
        command => super::run_async("tctl", run(cli.conn, command)),
    }
}

async fn run(conn: Conn, command: Command) -> anyhow::Result<ExitCode> {
    crate::crypto::install_default_provider();
    // Works on the store itself, for recovery: no auth server, no identity.
    let command = match command {
        Command::Events(c) => return events_cmd::run(&conn, c).await,
        Command::Recordings(c) => {
            return super::recordings_cmd::run(&super::recordings_cmd::HostStore::from_config(&conn.host_config()?), c)
                .await;
        }
        other => other,
    };
    let client = conn.client()?;
    match command {
        Command::Version => unreachable_version(),
        Command::Status => auth_cmd::status(&client).await,
        Command::Users(c) => users_cmd::run(&client, c).await,
        Command::Tokens(c) => tokens_cmd::run(&client, &conn, c).await,
        Command::Nodes(c) => tokens_cmd::run_nodes(&client, &conn, c).await,
        Command::Get(a) => resources_cmd::get(&client, a).await,
        Command::Create(a) => resources_cmd::create(&client, a).await,
        Command::Rm(a) => resources_cmd::rm(&client, a).await,
        Command::Auth(c) => auth_cmd::run(&client, c).await,
        Command::Events(c) => events_cmd::run(&conn, c).await,
        Command::Recordings(c) => {
            super::recordings_cmd::run(&super::recordings_cmd::HostStore::from_config(&conn.host_config()?), c).await
        }
    }
}

fn unreachable_version() -> anyhow::Result<ExitCode> {
    println!("{}", super::version_line("tctl"));
    Ok(ExitCode::SUCCESS)
}

/// A listen address as a dialable one: `0.0.0.0:3025` and `:3025` become
/// `127.0.0.1:3025`.
fn dialable(listen: &str) -> String {
    let listen = listen.trim();
    if let Some(port) = listen.strip_prefix(':') {
        return format!("127.0.0.1:{port}");
    }
    match listen.rsplit_once(':') {
        Some(("0.0.0.0", port)) | Some(("[::]", port)) | Some(("", port)) => format!("127.0.0.1:{port}"),
        Some(_) => listen.to_string(),
        None => format!("{listen}:3025"),
    }
}

impl Conn {
    fn host_config(&self) -> anyhow::Result<super::HostConfig> {
        super::HostConfig::load(self.config.as_deref())
    }

    /// The data dir of the local auth server.
    fn data_dir(&self) -> anyhow::Result<PathBuf> {
        Ok(self.host_config()?.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
    }

    /// The auth server address to dial.
    pub fn auth_addr(&self) -> anyhow::Result<String> {
        if let Some(a) = &self.auth_server {
            return Ok(dialable(a));
        }
        let host = self.host_config()?;
        let data_dir = host.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let paths = crate::cluster::auth::DataDirPaths::new(&data_dir);
        if let Ok(a) = std::fs::read_to_string(paths.auth_addr_file()) {
            let a = a.trim();
            if !a.is_empty() {
                return Ok(dialable(a));
            }
        }
        Ok(host.auth_listen.as_deref().map(dialable).unwrap_or_else(|| DEFAULT_AUTH_ADDR.to_string()))
    }

    fn client(&self) -> anyhow::Result<ApiClient> {
        let path = match &self.identity {
            Some(p) => p.clone(),
            None => {
                let dir = self.data_dir()?;
                let p = crate::cluster::auth::DataDirPaths::new(&dir).admin_identity();
                if !p.exists() {
                    bail!(
                        "no admin identity at {}: run tctl on the auth server host (the auth service writes it when it starts, \
                         pass -c with its teleport.yaml if its data dir is not {DEFAULT_DATA_DIR}), or pass --auth-server \
                         and -i with an identity file from `tctl auth sign --format=file`",
                        p.display()
                    );
                }
                p
            }
        };
        let identity = Identity::load(&path)?;
        Ok(ApiClient::new(&self.auth_addr()?, &identity)?)
    }
}

/// Parses a Go-style duration flag (`30m`, `1h`, `8h30m`).
pub(crate) fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    crate::config::duration::parse(s)
}

/// "30 minutes", "1 hour", "2 hours 5 minutes": upstream's wording of TTLs.
pub(crate) fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let unit = |n: u64, w: &str| if n == 1 { format!("1 {w}") } else { format!("{n} {w}s") };
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(unit(h, "hour"));
    }
    if m > 0 {
        parts.push(unit(m, "minute"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(unit(s, "second"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_durations() {
        assert_eq!(dialable("0.0.0.0:3025"), "127.0.0.1:3025");
        assert_eq!(dialable(":4025"), "127.0.0.1:4025");
        assert_eq!(dialable("auth.example.com:3025"), "auth.example.com:3025");
        assert_eq!(dialable("auth.example.com"), "auth.example.com:3025");
        assert_eq!(human_duration(std::time::Duration::from_secs(1800)), "30 minutes");
        assert_eq!(human_duration(std::time::Duration::from_secs(3600 + 60)), "1 hour 1 minute");
    }
}
