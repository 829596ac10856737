//! The retention purge (upstream `purgeExpiredEvents`): every
//! `purgeInterval`, documents whose `createdAt` is older than now minus
//! `eventRetentionPeriod` are deleted, up to 500 per Commit, until none is
//! left or a pass has deleted [`MAX_PAGES_PER_PASS`] pages. Runs until the
//! store closes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use fs::structured_query::field_filter::Operator;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::layout::{self, MAX_WRITES_PER_COMMIT};
use crate::events::Result;

/// Default interval between purges (upstream `defaultPurgeInterval`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Most pages one pass deletes before waiting for the next tick.
pub const MAX_PAGES_PER_PASS: usize = 100;

/// Runs until `closed`.
pub(super) async fn run(client: Arc<Client>, retention: Duration, interval: Duration, closed: CancellationToken) {
    let interval = interval.max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let pass = tokio::select! {
            _ = closed.cancelled() => return,
            r = purge_once(&client, retention, SystemTime::now()) => r,
        };
        match pass {
            Ok(0) => {}
            Ok(n) => tracing::info!(store = %client.describe, deleted = n, "purged audit events past retention"),
            Err(e) => tracing::warn!(store = %client.describe, error = %e, "failed to purge old audit events"),
        }
    }
}

/// One pass: deletes events older than `now - retention`; returns how many.
pub(super) async fn purge_once(client: &Client, retention: Duration, now: SystemTime) -> Result<usize> {
    let cutoff = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let (secs, _) = layout::split_time(cutoff);
    let filter = Client::filter(layout::CREATED_AT_FIELD, Operator::LessThan, layout::integer(secs));
    let mut deleted = 0;
    for _ in 0..MAX_PAGES_PER_PASS {
        let mut q = client.query(filter.clone(), &[], None, MAX_WRITES_PER_COMMIT);
        // Only the names are needed.
        q.select = Some(fs::structured_query::Projection {
            fields: vec![fs::structured_query::FieldReference { field_path: layout::NAME_FIELD.to_string() }],
        });
        let docs = client.run_query(q).await?;
        if docs.is_empty() {
            break;
        }
        let full = docs.len() == MAX_WRITES_PER_COMMIT;
        let writes = docs
            .iter()
            .map(|d| fs::Write { operation: Some(fs::write::Operation::Delete(d.name.clone())), ..Default::default() })
            .collect();
        client.commit("purge old events", writes).await.map_err(|s| client.error("purge old events", &s))?;
        deleted += docs.len();
        if !full {
            break;
        }
    }
    Ok(deleted)
}
