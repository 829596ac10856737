//! `tctl events export|import|search`: audit events read and written
//! directly in the store, without the auth service, because operators need
//! them during recovery. The store is `--uri`, or the `audit_events_uri` of
//! the teleport.yaml given with `-c` (default: the file log in
//! `<data_dir>/log`, written as the host in `<data_dir>/host_uuid`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use super::Conn;
use crate::cli::output::{rfc3339_millis, table};
use crate::events::{AuditLog, Order, SearchParams, export, registry};

#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Print every event in [--from, --to) as JSON lines, oldest first.
    Export {
        #[command(flatten)]
        store: StoreArg,
        /// Start (inclusive): RFC 3339 or YYYY-MM-DD (midnight UTC).
        #[arg(long)]
        from: String,
        /// End (exclusive): RFC 3339 or YYYY-MM-DD (midnight UTC).
        #[arg(long)]
        to: String,
    },
    /// Write JSON-line events (from `events export`) into a store, keeping
    /// uid, time and ei; importing twice does not duplicate.
    Import {
        #[command(flatten)]
        store: StoreArg,
        /// The file to read; `-` or nothing for standard input.
        file: Option<PathBuf>,
        /// Events written at once (remote stores are faster with more).
        #[arg(long, default_value_t = 8)]
        parallel: usize,
    },
    /// Search events: newest last, as a table or JSON lines.
    Search {
        #[command(flatten)]
        store: StoreArg,
        /// Start (inclusive): RFC 3339 or YYYY-MM-DD; default 24 hours ago.
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive): RFC 3339 or YYYY-MM-DD; default now.
        #[arg(long)]
        to: Option<String>,
        /// Event types, comma-separated (user.login,user.create).
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 500)]
        limit: usize,
        /// Newest first.
        #[arg(long)]
        desc: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// The store to use.
#[derive(Debug, Args)]
pub struct StoreArg {
    /// The audit store URI (file:///path, dynamodb://table?..., ...);
    /// default: teleport.yaml's audit_events_uri.
    #[arg(long)]
    uri: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Parses RFC 3339 or a date (midnight UTC).
pub(crate) fn parse_time_flag(s: &str) -> anyhow::Result<SystemTime> {
    if let Some(t) = crate::events::parse_time(s) {
        return Ok(t);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().into());
    }
    bail!("{s:?} is not a time: use RFC 3339 (2024-05-01T12:00:00Z) or a date (2024-05-01)")
}

async fn open_store(conn: &Conn, store: &StoreArg) -> anyhow::Result<Arc<dyn AuditLog>> {
    let host = conn.host_config()?;
    let data_dir = host.data_dir.clone().unwrap_or_else(|| PathBuf::from(super::DEFAULT_DATA_DIR));
    let uris = match &store.uri {
        Some(u) => vec![u.clone()],
        None => host.audit_events_uri.clone(),
    };
    let host_uuid = read_host_uuid(&data_dir);
    let log = registry::open(&uris, &data_dir, &host_uuid).await.context("cannot open the audit log")?;
    tracing::debug!(store = %log.describe(), "audit log opened");
    Ok(log)
}

/// `<data_dir>/host_uuid`, or `tctl` when the host never ran teleport.
fn read_host_uuid(data_dir: &Path) -> String {
    let path = crate::cluster::auth::DataDirPaths::new(data_dir).host_uuid();
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => "tctl".to_string(),
    }
}

pub async fn run(conn: &Conn, cmd: EventsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EventsCmd::Export { store, from, to } => {
            let (from, to) = (parse_time_flag(&from)?, parse_time_flag(&to)?);
            let log = open_store(conn, &store).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let n = export::export(log.as_ref(), from, to, &mut out).await?;
            drop(out);
            eprintln!("exported {n} events from {}", log.describe());
        }
        EventsCmd::Import { store, file, parallel } => {
            let log = open_store(conn, &store).await?;
            let input: Box<dyn BufRead> = match file.as_deref() {
                None => Box::new(BufReader::new(std::io::stdin())),
                Some(p) if p == Path::new("-") => Box::new(BufReader::new(std::io::stdin())),
                Some(p) => Box::new(BufReader::new(
                    std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
                )),
            };
            let stats = export::import_parallel(log.as_ref(), input, parallel).await?;
            eprintln!("imported {} events into {}", stats.events, log.describe());
        }
        EventsCmd::Search { store, from, to, types, limit, desc, format } => {
            let to = match to {
                Some(t) => parse_time_flag(&t)?,
                None => SystemTime::now(),
            };
            let from = match from {
                Some(f) => parse_time_flag(&f)?,
                None => to - Duration::from_secs(86_400),
            };
            let log = open_store(conn, &store).await?;
            let mut p = SearchParams::range(from, to);
            p.event_types = types;
            p.order = if desc { Order::Descending } else { Order::Ascending };
            p.limit = limit.clamp(1, 1000);
            let mut events = Vec::new();
            while events.len() < limit {
                let page = log.search(&p).await?;
                events.extend(page.events);
                match page.next {
                    Some(c) => p.cursor = Some(c),
                    None => break,
                }
            }
            events.truncate(limit);
            let mut out = std::io::stdout().lock();
            match format {
                Format::Json => {
                    for e in &events {
                        writeln!(out, "{}", e.to_json())?;
                    }
                }
                Format::Text => {
                    let rows: Vec<Vec<String>> = events
                        .iter()
                        .map(|e| {
                            vec![
                                e.time().map(rfc3339_millis).unwrap_or_default(),
                                e.event_type().to_string(),
                                e.str("code").unwrap_or_default().to_string(),
                                e.str("user").unwrap_or_default().to_string(),
                                e.uid().to_string(),
                            ]
                        })
                        .collect();
                    out.write_all(table(&["Time", "Type", "Code", "User", "UID"], &rows).as_bytes())?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_flags() {
        let d = parse_time_flag("2024-05-01").unwrap();
        assert_eq!(d, parse_time_flag("2024-05-01T00:00:00Z").unwrap());
        assert!(parse_time_flag("2024-05-01T02:00:00+02:00").unwrap() == d);
        assert!(parse_time_flag("yesterday").is_err());
    }
}
