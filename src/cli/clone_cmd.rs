//! `teleport backend clone -c clone.yaml` and `teleport backend verify -c
//! clone.yaml`: argument handling, progress rendering and the summary. The
//! work is in `crate::clone`.
//!
//! Exit codes: 0 done (verify: identical), 1 error, 3 verify found
//! differences, 130 interrupted (the checkpoint is kept; `--resume`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::output::Format;
use crate::backend::Key;
use crate::backend::registry::{self, OpenOptions};
use crate::clone::checkpoint;
use crate::clone::plan::Plan;
use crate::clone::progress::{Progress, Snapshot, Stage};
use crate::clone::run::{CloneOptions, CloneSummary, run};
use crate::clone::verify::{VerifyOptions, VerifyReport, verify};
use crate::clone::{CloneError, Retry, Selection};
use crate::config;

/// Exit code when verify finds differences.
pub const EXIT_DIFFERENT: u8 = 3;
/// Exit code after an interruption.
pub const EXIT_INTERRUPTED: u8 = 130;

/// What to compare or clone, shared by `clone` and `verify`.
#[derive(Debug, Args, Clone)]
pub struct SelectArgs {
    /// Only keys under this prefix (repeatable), e.g. --prefix /web/users/.
    #[arg(long = "prefix", value_name = "PREFIX")]
    prefixes: Vec<String>,
    /// Also include internal keys (.locks/..., .flags/...), which upstream never clones.
    #[arg(long)]
    include_internal: bool,
    /// Expiries this close count as equal when verifying (Go duration).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    expiry_tolerance: Duration,
    /// Output: text (a progress bar on a terminal) or json (JSON lines on stdout).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    config::duration::parse(s)
}

impl SelectArgs {
    fn selection(&self) -> Selection {
        Selection {
            prefixes: self.prefixes.iter().map(|p| Key::from(p.as_str())).collect(),
            include_internal: self.include_internal,
        }
    }
}

/// Arguments of `teleport backend clone`.
#[derive(Debug, Args, Clone)]
pub struct CloneArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Count, check limits and report; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Succeed when the source holds nothing to clone (normally an error).
    #[arg(long)]
    allow_empty_source: bool,
    /// Skip items over the destination's limits (normally the clone refuses to start).
    #[arg(long)]
    skip_oversized: bool,
    /// Continue an interrupted clone from its checkpoint.
    #[arg(long)]
    resume: bool,
    /// Checkpoint file (default: the clone file's path + `.checkpoint`).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Compare source and destination item by item after copying.
    #[arg(long)]
    verify: bool,
    /// After copying, keep applying the source's changes until stopped (Ctrl-C).
    #[arg(long)]
    follow: bool,
    /// Also delete destination keys the source does not hold (within the selection).
    #[arg(long)]
    mirror: bool,
    /// Concurrent writers, overriding `parallel` from the clone file.
    #[arg(long)]
    parallel: Option<usize>,
}

/// Arguments of `teleport backend verify`.
#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// How many keys of each kind of difference to list.
    #[arg(long, default_value_t = 20)]
    max_listed: usize,
}

/// Opens the source (never created) and the destination of a clone file.
async fn open_pair(
    path: &Path,
) -> anyhow::Result<(config::CloneConfig, Arc<dyn crate::backend::Backend>, Arc<dyn crate::backend::Backend>)> {
    let cfg = config::load_clone_config(path)?;
    let src = registry::open(&cfg.src, OpenOptions::existing())
        .await
        .with_context(|| format!("open the source ({}) from {}", cfg.src.type_name(), path.display()))?;
    let dst = registry::open(&cfg.dst, OpenOptions::create())
        .await
        .with_context(|| format!("open the destination ({}) from {}", cfg.dst.type_name(), path.display()))?;
    Ok((cfg, src, dst))
}

/// Cancels `token` on the first SIGINT/SIGTERM; exits at once on the second.
fn on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return;
        };
        for n in 0..2 {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if n == 0 {
                eprintln!("\nstopping: finishing the batches in flight and saving the checkpoint (again to quit now)");
                token.cancel();
            } else {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        }
    });
}

/// Runs `teleport backend clone`. With `--format json` an error is also a
/// JSON line on stdout (`{"event":"error",...}`), for scripts.
pub async fn clone(path: &Path, args: CloneArgs) -> anyhow::Result<ExitCode> {
    let json = args.select.format == Format::Json;
    let out = clone_inner(path, args).await;
    if json && let Err(e) = &out {
        println!("{}", serde_json::json!({"event": "error", "message": format!("{e:#}")}));
    }
    out
}

async fn clone_inner(path: &Path, args: CloneArgs) -> anyhow::Result<ExitCode> {
    let (cfg, src, dst) = open_pair(path).await?;
    let opts = CloneOptions {
        parallel: args.parallel.unwrap_or(cfg.parallel.max(1) as usize),
        force: cfg.force,
        dry_run: args.dry_run,
        allow_empty_source: args.allow_empty_source,
        skip_oversized: args.skip_oversized,
        selection: args.select.selection(),
        mirror: args.mirror,
        checkpoint: Some(args.checkpoint.clone().unwrap_or_else(|| checkpoint::default_path(path))),
        resume: args.resume,
        verify: args
            .verify
            .then_some(VerifyOptions { expiry_tolerance: args.select.expiry_tolerance, ..VerifyOptions::default() }),
        follow: args.follow,
        retry: Retry::default(),
    };
    let format = args.select.format;
    if format == Format::Text {
        eprintln!(
            "cloning {} -> {} ({} writer(s){}{})",
            src.describe(),
            dst.describe(),
            opts.parallel,
            if opts.force { ", force" } else { "" },
            if opts.mirror { ", mirror" } else { "" }
        );
    }
    let progress = Arc::new(Progress::default());
    let cancel = CancellationToken::new();
    on_signals(cancel.clone());
    let reporter = Reporter::start(progress.clone(), format);
    let result = run(src.clone(), dst.clone(), opts, progress.clone(), cancel).await;
    reporter.stop().await;
    let _ = src.close().await;
    let _ = dst.close().await;
    match result {
        Ok(summary) => {
            print_summary(&summary, format)?;
            if summary.dry_run && summary.plan.violation_count > 0 && !args.skip_oversized {
                eprintln!(
                    "teleport: {} item(s) exceed the destination's limits: a clone would refuse to start \
                     (or skip them with --skip-oversized)",
                    summary.plan.violation_count
                );
                return Ok(ExitCode::FAILURE);
            }
            let different = summary.verify.as_ref().is_some_and(|v| !v.is_equal());
            Ok(if different { ExitCode::from(EXIT_DIFFERENT) } else { ExitCode::SUCCESS })
        }
        Err(e @ CloneError::Interrupted { .. }) => {
            eprintln!("teleport: {e}");
            if format == Format::Json {
                println!("{}", serde_json::json!({"event": "interrupted", "message": e.to_string()}));
            }
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `teleport backend verify`.
pub async fn verify_cmd(path: &Path, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (_, src, dst) = open_pair(path).await?;
    let progress = Arc::new(Progress::default());
    progress.set_stage(Stage::Verifying);
    let reporter = Reporter::start(progress.clone(), args.select.format);
    let opts = VerifyOptions { expiry_tolerance: args.select.expiry_tolerance, max_listed: args.max_listed };
    let report = verify(src.clone(), dst.clone(), &args.select.selection(), opts, &progress).await;
    reporter.stop().await;
    let _ = src.close().await;
    let _ = dst.close().await;
    let report = report?;
    match args.select.format {
        Format::Json => {
            println!("{}", serde_json::to_string(&serde_json::json!({"event": "verify", "report": report}))?)
        }
        _ => print_verify(&report, &mut std::io::stdout().lock())?,
    }
    Ok(if report.is_equal() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_DIFFERENT) })
}

/// Renders progress while a clone runs.
struct Reporter {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    fn start(progress: Arc<Progress>, format: Format) -> Reporter {
        let stop = CancellationToken::new();
        let tty = std::io::stderr().is_terminal();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            match (format, tty) {
                (Format::Json, _) => {
                    lines(progress, s, Duration::from_secs(2), |snap| {
                        let line = serde_json::json!({"event": "progress", "progress": snap});
                        println!("{line}");
                    })
                    .await
                }
                (_, true) => bar(progress, s).await,
                (_, false) => {
                    lines(progress, s, Duration::from_secs(10), |snap| eprintln!("{}", text_line(&snap))).await
                }
            }
        });
        Reporter { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn lines(progress: Arc<Progress>, stop: CancellationToken, every: Duration, emit: impl Fn(Snapshot)) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => emit(progress.snapshot()),
        }
    }
}

fn text_line(s: &Snapshot) -> String {
    match s.stage {
        Stage::Planning => format!("clone: planning, {} items counted", s.planned_items),
        Stage::Following => {
            format!("clone: following, {} events applied, replication lag {} ms", s.events_applied, s.lag_ms)
        }
        Stage::Verifying => format!("clone: verifying, {} items compared", s.verified),
        Stage::Mirroring => format!("clone: mirroring, {} extra items deleted", s.mirrored_deletes),
        _ => format!(
            "clone: {}/{} items ({:.0}%), {}, {:.0} items/s, ETA {}",
            s.items,
            s.total_items,
            if s.total_items > 0 { 100.0 * s.items as f64 / s.total_items as f64 } else { 100.0 },
            human_bytes(s.bytes),
            s.items_per_sec,
            s.eta_secs.map(|e| format!("{e:.0}s")).unwrap_or_else(|| "?".into())
        ),
    }
}

async fn bar(progress: Arc<Progress>, stop: CancellationToken) {
    use indicatif::{ProgressBar, ProgressStyle};
    let pb = ProgressBar::new_spinner();
    let copying = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} items {msg} {per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let spinner = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        let s = progress.snapshot();
        match s.stage {
            Stage::Copying => {
                pb.set_style(copying.clone());
                pb.set_length(s.total_items);
                pb.set_position(s.items);
                pb.set_message(human_bytes(s.bytes));
            }
            _ => {
                pb.set_style(spinner.clone());
                pb.set_message(text_line(&s));
                pb.tick();
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
    }
    pb.finish_and_clear();
}

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

fn print_plan(p: &Plan, w: &mut impl Write) -> std::io::Result<()> {
    writeln!(w, "source {}: {} items, {}", p.source, p.items, human_bytes(p.bytes))?;
    writeln!(w, "{:<28} {:>10} {:>12}", "PREFIX", "ITEMS", "BYTES")?;
    for (prefix, s) in &p.by_prefix {
        writeln!(w, "{:<28} {:>10} {:>12}", format!("/{prefix}"), s.items, human_bytes(s.bytes))?;
    }
    if let Some((k, n)) = &p.largest {
        writeln!(w, "largest item: {k} ({})", human_bytes(*n as u64))?;
    }
    if p.violation_count == 0 {
        writeln!(w, "every item fits the limits of destination {}", p.destination)?;
    } else {
        writeln!(w, "{} item(s) exceed the limits of destination {}:", p.violation_count, p.destination)?;
        for v in &p.violations {
            writeln!(w, "  {}: {}", v.key, v.message)?;
        }
    }
    Ok(())
}

fn print_verify(r: &VerifyReport, w: &mut impl Write) -> std::io::Result<()> {
    if r.is_equal() {
        writeln!(
            w,
            "verify: identical: {} items in source and destination{}",
            r.source_items,
            if r.expiring_ignored > 0 {
                format!(" ({} expiring items not compared)", r.expiring_ignored)
            } else {
                String::new()
            }
        )?;
        return Ok(());
    }
    writeln!(
        w,
        "verify: DIFFERENT: {} missing from the destination, {} extra in it, {} differing (source {} items, destination {})",
        r.missing, r.extra, r.differing, r.source_items, r.destination_items
    )?;
    for k in &r.first_missing {
        writeln!(w, "  missing   {k}")?;
    }
    for k in &r.first_extra {
        writeln!(w, "  extra     {k}")?;
    }
    for d in &r.first_differing {
        writeln!(w, "  differing {}: {}", d.key, d.detail)?;
    }
    for (prefix, d) in r.by_prefix.iter().filter(|(_, d)| !d.equal) {
        writeln!(w, "  /{prefix}: source {} items, destination {}", d.source_items, d.destination_items)?;
    }
    Ok(())
}

fn print_summary(s: &CloneSummary, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string(&serde_json::json!({"event": "summary", "summary": s}))?);
        return Ok(());
    }
    let mut w = std::io::stdout().lock();
    print_plan(&s.plan, &mut w)?;
    if s.dry_run {
        writeln!(w, "dry run: nothing was written")?;
        return Ok(());
    }
    writeln!(
        w,
        "copied {} items ({}) in {:.1}s, {:.0} items/s ({:.1}s in all, with planning and counting)",
        s.copied,
        human_bytes(s.bytes),
        s.copy_seconds,
        s.items_per_sec,
        s.seconds
    )?;
    if s.resumed > 0 {
        writeln!(w, "resumed: {} items were committed by the interrupted run", s.resumed)?;
    }
    writeln!(w, "skipped: {} expired, {} over the destination's limits", s.skipped_expired, s.skipped_oversized)?;
    if s.mirror {
        writeln!(w, "mirror: deleted {} destination items the source does not hold", s.mirrored_deletes)?;
    }
    writeln!(w, "destination {} now holds {} items of the selection", s.plan.destination, s.destination_items)?;
    if let Some(v) = &s.verify {
        print_verify(v, &mut w)?;
    }
    Ok(())
}
