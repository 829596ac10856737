//! `tctl tokens add|ls|rm` and `tctl nodes add|ls`.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Conn;
use super::users_cmd::encode;
use crate::cli::output::{Format, table};
use crate::cluster::client::ApiClient;
use crate::resources::{Resource, codec, strings};

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Roles the token joins as, comma-separated: node, proxy, ...
    #[arg(long = "type", value_delimiter = ',', required = true)]
    types: Vec<String>,
    /// How long the token is valid (30m, 1h, ...).
    #[arg(long, default_value = "30m", value_parser = super::parse_ttl)]
    ttl: Duration,
    /// Use this value instead of a random one (at least 8 characters).
    #[arg(long)]
    value: Option<String>,
    /// text (with join instructions) or json.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Create a join token.
    Add(AddArgs),
    /// List join tokens.
    Ls {
        /// text, json or yaml.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Delete a join token.
    Rm {
        /// The token.
        token: String,
    },
}

#[derive(Debug, Args)]
pub struct NodesAddArgs {
    /// Roles the token joins as (default node).
    #[arg(long = "roles", value_delimiter = ',', default_value = "node")]
    roles: Vec<String>,
    /// How long the token is valid.
    #[arg(long, default_value = "30m", value_parser = super::parse_ttl)]
    ttl: Duration,
    /// Use this value instead of a random one.
    #[arg(long)]
    token: Option<String>,
    /// text or json.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Subcommand)]
pub enum NodesCmd {
    /// Create a node join token (same as `tokens add --type=node`).
    Add(NodesAddArgs),
    /// List nodes that sent a heartbeat recently.
    Ls {
        /// text, json or yaml.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

async fn add(
    client: &ApiClient,
    conn: &Conn,
    types: Vec<String>,
    ttl: Duration,
    value: Option<String>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let token: Resource =
        client.post("/v1/tokens", &json!({"roles": types, "ttl_seconds": ttl.as_secs(), "value": value})).await?;
    if format != Format::Text {
        println!("{}", codec::to_json(&[token], true)?);
        return Ok(ExitCode::SUCCESS);
    }
    let status: Value = client.get("/v1/status").await?;
    let pin =
        status["ca_pin"].as_array().and_then(|a| a.first()).and_then(Value::as_str).unwrap_or_default().to_string();
    let roles = strings(token.spec.get("roles")).iter().map(|r| r.to_lowercase()).collect::<Vec<_>>().join(",");
    println!("The invite token: {}", token.metadata.name);
    println!("This token will expire in {}.\n", super::human_duration(ttl));
    println!("Run this on the new node to join the cluster:\n");
    println!(
        "> teleport start \\\n   --roles={roles} \\\n   --token={} \\\n   --ca-pin={pin} \\\n   --auth-server={}\n",
        token.metadata.name,
        conn.auth_addr()?
    );
    println!("Please note:\n");
    println!("  - This invitation token will expire in {}", super::human_duration(ttl));
    println!("  - {} must be reachable from the new node", conn.auth_addr()?);
    Ok(ExitCode::SUCCESS)
}

fn expiry(t: &Resource) -> String {
    match t.expires() {
        Ok(Some(e)) if e > SystemTime::UNIX_EPOCH + Duration::from_secs(86400) => {
            let dt: chrono::DateTime<chrono::Utc> = e.into();
            dt.format("%d %b %y %H:%M UTC").to_string()
        }
        _ => "never".into(),
    }
}

pub async fn run(client: &ApiClient, conn: &Conn, cmd: TokensCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TokensCmd::Add(a) => add(client, conn, a.types, a.ttl, a.value, a.format).await,
        TokensCmd::Ls { format } => {
            let tokens: Vec<Resource> = client.get("/v1/tokens").await?;
            match format {
                Format::Json => println!("{}", codec::to_json(&tokens, false)?),
                Format::Yaml => print!("{}", codec::to_yaml(&tokens)?),
                Format::Text => {
                    let rows: Vec<Vec<String>> = tokens
                        .iter()
                        .map(|t| {
                            let labels: Vec<String> =
                                t.metadata.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            vec![
                                t.metadata.name.clone(),
                                strings(t.spec.get("roles")).join(","),
                                labels.join(","),
                                expiry(t),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["Token", "Type", "Labels", "Expiry Time (UTC)"], &rows));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TokensCmd::Rm { token } => {
            let _: Value = client.delete(&format!("/v1/resources/token?name={}", encode(&token))).await?;
            println!("Token {token} has been deleted");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn run_nodes(client: &ApiClient, conn: &Conn, cmd: NodesCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NodesCmd::Add(a) => add(client, conn, a.roles, a.ttl, a.token, a.format).await,
        NodesCmd::Ls { format } => {
            let nodes: Vec<Value> = client.get("/v1/nodes").await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&nodes)?),
                Format::Yaml => print!("{}", serde_norway::to_string(&nodes)?),
                Format::Text => {
                    let rows: Vec<Vec<String>> = nodes
                        .iter()
                        .map(|n| {
                            let labels = n["metadata"]["labels"]
                                .as_object()
                                .map(|m| {
                                    m.iter()
                                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                                        .collect::<Vec<_>>()
                                        .join(",")
                                })
                                .unwrap_or_default();
                            vec![
                                n["spec"]["hostname"].as_str().unwrap_or_default().to_string(),
                                n["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                                n["spec"]["addr"].as_str().unwrap_or_default().to_string(),
                                labels,
                                n["spec"]["version"].as_str().unwrap_or_default().to_string(),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["Host", "UUID", "Public Address", "Labels", "Version"], &rows));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
