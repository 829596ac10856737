//! The handle's single etcd watch on its prefix, feeding the shared fan-out.
//!
//! The watch starts at the revision read when the handle opened and, after a
//! broken stream, resumes at the revision after the last event it delivered,
//! so no event is lost or repeated across reconnects. If that revision has
//! been compacted away, watchers are closed (their owners re-read and watch
//! again) and the watch restarts at the present.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use etcd_client::{EventType, WatchOptions};

use super::Inner;
use crate::backend::{Event, Item, Key, OpType};

/// Pause between a broken watch and the next attempt.
const RETRY: Duration = Duration::from_millis(1500);

/// Runs until the handle closes.
pub async fn run(inner: Arc<Inner>, mut next_rev: i64) {
    loop {
        if inner.closed.is_cancelled() {
            return;
        }
        match watch_once(&inner, &mut next_rev).await {
            Ok(()) => return,
            Err(msg) => {
                tracing::warn!(store = %inner.describe(), error = %msg, "etcd watch broke; resuming");
            }
        }
        tokio::select! {
            _ = inner.closed.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// One watch stream; returns Ok when the handle closed, Err to retry.
async fn watch_once(inner: &Inner, next_rev: &mut i64) -> Result<(), String> {
    let opts = WatchOptions::new().with_prefix().with_start_revision(*next_rev);
    let mut client = inner.client.watch_client();
    let mut stream = tokio::select! {
        _ = inner.closed.cancelled() => return Ok(()),
        r = client.watch(inner.prefix.clone(), Some(opts)) => r.map_err(|e| e.to_string())?,
    };
    loop {
        let msg = tokio::select! {
            _ = inner.closed.cancelled() => return Ok(()),
            m = stream.message() => m.map_err(|e| e.to_string())?,
        };
        let Some(resp) = msg else {
            return Err("watch stream ended".into());
        };
        if resp.created() {
            inner.fanout.set_initialized();
        }
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                tracing::warn!(
                    store = %inner.describe(),
                    compacted = resp.compact_revision(),
                    "etcd compacted the revisions this watch needed; closing watchers so they re-sync"
                );
                inner.fanout.close_watchers();
                *next_rev = 0;
            }
            return Err(format!("watch canceled: {}", resp.cancel_reason()));
        }
        let mut events = Vec::with_capacity(resp.events().len());
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let key = Key::from(kv.key().strip_prefix(inner.prefix.as_slice()).unwrap_or(kv.key()).to_vec());
            let revision = kv.mod_revision().to_string();
            *next_rev = (*next_rev).max(kv.mod_revision() + 1);
            match ev.event_type() {
                EventType::Delete => {
                    let mut e = Event::delete(key);
                    e.item.revision = revision;
                    events.push(e);
                }
                EventType::Put => {
                    let value = match base64::engine::general_purpose::STANDARD.decode(kv.value()) {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(store = %inner.describe(), %key, error = %e, "skipping a value that is not base64");
                            continue;
                        }
                    };
                    let expires = match inner.leases.expiry_of(&inner.client, kv.lease(), inner.clock.now()).await {
                        Ok(e) => e,
                        Err(e) => return Err(format!("look up the lease of {key}: {e}")),
                    };
                    events.push(Event { op: OpType::Put, item: Item { key, value, expires, revision } });
                }
            }
        }
        inner.fanout.emit(events);
    }
}
