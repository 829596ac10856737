//! The MULTI AUDIT LOG (several `audit_events_uri`s): writes go to every
//! store, searches to the first. The first store is the one of record: an
//! emit fails only if it fails there; a failing secondary is logged with
//! `tracing::warn` and the event stays in the first. This room touches only
//! the stores it is given.

use std::sync::Arc;

use async_trait::async_trait;

use super::{AuditLog, Event, EventsError, Result, SearchPage, SearchParams};

/// Several stores as one.
#[derive(Debug, Clone)]
pub struct MultiLog {
    logs: Vec<Arc<dyn AuditLog>>,
}

impl MultiLog {
    /// The stores, the first being searched; at least one.
    pub fn new(logs: Vec<Arc<dyn AuditLog>>) -> Result<MultiLog> {
        if logs.is_empty() {
            return Err(EventsError::bad("a multi audit log needs at least one store"));
        }
        Ok(MultiLog { logs })
    }

    /// The stores.
    pub fn logs(&self) -> &[Arc<dyn AuditLog>] {
        &self.logs
    }

    fn first(&self) -> &Arc<dyn AuditLog> {
        &self.logs[0]
    }
}

#[async_trait]
impl AuditLog for MultiLog {
    fn name(&self) -> &'static str {
        "multi"
    }

    fn describe(&self) -> String {
        let all: Vec<String> = self.logs.iter().map(|l| l.describe()).collect();
        format!("multi[{}]", all.join(", "))
    }

    fn max_event_size(&self) -> usize {
        self.logs.iter().map(|l| l.max_event_size()).min().unwrap_or(usize::MAX)
    }

    async fn emit(&self, event: Event) -> Result<()> {
        event.check()?;
        // Trim once to the smallest limit so every store keeps the same event.
        let event = event.trimmed(self.max_event_size());
        let first = self.first().emit(event.clone()).await;
        for log in &self.logs[1..] {
            if let Err(e) = log.emit(event.clone()).await {
                tracing::warn!(store = %log.describe(), uid = event.uid(), error = %e, "secondary audit store failed to take an event");
            }
        }
        first
    }

    async fn search(&self, params: &SearchParams) -> Result<SearchPage> {
        self.first().search(params).await
    }

    async fn session_events(&self, sid: &str) -> Result<Vec<Event>> {
        self.first().session_events(sid).await
    }

    async fn close(&self) -> Result<()> {
        let mut res = Ok(());
        for log in &self.logs {
            if let Err(e) = log.close().await {
                res = Err(e);
            }
        }
        res
    }
}
