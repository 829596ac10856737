//! Shutdown signals: SIGTERM and SIGINT end the process (upstream treats
//! both as an immediate shutdown; we drain through a cancellation token).
//! Part of the runtime room; touches only the process's signal handlers.
//!
//! Handlers are installed when [`shutdown_signal`] is called, not when its
//! future is first polled, so a signal that arrives in between is not lost.
//! Installing them needs a running tokio runtime.

use std::fmt;
use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ClusterError;

/// A signal that asks the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM (systemd stop, `kill`).
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

impl Signal {
    /// The conventional name (`SIGTERM`, `SIGINT`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Installs SIGTERM and SIGINT handlers and returns a future that resolves
/// with the first of them to arrive.
pub fn shutdown_signal() -> Result<impl Future<Output = Signal> + Send + 'static, ClusterError> {
    let install = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| ClusterError::Signal { signal: name, source })
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    Ok(async move {
        // `recv` yields None only if the signal driver is gone (runtime
        // shutting down); then wait on the other stream, or forever.
        tokio::select! {
            Some(()) = term.recv() => Signal::Terminate,
            Some(()) = int.recv() => Signal::Interrupt,
            else => std::future::pending().await,
        }
    })
}

/// Cancels `token` on the first SIGTERM or SIGINT, logging which arrived.
/// The task ends with `Some(signal)`, or with `None` if the token was
/// cancelled for another reason first.
pub fn cancel_on_signal(token: CancellationToken) -> Result<JoinHandle<Option<Signal>>, ClusterError> {
    let sig = shutdown_signal()?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            s = sig => {
                tracing::info!(signal = %s, "received {s}; shutting down");
                token.cancel();
                Some(s)
            }
            () = token.cancelled() => None,
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn raise(sig: libc::c_int) {
        // SAFETY: kill(2) on our own pid with a signal whose handler tokio
        // has installed; no memory is shared.
        let rc = unsafe { libc::kill(libc::getpid(), sig) };
        assert_eq!(rc, 0);
    }

    // One test for both signals: every installed listener in this process
    // sees every signal, so two tests running in parallel would see each
    // other's.
    #[tokio::test]
    async fn term_and_int_resolve_and_cancel() {
        let fut = shutdown_signal().unwrap();
        raise(libc::SIGTERM);
        let got = tokio::time::timeout(Duration::from_secs(10), fut).await.unwrap();
        assert_eq!(got, Signal::Terminate);
        assert_eq!(got.to_string(), "SIGTERM");

        let token = CancellationToken::new();
        let task = cancel_on_signal(token.clone()).unwrap();
        raise(libc::SIGINT);
        let got = tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
        assert_eq!(got, Some(Signal::Interrupt));
        assert!(token.is_cancelled());

        // A token cancelled for another reason ends the task without a signal.
        let token = CancellationToken::new();
        let task = cancel_on_signal(token.clone()).unwrap();
        token.cancel();
        assert_eq!(tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap(), None);
    }
}
