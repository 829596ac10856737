//! The etcd store, layout-compatible with upstream's `lib/backend/etcdbk`, so
//! either implementation reads the other's keys.
//!
//! Layout: an item with key K is the etcd key `prefix + K` (prefix from the
//! config, a leading `/` added if missing; docs recommend ending it with `/`,
//! which gives keys such as `/teleport//web/users/alice/params`, exactly as
//! upstream). The value is the item's bytes in standard base64. The
//! revision is the etcd ModRevision in decimal. Expiry is an etcd lease
//! ([`lease`]): etcd deletes the key when the lease runs out and watchers
//! see a Delete.
//!
//! Unlike upstream, reads return each item's expiry (looked up from its
//! lease and cached), so clones and backups taken from etcd keep TTLs.
//!
//! Conditional operations are etcd transactions: create compares
//! CreateRevision = 0, update CreateRevision != 0, compare-and-swap the
//! base64 value, conditional update/delete the ModRevision. Batches respect
//! etcd's default 128 operations and 1.5 MiB per request ([`MAX_TXN_OPS`],
//! [`MAX_REQUEST_BYTES`]). Time is the server's: expiry follows the server
//! clock, so the compliance suite runs this store on the real clock.

mod client;
mod lease;
mod watch;

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use base64::Engine;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, KvClient, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp,
};
use tokio_util::sync::CancellationToken;

use self::client::call;
use self::lease::Leases;
use super::registry::OpenOptions;
use super::{
    Action, Backend, Clock, Condition, ConditionalAction, Error, ErrorKind, Event, Fanout, Item, Key, Lease, Limits,
    Result, Watch, Watcher, atomic, check_key,
};
use crate::config::EtcdConfig;

/// Most operations in one transaction: etcd's `--max-txn-ops` default.
/// <https://etcd.io/docs/v3.5/op-guide/configuration/#--max-txn-ops>
pub const MAX_TXN_OPS: usize = 128;
/// Largest request etcd accepts: its `--max-request-bytes` default (1.5 MiB).
/// <https://etcd.io/docs/v3.5/dev-guide/limit/>
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// Room kept in each request for keys, framing and transaction overhead.
const REQUEST_OVERHEAD: usize = 4096;
/// Largest value that fits one request once base64-encoded.
pub const MAX_VALUE_BYTES: usize = (MAX_REQUEST_BYTES - REQUEST_OVERHEAD) * 3 / 4;

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// State shared by a handle and its watch task.
pub struct Inner {
    client: Client,
    prefix: Vec<u8>,
    endpoints: String,
    /// `etcd_max_client_msg_size_bytes`: the largest request we send.
    max_send: usize,
    leases: Leases,
    fanout: Fanout,
    clock: Arc<dyn Clock>,
    closed: CancellationToken,
}

impl Inner {
    fn describe(&self) -> String {
        format!("etcd {} prefix {}", self.endpoints, String::from_utf8_lossy(&self.prefix))
    }
}

/// A handle on an etcd cluster under one prefix.
pub struct EtcdBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend").field("store", &self.inner.describe()).finish()
    }
}

impl EtcdBackend {
    /// Connects, checks the server version, and starts the watch. etcd has
    /// nothing to create: `opts.create` changes nothing.
    pub async fn open(cfg: &EtcdConfig, opts: OpenOptions) -> Result<EtcdBackend> {
        let mut prefix = cfg.prefix.clone();
        if !prefix.starts_with('/') {
            prefix.insert(0, '/');
        }
        let client = client::connect(cfg).await?;
        let endpoints = cfg.peers.join(",");
        let prefix = prefix.into_bytes();
        // The revision the watch starts after: everything from here on is
        // delivered to watchers.
        let probe = call(client.kv_client().get(prefix.clone(), Some(GetOptions::new().with_count_only())))
            .await
            .map_err(|e| e.context(format!("etcd {endpoints}")))?;
        let rev = probe.header().map(|h| h.revision()).unwrap_or(0);
        let inner = Arc::new(Inner {
            client,
            prefix,
            endpoints,
            max_send: cfg.etcd_max_client_msg_size_bytes.unwrap_or(usize::MAX),
            leases: Leases::default(),
            fanout: Fanout::default(),
            clock: opts.clock,
            closed: CancellationToken::new(),
        });
        tokio::spawn(watch::run(inner.clone(), rev + 1));
        Ok(EtcdBackend { inner })
    }

    fn kv(&self) -> KvClient {
        self.inner
            .client
            .kv_client()
            .max_decoding_message_size(i32::MAX as usize)
            .max_encoding_message_size(self.inner.max_send)
    }

    fn full(&self, key: &Key) -> Vec<u8> {
        let mut k = self.inner.prefix.clone();
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.is_cancelled() {
            return Err(Error::closed(self.inner.describe()));
        }
        Ok(())
    }

    /// Adds the store to errors that are about the store, not a key.
    fn ctx(&self, e: Error) -> Error {
        match e.kind() {
            ErrorKind::NotFound | ErrorKind::AlreadyExists | ErrorKind::CompareFailed => e,
            _ => e.context(self.inner.describe()),
        }
    }

    async fn lease_id(&self, expires: Option<SystemTime>) -> Result<Option<i64>> {
        match expires {
            None => Ok(None),
            Some(t) => Ok(Some(self.inner.leases.lease_for(&self.inner.client, t, self.inner.clock.now()).await?)),
        }
    }

    fn put_op(&self, item: &Item, lease: Option<i64>) -> TxnOp {
        let opts = lease.map(|l| PutOptions::new().with_lease(l));
        TxnOp::put(self.full(&item.key), b64(&item.value), opts)
    }

    /// Bytes a put of `item` adds to a request (key, base64 value, framing).
    fn encoded_size(&self, item: &Item) -> usize {
        item.key.len() + self.inner.prefix.len() + item.value.len().div_ceil(3) * 4 + 64
    }

    /// Refuses an item that cannot fit one etcd request, naming the key.
    fn check_size(&self, item: &Item) -> Result<()> {
        let size = self.encoded_size(item);
        if size > MAX_REQUEST_BYTES - REQUEST_OVERHEAD {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "item {:?} is {} bytes ({size} base64-encoded); etcd accepts requests up to {MAX_REQUEST_BYTES} bytes (--max-request-bytes)",
                    item.key,
                    item.value.len()
                ),
            ));
        }
        Ok(())
    }

    async fn item_of(&self, kv: &KeyValue) -> Result<Item> {
        let key = Key::from(kv.key().strip_prefix(self.inner.prefix.as_slice()).unwrap_or(kv.key()).to_vec());
        let value = base64::engine::general_purpose::STANDARD.decode(kv.value()).map_err(|e| {
            Error::new(ErrorKind::Internal, format!("key {key:?}: stored value is not base64")).with_source(e)
        })?;
        let expires = self.inner.leases.expiry_of(&self.inner.client, kv.lease(), self.inner.clock.now()).await?;
        Ok(Item { key, value, expires, revision: kv.mod_revision().to_string() })
    }

    /// Runs a transaction, returning whether it succeeded and its revision.
    async fn txn(&self, txn: Txn) -> Result<(bool, String)> {
        let resp = call(self.kv().txn(txn)).await.map_err(|e| self.ctx(e))?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        Ok((resp.succeeded(), rev.to_string()))
    }

    /// A put guarded by `compares`; `fail` is the error when they do not hold.
    async fn guarded_put(&self, item: Item, compares: Vec<Compare>, fail: impl FnOnce() -> Error) -> Result<Lease> {
        check_key(&item.key)?;
        self.check_open()?;
        self.check_size(&item)?;
        let lease = self.lease_id(item.expires).await?;
        let op = self.put_op(&item, lease);
        let (ok, revision) = self.txn(Txn::new().when(compares).and_then(vec![op])).await?;
        if !ok {
            return Err(fail());
        }
        Ok(Lease { key: item.key, revision })
    }
}

fn parse_rev(r: &str) -> Option<i64> {
    r.parse::<i64>().ok().filter(|n| *n > 0)
}

#[async_trait]
impl Backend for EtcdBackend {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn limits(&self) -> Limits {
        Limits {
            max_key_len: Some(MAX_REQUEST_BYTES - REQUEST_OVERHEAD - self.inner.prefix.len()),
            max_item_size: Some(MAX_VALUE_BYTES),
            max_request_bytes: Some(MAX_REQUEST_BYTES),
            max_batch_items: MAX_TXN_OPS,
            max_atomic_actions: super::MAX_ATOMIC_WRITE_SIZE,
        }
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    async fn scan(&self, start: Bound<&Key>, end: Bound<&Key>, descending: bool, limit: usize) -> Result<Vec<Item>> {
        self.check_open()?;
        let from = match start {
            Bound::Included(k) => self.full(k),
            Bound::Excluded(k) => self.full(&k.successor()),
            Bound::Unbounded => self.inner.prefix.clone(),
        };
        let to = match end {
            Bound::Included(k) => self.full(&k.successor()),
            Bound::Excluded(k) => self.full(k),
            Bound::Unbounded => Key::from(self.inner.prefix.clone()).range_end().into_bytes(),
        };
        if from >= to && to != [0] {
            return Ok(Vec::new());
        }
        let order = if descending { SortOrder::Descend } else { SortOrder::Ascend };
        let opts = GetOptions::new()
            .with_range(to)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .with_sort(SortTarget::Key, order);
        let mut resp = call(self.kv().get(from, Some(opts))).await.map_err(|e| self.ctx(e))?;
        let mut out = Vec::with_capacity(resp.kvs().len());
        for kv in resp.take_kvs() {
            out.push(self.item_of(&kv).await?);
        }
        Ok(out)
    }

    async fn get(&self, key: &Key) -> Result<Item> {
        check_key(key)?;
        self.check_open()?;
        let mut resp = call(self.kv().get(self.full(key), None)).await.map_err(|e| self.ctx(e))?;
        match resp.take_kvs().first() {
            Some(kv) => self.item_of(kv).await,
            None => Err(Error::not_found(key)),
        }
    }

    async fn create(&self, item: Item) -> Result<Lease> {
        let (k, key) = (self.full(&item.key), item.key.clone());
        self.guarded_put(item, vec![Compare::create_revision(k, CompareOp::Equal, 0)], || Error::already_exists(&key))
            .await
    }

    async fn put(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        self.check_open()?;
        self.check_size(&item)?;
        let lease = self.lease_id(item.expires).await?;
        let opts = lease.map(|l| PutOptions::new().with_lease(l));
        let resp = call(self.kv().put(self.full(&item.key), b64(&item.value), opts)).await.map_err(|e| self.ctx(e))?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0).to_string();
        Ok(Lease { key: item.key, revision })
    }

    async fn update(&self, item: Item) -> Result<Lease> {
        let (k, key) = (self.full(&item.key), item.key.clone());
        self.guarded_put(item, vec![Compare::create_revision(k, CompareOp::NotEqual, 0)], || Error::not_found(&key))
            .await
    }

    async fn compare_and_swap(&self, expected: Item, replace_with: Item) -> Result<Lease> {
        check_key(&expected.key)?;
        if expected.key != replace_with.key {
            return Err(Error::bad_parameter("expected and replace_with keys should match"));
        }
        let k = self.full(&expected.key);
        let key = expected.key.clone();
        let cmp = Compare::value(k, CompareOp::Equal, b64(&expected.value));
        self.guarded_put(replace_with, vec![cmp], || {
            Error::new(ErrorKind::CompareFailed, format!("key {key:?} is missing or does not hold the expected value"))
        })
        .await
    }

    async fn conditional_update(&self, item: Item) -> Result<Lease> {
        let Some(rev) = parse_rev(&item.revision) else {
            return Err(Error::incorrect_revision(&item.key));
        };
        let (k, key) = (self.full(&item.key), item.key.clone());
        let cmps = vec![
            Compare::create_revision(k.clone(), CompareOp::NotEqual, 0),
            Compare::mod_revision(k, CompareOp::Equal, rev),
        ];
        self.guarded_put(item, cmps, || Error::incorrect_revision(&key)).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        check_key(key)?;
        self.check_open()?;
        let resp = call(self.kv().delete(self.full(key), None)).await.map_err(|e| self.ctx(e))?;
        if resp.deleted() == 0 {
            return Err(Error::not_found(key));
        }
        Ok(())
    }

    async fn conditional_delete(&self, key: &Key, revision: &str) -> Result<()> {
        let Some(rev) = parse_rev(revision) else {
            return Err(Error::incorrect_revision(key));
        };
        self.check_open()?;
        let k = self.full(key);
        let txn = Txn::new()
            .when(vec![
                Compare::create_revision(k.clone(), CompareOp::NotEqual, 0),
                Compare::mod_revision(k.clone(), CompareOp::Equal, rev),
            ])
            .and_then(vec![TxnOp::delete(k, None)]);
        let (ok, _) = self.txn(txn).await?;
        if !ok {
            return Err(Error::incorrect_revision(key));
        }
        Ok(())
    }

    async fn delete_range(&self, start: &Key, end: &Key) -> Result<()> {
        check_key(start)?;
        check_key(end)?;
        self.check_open()?;
        let to = if end.is_no_end() {
            Key::from(self.inner.prefix.clone()).range_end().into_bytes()
        } else {
            self.full(&end.successor())
        };
        let from = self.full(start);
        if from >= to {
            return Ok(());
        }
        call(self.kv().delete(from, Some(DeleteOptions::new().with_range(to)))).await.map_err(|e| self.ctx(e))?;
        Ok(())
    }

    async fn keep_alive(&self, lease: &Lease, expires: SystemTime) -> Result<()> {
        check_key(&lease.key)?;
        self.check_open()?;
        let id = self.inner.leases.lease_for(&self.inner.client, expires, self.inner.clock.now()).await?;
        let k = self.full(&lease.key);
        // Re-put with the new lease and the stored value, so watchers see a Put.
        let op = TxnOp::put(k.clone(), "", Some(PutOptions::new().with_lease(id).with_ignore_value()));
        let txn = Txn::new().when(vec![Compare::create_revision(k, CompareOp::NotEqual, 0)]).and_then(vec![op]);
        let (ok, _) = self.txn(txn).await?;
        if !ok {
            return Err(Error::not_found(&lease.key));
        }
        Ok(())
    }

    async fn atomic_write(&self, actions: Vec<ConditionalAction>) -> Result<String> {
        atomic::validate(&actions)?;
        self.check_open()?;
        let mut cmps = Vec::new();
        let mut ops = Vec::new();
        for a in &actions {
            let k = self.full(&a.key);
            match &a.condition {
                Condition::Whatever => {}
                Condition::Exists => cmps.push(Compare::create_revision(k.clone(), CompareOp::NotEqual, 0)),
                Condition::NotExists => cmps.push(Compare::create_revision(k.clone(), CompareOp::Equal, 0)),
                Condition::Revision(r) => match parse_rev(r) {
                    Some(rev) => cmps.push(Compare::mod_revision(k.clone(), CompareOp::Equal, rev)),
                    None => return Err(Error::condition_failed()),
                },
            }
            match &a.action {
                Action::Nop => {}
                Action::Put(item) => {
                    let item = Item { key: a.key.clone(), ..item.clone() };
                    self.check_size(&item)?;
                    let lease = self.lease_id(item.expires).await?;
                    ops.push(self.put_op(&item, lease));
                }
                Action::Delete => ops.push(TxnOp::delete(k, None)),
            }
        }
        let (ok, rev) = self.txn(Txn::new().when(cmps).and_then(ops)).await?;
        if !ok {
            return Err(Error::condition_failed());
        }
        Ok(rev)
    }

    async fn put_batch(&self, items: Vec<Item>) -> Result<Vec<String>> {
        self.check_open()?;
        let mut revisions = Vec::with_capacity(items.len());
        let mut ops = Vec::new();
        let (mut bytes, mut count) = (0usize, 0usize);
        let mut keys: HashSet<&Key> = HashSet::new();
        for item in &items {
            check_key(&item.key)?;
            self.check_size(item)?;
            let size = self.encoded_size(item);
            // A transaction may not name a key twice, nor exceed the limits.
            if count == MAX_TXN_OPS || bytes + size > MAX_REQUEST_BYTES - REQUEST_OVERHEAD || keys.contains(&item.key) {
                let (_, rev) = self.txn(Txn::new().and_then(std::mem::take(&mut ops))).await?;
                revisions.extend(std::iter::repeat_n(rev, count));
                (bytes, count) = (0, 0);
                keys.clear();
            }
            let lease = self.lease_id(item.expires).await?;
            ops.push(self.put_op(item, lease));
            keys.insert(&item.key);
            bytes += size;
            count += 1;
        }
        if count > 0 {
            let (_, rev) = self.txn(Txn::new().and_then(ops)).await?;
            revisions.extend(std::iter::repeat_n(rev, count));
        }
        Ok(revisions)
    }

    async fn delete_batch(&self, keys: Vec<Key>) -> Result<()> {
        self.check_open()?;
        let unique: Vec<Key> = keys.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        for chunk in unique.chunks(MAX_TXN_OPS) {
            let ops = chunk.iter().map(|k| TxnOp::delete(self.full(k), None)).collect::<Vec<_>>();
            self.txn(Txn::new().and_then(ops)).await?;
        }
        Ok(())
    }

    async fn new_watcher(&self, watch: Watch) -> Result<Watcher> {
        self.check_open()?;
        // Events at or below the current revision describe writes that
        // completed before this watcher: skip them.
        let probe = call(self.kv().get(self.inner.prefix.clone(), Some(GetOptions::new().with_count_only())))
            .await
            .map_err(|e| self.ctx(e))?;
        let now_rev = probe.header().map(|h| h.revision()).unwrap_or(0);
        self.inner.fanout.new_watcher_after(
            watch,
            Box::new(move |e: &Event| e.item.revision.parse::<i64>().is_ok_and(|r| r <= now_rev)),
        )
    }

    fn close_watchers(&self) {
        self.inner.fanout.close_watchers();
    }

    async fn close(&self) -> Result<()> {
        self.inner.closed.cancel();
        self.inner.fanout.close();
        Ok(())
    }
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        self.inner.closed.cancel();
        self.inner.fanout.close();
    }
}
