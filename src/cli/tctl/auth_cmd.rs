//! `tctl status`, `tctl auth export` and `tctl auth sign`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::cli::output::table;
use crate::cluster::auth::service::{ClusterStatus, Credentials};
use crate::cluster::client::ApiClient;
use crate::cluster::identity::{Identity, write_secret_file};
use crate::crypto;
use crate::resources::Resource;

/// What `auth export` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportType {
    /// User CA SSH keys as `cert-authority` lines (for authorized_keys).
    User,
    /// Host CA SSH keys as `@cert-authority` lines (for known_hosts).
    Host,
    /// Host CA TLS certificates (PEM).
    TlsHost,
    /// User CA TLS certificates (PEM).
    TlsUser,
}

/// Formats of `auth sign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignFormat {
    /// One identity file for `tctl -i` (key, TLS certificate, CAs).
    File,
    /// `<out>` (private key) and `<out>-cert.pub` for OpenSSH.
    Openssh,
    /// `<out>.key`, `<out>.crt` and `<out>.cas`.
    Tls,
}

#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Print CA public keys or certificates, to configure OpenSSH or TLS clients.
    Export {
        /// Which CA and form; default: host and user SSH lines.
        #[arg(long = "type", value_enum)]
        ca_type: Option<ExportType>,
    },
    /// Sign certificates for a user (admin only).
    Sign {
        /// The user.
        #[arg(long)]
        user: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = SignFormat::File)]
        format: SignFormat,
        /// Certificate TTL.
        #[arg(long, default_value = "12h", value_parser = super::parse_ttl)]
        ttl: Duration,
        /// Output path (files are derived from it per format).
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        overwrite: bool,
    },
}

pub async fn status(client: &ApiClient) -> anyhow::Result<ExitCode> {
    let st: ClusterStatus = client.get("/v1/status").await?;
    let mut rows =
        vec![vec!["Cluster".to_string(), st.cluster_name.clone()], vec!["Version".into(), st.version.clone()]];
    for ca in st.authorities.iter().filter(|c| c.cluster == st.cluster_name) {
        let mut keys = Vec::new();
        keys.extend(ca.ssh_fingerprints.iter().map(|f| format!("ssh {f}")));
        keys.extend(ca.tls_pins.iter().map(|p| format!("tls {p}")));
        let keys = if keys.is_empty() { String::new() } else { format!("; {}", keys.join(", ")) };
        rows.push(vec![format!("{} CA", ca.ca_type), format!("rotation: {}{keys}", ca.rotation)]);
    }
    for pin in &st.ca_pin {
        rows.push(vec!["CA pin".into(), pin.clone()]);
    }
    for r in rows {
        println!("{:<16} {}", r[0], r[1]);
    }
    Ok(ExitCode::SUCCESS)
}

fn b64_field(ca: &Resource, set: &str, field: &str) -> Vec<Vec<u8>> {
    crate::resources::kinds::ca_key_pairs(ca, set)
        .filter_map(|p| p.get(field).and_then(Value::as_str))
        .filter_map(|s| base64::engine::general_purpose::STANDARD.decode(s.trim()).ok())
        .collect()
}

pub async fn run(client: &ApiClient, cmd: AuthCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AuthCmd::Export { ca_type } => {
            let types: Vec<ExportType> = match ca_type {
                Some(t) => vec![t],
                None => vec![ExportType::Host, ExportType::User],
            };
            for t in types {
                let (ca, set, field) = match t {
                    ExportType::User => ("user", "ssh", "public_key"),
                    ExportType::Host => ("host", "ssh", "public_key"),
                    ExportType::TlsHost => ("host", "tls", "cert"),
                    ExportType::TlsUser => ("user", "tls", "cert"),
                };
                let cas: Vec<Resource> = client.get(&format!("/v1/authorities/{ca}")).await?;
                for c in &cas {
                    let cluster = c.spec_str("cluster_name").unwrap_or_default();
                    for bytes in b64_field(c, set, field) {
                        let text = String::from_utf8_lossy(&bytes).trim().to_string();
                        match t {
                            ExportType::User => println!("{}", crypto::ssh::authorized_keys_ca_line(&text, cluster)),
                            ExportType::Host => println!("{}", crypto::ssh::known_hosts_ca_line(&text, cluster)),
                            _ => println!("{text}"),
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuthCmd::Sign { user, format, ttl, out, overwrite } => sign(client, &user, format, ttl, &out, overwrite).await,
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

async fn sign(
    client: &ApiClient,
    user: &str,
    format: SignFormat,
    ttl: Duration,
    out: &Path,
    overwrite: bool,
) -> anyhow::Result<ExitCode> {
    let files: Vec<PathBuf> = match format {
        SignFormat::File => vec![out.to_path_buf()],
        SignFormat::Openssh => vec![out.to_path_buf(), with_suffix(out, "-cert.pub")],
        SignFormat::Tls => vec![with_suffix(out, ".key"), with_suffix(out, ".crt"), with_suffix(out, ".cas")],
    };
    if !overwrite && let Some(f) = files.iter().find(|f| f.exists()) {
        bail!("{} exists; pass --overwrite to replace it", f.display());
    }
    let mut body = json!({"user": user, "ttl_seconds": ttl.as_secs()});
    let (tls_key, ssh_key) = match format {
        SignFormat::Openssh => {
            let pair = crypto::ssh::generate_openssh_keypair()?;
            body["ssh_public_key"] = json!(pair.public_line);
            (None, Some(pair))
        }
        SignFormat::File | SignFormat::Tls => {
            let (key, public) = crypto::tls::generate_private_key()?;
            body["tls_public_key"] = json!(String::from_utf8_lossy(&public));
            (Some(String::from_utf8_lossy(&key).to_string()), None)
        }
    };
    let creds: Credentials = client.post("/v1/certs/user", &body).await?;
    match format {
        SignFormat::File => {
            let key = tls_key.unwrap_or_default();
            Identity::from_credentials(&key, &creds)
                .save(out, &creds.cluster)
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
        SignFormat::Openssh => {
            let pair = ssh_key.unwrap_or_default();
            write_secret_file(&files[0], pair.private_openssh.as_bytes())
                .with_context(|| format!("cannot write {}", files[0].display()))?;
            std::fs::write(&files[1], format!("{}\n", creds.ssh_cert.trim()))
                .with_context(|| format!("cannot write {}", files[1].display()))?;
        }
        SignFormat::Tls => {
            write_secret_file(&files[0], tls_key.unwrap_or_default().as_bytes())
                .with_context(|| format!("cannot write {}", files[0].display()))?;
            std::fs::write(&files[1], &creds.tls_cert)
                .with_context(|| format!("cannot write {}", files[1].display()))?;
            std::fs::write(&files[2], creds.tls_ca_certs.concat())
                .with_context(|| format!("cannot write {}", files[2].display()))?;
        }
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    println!("The credentials have been written to {}", names.join(", "));
    print!("{}", table(&["User", "Expires"], &[vec![user.to_string(), creds.expires.clone()]]));
    Ok(ExitCode::SUCCESS)
}
