//! EXPORT AND IMPORT of audit events, for backups and for moving a log from
//! one store to another: [`export`] streams every event of a time range out
//! of any store as JSON lines (one event per line, keys sorted, so the form
//! is stable), page by page with bounded memory; [`import`] writes such a
//! stream into any store keeping `uid`, `time` and `ei`, and is idempotent
//! because stores skip a uid they already hold. This room uses only the
//! [`AuditLog`] trait and the reader/writer it is given.

use std::io::{BufRead, Write};
use std::time::SystemTime;

use super::{AuditLog, Event, EventsError, Result, SearchParams};

/// Events per search page while exporting.
pub const EXPORT_PAGE: usize = 1000;

/// Writes every event with `from <= time < to` to `out` as JSON lines, in
/// time order; returns how many.
pub async fn export<W: Write>(log: &dyn AuditLog, from: SystemTime, to: SystemTime, out: &mut W) -> Result<u64> {
    let mut p = SearchParams::range(from, to);
    p.limit = EXPORT_PAGE;
    let mut n = 0u64;
    loop {
        let page = log.search(&p).await?;
        for e in &page.events {
            let mut line = e.to_json();
            line.push('\n');
            out.write_all(line.as_bytes())
                .map_err(|err| EventsError::internal(format!("export: writing event {}: {err}", e.uid())))?;
            n += 1;
        }
        match page.next {
            Some(next) => p.cursor = Some(next),
            None => break,
        }
    }
    out.flush().map_err(|e| EventsError::internal(format!("export: flush: {e}")))?;
    Ok(n)
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Events read and written (a store skips uids it already holds).
    pub events: u64,
    /// Blank lines skipped.
    pub blank: u64,
}

/// Reads JSON lines from `input` and emits each event into `log` as it is;
/// stops at the first malformed line with an error naming its number
/// (events before it are written; importing again is harmless).
pub async fn import<R: BufRead>(log: &dyn AuditLog, input: R) -> Result<ImportStats> {
    import_parallel(log, input, 1).await
}

/// [`import`] with up to `parallel` emits in flight (remote stores such as
/// DynamoDB spend most of an emit waiting). Lines are parsed in order; a
/// malformed line stops the import after the emits already started finish.
pub async fn import_parallel<R: BufRead>(log: &dyn AuditLog, input: R, parallel: usize) -> Result<ImportStats> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let parallel = parallel.max(1);
    let mut stats = ImportStats::default();
    let mut in_flight = FuturesUnordered::new();
    let emit = |n: usize, event: Event| async move {
        log.emit(event).await.map_err(|e| EventsError::new(e.kind, format!("import: line {n}: {e}")))
    };
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| EventsError::bad(format!("import: line {n}: {e}")))?;
        if line.trim().is_empty() {
            stats.blank += 1;
            continue;
        }
        let event: Event = serde_json::from_str(&line)
            .map_err(|e| EventsError::bad(format!("import: line {n}: not a JSON event object: {e}")))?;
        event.check().map_err(|e| EventsError::bad(format!("import: line {n}: {e}")))?;
        while in_flight.len() >= parallel {
            if let Some(r) = in_flight.next().await {
                r?;
            }
        }
        in_flight.push(emit(n, event));
        stats.events += 1;
    }
    while let Some(r) = in_flight.next().await {
        r?;
    }
    Ok(stats)
}
