//! Retries with exponential backoff and jitter for the object stores that
//! talk HTTP themselves (GCS, Azure; the S3 SDK retries on its own). Only
//! errors of kind [`BlobErrorKind::ConnectionProblem`](super::BlobErrorKind)
//! are retried; each retry is logged at debug with the attempt and the error.

use std::future::Future;
use std::time::Duration;

use super::Result;

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// First backoff; doubles after each failure.
    pub initial: Duration,
    /// Longest backoff.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 5, initial: Duration::from_millis(100), max: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based): `initial * 2^(n-1)`
    /// capped at `max`, minus up to half of it at random.
    pub fn backoff(&self, n: u32) -> Duration {
        let base = self.initial.saturating_mul(1u32 << n.saturating_sub(1).min(16)).min(self.max);
        let jitter = rand::random::<f64>() * 0.5;
        base.mul_f64(1.0 - jitter)
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or
/// `policy.attempts` are used; `what` names the request in logs.
pub async fn retry<T, F, Fut>(policy: RetryPolicy, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < policy.attempts => {
                let wait = policy.backoff(attempt);
                tracing::debug!(request = what, attempt, error = %e, wait_ms = wait.as_millis() as u64, "retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::blob::BlobError;

    #[tokio::test]
    async fn retries_only_transient_errors() {
        let policy = RetryPolicy { attempts: 4, initial: Duration::from_millis(1), max: Duration::from_millis(2) };
        let calls = AtomicU32::new(0);
        let r: Result<u32> = retry(policy, "t", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n < 3 { Err(BlobError::connection("flaky")) } else { Ok(n) }
        })
        .await;
        assert_eq!(r.unwrap(), 3);

        calls.store(0, Ordering::SeqCst);
        let r: Result<u32> = retry(policy, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(BlobError::bad("no"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let r: Result<u32> = retry(policy, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(BlobError::connection("down"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
