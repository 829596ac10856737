//! One clone, start to finish: checkpoint and safety checks, the
//! pre-flight plan, the copy, `--mirror`, the destination count, `--verify`,
//! and `--follow`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, Phase};
use super::copy::{CopyConfig, copy};
use super::plan::{MAX_LISTED, Plan, plan};
use super::progress::{Progress, Stage};
use super::verify::{VerifyOptions, VerifyReport, delete_extra, verify};
use super::{CloneError, Retry, Selection, follow};
use crate::backend::Backend;

/// Everything a clone was asked to do.
#[derive(Debug, Clone, Default)]
pub struct CloneOptions {
    /// Concurrent writers (`parallel` in the clone file; at least 1).
    pub parallel: usize,
    /// Write into a destination that already holds items (`force`).
    pub force: bool,
    /// Stop after the pre-flight report.
    pub dry_run: bool,
    /// Succeed when the source holds nothing to clone.
    pub allow_empty_source: bool,
    /// Skip items over the destination's limits instead of refusing.
    pub skip_oversized: bool,
    /// What to clone.
    pub selection: Selection,
    /// Delete destination items the source does not hold.
    pub mirror: bool,
    /// The checkpoint file (none: no checkpoint, no resume).
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint.
    pub resume: bool,
    /// Compare source and destination after copying.
    pub verify: Option<VerifyOptions>,
    /// Keep applying the source's changes until cancelled.
    pub follow: bool,
    /// Retry policy for transient errors.
    pub retry: Retry,
}

/// What a clone did.
#[derive(Debug, Clone, Serialize)]
pub struct CloneSummary {
    /// The pre-flight plan.
    pub plan: Plan,
    /// True if it stopped after the plan.
    pub dry_run: bool,
    /// Items committed in this run.
    pub copied: u64,
    /// Bytes committed in this run.
    pub bytes: u64,
    /// Items an earlier run had committed (resume).
    pub resumed: u64,
    /// Items skipped because they had expired.
    pub skipped_expired: u64,
    /// Items skipped because they exceed the destination's limits.
    pub skipped_oversized: u64,
    /// Whether `--mirror` was on.
    pub mirror: bool,
    /// Destination items deleted by `--mirror`.
    pub mirrored_deletes: u64,
    /// Seconds the run took, planning and counting included.
    pub seconds: f64,
    /// Seconds the copy itself took.
    pub copy_seconds: f64,
    /// Items committed per second of the copy.
    pub items_per_sec: f64,
    /// Items of the selection in the destination afterwards.
    pub destination_items: u64,
    /// The verify report, if asked for.
    pub verify: Option<VerifyReport>,
}

/// A stable fingerprint of what a checkpoint belongs to.
pub fn fingerprint(src: &dyn Backend, dst: &dyn Backend, sel: &Selection) -> String {
    let mut h = Sha256::new();
    h.update(src.describe());
    h.update([0]);
    h.update(dst.describe());
    h.update([0, u8::from(sel.include_internal)]);
    for p in &sel.prefixes {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// Counts the selection's items in a store.
pub async fn count(b: &dyn Backend, sel: &Selection) -> crate::backend::Result<u64> {
    let mut n = 0;
    for range in sel.ranges() {
        let mut items = b.items(range);
        while let Some(item) = items.next().await {
            if sel.contains(&item?.key) {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Refuses a destination that already holds items of the selection.
async fn check_empty(dst: &dyn Backend, sel: &Selection) -> Result<(), CloneError> {
    for mut range in sel.ranges() {
        range.limit = 1;
        let mut items = dst.items(range);
        if let Some(item) = items.next().await {
            let item = item.map_err(|source| CloneError::Destination {
                store: dst.describe(),
                what: "check whether the destination is empty".into(),
                source,
            })?;
            return Err(CloneError::Refused(format!(
                "destination {} already holds items (for example {}); refusing to clone into it. \
                 Set `force: true` in the clone file to write over them (existing keys are overwritten; \
                 keys only in the destination stay unless --mirror is given)",
                dst.describe(),
                item.key
            )));
        }
    }
    Ok(())
}

fn empty_source(src: &dyn Backend, sel: &Selection) -> CloneError {
    let what = if sel.prefixes.is_empty() {
        "no items".to_string()
    } else {
        format!("no items under {}", sel.prefixes.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(", "))
    };
    CloneError::Refused(format!(
        "source {} holds {what}: nothing to clone. Is the source right? (for sqlite, `path` is the \
         directory that holds sqlite.db, usually <data_dir>/backend.) Pass --allow-empty-source to \
         clone an empty source on purpose",
        src.describe()
    ))
}

fn violations(p: &Plan) -> CloneError {
    let mut msg = format!(
        "{} item(s) exceed the limits of destination {}; nothing was written:",
        p.violation_count, p.destination
    );
    for v in &p.violations {
        msg.push_str(&format!("\n  {}: {}", v.key, v.message));
    }
    if p.violation_count as usize > MAX_LISTED {
        msg.push_str(&format!("\n  ... and {} more", p.violation_count as usize - MAX_LISTED));
    }
    msg.push_str("\nRun again with --skip-oversized to clone everything else and skip these.");
    CloneError::Refused(msg)
}

/// Loads the checkpoint and decides where to start.
fn load_checkpoint(opts: &CloneOptions, fp: &str) -> Result<Option<(PathBuf, Checkpoint)>, CloneError> {
    let Some(path) = &opts.checkpoint else {
        if opts.resume {
            return Err(CloneError::Refused("--resume needs a checkpoint file".into()));
        }
        return Ok(None);
    };
    let existing = Checkpoint::load(path)?;
    match (existing, opts.resume) {
        (Some(cp), true) if cp.fingerprint != fp => Err(CloneError::Refused(format!(
            "checkpoint {} belongs to another clone (other source, destination or selection); \
             delete it to start over",
            path.display()
        ))),
        (Some(cp), true) => Ok(Some((path.clone(), cp))),
        (None, true) => Err(CloneError::Refused(format!(
            "--resume: no checkpoint at {}; nothing to resume (run without --resume to start)",
            path.display()
        ))),
        (Some(_), false) if !opts.dry_run => Err(CloneError::Refused(format!(
            "checkpoint {} from an earlier, unfinished clone exists; pass --resume to continue it, \
             or delete the file to start over",
            path.display()
        ))),
        (_, false) => Ok(Some((path.clone(), Checkpoint::new(fp.to_string())))),
    }
}

/// Runs a clone. `cancel` interrupts the copy (the checkpoint is kept) and
/// ends `--follow`.
pub async fn run(
    src: Arc<dyn Backend>,
    dst: Arc<dyn Backend>,
    opts: CloneOptions,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<CloneSummary, CloneError> {
    let started = Instant::now();
    let sel = &opts.selection;
    let fp = fingerprint(src.as_ref(), dst.as_ref(), sel);
    let mut cp = load_checkpoint(&opts, &fp)?;
    let resuming = opts.resume;
    let resume_after = match &cp {
        Some((_, c)) if resuming && c.phase == Phase::Copying => {
            c.last_key().map_err(|message| CloneError::Refused(format!("checkpoint: {message}")))?
        }
        _ => None,
    };
    if !opts.force && !resuming {
        check_empty(dst.as_ref(), sel).await?;
    }

    progress.set_stage(Stage::Planning);
    let p = plan(src.as_ref(), dst.describe(), dst.limits(), sel, &progress).await?;
    if p.items == 0 && !opts.allow_empty_source {
        return Err(empty_source(src.as_ref(), sel));
    }
    // A dry run reports violations (the CLI exits non-zero); a real run refuses.
    if p.violation_count > 0 && !opts.skip_oversized && !opts.dry_run {
        return Err(violations(&p));
    }
    Progress::add(&progress.total_items, p.items);
    Progress::add(&progress.total_bytes, p.bytes);
    let mut summary = CloneSummary {
        plan: p,
        dry_run: opts.dry_run,
        copied: 0,
        bytes: 0,
        resumed: 0,
        skipped_expired: 0,
        skipped_oversized: 0,
        mirror: opts.mirror,
        mirrored_deletes: 0,
        seconds: 0.0,
        copy_seconds: 0.0,
        items_per_sec: 0.0,
        destination_items: 0,
        verify: None,
    };
    if opts.dry_run {
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(summary);
    }

    // Subscribe before copying, so no change made meanwhile is missed.
    let sub = if opts.follow { Some(follow::subscribe(src.as_ref(), sel).await?) } else { None };
    let following_again = cp.as_ref().is_some_and(|(_, c)| resuming && c.phase != Phase::Copying);
    if let Some((_, c)) = &cp
        && resuming
    {
        Progress::add(&progress.items, c.items);
        Progress::add(&progress.bytes, c.bytes);
        Progress::add(&progress.resumed_items, c.items);
        summary.resumed = c.items;
    }
    progress.set_stage(Stage::Copying);
    let cfg = CopyConfig {
        parallel: opts.parallel.max(1),
        skip_oversized: opts.skip_oversized,
        retry: opts.retry,
        resume_after,
        checkpoint: cp.clone(),
    };
    let copy_started = Instant::now();
    let stats = copy(src.clone(), dst.clone(), sel, cfg, progress.clone(), cancel.clone()).await?;
    summary.copy_seconds = copy_started.elapsed().as_secs_f64();
    summary.copied = stats.items;
    summary.bytes = stats.bytes;
    if opts.mirror || following_again {
        progress.set_stage(Stage::Mirroring);
        summary.mirrored_deletes = delete_extra(src.clone(), dst.clone(), sel, &progress).await?;
    }
    let snap = progress.snapshot();
    summary.skipped_expired = snap.skipped_expired;
    summary.skipped_oversized = snap.skipped_oversized;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.items_per_sec = if summary.copy_seconds > 0.0 { stats.items as f64 / summary.copy_seconds } else { 0.0 };
    summary.destination_items = count(dst.as_ref(), sel).await.map_err(|source| CloneError::Destination {
        store: dst.describe(),
        what: "count items after the copy".into(),
        source,
    })?;
    if let Some(vo) = opts.verify {
        progress.set_stage(Stage::Verifying);
        summary.verify = Some(verify(src.clone(), dst.clone(), sel, vo, &progress).await?);
    }
    match (&mut cp, &sub) {
        (Some((path, c)), Some(_)) => {
            c.phase = Phase::Following;
            c.save(path)?;
        }
        (Some((path, _)), None) => Checkpoint::remove(path)?,
        _ => {}
    }
    if let Some(sub) = sub {
        follow::follow(src, dst, sel, sub, opts.parallel.max(1), opts.retry, progress.clone(), cancel).await?;
    }
    progress.set_stage(Stage::Done);
    Ok(summary)
}
