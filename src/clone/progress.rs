//! Live counters of a clone, shared between the pipeline (which bumps them)
//! and whoever reports progress (the CLI renders them as a bar, text lines
//! or JSON lines). Plain atomics: no locks on the hot path.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// What the clone is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Counting the source and checking limits.
    Planning,
    /// Copying items.
    Copying,
    /// Deleting destination keys absent from the source (`--mirror`).
    Mirroring,
    /// Comparing source and destination.
    Verifying,
    /// Applying the source's changes (`--follow`).
    Following,
    /// Done.
    Done,
}

/// Counters of one clone run.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    stage: Mutex<Stage>,
    /// Items seen by the pre-flight scan (the copy's total).
    pub total_items: AtomicU64,
    /// Bytes seen by the pre-flight scan.
    pub total_bytes: AtomicU64,
    /// Items read during planning so far.
    pub planned_items: AtomicU64,
    /// Items committed to the destination (including those resumed over).
    pub items: AtomicU64,
    /// Bytes (keys plus values) committed.
    pub bytes: AtomicU64,
    /// Items already committed by an earlier run (resume).
    pub resumed_items: AtomicU64,
    /// Items skipped because they had expired.
    pub skipped_expired: AtomicU64,
    /// Items skipped because they exceed the destination's limits.
    pub skipped_oversized: AtomicU64,
    /// Destination keys deleted by `--mirror`.
    pub mirrored_deletes: AtomicU64,
    /// Source events applied while following.
    pub events_applied: AtomicU64,
    /// Replication lag of the last applied event, in milliseconds.
    pub lag_ms: AtomicU64,
    /// Items compared by verify.
    pub verified: AtomicU64,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            started: Instant::now(),
            stage: Mutex::new(Stage::Planning),
            total_items: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
            planned_items: AtomicU64::new(0),
            items: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            resumed_items: AtomicU64::new(0),
            skipped_expired: AtomicU64::new(0),
            skipped_oversized: AtomicU64::new(0),
            mirrored_deletes: AtomicU64::new(0),
            events_applied: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            verified: AtomicU64::new(0),
        }
    }
}

/// A consistent-enough copy of the counters for one report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    /// Current stage.
    pub stage: Stage,
    /// Seconds since the run started.
    pub elapsed_secs: f64,
    /// Items to copy (from the plan).
    pub total_items: u64,
    /// Bytes to copy (from the plan).
    pub total_bytes: u64,
    /// Items scanned by the plan so far.
    pub planned_items: u64,
    /// Items committed.
    pub items: u64,
    /// Bytes committed.
    pub bytes: u64,
    /// Items committed per second in this run (resumed items excluded).
    pub items_per_sec: f64,
    /// Estimated seconds left, when known.
    pub eta_secs: Option<f64>,
    /// Skipped: expired.
    pub skipped_expired: u64,
    /// Skipped: over the destination's limits.
    pub skipped_oversized: u64,
    /// Deleted by `--mirror`.
    pub mirrored_deletes: u64,
    /// Events applied while following.
    pub events_applied: u64,
    /// Replication lag in milliseconds (following).
    pub lag_ms: u64,
    /// Items compared by verify.
    pub verified: u64,
}

impl Progress {
    /// Moves to another stage.
    pub fn set_stage(&self, s: Stage) {
        *self.stage.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// The current stage.
    pub fn stage(&self) -> Stage {
        *self.stage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> Snapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        let items = g(&self.items);
        let fresh = items.saturating_sub(g(&self.resumed_items));
        let rate = if elapsed > 0.0 { fresh as f64 / elapsed } else { 0.0 };
        let total = g(&self.total_items);
        let eta = (rate > 0.0 && total >= items).then(|| (total - items) as f64 / rate);
        Snapshot {
            stage: self.stage(),
            elapsed_secs: elapsed,
            total_items: total,
            total_bytes: g(&self.total_bytes),
            planned_items: g(&self.planned_items),
            items,
            bytes: g(&self.bytes),
            items_per_sec: rate,
            eta_secs: eta,
            skipped_expired: g(&self.skipped_expired),
            skipped_oversized: g(&self.skipped_oversized),
            mirrored_deletes: g(&self.mirrored_deletes),
            events_applied: g(&self.events_applied),
            lag_ms: g(&self.lag_ms),
            verified: g(&self.verified),
        }
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
