//! `tctl recordings ls|download|export|import|play` and `tsh play`: session
//! recordings read and copied directly in the object stores, without the
//! auth service, because operators need them during recovery. The store is
//! `--from <uri>`, else the `audit_sessions_uri` of the teleport.yaml given
//! with `-c` (or /etc/teleport.yaml), else `<data_dir>/log/records`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use futures::TryStreamExt;

use super::output::table;
use crate::recordings::play::{PlayFormat, PlayOptions, play};
use crate::recordings::transfer::{Selection, TransferReport, transfer};
use crate::recordings::{RecordingStore, check_session_id};

#[derive(Debug, Subcommand)]
pub enum RecordingsCmd {
    /// List the recordings in a store.
    Ls {
        /// The store (file:///dir, s3://, gs://, azblob://); default:
        /// teleport.yaml's audit_sessions_uri.
        #[arg(long)]
        from: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Save a session's recording to a file.
    Download {
        /// The session id.
        sid: String,
        /// The store; default: teleport.yaml's audit_sessions_uri.
        #[arg(long)]
        from: Option<String>,
        /// The file to write; default `<sid>.tar` in the current directory.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Copy recordings to another store (checksums verified; recordings
    /// already there with the same bytes are skipped, so a rerun is cheap).
    Export {
        /// The destination store URI.
        #[arg(long)]
        to: String,
        /// The source; default: teleport.yaml's audit_sessions_uri.
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Copy recordings from another store into this cluster's store.
    Import {
        /// The source store URI.
        #[arg(long)]
        from: String,
        /// The destination; default: teleport.yaml's audit_sessions_uri.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Replay a recording in the terminal.
    Play(PlayArgs),
}

/// Which recordings to copy, and how.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Only these sessions (repeat or comma-separate).
    #[arg(long = "session", value_delimiter = ',')]
    sessions: Vec<String>,
    /// Only recordings completed at or after this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    since: Option<String>,
    /// Only recordings completed before this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    until: Option<String>,
    /// Recordings copied at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
}

/// `play` arguments, shared by `tctl recordings play` and `tsh play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// The session id.
    pub sid: String,
    /// The store; default: teleport.yaml's audit_sessions_uri.
    #[arg(long)]
    pub from: Option<String>,
    /// Playback speed (2 = twice as fast).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Cut pauses longer than this many seconds.
    #[arg(long = "max-idle")]
    pub max_idle: Option<f64>,
    /// tty: output with its timing; text: output at once; json: events.
    #[arg(long, value_enum, default_value_t = PlayFormatArg::Tty)]
    pub format: PlayFormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlayFormatArg {
    Tty,
    Text,
    Json,
}

/// Where the host's recordings are: teleport.yaml's data dir and
/// `audit_sessions_uri`.
#[derive(Debug, Clone, Default)]
pub struct HostStore {
    /// `teleport.data_dir` (default /var/lib/teleport).
    pub data_dir: PathBuf,
    /// `teleport.storage.audit_sessions_uri`.
    pub sessions_uri: Option<String>,
}

impl HostStore {
    /// From a host's teleport.yaml (default data dir /var/lib/teleport).
    pub fn from_config(host: &super::HostConfig) -> HostStore {
        HostStore {
            data_dir: host.data_dir.clone().unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR)),
            sessions_uri: host.audit_sessions_uri.clone(),
        }
    }

    /// Opens `uri`, or the host's store.
    async fn open(&self, uri: Option<&str>, what: &str) -> anyhow::Result<RecordingStore> {
        let (uri, what) = match uri {
            Some(u) => (Some(u), what),
            None => (self.sessions_uri.as_deref(), "audit_sessions_uri"),
        };
        RecordingStore::open(uri, &self.data_dir, what).await.context("cannot open the recording store")
    }
}

fn parse_time(s: &Option<String>) -> anyhow::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(|s| super::tctl::parse_time_flag(s).map(DateTime::<Utc>::from)).transpose()
}

/// Runs a `tctl recordings` command.
pub async fn run(host: &HostStore, cmd: RecordingsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RecordingsCmd::Ls { from, format } => ls(&host.open(from.as_deref(), "--from").await?, format).await,
        RecordingsCmd::Download { sid, from, output, overwrite } => {
            check_session_id(&sid)?;
            let store = host.open(from.as_deref(), "--from").await?;
            let to = output.unwrap_or_else(|| PathBuf::from(format!("{sid}.tar")));
            if to.exists() && !overwrite {
                bail!("{} exists; pass --overwrite to replace it", to.display());
            }
            let n = store.download(&sid, &to).await?;
            eprintln!("wrote {} ({n} bytes, checksum verified)", to.display());
            Ok(ExitCode::SUCCESS)
        }
        RecordingsCmd::Export { to, from, select } => {
            let src = host.open(from.as_deref(), "--from").await?;
            let dst = RecordingStore::open(Some(&to), &host.data_dir, "--to").await.context("cannot open --to")?;
            copy(&src, &dst, select).await
        }
        RecordingsCmd::Import { from, to, select } => {
            let src =
                RecordingStore::open(Some(&from), &host.data_dir, "--from").await.context("cannot open --from")?;
            let dst = host.open(to.as_deref(), "--to").await?;
            copy(&src, &dst, select).await
        }
        RecordingsCmd::Play(args) => play_cmd(host, args).await,
    }
}

async fn ls(store: &RecordingStore, format: ListFormat) -> anyhow::Result<ExitCode> {
    let recordings: Vec<_> = store.list().try_collect().await?;
    match format {
        ListFormat::Json => {
            for r in &recordings {
                let line = serde_json::json!({
                    "sid": r.sid,
                    "key": r.object.key,
                    "size": r.object.size,
                    "completed": r.modified().map(|t| t.to_rfc3339()),
                    "sha256": r.object.sha256,
                });
                println!("{line}");
            }
        }
        ListFormat::Text => {
            let rows: Vec<Vec<String>> = recordings
                .iter()
                .map(|r| {
                    vec![
                        r.sid.clone(),
                        r.object.size.to_string(),
                        r.modified().map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default(),
                    ]
                })
                .collect();
            print!("{}", table(&["Session ID", "Size", "Completed"], &rows));
            eprintln!("{} recordings in {}", recordings.len(), store.describe());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn copy(src: &RecordingStore, dst: &RecordingStore, select: SelectArgs) -> anyhow::Result<ExitCode> {
    for sid in &select.sessions {
        check_session_id(sid)?;
    }
    let selection = Selection {
        sids: select.sessions.iter().cloned().collect(),
        since: parse_time(&select.since).context("--since")?,
        until: parse_time(&select.until).context("--until")?,
    };
    eprintln!("copying recordings from {} to {}", src.describe(), dst.describe());
    let began = Instant::now();
    let last = std::sync::Mutex::new(Instant::now());
    let tty = std::io::stderr().is_terminal();
    let progress = move |r: &TransferReport| {
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= Duration::from_secs(if tty { 1 } else { 10 }) {
            *last = Instant::now();
            eprintln!(
                "  {} copied ({} MiB), {} already there, {} failed",
                r.copied,
                r.bytes >> 20,
                r.identical,
                r.failed.len()
            );
        }
    };
    let report = transfer(src, dst, &selection, select.parallel, &progress).await?;
    eprintln!(
        "done in {:.1}s: {} copied ({} bytes), {} already identical, {} failed",
        began.elapsed().as_secs_f64(),
        report.copied,
        report.bytes,
        report.identical,
        report.failed.len()
    );
    for (sid, e) in &report.failed {
        eprintln!("  failed {sid}: {e}");
    }
    for sid in &report.missing {
        eprintln!("  not in the source: {sid}");
    }
    Ok(if report.failed.is_empty() && report.missing.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Plays a recording to standard output.
pub async fn play_cmd(host: &HostStore, args: PlayArgs) -> anyhow::Result<ExitCode> {
    check_session_id(&args.sid)?;
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed {}: must be a positive number", args.speed);
    }
    let store = host.open(args.from.as_deref(), "--from").await?;
    let format = match args.format {
        PlayFormatArg::Tty => PlayFormat::Tty,
        PlayFormatArg::Text => PlayFormat::Text,
        PlayFormatArg::Json => PlayFormat::Json,
    };
    let max_idle = match args.max_idle {
        Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => bail!("--max-idle {s}: must be a non-negative number of seconds"),
        None => None,
    };
    let mut reader = store.open_events(&args.sid).await?;
    let mut out = tokio::io::stdout();
    let stats = play(&mut reader, &mut out, PlayOptions { format, speed: args.speed, max_idle }).await?;
    tracing::debug!(prints = stats.prints, bytes = stats.bytes, recorded_ms = stats.recorded_ms, "played");
    Ok(ExitCode::SUCCESS)
}
