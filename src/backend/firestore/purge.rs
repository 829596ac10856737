//! The expired-document purge (upstream `purgeExpiredDocuments`): every
//! `purge_expired_documents_poll_interval`, documents with
//! `0 < expires <= now` (by this handle's clock) are deleted, up to 500 per
//! Commit, each guarded by its update time so that a document refreshed in
//! the meantime survives. Watchers hear of the deletes through the listener
//! like any other delete. Reads never delete: they only hide expired items.

use std::sync::Arc;
use std::time::Duration;

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use fs::structured_query::field_filter::Operator;
use tonic::Code;

use super::Inner;
use super::client::Client;
use super::layout::{self, MAX_WRITES_PER_COMMIT};
use crate::backend::Result;
use firestore::gcloud_sdk::tonic;

/// Default interval between purges (upstream `defaultPurgeInterval`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Most pages one purge pass deletes before waiting for the next tick.
const MAX_PAGES_PER_PASS: usize = 100;

/// Runs until the handle closes.
pub(super) async fn run(inner: Arc<Inner>, interval: Duration) {
    let interval = interval.max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = inner.closed.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let pass = tokio::select! {
            _ = inner.closed.cancelled() => return,
            r = purge_once(&inner) => r,
        };
        match pass {
            Ok(0) => {}
            Ok(n) => tracing::debug!(store = %inner.client.describe, deleted = n, "purged expired documents"),
            Err(e) => tracing::warn!(store = %inner.client.describe, error = %e, "failed to purge expired documents"),
        }
    }
}

/// One pass: deletes what has expired now; returns how many went.
pub(super) async fn purge_once(inner: &Inner) -> Result<usize> {
    let client = &inner.client;
    let now = layout::unix_secs(inner.clock.now());
    let filter = Client::and(vec![
        Client::filter(layout::EXPIRES_FIELD, Operator::GreaterThan, layout::integer(0)),
        Client::filter(layout::EXPIRES_FIELD, Operator::LessThanOrEqual, layout::integer(now)),
    ]);
    let mut deleted = 0;
    for _ in 0..MAX_PAGES_PER_PASS {
        let docs = client.run_query(client.query(filter.clone(), None, Some(MAX_WRITES_PER_COMMIT))).await?;
        if docs.is_empty() {
            break;
        }
        let full = docs.len() == MAX_WRITES_PER_COMMIT;
        let guarded = |d: &fs::Document| fs::Write {
            operation: Some(fs::write::Operation::Delete(d.name.clone())),
            current_document: d
                .update_time
                .map(|t| fs::Precondition { condition_type: Some(fs::precondition::ConditionType::UpdateTime(t)) }),
            ..Default::default()
        };
        match client.commit(docs.iter().map(guarded).collect(), Vec::new()).await {
            Ok(r) => {
                inner.note_write(r.commit_time.as_ref());
                deleted += docs.len();
            }
            // One of them changed since the query: delete them one by one,
            // leaving the changed ones.
            Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound) => {
                for d in &docs {
                    match client.commit(vec![guarded(d)], Vec::new()).await {
                        Ok(r) => {
                            inner.note_write(r.commit_time.as_ref());
                            deleted += 1;
                        }
                        Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound) => {}
                        Err(s) => return Err(client.error("purge expired documents", None, &s)),
                    }
                }
            }
            Err(s) => return Err(client.error("purge expired documents", None, &s)),
        }
        if !full {
            break;
        }
    }
    Ok(deleted)
}
