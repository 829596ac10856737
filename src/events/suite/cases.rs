//! Suite cases for single events and small searches: round trip, range
//! edges, type filter, orders, page limits, sessions, a UTC day boundary,
//! oversized events and idempotent emits.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Constructor, Ctx, SuiteOptions, assert_sorted, uids};
use crate::events::{Event, EventsErrorKind, Order, TRIMMED_FIELD};

const MS: Duration = Duration::from_millis(1);

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// Every field comes back exactly as written: nested objects, arrays,
/// unicode (keys too), control characters, quotes, empty strings, nulls,
/// booleans, negative, large and fractional numbers.
pub async fn round_trip(c: &dyn Constructor, _: &SuiteOptions) {
    let t = Ctx::new(c).await;
    let when = t.at(hours(10) + Duration::from_nanos(123_456_789));
    let e = t
        .event("user.login", when)
        .with("user", "alice@example.com")
        .with("login", "root")
        .with("success", true)
        .with("addr.remote", "198.51.100.7:51234")
        .with("method", "local")
        .with("unicode", "héllo wörld — 日本語 🚀 עברית")
        .with("ключ", "значение")
        .with("odd", "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7}")
        .with("empty", "")
        .with("nothing", Value::Null)
        .with("neg", -42)
        .with("big", i64::MAX)
        .with("ubig", u64::MAX)
        .with("frac", 1.5)
        .with("list", json!(["a", 1, null, {"k": [true, false]}]))
        .with("nested", json!({"a": {"b": {"c": "d", "n": 7}}, "arr": [], "obj": {}}))
        .with("ei", 3);
    t.emit(e.clone()).await;
    let got = t.all(t.day, t.at(hours(24)), &[], Order::Ascending, 10).await;
    assert_eq!(got.len(), 1, "{}: one event", t.log.name());
    assert_eq!(got[0], e, "{}: the event comes back exactly", t.log.name());
    t.finish().await;
}

/// `from` is inclusive and `to` exclusive, to the millisecond; an empty
/// range finds nothing.
pub async fn time_range_edges(c: &dyn Constructor, _: &SuiteOptions) {
    let t = Ctx::new(c).await;
    let from = t.at(hours(12));
    let to = t.at(hours(13));
    let before = t.event("a", from - MS);
    let at_from = t.event("a", from);
    let inside = t.event("a", from + Duration::from_secs(600));
    let last = t.event("a", to - MS);
    let at_to = t.event("a", to);
    for e in [&before, &at_from, &inside, &last, &at_to] {
        t.emit(e.clone()).await;
    }
    let got = t.all(from, to, &[], Order::Ascending, 100).await;
    assert_eq!(uids(&got), uids(&[at_from.clone(), inside.clone(), last.clone()]), "{}: [from, to)", t.log.name());
    let got = t.all(from - MS, to + MS, &[], Order::Ascending, 100).await;
    assert_eq!(got.len(), 5, "{}: widened range", t.log.name());
    assert!(t.all(from, from, &[], Order::Ascending, 100).await.is_empty(), "{}: empty range", t.log.name());
    let got = t.all(to, to + hours(1), &[], Order::Ascending, 100).await;
    assert_eq!(uids(&got), uids(&[at_to]), "{}: an event at `to` starts the next range", t.log.name());
    t.finish().await;
}

/// Searches keep only the asked types; no types means all.
pub async fn type_filter(c: &dyn Constructor, _: &SuiteOptions) {
    let t = Ctx::new(c).await;
    let types = ["user.login", "user.create", "session.start", "role.created"];
    let mut by_type: Vec<Vec<String>> = vec![Vec::new(); types.len()];
    for i in 0..40u64 {
        let k = (i % types.len() as u64) as usize;
        let e = t.event(types[k], t.at(hours(5) + Duration::from_secs(i)));
        by_type[k].push(e.uid().to_string());
        t.emit(e).await;
    }
    let (from, to) = (t.day, t.at(hours(24)));
    let got = t.all(from, to, &["user.login", "role.created"], Order::Ascending, 7).await;
    let want: BTreeSet<String> = by_type[0].iter().chain(&by_type[3]).cloned().collect();
    assert_eq!(got.iter().map(|e| e.uid().to_string()).collect::<BTreeSet<_>>(), want, "{}: two types", t.log.name());
    assert!(got.iter().all(|e| ["user.login", "role.created"].contains(&e.event_type())));
    assert_eq!(t.all(from, to, &["session.start"], Order::Descending, 3).await.len(), 10);
    assert!(
        t.all(from, to, &["no.such.type"], Order::Ascending, 10).await.is_empty(),
        "{}: unknown type",
        t.log.name()
    );
    assert_eq!(t.all(from, to, &[], Order::Ascending, 1000).await.len(), 40);
    t.finish().await;
}

/// Ascending and descending return the same events, each in its order,
/// including ties on `time` (broken by `ei`, then uid).
pub async fn orders(c: &dyn Constructor, _: &SuiteOptions) {
    let t = Ctx::new(c).await;
    for i in 0..30u64 {
        // Groups of three share a time; `ei` orders within a group.
        let e = t.event("x", t.at(hours(8) + Duration::from_secs(i / 3))).with("ei", (2 - i % 3) as i64);
        t.emit(e).await;
    }
    let (from, to) = (t.day, t.at(hours(24)));
    for limit in [1, 4, 30, 100] {
        let asc = t.all(from, to, &[], Order::Ascending, limit).await;
        let desc = t.all(from, to, &[], Order::Descending, limit).await;
        assert_eq!(asc.len(), 30, "{}: ascending, limit {limit}", t.log.name());
        assert_sorted(t.log.name(), &asc, Order::Ascending);
        assert_sorted(t.log.name(), &desc, Order::Descending);
        let mut rev = uids(&desc);
        rev.reverse();
        assert_eq!(uids(&asc), rev, "{}: descending is ascending reversed (limit {limit})", t.log.name());
    }
    t.finish().await;
}

/// A page holds at most `limit` events; `next` is `None` after the last.
pub async fn page_limits(c: &dyn Constructor, _: &SuiteOptions) {
    let t = Ctx::new(c).await;
    for i in 0..10u64 {
        t.emit(t.event("x", t.at(hours(3) + Duration::from_secs(i)))).await;
    }
    let mut p = crate::events::SearchParams::range(t.day, t.at(hours(24)));
    p.limit = 4;
    let first = t.log.search(&p).await.unwrap_or_else(|e| panic!("{}: search: {e}", t.log.name()));
    assert_eq!(first.events.len(), 4, "{}: a full first page", t.log.name());
    assert!(first.next.is_some(), "{}: more pages follow", t.log.name());
    p.limit = 100;
    let all = t.log.search(&p).await.unwrap_or_else(|e| panic!("{}: search: {e}", t.log.name()));
    assert_eq!(all.events.len(), 10);
    assert!(all.next.is_none(), "{}: no cursor after the last page", t.log.name());
    t.finish().await;
}

/// `session_events` returns one session's events by `ei`, whatever the
/// order they were written in, and nothing of other sessions.
pub async fn session_queries(c: &dyn Constructor, _: &SuiteOptions) {
    let t = Ctx::new(c).await;
    let sid = uuid::Uuid::new_v4().to_string();
    let other = uuid::Uuid::new_v4().to_string();
    let base = t.at(hours(20));
    let mut want = Vec::new();
    for ei in [3i64, 0, 4, 1, 2] {
        let ty = match ei {
            0 => "session.start",
            4 => "session.end",
            _ => "print",
        };
        let e = t.event(ty, base + Duration::from_secs(ei as u64)).with("sid", sid.clone()).with("ei", ei);
        want.push(e.clone());
        t.emit(e).await;
        t.emit(t.event("print", base).with("sid", other.clone()).with("ei", ei)).await;
    }
    want.sort_by_key(|e| e.index());
    let got = t.log.session_events(&sid).await.unwrap_or_else(|e| panic!("{}: session_events: {e}", t.log.name()));
    assert_eq!(got, want, "{}: the session's events by ei", t.log.name());
    match t.log.session_events(&uuid::Uuid::new_v4().to_string()).await {
        Ok(v) => assert!(v.is_empty(), "{}: an unknown session has no events", t.log.name()),
        Err(e) => assert_eq!(e.kind, EventsErrorKind::NotFound, "{}: unknown session: {e}", t.log.name()),
    }
    t.finish().await;
}

/// Events on both sides of midnight UTC: a range across it finds both
/// sides in order (also one event per page), and midnight belongs to the
/// new day.
pub async fn day_boundary(c: &dyn Constructor, _: &SuiteOptions) {
    let t = Ctx::new(c).await;
    let midnight = t.at(hours(24));
    let mut evs = Vec::new();
    for ms in [-2000i64, -1, 0, 1, 2000] {
        let at = if ms < 0 { midnight - MS * (-ms) as u32 } else { midnight + MS * ms as u32 };
        evs.push(t.event("x", at));
    }
    for e in evs.iter().rev() {
        t.emit(e.clone()).await;
    }
    let from = midnight - hours(1);
    let to = midnight + hours(1);
    for limit in [1, 2, 10] {
        let asc = t.all(from, to, &[], Order::Ascending, limit).await;
        assert_eq!(uids(&asc), uids(&evs), "{}: across midnight, limit {limit}", t.log.name());
        let mut desc = t.all(from, to, &[], Order::Descending, limit).await;
        desc.reverse();
        assert_eq!(uids(&desc), uids(&evs), "{}: descending across midnight, limit {limit}", t.log.name());
    }
    let before = t.all(from, midnight, &[], Order::Ascending, 10).await;
    assert_eq!(uids(&before), uids(&evs[..2]), "{}: the old day ends before midnight", t.log.name());
    let after = t.all(midnight, to, &[], Order::Ascending, 10).await;
    assert_eq!(uids(&after), uids(&evs[2..]), "{}: midnight starts the new day", t.log.name());
    t.finish().await;
}

/// An event over the store's limit is trimmed, not rejected: it comes back
/// under the limit with `trimmed: true`, its uid, type, time and small
/// fields, and is found by type and range.
pub async fn oversized_events(c: &dyn Constructor, _: &SuiteOptions) {
    let t = Ctx::new(c).await;
    let max = t.log.max_event_size();
    let big = t
        .event("exec", t.at(hours(2)))
        .with("user", "bob")
        .with("command", "é".repeat(max))
        .with("sid", uuid::Uuid::new_v4().to_string());
    let small = t.event("exec", t.at(hours(2) + MS));
    t.emit(big.clone()).await;
    t.emit(small.clone()).await;
    let got = t.all(t.day, t.at(hours(24)), &["exec"], Order::Ascending, 10).await;
    assert_eq!(uids(&got), uids(&[big.clone(), small]), "{}: both found", t.log.name());
    let g = &got[0];
    assert!(g.size() <= max, "{}: trimmed to {} > {max}", t.log.name(), g.size());
    assert_eq!(g.0.get(TRIMMED_FIELD), Some(&Value::Bool(true)), "{}: the trimmed marker", t.log.name());
    assert_eq!((g.str("user"), g.time(), g.sid()), (Some("bob"), big.time(), big.sid()));
    assert!(got[1].0.get(TRIMMED_FIELD).is_none(), "{}: a small event is not marked", t.log.name());
    t.finish().await;
}

/// Emitting an event whose uid is already stored does not store it twice.
pub async fn idempotent_emit(c: &dyn Constructor, _: &SuiteOptions) {
    let t = Ctx::new(c).await;
    let e = t.event("user.create", t.at(hours(6))).with("user", "carol");
    let other = t.event("user.create", t.at(hours(6) + MS));
    t.emit(e.clone()).await;
    t.emit(other.clone()).await;
    t.emit(e.clone()).await;
    t.emit(e.clone()).await;
    let got = t.all(t.day, t.at(hours(24)), &[], Order::Ascending, 10).await;
    assert_eq!(uids(&got), uids(&[e, other]), "{}: each uid once", t.log.name());
    t.finish().await;
}

/// Checks a page's events are distinct events of the expected set.
pub fn assert_same_set(name: &str, got: &[Event], want: &BTreeSet<String>) {
    let got_set: BTreeSet<String> = got.iter().map(|e| e.uid().to_string()).collect();
    assert_eq!(got_set.len(), got.len(), "{name}: duplicates in the results");
    let missing = want.difference(&got_set).count();
    let extra = got_set.difference(want).count();
    assert!(missing == 0 && extra == 0, "{name}: {missing} events missing, {extra} unexpected");
}
