//! `tctl get`, `tctl create [-f]` and `tctl rm`, through the kind registry
//! (`resources::kinds`) so that every kind reads and writes the same way.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use super::users_cmd::encode;
use crate::cli::output::{Format, table};
use crate::cluster::client::ApiClient;
use crate::resources::{Resource, codec, kinds, strings};

#[derive(Debug, Args)]
pub struct GetArgs {
    /// `all`, `<kind>` or `<kind>/<name>` (cert authorities: `cas/<type>` or
    /// `cas/<type>/<cluster>`).
    reference: String,
    /// yaml (default), json or text.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    format: Format,
    /// Include secrets (private keys, password hashes, token values).
    #[arg(long)]
    with_secrets: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A YAML or JSON file of resources (`-` for standard input).
    file: PathBuf,
    /// Overwrite resources that exist.
    #[arg(short = 'f', long = "force")]
    force: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// `<kind>/<name>`.
    reference: String,
}

fn split(reference: &str) -> anyhow::Result<(&'static kinds::KindInfo, Option<String>)> {
    let (kind, name) = match reference.split_once('/') {
        Some((k, n)) => (k, Some(n.to_string()).filter(|n| !n.is_empty())),
        None => (reference, None),
    };
    Ok((kinds::lookup(kind)?, name))
}

/// `tctl get all`: every kind that defines the cluster, YAML documents
/// (or a JSON list) after a header comment naming the version, cluster and
/// time.
async fn get_all(client: &ApiClient, a: &GetArgs) -> anyhow::Result<ExitCode> {
    let path = if a.with_secrets { "/v1/resources/all?with_secrets=true" } else { "/v1/resources/all" };
    let list: Vec<Resource> = client.get(path).await?;
    let ping: Value = client.get("/v1/ping").await?;
    if !a.with_secrets {
        eprintln!(
            "tctl: warning: this export holds no secrets (CA private keys, password hashes, MFA devices, token values, \
             connector secrets) and cannot restore the cluster; use --with-secrets for a backup"
        );
    }
    match a.format {
        Format::Json => println!("{}", codec::to_json(&list, false)?),
        _ => {
            let secrets = if a.with_secrets { " --with-secrets" } else { "" };
            println!(
                "# tctl get all{secrets}: teleport {}, cluster {}, taken {}, {} resources",
                crate::VERSION,
                ping["cluster_name"].as_str().unwrap_or_default(),
                crate::cli::output::rfc3339(std::time::SystemTime::now()),
                list.len()
            );
            print!("{}", codec::to_yaml(&list)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn get(client: &ApiClient, a: GetArgs) -> anyhow::Result<ExitCode> {
    if a.reference == "all" {
        return get_all(client, &a).await;
    }
    let (info, name) = split(&a.reference)?;
    let path = |name: Option<&str>| {
        let mut q = Vec::new();
        if let Some(n) = name {
            q.push(format!("name={}", encode(n)));
        }
        if a.with_secrets {
            q.push("with_secrets=true".to_string());
        }
        if q.is_empty() {
            format!("/v1/resources/{}", info.name)
        } else {
            format!("/v1/resources/{}?{}", info.name, q.join("&"))
        }
    };
    let mut list: Vec<Resource> = match (&name, info.kind) {
        // cas/<type>: every CA of a type.
        (Some(n), kinds::Kind::CertAuthority) if !n.contains('/') => {
            let all: Vec<Resource> = client.get(&path(None)).await?;
            all.into_iter().filter(|r| r.spec_str("type") == Some(n.as_str())).collect()
        }
        (Some(n), _) => client.get(&path(Some(n))).await?,
        (None, _) => client.get(&path(None)).await?,
    };
    if name.is_some() && list.is_empty() {
        bail!("{} not found", a.reference);
    }
    match a.format {
        Format::Yaml => print!("{}", codec::to_yaml(&list)?),
        Format::Json => println!("{}", codec::to_json(&list, name.is_some())?),
        Format::Text => print!("{}", text_table(info, &mut list)),
    }
    Ok(ExitCode::SUCCESS)
}

fn labels(r: &Resource) -> String {
    r.metadata.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn text_table(info: &kinds::KindInfo, list: &mut [Resource]) -> String {
    use kinds::Kind;
    match info.kind {
        Kind::Role => {
            let rows = list
                .iter()
                .map(|r| {
                    let allow = r.spec.get("allow");
                    let logins = strings(allow.and_then(|a| a.get("logins"))).join(",");
                    let node_labels = allow
                        .and_then(|a| a.get("node_labels"))
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("[...]")))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    let rules = allow
                        .and_then(|a| a.get("rules"))
                        .and_then(Value::as_array)
                        .map(|rs| {
                            rs.iter()
                                .map(|x| {
                                    format!(
                                        "{}:{}",
                                        strings(x.get("resources")).join(","),
                                        strings(x.get("verbs")).join(",")
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    vec![r.metadata.name.clone(), logins, node_labels, rules]
                })
                .collect::<Vec<_>>();
            table(&["Role", "Allowed to login as", "Node Labels", "Access to resources"], &rows)
        }
        Kind::User => {
            let rows = list
                .iter()
                .map(|u| vec![u.metadata.name.clone(), strings(u.spec.get("roles")).join(",")])
                .collect::<Vec<_>>();
            table(&["User", "Roles"], &rows)
        }
        Kind::CertAuthority => {
            let rows = list
                .iter()
                .map(|c| {
                    vec![
                        c.spec_str("cluster_name").unwrap_or_default().to_string(),
                        c.spec_str("type").unwrap_or_default().to_string(),
                        if kinds::ca_has_private_keys(c) { "yes".into() } else { "no".into() },
                    ]
                })
                .collect::<Vec<_>>();
            table(&["Cluster Name", "CA Type", "Signing Keys"], &rows)
        }
        _ => {
            let rows = list
                .iter()
                .map(|r| {
                    vec![
                        r.metadata.name.clone(),
                        labels(r),
                        r.metadata.expires.clone().unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect::<Vec<_>>();
            table(&["Name", "Labels", "Expires"], &rows)
        }
    }
}

pub async fn create(client: &ApiClient, a: CreateArgs) -> anyhow::Result<ExitCode> {
    let (source, text) = if a.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read resources from standard input")?;
        ("stdin".to_string(), s)
    } else {
        let s = std::fs::read_to_string(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
        (a.file.display().to_string(), s)
    };
    // Parse and validate here first: errors name the file, document and line
    // without a round trip.
    for d in codec::parse(&source, &text)? {
        let at = format!("{source}: {}", d.position());
        let mut r = d.resource;
        let info = r.info().with_context(|| at.clone())?;
        info.validate(&mut r).with_context(|| at.clone())?;
    }
    let out: Vec<Value> =
        client.post("/v1/resources/any", &json!({"text": text, "source": source, "force": a.force})).await?;
    for r in out {
        let verb = if a.force { "created or updated" } else { "created" };
        println!(
            "{} {:?} has been {verb}",
            r["kind"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rm(client: &ApiClient, a: RmArgs) -> anyhow::Result<ExitCode> {
    let (info, name) = split(&a.reference)?;
    let Some(name) = name else {
        bail!("name the resource to delete: tctl rm {}/<name>", info.name);
    };
    let _: Value = client.delete(&format!("/v1/resources/{}?name={}", info.name, encode(&name))).await?;
    println!("{} {name:?} has been deleted", info.name);
    Ok(ExitCode::SUCCESS)
}
