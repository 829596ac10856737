//! Continuous replication (`clone --follow`): apply the source's watch
//! events to the destination until stopped.
//!
//! The subscription is made BEFORE the initial copy, so a change made while
//! copying is applied afterwards (replaying every change since the watch
//! began, in order, yields the source's state even if the copy already saw
//! some of them). Events are drained into a bounded queue stamped with their
//! arrival time; the replication lag reported is the age of the event being
//! applied. If the source closes the watch (restart, or the queue overflowed),
//! the follower subscribes again, re-copies the selection with `--mirror`
//! semantics, discards the stale queue, and carries on.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::copy::{CopyConfig, copy};
use super::progress::{Progress, Stage};
use super::verify::delete_extra;
use super::{CloneError, Retry, Selection};
use crate::backend::{Backend, Event, Item, OpType, Watch};

/// Events buffered between the source's watcher and the applier.
pub const QUEUE: usize = 100_000;

/// A live subscription to the source's changes.
pub struct Subscription {
    rx: mpsc::Receiver<(Instant, Event)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes to the selection's changes on `src`.
pub async fn subscribe(src: &dyn Backend, sel: &Selection) -> Result<Subscription, CloneError> {
    let mut watcher = src
        .new_watcher(Watch { name: "clone --follow".into(), prefixes: sel.watch_prefixes(), queue_size: 10_000 })
        .await
        .map_err(|source| CloneError::Source { store: src.describe(), what: "watch for changes".into(), source })?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(async move {
        while let Some(ev) = watcher.recv().await {
            if tx.send((Instant::now(), ev)).await.is_err() {
                return;
            }
        }
    });
    Ok(Subscription { rx, task })
}

/// Applies events until `stop` is cancelled. `parallel` and `retry` are
/// used for re-copies after the watch breaks.
#[allow(clippy::too_many_arguments)]
pub async fn follow(
    src: Arc<dyn Backend>,
    dst: Arc<dyn Backend>,
    sel: &Selection,
    mut sub: Subscription,
    parallel: usize,
    retry: Retry,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> Result<(), CloneError> {
    progress.set_stage(Stage::Following);
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            ev = sub.rx.recv() => ev,
        };
        let Some((arrived, ev)) = next else {
            tracing::warn!(source = %src.describe(), "the source closed its watch; re-syncing the destination");
            sub = subscribe(src.as_ref(), sel).await?;
            let cfg = CopyConfig { parallel, skip_oversized: true, retry, resume_after: None, checkpoint: None };
            copy(src.clone(), dst.clone(), sel, cfg, progress.clone(), stop.clone()).await?;
            delete_extra(src.clone(), dst.clone(), sel, &progress).await?;
            progress.set_stage(Stage::Following);
            continue;
        };
        if !sel.contains(&ev.item.key) {
            continue;
        }
        let key = ev.item.key.clone();
        let result = match ev.op {
            OpType::Init => continue,
            OpType::Put => {
                let item = Item { revision: String::new(), ..ev.item };
                retry.run(|| dst.put(item.clone())).await.map(|_| ())
            }
            OpType::Delete => match retry.run(|| dst.delete(&key)).await {
                Err(e) if e.is_not_found() => Ok(()),
                other => other,
            },
        };
        result.map_err(|source| CloneError::Destination {
            store: dst.describe(),
            what: format!("apply a {:?} of {key:?}", ev.op),
            source,
        })?;
        Progress::add(&progress.events_applied, 1);
        progress.lag_ms.store(arrived.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}
