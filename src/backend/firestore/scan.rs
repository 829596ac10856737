//! Range reads: `key` range queries ordered by `key`, with limits.
//!
//! A Firestore range filter only matches values of its operand's type, so
//! one query finds the documents whose key is stored as bytes; documents of
//! older upstream versions (string keys, or v16/v17 integer-array keys) need
//! a query of their own, as upstream's `getRangeDocs` runs. This store runs
//! those extra queries (concurrently, merged by key) only once it knows such
//! documents exist: it looks for them when it opens and notices any the
//! listener or a read brings in.
//!
//! Expired documents are skipped by this handle's clock and never count
//! toward a limit: a short page is followed by another from the last key.

use std::cmp::Ordering as Cmp;
use std::ops::Bound;
use std::sync::atomic::Ordering;

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use fs::structured_query::field_filter::Operator;

use super::Inner;
use super::client::Client;
use super::layout::{self, KeyForm, Record};
use crate::backend::{Item, Key, Result};

fn operand(form: KeyForm, key: &[u8]) -> Option<fs::Value> {
    match form {
        KeyForm::Bytes => Some(layout::bytes(key)),
        // A bound that is not UTF-8 cannot be a string operand; such keys
        // are not in the legacy string form anyway.
        KeyForm::String => std::str::from_utf8(key).ok().map(layout::string),
        KeyForm::Array => Some(layout::byte_array(key)),
    }
}

fn query(
    client: &Client,
    form: KeyForm,
    lower: Bound<&Key>,
    upper: Bound<&Key>,
    desc: bool,
    limit: usize,
) -> Option<fs::StructuredQuery> {
    let mut filters = Vec::new();
    match lower {
        Bound::Included(k) => {
            filters.push(Client::filter(layout::KEY_FIELD, Operator::GreaterThanOrEqual, operand(form, k.as_bytes())?))
        }
        Bound::Excluded(k) => {
            filters.push(Client::filter(layout::KEY_FIELD, Operator::GreaterThan, operand(form, k.as_bytes())?))
        }
        // The type restriction of a range filter still selects the form.
        Bound::Unbounded => {
            filters.push(Client::filter(layout::KEY_FIELD, Operator::GreaterThanOrEqual, operand(form, b"")?))
        }
    }
    match upper {
        Bound::Included(k) => {
            filters.push(Client::filter(layout::KEY_FIELD, Operator::LessThanOrEqual, operand(form, k.as_bytes())?))
        }
        Bound::Excluded(k) => {
            filters.push(Client::filter(layout::KEY_FIELD, Operator::LessThan, operand(form, k.as_bytes())?))
        }
        Bound::Unbounded => {}
    }
    Some(client.query(Client::and(filters), Some((layout::KEY_FIELD, desc)), Some(limit)))
}

impl Inner {
    /// The key forms range queries must cover.
    fn forms(&self) -> Vec<KeyForm> {
        let mut forms = vec![KeyForm::Bytes];
        if self.legacy_strings.load(Ordering::Relaxed) {
            forms.push(KeyForm::String);
        }
        if self.legacy_arrays.load(Ordering::Relaxed) {
            forms.push(KeyForm::Array);
        }
        forms
    }

    /// Up to `limit` documents in the range, expired ones included, in key
    /// order (descending when asked), over every key form in use.
    pub(super) async fn raw_page(
        &self,
        lower: Bound<&Key>,
        upper: Bound<&Key>,
        desc: bool,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let queries: Vec<_> =
            self.forms().into_iter().filter_map(|f| query(&self.client, f, lower, upper, desc, limit)).collect();
        let pages = futures::future::try_join_all(queries.into_iter().map(|q| self.client.run_query(q))).await?;
        let mut out = Vec::new();
        for doc in pages.into_iter().flatten() {
            let r = Record::decode(&doc).map_err(|e| e.context(&self.client.describe))?;
            super::listener::note_form(self, r.key_form);
            out.push(r);
        }
        if out.len() > limit || self.forms().len() > 1 {
            out.sort_by(|a, b| if desc { b.key.cmp(&a.key) } else { a.key.cmp(&b.key) });
            out.dedup_by(|a, b| a.key == b.key);
            out.truncate(limit);
        }
        Ok(out)
    }

    /// One page of live items (see [`crate::backend::Backend::scan`]).
    pub(super) async fn scan(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
        desc: bool,
        limit: usize,
    ) -> Result<Vec<Item>> {
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) = (start, end)
            && (s.cmp(e) == Cmp::Greater
                || (s == e && !matches!((start, end), (Bound::Included(_), Bound::Included(_)))))
        {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let (mut lower, mut upper) = (start.cloned(), end.cloned());
        let mut out = Vec::new();
        while out.len() < limit {
            let want = limit - out.len();
            let page = self.raw_page(lower.as_ref(), upper.as_ref(), desc, want).await?;
            let full = page.len() == want;
            if let Some(last) = page.last() {
                let cursor = Bound::Excluded(last.key.clone());
                if desc {
                    upper = cursor;
                } else {
                    lower = cursor;
                }
            }
            out.extend(page.iter().filter(|r| r.live(now)).map(Record::item));
            if !full {
                break;
            }
        }
        Ok(out)
    }
}
