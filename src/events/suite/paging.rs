//! Suite cases at volume: paging through many events with a cursor (no
//! duplicates, no gaps, both orders) and concurrent emitters.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Constructor, Ctx, SuiteOptions, assert_same_set, assert_sorted, uids};
use crate::events::Order;

/// `paging_events` events over three UTC days (many sharing a millisecond)
/// are paged through with odd page sizes in both orders: every event
/// exactly once, in order.
pub async fn paging(c: &dyn Constructor, opts: &SuiteOptions) {
    let t = Ctx::new(c).await;
    let n = opts.paging_events.max(10);
    let span_ms = 3 * 86_400_000u64;
    let mut want = BTreeSet::new();
    for i in 0..n as u64 {
        // Pairs share a time, so the cursor has to break ties.
        let at = t.at(Duration::from_millis((i / 2) * span_ms / (n as u64 / 2 + 1)));
        let e = t.event(if i % 5 == 0 { "user.login" } else { "exec" }, at).with("n", i);
        want.insert(e.uid().to_string());
        t.emit(e).await;
    }
    let (from, to) = (t.day, t.at(Duration::from_secs(4 * 86_400)));
    let asc = t.all(from, to, &[], Order::Ascending, 997).await;
    assert_same_set(t.log.name(), &asc, &want);
    assert_sorted(t.log.name(), &asc, Order::Ascending);
    let desc = t.all(from, to, &[], Order::Descending, 331).await;
    assert_same_set(t.log.name(), &desc, &want);
    let mut rev = uids(&desc);
    rev.reverse();
    assert_eq!(uids(&asc), rev, "{}: descending paging is ascending reversed", t.log.name());
    let logins = t.all(from, to, &["user.login"], Order::Ascending, 113).await;
    assert_eq!(logins.len(), n.div_ceil(5), "{}: a typed search pages too", t.log.name());
    t.finish().await;
}

/// `concurrent_tasks` tasks emit `events_per_task` events each at once, on
/// close times: all are stored, once.
pub async fn concurrent_emitters(c: &dyn Constructor, opts: &SuiteOptions) {
    let t = Ctx::new(c).await;
    let mut tasks = Vec::new();
    let mut want = BTreeSet::new();
    for task in 0..opts.concurrent_tasks {
        let mut evs = Vec::new();
        for i in 0..opts.events_per_task {
            let at = t.at(Duration::from_secs(3600) + Duration::from_micros((i * 10 + task) as u64));
            let e = t.event("exec", at).with("task", task).with("i", i);
            want.insert(e.uid().to_string());
            evs.push(e);
        }
        let log = t.log.clone();
        tasks.push(tokio::spawn(async move {
            for e in evs {
                log.emit(e).await?;
            }
            Ok::<(), crate::events::EventsError>(())
        }));
    }
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{}: concurrent emit: {e}", t.log.name()),
            Err(e) => panic!("{}: emitter task: {e}", t.log.name()),
        }
    }
    let got = t.all(t.day, t.at(Duration::from_secs(86_400)), &[], Order::Ascending, 500).await;
    assert_same_set(t.log.name(), &got, &want);
    assert_sorted(t.log.name(), &got, Order::Ascending);
    t.finish().await;
}
