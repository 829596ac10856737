//! CLONE: copy cluster state from one backend to another
//! (`teleport backend clone`), prove the copy (`teleport backend verify`),
//! and keep a destination in step with its source (`--follow`).
//!
//! The steps of a clone, each in its own file:
//! 1. [`plan`]: pre-flight. Count items and bytes per top-level prefix and
//!    check every item against the destination's limits, before writing.
//! 2. [`copy`]: a bounded pipeline. One reader pages the source in key
//!    order into batches sized for the destination; `parallel` writers
//!    commit them with retries; the committer advances a watermark (the key
//!    below which everything is committed) and saves it in the
//!    [`checkpoint`] so `--resume` continues after a crash.
//! 3. [`verify`]: a streaming merge of both stores in key order: missing,
//!    extra and differing items, with per-prefix digests.
//! 4. [`follow`]: apply the source's watch events to the destination.
//!
//! This module uses `backend` only; the CLI drives it and renders
//! [`progress`].

pub mod checkpoint;
pub mod copy;
pub mod follow;
pub mod plan;
pub mod progress;
pub mod run;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{self, ItemsParams, Key};

/// What a clone or verify covers.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Exact key prefixes to cover; empty means every cluster key (those
    /// starting with `/`, as upstream), or every key with `include_internal`.
    pub prefixes: Vec<Key>,
    /// Also cover internal keys (`.locks/...`, `.flags/...`).
    pub include_internal: bool,
}

impl Selection {
    /// The disjoint key ranges to walk, in key order. Each is an exact
    /// prefix range (end exclusive); prefixes inside another are dropped.
    pub fn ranges(&self) -> Vec<ItemsParams> {
        if self.prefixes.is_empty() {
            return vec![if self.include_internal {
                ItemsParams::range(Key::from(vec![0u8]), Key::no_end())
            } else {
                ItemsParams::prefix(&Key::from("/"))
            }];
        }
        let mut ps = self.prefixes.clone();
        ps.sort();
        ps.dedup();
        let mut kept: Vec<Key> = Vec::new();
        for p in ps {
            if kept.last().is_some_and(|k| p.has_prefix(k)) {
                continue;
            }
            kept.push(p);
        }
        kept.iter().map(ItemsParams::prefix).collect()
    }

    /// The watch prefixes matching the selection (empty: everything).
    pub fn watch_prefixes(&self) -> Vec<Key> {
        match (self.prefixes.is_empty(), self.include_internal) {
            (true, true) => Vec::new(),
            (true, false) => vec![Key::from("/")],
            (false, _) => self.ranges().into_iter().map(|r| r.start).collect(),
        }
    }

    /// True if `key` is inside the selection.
    pub fn contains(&self, key: &Key) -> bool {
        if self.prefixes.is_empty() {
            return self.include_internal || !key.is_internal();
        }
        self.prefixes.iter().any(|p| key.has_prefix(p))
    }
}

/// Errors of a clone, naming which side failed and where.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    /// Reading the source failed.
    #[error("source {store}: {what}: {source}")]
    Source {
        /// The source store.
        store: String,
        /// What was being done ("read items after /web/users/x").
        what: String,
        /// The store's error.
        source: backend::Error,
    },
    /// Writing the destination failed.
    #[error("destination {store}: {what}: {source}")]
    Destination {
        /// The destination store.
        store: String,
        /// What was being done ("write a batch of 25 items from /a to /b").
        what: String,
        /// The store's error.
        source: backend::Error,
    },
    /// The clone refused to start (non-empty destination, empty source,
    /// limit violations, a checkpoint for other stores).
    #[error("{0}")]
    Refused(String),
    /// The checkpoint file could not be read or written.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The clone was interrupted (Ctrl-C); the checkpoint is saved.
    #[error("interrupted after committing {items} items; run again with --resume to continue")]
    Interrupted {
        /// Items committed so far.
        items: u64,
    },
}

/// Retry policy for transient store errors.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// First backoff.
    pub initial: Duration,
    /// Longest backoff.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry { attempts: 5, initial: Duration::from_millis(100), max: Duration::from_secs(5) }
    }
}

impl Retry {
    /// Runs `op` until it succeeds, fails with a permanent error, or the
    /// attempts run out.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> backend::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = backend::Result<T>>,
    {
        let mut delay = self.initial;
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.is_temporary() && attempt < self.attempts => {
                    tracing::debug!(error = %e, attempt, "transient error; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_ranges() {
        let all = Selection::default().ranges();
        assert_eq!((all[0].start.to_string().as_str(), all[0].end.to_string().as_str()), ("/", "0"));
        assert!(all[0].end_exclusive);
        let internal = Selection { include_internal: true, ..Selection::default() }.ranges();
        assert!(internal[0].end.is_no_end());
        let s = Selection {
            prefixes: vec![
                Key::from("/web/users/"),
                Key::from("/roles/"),
                Key::from("/web/users/a/"),
                Key::from("/roles/"),
            ],
            include_internal: false,
        };
        let r: Vec<String> = s.ranges().iter().map(|r| r.start.to_string()).collect();
        assert_eq!(r, ["/roles/", "/web/users/"]);
        assert!(s.contains(&Key::from("/roles/x")) && !s.contains(&Key::from("/tokens/x")));
        assert!(!Selection::default().contains(&Key::from(".locks/x")));
    }

    #[tokio::test]
    async fn retry_stops_on_permanent_errors() {
        let r = Retry { attempts: 3, initial: Duration::from_millis(1), max: Duration::from_millis(2) };
        let mut n = 0;
        let out: backend::Result<()> = r
            .run(|| {
                n += 1;
                async { Err(backend::Error::new(backend::ErrorKind::ConnectionProblem, "flaky")) }
            })
            .await;
        assert!(out.is_err());
        assert_eq!(n, 3);
        let mut n = 0;
        let _ = r
            .run(|| {
                n += 1;
                async { Err::<(), _>(backend::Error::bad_parameter("bad")) }
            })
            .await;
        assert_eq!(n, 1);
    }
}
