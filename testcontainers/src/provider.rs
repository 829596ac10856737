//! Which provider runs the servers (`TELEPORT_TEST_PROVIDER`), whether a
//! Docker engine answers, and [`Backing`], the handle every fixture keeps to
//! its running server.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Error;
use crate::local::LocalServer;

/// Where fixtures run their servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Local processes on free loopback ports (the default; the only one
    /// ever run on the project machine).
    Local,
    /// Docker containers of the official images, through the crates.io
    /// `testcontainers` crate. Chosen only with `TELEPORT_TEST_PROVIDER=container`,
    /// and only if a Docker engine answers. Never run on the project machine.
    #[cfg(feature = "containers")]
    Container,
}

impl Provider {
    /// Reads `TELEPORT_TEST_PROVIDER` (`local`, the default, or `container`)
    /// and, for `container`, checks that the Docker engine at `DOCKER_HOST`
    /// (default `unix:///var/run/docker.sock`) answers.
    pub async fn from_env() -> Result<Provider, Error> {
        let wanted = std::env::var("TELEPORT_TEST_PROVIDER").ok();
        let docker_host = std::env::var("DOCKER_HOST").ok();
        Provider::select(wanted.as_deref(), docker_host.as_deref()).await
    }

    /// [`Provider::from_env`] with the two variables passed in.
    pub async fn select(wanted: Option<&str>, docker_host: Option<&str>) -> Result<Provider, Error> {
        match wanted.map(str::trim).unwrap_or("") {
            "" | "local" => Ok(Provider::Local),
            "container" | "containers" | "docker" => select_container(docker_host).await,
            other => Err(Error::UnknownProvider { value: other.to_string() }),
        }
    }
}

#[cfg(feature = "containers")]
async fn select_container(docker_host: Option<&str>) -> Result<Provider, Error> {
    docker_engine_reachable(docker_host).await?;
    Ok(Provider::Container)
}

#[cfg(not(feature = "containers"))]
async fn select_container(_docker_host: Option<&str>) -> Result<Provider, Error> {
    Err(Error::ContainersDisabled)
}

/// Checks that a Docker engine answers `GET /_ping` at `docker_host`
/// (`unix:///path` or `tcp://host:port`; `None` means
/// `unix:///var/run/docker.sock`). TLS (`DOCKER_TLS_VERIFY`) is not spoken
/// here: for a TLS endpoint only the TCP connection is checked.
pub async fn docker_engine_reachable(docker_host: Option<&str>) -> Result<(), Error> {
    let endpoint =
        docker_host.map(str::trim).filter(|h| !h.is_empty()).unwrap_or("unix:///var/run/docker.sock").to_string();
    let fail = |detail: String| Error::NoDockerEngine { endpoint: endpoint.clone(), detail };
    let timeout = Duration::from_secs(3);
    let tls = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty() && v != "0");
    let answer = if let Some(path) = endpoint.strip_prefix("unix://") {
        let connect = tokio::net::UnixStream::connect(path);
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| fail("connect timed out".into()))?
            .map_err(|e| fail(format!("connect {path}: {e}")))?;
        ping(stream, timeout).await.map_err(fail)?
    } else if let Some(addr) = endpoint.strip_prefix("tcp://") {
        let connect = tokio::net::TcpStream::connect(addr.trim_end_matches('/'));
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| fail("connect timed out".into()))?
            .map_err(|e| fail(format!("connect {addr}: {e}")))?;
        if tls {
            return Ok(());
        }
        ping(stream, timeout).await.map_err(fail)?
    } else {
        return Err(fail("unsupported DOCKER_HOST scheme (expected unix:// or tcp://)".into()));
    };
    let status_line = answer.lines().next().unwrap_or("");
    if status_line.starts_with("HTTP/1.") && status_line.contains(" 200") {
        Ok(())
    } else {
        Err(fail(format!("GET /_ping answered {status_line:?}")))
    }
}

async fn ping<S>(mut stream: S, timeout: Duration) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let exchange = async {
        stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| "GET /_ping timed out".to_string())?
        .map_err(|e| format!("GET /_ping: {e}"))
}

/// What keeps a fixture's server alive; dropping it stops the server.
pub(crate) enum Backing {
    Local(LocalServer),
    #[cfg(feature = "containers")]
    Container(Box<crate::container::Running>),
}

impl Backing {
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Backing::Local(server) => Some(server.pid()),
            #[cfg(feature = "containers")]
            Backing::Container(_) => None,
        }
    }

    pub(crate) fn log_path(&self) -> Option<&Path> {
        match self {
            Backing::Local(server) => Some(server.log()),
            #[cfg(feature = "containers")]
            Backing::Container(_) => None,
        }
    }

    pub(crate) fn container_id(&self) -> Option<&str> {
        match self {
            Backing::Local(_) => None,
            #[cfg(feature = "containers")]
            Backing::Container(running) => Some(running.id()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_is_the_default() {
        assert_eq!(Provider::select(None, None).await.unwrap(), Provider::Local);
        assert_eq!(Provider::select(Some(""), None).await.unwrap(), Provider::Local);
        assert_eq!(Provider::select(Some("local"), None).await.unwrap(), Provider::Local);
    }

    #[tokio::test]
    async fn unknown_provider_is_an_error_naming_the_choices() {
        let err = Provider::select(Some("podman"), None).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"podman\""), "{msg}");
        assert!(msg.contains("`local`") && msg.contains("`container`"), "{msg}");
    }

    #[tokio::test]
    async fn container_without_an_engine_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let sock = format!("unix://{}/docker.sock", dir.path().display());
        let err = Provider::select(Some("container"), Some(&sock)).await.unwrap_err();
        let msg = err.to_string();
        if cfg!(feature = "containers") {
            assert!(matches!(err, Error::NoDockerEngine { .. }), "{msg}");
            assert!(msg.contains("no Docker engine answers at unix://"), "{msg}");
            assert!(msg.contains("unset TELEPORT_TEST_PROVIDER"), "{msg}");
        } else {
            assert!(matches!(err, Error::ContainersDisabled), "{msg}");
        }
    }

    #[tokio::test]
    async fn a_tcp_port_that_is_not_docker_is_refused() {
        // An HTTP server that is not Docker: answers 404 to /_ping.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            if let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(b"HTTP/1.0 404 Not Found\r\n\r\n").await;
            }
        });
        let err = docker_engine_reachable(Some(&format!("tcp://{addr}"))).await.unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_fake_engine_that_answers_ping_is_accepted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            if let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nOK").await;
            }
        });
        docker_engine_reachable(Some(&format!("tcp://{addr}"))).await.unwrap();
        server.await.unwrap();
    }
}
