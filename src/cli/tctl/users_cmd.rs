//! `tctl users add|ls|rm|reset`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::cli::output::table;
use crate::cluster::client::ApiClient;
use crate::resources::{Resource, strings};

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Create a user; prints a signup link unless --password-stdin.
    Add {
        /// The user's name.
        name: String,
        /// Roles, comma-separated (e.g. access,editor).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// SSH logins the user may use, comma-separated (the `logins` trait).
        #[arg(long, value_delimiter = ',')]
        logins: Vec<String>,
        /// Read the password from standard input (one line) instead of
        /// printing a signup link: for scripts.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    Ls,
    /// Delete a user.
    Rm {
        /// The user's name.
        name: String,
    },
    /// Reset a user's password and second factors; prints a reset link.
    Reset {
        /// The user's name.
        name: String,
    },
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password: ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        bail!("--password-stdin: standard input held no password");
    }
    Ok(pw)
}

fn print_link(user: &str, token: &Value, reset: bool) {
    let secret = token["token"].as_str().unwrap_or_default();
    let ttl = std::time::Duration::from_secs(token["ttl_secs"].as_u64().unwrap_or(3600));
    let kind = if reset { "reset" } else { "invite" };
    if reset {
        println!(
            "User {user:?} has been reset. Share this URL with the user to complete the reset process, link is valid for {}:",
            super::human_duration(ttl)
        );
    } else {
        println!(
            "User {user:?} has been created but requires a password. Share this URL with the user to complete user setup, \
             link is valid for {}:",
            super::human_duration(ttl)
        );
    }
    println!("https://<proxy-host>:3080/web/{kind}/{secret}\n");
    println!("NOTE: Make sure <proxy-host>:3080 points at a Teleport proxy which users can access.");
}

pub async fn run(client: &ApiClient, cmd: UsersCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        UsersCmd::Add { name, roles, logins, password_stdin } => {
            let password = if password_stdin { Some(read_password()?) } else { None };
            let out: Value = client
                .post("/v1/users", &json!({"name": name, "roles": roles, "logins": logins, "password": password}))
                .await?;
            if out["token"].is_null() {
                println!("User {name:?} has been created.");
            } else {
                print_link(&name, &out["token"], false);
            }
        }
        UsersCmd::Ls => {
            let users: Vec<Resource> = client.get("/v1/resources/user").await?;
            let rows: Vec<Vec<String>> =
                users.iter().map(|u| vec![u.metadata.name.clone(), strings(u.spec.get("roles")).join(",")]).collect();
            print!("{}", table(&["User", "Roles"], &rows));
        }
        UsersCmd::Rm { name } => {
            let _: Value = client.delete(&format!("/v1/resources/user?name={}", encode(&name))).await?;
            println!("User {name:?} has been deleted");
        }
        UsersCmd::Reset { name } => {
            let token: Value = client.post("/v1/users/reset", &json!({"name": name})).await?;
            print_link(&name, &token, true);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
