//! The collection listener: one Listen stream per handle, on the query
//! upstream watches (`key != ""`, which leaves out documents of other
//! schemas sharing the collection), feeding the handle's [`Fanout`].
//!
//! Changes are buffered and emitted at each global snapshot (a
//! `TargetChange NO_CHANGE` with no target ids and a read time), as
//! Firestore's SDKs raise snapshots; the initial snapshot's documents are
//! the starting state, not events, and watchers get `Init` once it is
//! consistent. The snapshot's read time is published so that a new watcher
//! can wait until this handle's own writes have been seen. If the stream
//! breaks, every watcher is closed (its owner re-reads and watches again),
//! and the listener reconnects with a growing delay up to `retry_period`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::prost_types::Timestamp;
use fs::listen_response::ResponseType;
use fs::structured_query::field_filter::Operator;
use fs::target_change::TargetChangeType;

use super::Inner;
use super::client::Client;
use super::layout::{self, KeyForm, Record};
use crate::backend::{Event, Key};

/// The listen target's id.
const TARGET_ID: i32 = 1;

/// `(seconds, nanos)` of a timestamp, for ordering.
pub fn time_key(t: &Timestamp) -> (i64, i32) {
    (t.seconds, t.nanos)
}

fn target(client: &Client) -> fs::Target {
    let query =
        client.query(Some(Client::filter(layout::KEY_FIELD, Operator::NotEqual, layout::string(""))), None, None);
    fs::Target {
        target_id: TARGET_ID,
        target_type: Some(fs::target::TargetType::Query(fs::target::QueryTarget {
            parent: client.parent.clone(),
            query_type: Some(fs::target::query_target::QueryType::StructuredQuery(query)),
        })),
        ..Default::default()
    }
}

fn key_of(name: &str) -> Option<Key> {
    layout::key_of_document_id(name.rsplit('/').next()?)
}

/// Runs until the handle closes.
pub async fn run(inner: Arc<Inner>) {
    let mut failures: u32 = 0;
    loop {
        if inner.closed.is_cancelled() {
            return;
        }
        let result = tokio::select! {
            _ = inner.closed.cancelled() => return,
            r = listen_once(&inner) => r,
        };
        inner.current.store(false, Ordering::SeqCst);
        // Whatever happened, watchers may have missed events: close them and
        // start over on a fresh fan-out that will send Init when current.
        let old = std::mem::take(&mut *inner.fanout());
        old.close_watchers();
        if inner.closed.is_cancelled() {
            return;
        }
        match result {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(store = %inner.client.describe, error = %e, "watch stream failed; watchers closed, reconnecting");
            }
        }
        let step = inner.retry_period / 10;
        let delay = (step * failures.max(1)).min(inner.retry_period);
        tokio::select! {
            _ = inner.closed.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One Listen stream, until it ends (Ok) or fails.
async fn listen_once(inner: &Inner) -> Result<(), String> {
    let client = &inner.client;
    let mut stream =
        client.listen(target(client)).await.map_err(|s| format!("open: {:?}: {}", s.code(), s.message()))?;
    let mut current = false;
    let mut initialized = false;
    let mut pending: Vec<Event> = Vec::new();
    loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Err("the server ended the stream".into()),
            Err(s) => return Err(format!("{:?}: {}", s.code(), s.message())),
        };
        match msg.response_type {
            Some(ResponseType::TargetChange(tc)) => {
                let kind = TargetChangeType::try_from(tc.target_change_type).unwrap_or(TargetChangeType::NoChange);
                match kind {
                    TargetChangeType::Add => {}
                    TargetChangeType::Current => current = true,
                    TargetChangeType::Remove => {
                        let cause = tc.cause.map(|c| c.message).unwrap_or_default();
                        return Err(format!("the server removed the watch target: {cause}"));
                    }
                    TargetChangeType::Reset => return Err("the server reset the watch target".into()),
                    TargetChangeType::NoChange => {
                        if !tc.target_ids.is_empty() || !current {
                            continue;
                        }
                        let Some(read_time) = tc.read_time else { continue };
                        if initialized {
                            inner.fanout().emit(pending.drain(..));
                        } else {
                            // The initial snapshot is the starting state.
                            pending.clear();
                            initialized = true;
                            inner.current.store(true, Ordering::SeqCst);
                            inner.fanout().set_initialized();
                        }
                        inner.snapshot.send_replace(Some(time_key(&read_time)));
                    }
                }
            }
            Some(ResponseType::DocumentChange(dc)) => {
                let Some(doc) = dc.document else { continue };
                if dc.target_ids.contains(&TARGET_ID) {
                    match Record::decode(&doc) {
                        Ok(r) => {
                            note_form(inner, r.key_form);
                            pending.push(Event::put(r.item()));
                        }
                        Err(e) => {
                            tracing::warn!(store = %client.describe, error = %e, "skipping a document the watch cannot read")
                        }
                    }
                } else if dc.removed_target_ids.contains(&TARGET_ID)
                    && let Some(k) = key_of(&doc.name)
                {
                    pending.push(Event::delete(k));
                }
            }
            Some(ResponseType::DocumentDelete(d)) => {
                if let Some(k) = key_of(&d.document) {
                    pending.push(Event::delete(k));
                }
            }
            Some(ResponseType::DocumentRemove(d)) => {
                if let Some(k) = key_of(&d.document) {
                    pending.push(Event::delete(k));
                }
            }
            Some(ResponseType::Filter(_)) | None => {}
        }
    }
}

/// Remembers that documents with a legacy key form exist, so that ranges
/// look for them too.
pub fn note_form(inner: &Inner, form: KeyForm) {
    match form {
        KeyForm::Bytes => {}
        KeyForm::String => inner.legacy_strings.store(true, Ordering::Relaxed),
        KeyForm::Array => inner.legacy_arrays.store(true, Ordering::Relaxed),
    }
}

/// Waits until the listener has seen every write this handle made, so a new
/// watcher does not receive events of writes that happened before it. Gives
/// up quietly after `limit` (the watcher then may see a few older events).
pub async fn catch_up(inner: &Inner, limit: Duration) {
    if !inner.current.load(Ordering::SeqCst) {
        // Not live: the watcher's Init comes after a fresh snapshot anyway.
        return;
    }
    let Some(target) = *inner.last_write.lock().unwrap_or_else(|p| p.into_inner()) else { return };
    let mut rx = inner.snapshot.subscribe();
    let reached = tokio::time::timeout(limit, rx.wait_for(|t| t.is_some_and(|t| t >= target))).await;
    if reached.is_err() {
        tracing::debug!(store = %inner.client.describe, "watch did not catch up with this handle's writes in time");
    }
}
