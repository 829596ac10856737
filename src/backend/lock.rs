//! Backend locks (upstream `lib/backend/helpers.go`): a lock is an item
//! `.locks/<name>` created with a random token and a TTL. Acquiring retries
//! while someone else holds it; releasing deletes it only if it still holds
//! our token.

use std::sync::Arc;
use std::time::Duration;

use super::{Backend, Error, ErrorKind, Item, Key, Result};

/// Prefix of internal lock keys.
pub const LOCKS_PREFIX: &str = ".locks";

/// How often a waiting acquirer retries.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// A held lock.
#[derive(Debug, Clone)]
pub struct Lock {
    key: Key,
    token: Vec<u8>,
    ttl: Duration,
}

impl Lock {
    /// The lock's backend key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Releases the lock. Fails with `CompareFailed` if it expired or
    /// changed owner in the meantime.
    pub async fn release(&self, backend: &dyn Backend) -> Result<()> {
        let item = match backend.get(&self.key).await {
            Ok(item) => item,
            Err(e) if e.is_not_found() => {
                return Err(Error::new(
                    ErrorKind::CompareFailed,
                    format!("lock {:?} was lost (it expired before release)", self.key),
                ));
            }
            Err(e) => return Err(e),
        };
        if item.value != self.token {
            return Err(Error::new(
                ErrorKind::CompareFailed,
                format!("lock {:?} is now held by someone else", self.key),
            ));
        }
        match backend.conditional_delete(&self.key, &item.revision).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_compare_failed() => {
                Err(Error::new(ErrorKind::CompareFailed, format!("lock {:?} changed owner during release", self.key)))
            }
            Err(e) => Err(e),
        }
    }

    /// Extends the lock's expiry by its TTL, if we still hold it.
    pub async fn refresh(&self, backend: &dyn Backend) -> Result<()> {
        let clock = backend.clock();
        let expected = Item::new(self.key.clone(), self.token.clone());
        let replace = Item::new(self.key.clone(), self.token.clone()).expires_at(clock.now() + self.ttl);
        backend.compare_and_swap(expected, replace).await.map(|_| ())
    }
}

/// Acquires lock `name`, waiting (retrying every `retry`) until it is free or
/// `wait` has passed.
pub async fn acquire(backend: &dyn Backend, name: &str, ttl: Duration, wait: Duration) -> Result<Lock> {
    acquire_with_retry(backend, name, ttl, wait, DEFAULT_RETRY_INTERVAL).await
}

/// [`acquire`] with an explicit retry interval.
pub async fn acquire_with_retry(
    backend: &dyn Backend,
    name: &str,
    ttl: Duration,
    wait: Duration,
    retry: Duration,
) -> Result<Lock> {
    if name.is_empty() {
        return Err(Error::bad_parameter("lock name is empty"));
    }
    let ttl = ttl.max(Duration::from_secs(1));
    let key = Key::internal(LOCKS_PREFIX, [name]);
    let token = uuid::Uuid::new_v4().to_string().into_bytes();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let item = Item::new(key.clone(), token.clone()).expires_at(backend.clock().now() + ttl);
        match backend.create(item).await {
            Ok(_) => return Ok(Lock { key, token, ttl }),
            Err(e) if e.is_already_exists() => {
                if tokio::time::Instant::now() + retry > deadline {
                    return Err(Error::new(
                        ErrorKind::ConnectionProblem,
                        format!("timed out after {wait:?} waiting for lock {key:?}, held by another process"),
                    ));
                }
                tokio::time::sleep(retry).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs `f` while holding lock `name`, refreshing it every TTL/2, and
/// releases it afterwards.
pub async fn run_while_locked<T, F, Fut>(
    backend: Arc<dyn Backend>,
    name: &str,
    ttl: Duration,
    wait: Duration,
    f: F,
) -> Result<T>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let lock = acquire(backend.as_ref(), name, ttl, wait).await?;
    let refresher = {
        let backend = backend.clone();
        let lock = lock.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(lock.ttl / 2);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = lock.refresh(backend.as_ref()).await {
                    tracing::warn!(lock = %lock.key, error = %e, "failed to refresh backend lock");
                }
            }
        })
    };
    let out = f().await;
    refresher.abort();
    lock.release(backend.as_ref()).await?;
    Ok(out)
}
