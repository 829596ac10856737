//! The copy pipeline: one reader, `parallel` writers, one committer.
//!
//! ```text
//! source.items() ──► reader ──batches──► writer × parallel ──done──► committer
//!   (key order)      sizes batches        put_batch + retry           advances the watermark,
//!                    for the destination                              saves the checkpoint
//! ```
//!
//! Memory is bounded by the channel (2 × `parallel` batches) and by a byte
//! budget for batches in flight ([`IN_FLIGHT_BYTES`]), never by the number
//! of items. Batches are numbered in key order; the committer only moves
//! the watermark past a batch once every earlier batch is committed, so the
//! checkpoint's key always has everything at or below it in the destination.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::checkpoint::Checkpoint;
use super::progress::Progress;
use super::{CloneError, Retry, Selection};
use crate::backend::{Backend, Item, Key, Limits};

/// Bytes of batches that may be read but not yet committed.
pub const IN_FLIGHT_BYTES: usize = 64 << 20;
/// Largest batch in bytes when the destination sets no request limit.
pub const DEFAULT_BATCH_BYTES: usize = 4 << 20;
/// How often the checkpoint file is rewritten while copying.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// How to copy.
#[derive(Debug)]
pub struct CopyConfig {
    /// Concurrent writers (at least 1).
    pub parallel: usize,
    /// Skip items over the destination's limits instead of failing.
    pub skip_oversized: bool,
    /// Retry policy for transient errors on either side.
    pub retry: Retry,
    /// Continue after this key (every item at or below it is committed).
    pub resume_after: Option<Key>,
    /// Where to keep the checkpoint, and its state.
    pub checkpoint: Option<(PathBuf, Checkpoint)>,
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyStats {
    /// Items committed in this run.
    pub items: u64,
    /// Bytes committed in this run.
    pub bytes: u64,
    /// The final watermark.
    pub last_key: Option<Key>,
}

struct Batch {
    seq: u64,
    items: Vec<Item>,
    bytes: usize,
}

struct Done {
    seq: u64,
    last: Key,
    items: u64,
    bytes: u64,
}

/// Batch limits for a destination.
pub fn batch_limits(limits: &Limits) -> (usize, usize) {
    let items = limits.max_batch_items.max(1);
    let bytes = limits.max_request_bytes.unwrap_or(DEFAULT_BATCH_BYTES).clamp(1, DEFAULT_BATCH_BYTES);
    (items, bytes)
}

/// Copies the selection from `src` to `dst`. `cancel` stops it gracefully:
/// batches already read are committed, the checkpoint is saved, and
/// [`CloneError::Interrupted`] is returned.
pub async fn copy(
    src: Arc<dyn Backend>,
    dst: Arc<dyn Backend>,
    sel: &Selection,
    mut cfg: CopyConfig,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<CopyStats, CloneError> {
    let parallel = cfg.parallel.max(1);
    // The checkpoint exists before the first write, so a crash at any point
    // leaves something to resume from.
    let mut stats = CopyStats { last_key: cfg.resume_after.clone(), ..CopyStats::default() };
    save(&mut cfg.checkpoint, &stats, &progress)?;
    let (tx, rx) = mpsc::channel::<Batch>(parallel * 2);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Done, CloneError>>();
    let budget = Arc::new(Semaphore::new(IN_FLIGHT_BYTES >> 10));
    // Stops reading and writing on the first error.
    let abort = cancel.child_token();

    let reader = tokio::spawn(read_batches(
        src.clone(),
        dst.limits(),
        sel.clone(),
        cfg.resume_after.clone(),
        cfg.skip_oversized,
        cfg.retry,
        tx,
        budget.clone(),
        progress.clone(),
        abort.clone(),
    ));

    let rx = Arc::new(Mutex::new(rx));
    let mut writers = Vec::with_capacity(parallel);
    for _ in 0..parallel {
        writers.push(tokio::spawn(write_batches(dst.clone(), rx.clone(), done_tx.clone(), budget.clone(), cfg.retry)));
    }
    drop(done_tx);

    // The committer: advance the watermark over contiguous batches.
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    let mut failure: Option<CloneError> = None;
    let mut last_save = Instant::now();
    while let Some(msg) = done_rx.recv().await {
        match msg {
            Err(e) => {
                abort.cancel();
                failure.get_or_insert(e);
            }
            Ok(d) => {
                pending.insert(d.seq, d);
                let mut advanced = false;
                while let Some(d) = pending.remove(&next) {
                    stats.items += d.items;
                    stats.bytes += d.bytes;
                    Progress::add(&progress.items, d.items);
                    Progress::add(&progress.bytes, d.bytes);
                    stats.last_key = Some(d.last);
                    next += 1;
                    advanced = true;
                }
                if advanced && last_save.elapsed() >= SAVE_EVERY {
                    save(&mut cfg.checkpoint, &stats, &progress)?;
                    last_save = Instant::now();
                }
            }
        }
    }
    let read = reader.await.map_err(|e| CloneError::Refused(format!("clone reader task failed: {e}")))?;
    for w in writers {
        let _ = w.await;
    }
    save(&mut cfg.checkpoint, &stats, &progress)?;
    if let Some(e) = failure {
        return Err(e);
    }
    read?;
    if cancel.is_cancelled() {
        return Err(CloneError::Interrupted { items: progress.items.load(std::sync::atomic::Ordering::Relaxed) });
    }
    Ok(stats)
}

fn save(cp: &mut Option<(PathBuf, Checkpoint)>, stats: &CopyStats, progress: &Progress) -> Result<(), CloneError> {
    if let Some((path, state)) = cp {
        if let Some(k) = &stats.last_key {
            state.set_last_key(k);
        }
        state.items = progress.items.load(std::sync::atomic::Ordering::Relaxed);
        state.bytes = progress.bytes.load(std::sync::atomic::Ordering::Relaxed);
        state.save(path)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn read_batches(
    src: Arc<dyn Backend>,
    limits: Limits,
    sel: Selection,
    resume_after: Option<Key>,
    skip_oversized: bool,
    retry: Retry,
    tx: mpsc::Sender<Batch>,
    budget: Arc<Semaphore>,
    progress: Arc<Progress>,
    abort: CancellationToken,
) -> Result<(), CloneError> {
    let (max_items, max_bytes) = batch_limits(&limits);
    let mut seq = 0u64;
    let mut batch = Batch { seq, items: Vec::with_capacity(max_items), bytes: 0 };
    let clock = src.clock();
    // Sends the batch (waiting for room in the byte budget) and starts a new one.
    macro_rules! flush {
        () => {
            if !batch.items.is_empty() {
                let kib = u32::try_from((batch.bytes >> 10).max(1).min(IN_FLIGHT_BYTES >> 10)).unwrap_or(u32::MAX);
                let permit = tokio::select! {
                    _ = abort.cancelled() => return Ok(()),
                    p = budget.acquire_many(kib) => p,
                };
                if let Ok(p) = permit {
                    p.forget();
                }
                seq += 1;
                let full = std::mem::replace(&mut batch, Batch { seq, items: Vec::with_capacity(max_items), bytes: 0 });
                if tx.send(full).await.is_err() {
                    return Ok(());
                }
            }
        };
    }
    for mut range in sel.ranges() {
        if let Some(after) = &resume_after {
            let next = after.successor();
            if next > range.start {
                range.start = next;
            }
            if !range.end.is_no_end() && (range.start > range.end || (range.end_exclusive && range.start == range.end))
            {
                continue;
            }
        }
        let mut last_read: Option<Key> = None;
        // A broken read resumes after the last key read, within the retries.
        let mut failures = 0u32;
        'read: loop {
            let mut params = range.clone();
            if let Some(k) = &last_read {
                params.start = k.successor();
            }
            let mut items = src.items(params);
            while let Some(item) = items.next().await {
                if abort.is_cancelled() {
                    return Ok(());
                }
                let item = match item {
                    Ok(i) => i,
                    Err(e) if e.is_temporary() && failures + 1 < retry.attempts => {
                        failures += 1;
                        tokio::time::sleep(retry.initial * 2u32.pow(failures.min(6))).await;
                        continue 'read;
                    }
                    Err(source) => {
                        return Err(CloneError::Source {
                            store: src.describe(),
                            what: match &last_read {
                                Some(k) => format!("read items after {k:?}"),
                                None => format!("read items from {:?}", range.start),
                            },
                            source,
                        });
                    }
                };
                last_read = Some(item.key.clone());
                if !sel.contains(&item.key) {
                    continue;
                }
                if item.is_expired(clock.now()) {
                    Progress::add(&progress.skipped_expired, 1);
                    continue;
                }
                if let Err(e) = limits.check_item(&item) {
                    if skip_oversized {
                        tracing::warn!(key = %item.key, error = %e, "skipping an item over the destination's limits");
                        Progress::add(&progress.skipped_oversized, 1);
                        continue;
                    }
                    return Err(CloneError::Refused(format!(
                        "{e} (it appeared after the pre-flight check); nothing past it was written: \
                         run again with --skip-oversized to skip such items"
                    )));
                }
                let size = item.size() + 64;
                if !batch.items.is_empty() && (batch.items.len() == max_items || batch.bytes + size > max_bytes) {
                    flush!();
                }
                batch.bytes += size;
                // Revisions are the destination's to make.
                batch.items.push(Item { revision: String::new(), ..item });
            }
            break;
        }
    }
    flush!();
    Ok(())
}

/// Commits batches until the channel closes. After an interruption the
/// batches already read are still committed; after a failure this writer
/// stops (the committer cancels the reader).
async fn write_batches(
    dst: Arc<dyn Backend>,
    rx: Arc<Mutex<mpsc::Receiver<Batch>>>,
    done: mpsc::UnboundedSender<Result<Done, CloneError>>,
    budget: Arc<Semaphore>,
    retry: Retry,
) {
    loop {
        let next = { rx.lock().await.recv().await };
        let Some(batch) = next else { return };
        let (n, bytes) = (batch.items.len(), batch.bytes);
        let (Some(first), Some(last)) = (batch.items.first(), batch.items.last()) else { continue };
        let (first, last) = (first.key.clone(), last.key.clone());
        let payload: u64 = batch.items.iter().map(|i| i.size() as u64).sum();
        let items = batch.items;
        let result = retry.run(|| dst.put_batch(items.clone())).await;
        budget.add_permits((bytes >> 10).clamp(1, IN_FLIGHT_BYTES >> 10));
        let msg = match result {
            Ok(_) => Ok(Done { seq: batch.seq, last, items: n as u64, bytes: payload }),
            Err(source) => Err(CloneError::Destination {
                store: dst.describe(),
                what: format!("write a batch of {n} items from {first:?} to {last:?}"),
                source,
            }),
        };
        let failed = msg.is_err();
        if done.send(msg).is_err() || failed {
            return;
        }
    }
}
