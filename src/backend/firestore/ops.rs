//! Writes. Every conditional single-key operation reads the document
//! (BatchGetDocuments), decides by this handle's clock and the stored value
//! or revision, then commits with an `update_time` precondition on what it
//! read, so nothing that changed in between is overwritten; a failed
//! precondition means "read again", up to [`CONFLICT_ATTEMPTS`] times.
//! `create` first tries an `exists: false` precondition, which needs no read.
//! `atomic_write` whose conditions all sit on keys it also writes works the
//! same way (read, then every guarded write carries its precondition); one
//! with check-only (Nop) conditions runs in a read-write transaction (reads
//! inside it, then Commit with it, or Rollback), retried on ABORTED. Batches
//! go in Commits of at most 500 writes and 10 MiB.

use std::time::Duration;

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::prost::Message;
use firestore::gcloud_sdk::prost_types::Timestamp;
use firestore::gcloud_sdk::tonic::{Code, Status};
use fs::precondition::ConditionType;
use rand::RngExt;

use super::Inner;
use super::layout::{self, Record};
use crate::backend::{Action, Condition, ConditionalAction, Error, ErrorKind, Item, Key, Lease, Result};

/// How often a conditional write re-reads after losing a race.
pub const CONFLICT_ATTEMPTS: usize = 16;
/// How often a transaction is retried after ABORTED (upstream `maxTxnAttempts`).
pub const TRANSACTION_ATTEMPTS: usize = 16;
/// Attempts of a non-transactional Commit that finds Firestore UNAVAILABLE.
pub const COMMIT_ATTEMPTS: u32 = 3;

fn precondition(c: ConditionType) -> Option<fs::Precondition> {
    Some(fs::Precondition { condition_type: Some(c) })
}

/// A changed-since-read answer to an `update_time` precondition: real
/// Firestore says FAILED_PRECONDITION, or NOT_FOUND once the document is gone.
fn lost_race(s: &Status) -> bool {
    matches!(s.code(), Code::FailedPrecondition | Code::NotFound)
}

/// What a conditional write does once it has read the document.
pub(super) enum Plan<T> {
    /// Replace the document with this item at this revision.
    Put(Item, String, T),
    /// Set only expiry, timestamp and revision.
    Touch(Option<std::time::SystemTime>, String, T),
    /// Delete it.
    Delete(T),
}

impl Inner {
    pub(super) fn put_write(&self, key: &Key, item: &Item, revision: &str, pre: Option<fs::Precondition>) -> fs::Write {
        let fields = layout::fields(key, &item.value, item.expires, revision, self.clock.now());
        fs::Write {
            operation: Some(fs::write::Operation::Update(fs::Document {
                name: self.client.doc_name(key),
                fields,
                ..Default::default()
            })),
            current_document: pre,
            ..Default::default()
        }
    }

    pub(super) fn delete_write(&self, key: &Key, pre: Option<fs::Precondition>) -> fs::Write {
        fs::Write {
            operation: Some(fs::write::Operation::Delete(self.client.doc_name(key))),
            current_document: pre,
            ..Default::default()
        }
    }

    fn touch_write(
        &self,
        key: &Key,
        expires: Option<std::time::SystemTime>,
        revision: &str,
        at: Timestamp,
    ) -> fs::Write {
        let mut fields = layout::fields(key, b"", expires, revision, self.clock.now());
        fields.retain(|k, _| {
            matches!(k.as_str(), layout::EXPIRES_FIELD | layout::TIMESTAMP_FIELD | layout::REVISION_FIELD)
        });
        let mask = fields.keys().cloned().collect();
        fs::Write {
            operation: Some(fs::write::Operation::Update(fs::Document {
                name: self.client.doc_name(key),
                fields,
                ..Default::default()
            })),
            update_mask: Some(fs::DocumentMask { field_paths: mask }),
            current_document: precondition(ConditionType::UpdateTime(at)),
            ..Default::default()
        }
    }

    /// The document of `key`, decoded (expired or not).
    pub(super) async fn read(&self, key: &Key) -> Result<Option<Record>> {
        let mut docs = self.client.batch_get(vec![self.client.doc_name(key)], None).await?;
        match docs.pop().flatten() {
            None => Ok(None),
            Some(d) => {
                let r = Record::decode(&d).map_err(|e| e.context(&self.client.describe))?;
                super::listener::note_form(self, r.key_form);
                Ok(Some(r))
            }
        }
    }

    /// Commits writes, recording the commit time for watchers' catch-up.
    /// Outside a transaction, UNAVAILABLE (the request most likely never
    /// arrived) is retried a few times: every write this store sends is
    /// either idempotent or guarded by a precondition, and the guarded
    /// callers recognise their own revision when a retry loses to the attempt
    /// that did arrive.
    async fn commit(&self, writes: Vec<fs::Write>, tx: Vec<u8>) -> std::result::Result<fs::CommitResponse, Status> {
        let changes = writes.iter().any(|w| matches!(w.operation, Some(fs::write::Operation::Update(_))));
        let mut attempt = 0;
        let r = loop {
            attempt += 1;
            match self.client.commit(writes.clone(), tx.clone()).await {
                Err(s) if s.code() == Code::Unavailable && tx.is_empty() && attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(store = %self.client.describe, attempt, "commit unavailable; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                other => break other?,
            }
        };
        if changes {
            self.note_write(r.commit_time.as_ref());
        }
        Ok(r)
    }

    /// Read, decide (`decide` sees the live record or None), write guarded
    /// by the update time read; again on a lost race.
    pub(super) async fn guarded<T>(
        &self,
        op: &str,
        key: &Key,
        decide: impl Fn(Option<&Record>) -> Result<Plan<T>>,
    ) -> Result<T> {
        // The revision and answer of the last write that lost a race: if the
        // document now carries that revision, the write did land (a retried
        // commit lost only to its own first attempt).
        let mut tried: Option<(String, T)> = None;
        for _ in 0..CONFLICT_ATTEMPTS {
            self.check_open()?;
            let now = self.clock.now();
            let rec = self.read(key).await?;
            if let (Some(r), Some((rev, _))) = (&rec, &tried)
                && r.revision.as_deref() == Some(rev.as_str())
                && let Some((_, out)) = tried.take()
            {
                return Ok(out);
            }
            let live = rec.as_ref().filter(|r| r.live(now));
            let plan = decide(live)?;
            // A live record was read, so it has an update time.
            let Some(at) = live.and_then(|r| r.update_time) else {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("{}: {op} {key:?}: the document has no update time", self.client.describe),
                ));
            };
            let guard = precondition(ConditionType::UpdateTime(at));
            let (write, rev, out) = match plan {
                Plan::Put(item, rev, out) => (self.put_write(key, &item, &rev, guard), Some(rev), out),
                Plan::Touch(expires, rev, out) => (self.touch_write(key, expires, &rev, at), Some(rev), out),
                Plan::Delete(out) => (self.delete_write(key, guard), None, out),
            };
            let deletes = matches!(write.operation, Some(fs::write::Operation::Delete(_)));
            match self.commit(vec![write], Vec::new()).await {
                Ok(r) => {
                    if deletes {
                        // The document existed: listeners will see the delete.
                        self.note_write(r.commit_time.as_ref());
                    }
                    return Ok(out);
                }
                Err(s) if lost_race(&s) => tried = rev.map(|r| (r, out)),
                Err(s) => return Err(self.client.error(op, Some(key), &s)),
            }
        }
        Err(Error::new(
            ErrorKind::CompareFailed,
            format!(
                "{}: {op} {key:?}: the item kept changing; gave up after {CONFLICT_ATTEMPTS} attempts",
                self.client.describe
            ),
        ))
    }

    pub(super) async fn create(&self, item: Item) -> Result<Lease> {
        let rev = layout::new_revision();
        let key = item.key.clone();
        for _ in 0..CONFLICT_ATTEMPTS {
            self.check_open()?;
            let w = self.put_write(&key, &item, &rev, precondition(ConditionType::Exists(false)));
            match self.commit(vec![w], Vec::new()).await {
                Ok(_) => return Ok(Lease::new(&key, &rev)),
                Err(s) if s.code() == Code::AlreadyExists => {}
                Err(s) => return Err(self.client.error("create", Some(&key), &s)),
            }
            // A document is there: an expired one counts as absent.
            let Some(rec) = self.read(&key).await? else { continue };
            if rec.revision.as_deref() == Some(rev.as_str()) {
                // Ours: a retried commit lost only to its own first attempt.
                return Ok(Lease::new(&key, &rev));
            }
            if rec.live(self.clock.now()) {
                return Err(Error::already_exists(&key));
            }
            let Some(at) = rec.update_time else { continue };
            let w = self.put_write(&key, &item, &rev, precondition(ConditionType::UpdateTime(at)));
            match self.commit(vec![w], Vec::new()).await {
                Ok(_) => return Ok(Lease::new(&key, &rev)),
                Err(s) if lost_race(&s) => continue,
                Err(s) => return Err(self.client.error("create", Some(&key), &s)),
            }
        }
        Err(Error::new(
            ErrorKind::CompareFailed,
            format!(
                "{}: create {key:?}: the item kept changing; gave up after {CONFLICT_ATTEMPTS} attempts",
                self.client.describe
            ),
        ))
    }

    pub(super) async fn put(&self, item: Item) -> Result<Lease> {
        let rev = layout::new_revision();
        let w = self.put_write(&item.key, &item, &rev, None);
        self.commit(vec![w], Vec::new()).await.map_err(|s| self.client.error("put", Some(&item.key), &s))?;
        Ok(Lease::new(&item.key, &rev))
    }

    pub(super) async fn atomic_write(&self, actions: Vec<ConditionalAction>) -> Result<String> {
        let rev = layout::new_revision();
        let writes = |me: &Inner| -> Vec<fs::Write> {
            actions
                .iter()
                .filter_map(|a| match &a.action {
                    Action::Nop => None,
                    Action::Put(item) => Some(me.put_write(&a.key, item, &rev, None)),
                    Action::Delete => Some(me.delete_write(&a.key, None)),
                })
                .collect()
        };
        let checked: Vec<&ConditionalAction> = actions.iter().filter(|a| a.condition != Condition::Whatever).collect();
        if checked.is_empty() {
            self.commit(writes(self), Vec::new()).await.map_err(|s| self.client.error("atomic write", None, &s))?;
            return Ok(rev);
        }
        let names: Vec<String> = checked.iter().map(|a| self.client.doc_name(&a.key)).collect();
        if checked.iter().all(|a| a.action != Action::Nop) {
            return self.atomic_write_guarded(&actions, &checked, names, &rev).await;
        }
        for attempt in 0..TRANSACTION_ATTEMPTS {
            self.check_open()?;
            let tx = self.client.begin().await?;
            let docs = match self.client.batch_get(names.clone(), Some(tx.clone())).await {
                Ok(d) => d,
                Err(e) => {
                    self.client.rollback(tx).await;
                    return Err(e);
                }
            };
            let holds = match self.conditions_hold(&checked, &docs) {
                Ok(h) => h,
                Err(e) => {
                    self.client.rollback(tx).await;
                    return Err(e);
                }
            };
            if !holds {
                self.client.rollback(tx).await;
                return Err(Error::condition_failed());
            }
            match self.commit(writes(self), tx).await {
                Ok(_) => return Ok(rev),
                Err(s) if s.code() == Code::Aborted => {
                    // Full jitter over an exponential cap: 5 ms, 10 ms, ... 500 ms.
                    let cap = (5u64 << attempt.min(7)).min(500);
                    let pause = Duration::from_millis(rand::rng().random_range(0..=cap));
                    tracing::debug!(store = %self.client.describe, attempt, "atomic write aborted by contention; retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(s) => return Err(self.client.error("atomic write", None, &s)),
            }
        }
        Err(Error::new(
            ErrorKind::ConnectionProblem,
            format!(
                "{}: atomic write: too much contention; the transaction was aborted {TRANSACTION_ATTEMPTS} times, try again",
                self.client.describe
            ),
        ))
    }

    /// Evaluates the conditions of `checked` against `docs` (in the same
    /// order) by this handle's clock.
    fn conditions_hold(&self, checked: &[&ConditionalAction], docs: &[Option<fs::Document>]) -> Result<bool> {
        let now = self.clock.now();
        for (a, doc) in checked.iter().zip(docs) {
            let rec = match doc {
                Some(d) => Some(Record::decode(d).map_err(|e| e.context(&self.client.describe))?),
                None => None,
            };
            let live = rec.as_ref().filter(|r| r.live(now));
            let holds = match &a.condition {
                Condition::Whatever => true,
                Condition::Exists => live.is_some(),
                Condition::NotExists => live.is_none(),
                Condition::Revision(r) => live.is_some_and(|l| l.revision() == *r),
            };
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// An atomic write whose every checked key is also written: the writes
    /// themselves carry the guard (the update time read, or `exists: false`
    /// for a missing document), so no transaction is needed.
    async fn atomic_write_guarded(
        &self,
        actions: &[ConditionalAction],
        checked: &[&ConditionalAction],
        names: Vec<String>,
        rev: &str,
    ) -> Result<String> {
        for _ in 0..CONFLICT_ATTEMPTS {
            self.check_open()?;
            let docs = self.client.batch_get(names.clone(), None).await?;
            let ours = |d: &fs::Document| Record::decode(d).is_ok_and(|r| r.revision.as_deref() == Some(rev));
            if docs.iter().flatten().any(ours) {
                // A retried commit lost only to its own first attempt.
                return Ok(rev.to_string());
            }
            if !self.conditions_hold(checked, &docs)? {
                return Err(Error::condition_failed());
            }
            let guards: std::collections::HashMap<&Key, Option<fs::Precondition>> = checked
                .iter()
                .zip(&docs)
                .map(|(a, d)| {
                    let c = match d.as_ref().and_then(|d| d.update_time) {
                        Some(t) => ConditionType::UpdateTime(t),
                        None => ConditionType::Exists(false),
                    };
                    (&a.key, precondition(c))
                })
                .collect();
            let writes = actions
                .iter()
                .filter_map(|a| {
                    let pre = guards.get(&a.key).copied().flatten();
                    match &a.action {
                        Action::Nop => None,
                        Action::Put(item) => Some(self.put_write(&a.key, item, rev, pre)),
                        Action::Delete => Some(self.delete_write(&a.key, pre)),
                    }
                })
                .collect();
            match self.commit(writes, Vec::new()).await {
                Ok(r) => {
                    self.note_write(r.commit_time.as_ref());
                    return Ok(rev.to_string());
                }
                Err(s) if lost_race(&s) || s.code() == Code::AlreadyExists => continue,
                Err(s) => return Err(self.client.error("atomic write", None, &s)),
            }
        }
        Err(Error::new(
            ErrorKind::ConnectionProblem,
            format!(
                "{}: atomic write: too much contention; gave up after {CONFLICT_ATTEMPTS} attempts, try again",
                self.client.describe
            ),
        ))
    }

    /// Commits `writes` in chunks of at most 500 writes and ~9.5 MiB.
    pub(super) async fn commit_chunked(&self, op: &str, writes: Vec<fs::Write>) -> Result<()> {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for w in writes {
            let size = w.encoded_len() + 8;
            if !chunk.is_empty()
                && (chunk.len() == layout::MAX_WRITES_PER_COMMIT || bytes + size > layout::COMMIT_BUDGET_BYTES)
            {
                self.commit(std::mem::take(&mut chunk), Vec::new())
                    .await
                    .map_err(|s| self.client.error(op, None, &s))?;
                bytes = 0;
            }
            bytes += size;
            chunk.push(w);
        }
        if !chunk.is_empty() {
            self.commit(chunk, Vec::new()).await.map_err(|s| self.client.error(op, None, &s))?;
        }
        Ok(())
    }

    /// Deletes every document in the inclusive range (expired ones too),
    /// page by page.
    pub(super) async fn delete_range(&self, start: &Key, end: &Key) -> Result<()> {
        let upper = crate::backend::end_bound(end);
        let mut lower = std::ops::Bound::Included(start.clone());
        loop {
            self.check_open()?;
            let page = self.raw_page(lower.as_ref(), upper, false, layout::MAX_WRITES_PER_COMMIT).await?;
            let Some(last) = page.last() else { return Ok(()) };
            lower = std::ops::Bound::Excluded(last.key.clone());
            let full = page.len() == layout::MAX_WRITES_PER_COMMIT;
            let writes = page.iter().map(|r| self.delete_write(&r.key, None)).collect();
            let r = self
                .client
                .commit(writes, Vec::new())
                .await
                .map_err(|s| self.client.error("delete range", Some(start), &s))?;
            self.note_write(r.commit_time.as_ref());
            if !full {
                return Ok(());
            }
        }
    }
}
