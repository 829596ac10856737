//! Copying recordings between stores (`tctl recordings export|import`):
//! each recording is streamed from the source to the destination under the
//! destination's name for it (`<sid>.tar` or `<sid>`), skipped when the
//! destination already holds the same bytes (same size and SHA-256), and
//! written with the source's SHA-256 expected, so a copy whose bytes differ
//! is never published. A rerun after a complete copy transfers nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;

use super::{RecordingInfo, RecordingStore, Result};
use crate::blob::{self, CopyOutcome};

/// Which recordings to copy.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these sessions (empty: all).
    pub sids: BTreeSet<String>,
    /// Only recordings completed at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only recordings completed before this time.
    pub until: Option<DateTime<Utc>>,
}

impl Selection {
    /// Whether `r` is selected. Time bounds use the object's modification
    /// time (when the upload completed); a store that reports none matches.
    pub fn matches(&self, r: &RecordingInfo) -> bool {
        if !self.sids.is_empty() && !self.sids.contains(&r.sid) {
            return false;
        }
        match r.modified() {
            Some(t) => self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u),
            None => true,
        }
    }
}

/// What a transfer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferReport {
    /// Recordings written.
    pub copied: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Recordings already identical at the destination.
    pub identical: u64,
    /// Recordings that failed: (session id, error).
    pub failed: Vec<(String, String)>,
    /// Selected session ids not found in the source.
    pub missing: Vec<String>,
}

/// Progress callback: called after each recording with the running report.
pub type Progress<'a> = &'a (dyn Fn(&TransferReport) + Send + Sync);

/// Copies the selected recordings of `src` into `dst`, `parallel` at a time.
/// Failures are collected (the others go on); the report says what happened.
pub async fn transfer(
    src: &RecordingStore,
    dst: &RecordingStore,
    selection: &Selection,
    parallel: usize,
    progress: Progress<'_>,
) -> Result<TransferReport> {
    let report = Arc::new(std::sync::Mutex::new(TransferReport::default()));
    let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let bytes = AtomicU64::new(0);
    src.list()
        .try_filter(|r| futures::future::ready(selection.matches(r)))
        .map_ok(|r| {
            let report = report.clone();
            let seen = seen.clone();
            let bytes = &bytes;
            async move {
                if let Ok(mut s) = seen.lock() {
                    s.insert(r.sid.clone());
                }
                let outcome =
                    blob::copy_object(src.blob().as_ref(), &r.object, dst.blob().as_ref(), &dst.key_of(&r.sid)).await;
                let snapshot = {
                    let mut rep = report.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok(CopyOutcome::Copied(info)) => {
                            rep.copied += 1;
                            rep.bytes += info.size;
                            bytes.fetch_add(info.size, Ordering::Relaxed);
                        }
                        Ok(CopyOutcome::Identical) => rep.identical += 1,
                        Err(e) => {
                            tracing::warn!(session = %r.sid, error = %e, "recording not copied");
                            rep.failed.push((r.sid.clone(), e.message));
                        }
                    }
                    rep.clone()
                };
                progress(&snapshot);
                Ok::<(), super::RecordingError>(())
            }
        })
        .try_buffer_unordered(parallel.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    let mut out = report.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    out.missing = selection.sids.iter().filter(|s| !seen.contains(*s)).cloned().collect();
    out.failed.sort();
    Ok(out)
}
