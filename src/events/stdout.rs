//! The STDOUT AUDIT LOG (`stdout://`): every event is printed as one JSON
//! line on standard output, for a log collector to pick up. It keeps
//! nothing, so it cannot be searched. This room touches only stdout.

use std::io::Write;

use async_trait::async_trait;

use super::{AuditLog, Event, EventsError, FILE_MAX_EVENT_SIZE, Result, SearchPage, SearchParams};

/// Prints events to stdout.
#[derive(Debug, Default, Clone)]
pub struct StdoutLog;

fn not_searchable() -> EventsError {
    EventsError::bad(
        "stdout:// cannot be searched: it keeps no events; list a searchable store (file://, dynamodb://, firestore://) first in audit_events_uri",
    )
}

#[async_trait]
impl AuditLog for StdoutLog {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn describe(&self) -> String {
        "stdout://".to_string()
    }

    fn max_event_size(&self) -> usize {
        FILE_MAX_EVENT_SIZE - 1
    }

    async fn emit(&self, event: Event) -> Result<()> {
        event.check()?;
        let mut line = event.trimmed(self.max_event_size()).to_json();
        line.push('\n');
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| EventsError::internal(format!("stdout audit log: {e}")))
    }

    async fn search(&self, _: &SearchParams) -> Result<SearchPage> {
        Err(not_searchable())
    }

    async fn session_events(&self, _: &str) -> Result<Vec<Event>> {
        Err(not_searchable())
    }
}
