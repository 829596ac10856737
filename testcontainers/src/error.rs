//! The error every fixture returns. Each message names the server first and,
//! where one is known, the next step (an install command, a log to read).

use std::path::PathBuf;
use std::time::Duration;

use crate::Server;

/// Why a fixture could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server's program is not installed where the local provider looks.
    #[error(
        "{server}: {program} is not installed: `{binary}` was not found in {searched}.\n  install it with: {install}"
    )]
    Missing {
        /// Which server.
        server: Server,
        /// The program a user would recognise ("moto server").
        program: &'static str,
        /// The file name looked for.
        binary: String,
        /// The directories searched, joined for display.
        searched: String,
        /// The command that installs it.
        install: String,
    },

    /// Something the fixture needs to set up the server failed (temp dir,
    /// initdb, spawning the process...).
    #[error("{server}: {action}: {detail}")]
    Setup {
        /// Which server.
        server: Server,
        /// What was being done, as a short verb phrase ("create temp dir").
        action: String,
        /// What went wrong.
        detail: String,
    },

    /// The process exited before it answered.
    #[error("{server}: exited before it was ready ({status}); log {log}:\n{tail}")]
    Exited {
        /// Which server.
        server: Server,
        /// The exit status, for display.
        status: String,
        /// The server's log file (deleted with the temp dir).
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },

    /// The server did not answer a real request in time.
    #[error(
        "{server}: did not answer at {endpoint} within {timeout:?} (last attempt: {last_error}); log {log}:\n{tail}"
    )]
    NotReady {
        /// Which server.
        server: Server,
        /// Where it was asked.
        endpoint: String,
        /// How long it was given.
        timeout: Duration,
        /// The last probe's failure.
        last_error: String,
        /// The server's log file (or a description, for containers).
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },

    /// `TELEPORT_TEST_PROVIDER` has a value this crate does not know.
    #[error("TELEPORT_TEST_PROVIDER={value:?} is not a provider; use `local` (the default) or `container`")]
    UnknownProvider {
        /// The value found.
        value: String,
    },

    /// The container provider was asked for, but this build left it out.
    #[error(
        "TELEPORT_TEST_PROVIDER=container, but teleport-testcontainers was built without its `containers` feature; \
         rebuild with the default features or unset TELEPORT_TEST_PROVIDER to run local servers"
    )]
    ContainersDisabled,

    /// The container provider was asked for, but no Docker engine answers.
    #[error(
        "TELEPORT_TEST_PROVIDER=container, but no Docker engine answers at {endpoint}: {detail}. \
         Start Docker (or set DOCKER_HOST), or unset TELEPORT_TEST_PROVIDER to run local servers \
         (installed by scripts/install-test-services.sh)"
    )]
    NoDockerEngine {
        /// Where the engine was looked for.
        endpoint: String,
        /// What happened there.
        detail: String,
    },

    /// The container runtime refused or failed to start the container.
    #[error("{server}: container {image}: {detail}")]
    Container {
        /// Which server.
        server: Server,
        /// The image, with its tag.
        image: String,
        /// What went wrong.
        detail: String,
    },
}

impl Error {
    /// True when the server is simply not installed: the case a developer
    /// machine may skip (see [`crate::or_skip`]).
    pub fn is_missing(&self) -> bool {
        matches!(self, Error::Missing { .. })
    }

    pub(crate) fn setup(server: Server, action: impl Into<String>, detail: impl ToString) -> Self {
        Error::Setup { server, action: action.into(), detail: detail.to_string() }
    }
}
