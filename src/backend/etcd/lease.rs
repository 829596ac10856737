//! Leases: how items expire in etcd, and how reads learn an item's expiry.
//!
//! An item expiring at time T is attached to a lease that expires at the
//! whole second `ceil(T)`; items expiring in the same second share one
//! lease (upstream shares leases per ~10 s bucket, which lets items outlive
//! their expiry by up to 10 s; one-second buckets keep clones exact to the
//! second). Every lease we grant is cached with its expiry, and leases
//! granted by other processes are looked up once with LeaseTimeToLive and
//! cached, so `get` and `get_range` can return each item's expiry (upstream
//! does not, which makes clones from etcd lose every TTL).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::Client;

use super::client::call;
use crate::backend::Result;

/// Cached leases, keyed both ways.
#[derive(Debug, Default)]
pub struct Leases {
    inner: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    /// Expiry second -> a lease we granted that expires then.
    by_second: BTreeMap<u64, i64>,
    /// Lease id -> its expiry (None: the lease is gone, treat as expired).
    expiry: HashMap<i64, Option<SystemTime>>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or(0)
}

impl Leases {
    /// A lease for items expiring at `expires`, granting one if no cached
    /// lease expires in that second. `now` is the backend clock's time.
    pub async fn lease_for(&self, client: &Client, expires: SystemTime, now: SystemTime) -> Result<i64> {
        let second = secs(expires);
        if let Some(id) = self.lock().by_second.get(&second) {
            return Ok(*id);
        }
        let now_secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        // etcd TTLs are whole seconds, at least 1.
        let ttl = second.saturating_sub(now_secs).max(1);
        let granted = call(client.lease_client().grant(ttl as i64, None)).await?;
        let id = granted.id();
        let lease_expiry = UNIX_EPOCH + Duration::from_secs(now_secs + ttl);
        let mut c = self.lock();
        c.by_second.insert(second, id);
        c.expiry.insert(id, Some(lease_expiry.max(UNIX_EPOCH + Duration::from_secs(second))));
        c.prune(now);
        Ok(id)
    }

    /// The expiry of lease `id` (0 = no lease), asking etcd once for leases
    /// this process did not grant.
    pub async fn expiry_of(&self, client: &Client, id: i64, now: SystemTime) -> Result<Option<SystemTime>> {
        if id == 0 {
            return Ok(None);
        }
        if let Some(e) = self.lock().expiry.get(&id) {
            return Ok(Some(e.unwrap_or(now)));
        }
        let ttl = call(client.lease_client().time_to_live(id, None)).await?;
        // ttl is the remaining seconds, -1 when the lease no longer exists.
        let expiry = (ttl.ttl() >= 0).then(|| now + Duration::from_secs(ttl.ttl() as u64));
        self.lock().expiry.insert(id, expiry);
        Ok(Some(expiry.unwrap_or(now)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Cache {
    /// Drops leases that expired over a minute ago.
    fn prune(&mut self, now: SystemTime) {
        let cutoff = secs(now).saturating_sub(60);
        let old: Vec<u64> = self.by_second.range(..cutoff).map(|(s, _)| *s).collect();
        for s in old {
            if let Some(id) = self.by_second.remove(&s) {
                self.expiry.remove(&id);
            }
        }
        if self.expiry.len() > 100_000 {
            // Foreign leases are re-fetched on demand.
            self.expiry.clear();
            self.by_second.clear();
        }
    }
}
