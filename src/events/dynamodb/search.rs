//! Searches over the `timesearchV2` index, day by day, with an exact,
//! gap-free cursor.
//!
//! The index orders items by `CreatedAt`, which has only second
//! resolution, so items within one second come back in no useful order.
//! A page is therefore built like this: read the UTC days of `[from, to)`
//! in the asked order (in rounds of several days' first pages at once), keep
//! the events that match (time range, types, strictly after the cursor),
//! and stop only once more than `limit` are kept AND the index has moved
//! past the second of the `limit`-th kept event: every event of that second
//! and before has then been seen, so sorting by (time, `ei`, `uid`) and
//! cutting at `limit` is exact. The cursor is that last event's sort key
//! (base64url JSON); the next page re-reads its second and skips what sorts
//! at or before it: no gaps, no duplicates, however many events share a
//! second. A page is the last (`next` is None) when nothing matches after it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{CREATED_AT, CREATED_AT_DATE, DynamoEvents, EVENT_TYPE, INDEX_TIME_SEARCH, SortKey};
use crate::events::{Event, EventsError, Order, Result, SearchPage, SearchParams};

/// Most days whose first page is fetched at once. Days are read in rounds
/// of 1, 2, 4, ... up to this many, so a range whose first day is busy
/// costs one query and a long, mostly empty range is crossed quickly.
pub const DAY_PREFETCH: usize = 16;
/// Items the index reads per Query page (before the type filter): enough
/// for a page and the rest of its last second, without reading the whole
/// remaining day for every page.
fn query_limit(limit: usize) -> i32 {
    (limit.saturating_add(1)).clamp(100, 1000) as i32
}
/// Most event types pushed into the query's filter expression (DynamoDB's
/// `IN` takes up to 100 operands); more are filtered here only.
const MAX_FILTER_TYPES: usize = 100;

type Attrs = HashMap<String, AttributeValue>;

/// One matching item.
pub struct Row {
    pub key: SortKey,
    pub event: Event,
}

/// The opaque cursor: the sort key of the last event returned.
#[derive(Serialize, Deserialize)]
struct Cursor {
    v: u8,
    s: i64,
    n: u32,
    ei: i64,
    uid: String,
}

fn encode(k: &SortKey) -> String {
    let c = Cursor { v: 1, s: k.secs, n: k.nanos, ei: k.ei, uid: k.uid.clone() };
    let json = serde_json::to_vec(&c).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode(s: &str, store: &str) -> Result<SortKey> {
    let bad = || EventsError::bad(format!("{store}: search cursor {s:?} is not one this store returned"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if c.v != 1 {
        return Err(bad());
    }
    Ok(SortKey { secs: c.s, nanos: c.n, ei: c.ei, uid: c.uid })
}

/// `t` as (floor seconds, nanoseconds).
pub fn split(t: std::time::SystemTime) -> (i64, u32) {
    let dt: DateTime<Utc> = t.into();
    (dt.timestamp(), dt.timestamp_subsec_nanos())
}

/// The UTC day of a unix second.
pub fn day_of(secs: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp(secs, 0).map(|d| d.date_naive()).unwrap_or_default()
}

fn day_start(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or_default()
}

/// One Query page of one day: the matching rows, and where the index stopped
/// (`None` when the day is done).
struct DayPage {
    rows: Vec<Row>,
    last: Option<(i64, Attrs)>,
}

impl DynamoEvents {
    async fn query_day(
        &self,
        day: NaiveDate,
        (lo, hi): (i64, i64),
        p: &SearchParams,
        start: Option<Attrs>,
    ) -> Result<DayPage> {
        let mut req = self
            .client
            .query()
            .table_name(&self.cfg.table)
            .index_name(INDEX_TIME_SEARCH)
            .key_condition_expression("#d = :d AND #c BETWEEN :lo AND :hi")
            .expression_attribute_names("#d", CREATED_AT_DATE)
            .expression_attribute_names("#c", CREATED_AT)
            .expression_attribute_values(":d", AttributeValue::S(day.format("%Y-%m-%d").to_string()))
            .expression_attribute_values(":lo", AttributeValue::N(lo.to_string()))
            .expression_attribute_values(":hi", AttributeValue::N(hi.to_string()))
            .scan_index_forward(p.order == Order::Ascending)
            .limit(query_limit(p.limit))
            .set_exclusive_start_key(start);
        if !p.event_types.is_empty() && p.event_types.len() <= MAX_FILTER_TYPES {
            let names: Vec<String> = (0..p.event_types.len()).map(|i| format!(":t{i}")).collect();
            req = req
                .filter_expression(format!("#t IN ({})", names.join(", ")))
                .expression_attribute_names("#t", EVENT_TYPE);
            for (n, t) in names.iter().zip(&p.event_types) {
                req = req.expression_attribute_values(n, AttributeValue::S(t.clone()));
            }
        }
        let out = req.send().await.map_err(|e| super::error::sdk(e, &self.store, "query the timesearchV2 index"))?;
        let rows = out.items().iter().filter_map(|item| self.row(item)).collect();
        let last = out.last_evaluated_key().map(|k| {
            let at = k.get(CREATED_AT).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(lo);
            (at, k.clone())
        });
        Ok(DayPage { rows, last })
    }

    /// One page of a search.
    pub(super) async fn search_page(&self, p: &SearchParams) -> Result<SearchPage> {
        if p.limit == 0 {
            return Err(EventsError::bad(format!("{}: search limit must be positive", self.store)));
        }
        let cursor = p.cursor.as_deref().map(|c| decode(c, &self.store)).transpose()?;
        let from = split(p.from);
        let to = split(p.to);
        // Seconds that may hold events in [from, to).
        let mut lo = from.0;
        let mut hi = if to.1 == 0 { to.0 - 1 } else { to.0 };
        let asc = p.order == Order::Ascending;
        if let Some(c) = &cursor {
            if asc {
                lo = lo.max(c.secs);
            } else {
                hi = hi.min(c.secs);
            }
        }
        if hi < lo {
            return Ok(SearchPage::default());
        }
        let (first, last) = (day_of(lo), day_of(hi));
        let n_days = (last - first).num_days();
        let days: Vec<NaiveDate> =
            (0..=n_days).map(|i| if asc { first + Days::days(i) } else { last - Days::days(i) }).collect();
        let bounds = move |d: NaiveDate| (lo.max(day_start(d)), hi.min(day_start(d) + 86_399));
        let keep = |r: &Row| {
            (r.key.secs, r.key.nanos) >= from
                && (r.key.secs, r.key.nanos) < to
                && (p.event_types.is_empty() || p.event_types.iter().any(|t| t == r.event.event_type()))
                && match &cursor {
                    None => true,
                    Some(c) if asc => r.key > *c,
                    Some(c) => r.key < *c,
                }
        };
        let mut kept: Vec<Row> = Vec::new();
        let mut rest = days.as_slice();
        let mut round = 1;
        'days: while !rest.is_empty() {
            let (now, later) = rest.split_at(round.min(rest.len()));
            rest = later;
            round = (round * 2).min(DAY_PREFETCH);
            let firsts = futures::future::join_all(now.iter().map(|d| self.query_day(*d, bounds(*d), p, None))).await;
            for (day, first) in now.iter().zip(firsts) {
                let mut page = first?;
                loop {
                    kept.extend(page.rows.drain(..).filter(|r| keep(r)));
                    if kept.len() > p.limit {
                        sort(&mut kept, asc);
                        // Only the first `limit` and one more can be returned.
                        kept.truncate(p.limit + 1);
                        let sk = kept[p.limit - 1].key.secs;
                        let past = match &page.last {
                            None => true,
                            Some((at, _)) => (asc && *at > sk) || (!asc && *at < sk),
                        };
                        if past {
                            break 'days;
                        }
                    }
                    match page.last.take() {
                        Some((_, k)) => page = self.query_day(*day, bounds(*day), p, Some(k)).await?,
                        None => break,
                    }
                }
            }
        }
        sort(&mut kept, asc);
        let more = kept.len() > p.limit;
        kept.truncate(p.limit);
        let next = if more { kept.last().map(|r| encode(&r.key)) } else { None };
        Ok(SearchPage { events: kept.into_iter().map(|r| r.event).collect(), next })
    }
}

fn sort(rows: &mut [Row], asc: bool) {
    if asc {
        rows.sort_by(|a, b| a.key.cmp(&b.key));
    } else {
        rows.sort_by(|a, b| b.key.cmp(&a.key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let k = SortKey { secs: -5, nanos: 7, ei: 3, uid: "u".into() };
        assert_eq!(decode(&encode(&k), "s").unwrap(), k);
        assert!(decode("not a cursor", "s").is_err());
        assert!(decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{}"), "s").is_err());
    }

    #[test]
    fn days_and_seconds() {
        let t = std::time::UNIX_EPOCH - std::time::Duration::from_millis(1500);
        assert_eq!(split(t), (-2, 500_000_000));
        assert_eq!(day_of(86_399).to_string(), "1970-01-01");
        assert_eq!(day_of(86_400).to_string(), "1970-01-02");
        assert_eq!(day_start(day_of(90_000)), 86_400);
    }
}
