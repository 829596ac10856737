//! The container provider (cargo feature `containers`): the official image
//! for each server, started through the crates.io `testcontainers` crate
//! (renamed `tc` here) when `TELEPORT_TEST_PROVIDER=container` and a Docker
//! engine answers.
//!
//! **This provider has never been run on the project machine**, which has no
//! Docker engine. What is tested here is the image, tag, port, command and
//! environment chosen for each server ([`spec`]) and the clear error when no
//! engine answers (see `provider.rs`). Image tags are pinned; a moved or
//! deleted tag shows up as an [`Error::Container`].
//!
//! Differences from the local provider, by design of the images:
//! DynamoDB is dynamodb-local (no Streams/TTL fidelity checks done), both S3
//! fixtures are MinIO, GCS is fake-gcs-server (its resumable-upload
//! `Location` uses the container's port, not the mapped one), and no data
//! dir is visible on the host. Firestore is Google's official emulator, where
//! the local provider runs this crate's in-process test server.

use std::future::Future;
use std::path::PathBuf;

use tc::core::{ContainerPort, WaitFor};
use tc::runners::AsyncRunner;
use tc::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};

use crate::local::{poll_ready, start_timeout};
use crate::{Error, Server, postgres, s3};

/// The official Firestore emulator: Google's Cloud SDK image, tag
/// `emulators`, started as `gcloud emulators firestore start
/// --host-port=0.0.0.0:8080`. The image is large (~2 GB) and its tag moves;
/// it is what the container provider runs for [`Server::Firestore`].
pub const FIRESTORE_EMULATOR_IMAGE: (&str, &str) = ("gcr.io/google.com/cloudsdktool/google-cloud-cli", "emulators");
/// The port the Firestore emulator listens on in [`FIRESTORE_EMULATOR_IMAGE`].
pub const FIRESTORE_EMULATOR_PORT: u16 = 8080;

/// How to run one server as a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Which server.
    pub server: Server,
    /// Image name, without the tag.
    pub image: &'static str,
    /// Image tag (pinned).
    pub tag: &'static str,
    /// The container port clients connect to; it is mapped to a free host port.
    pub port: u16,
    /// Environment variables.
    pub env: Vec<(&'static str, String)>,
    /// The command (replaces the image's CMD); empty keeps the image's.
    pub cmd: Vec<String>,
}

impl ContainerSpec {
    /// `image:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.image, self.tag)
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The container for `server`.
pub fn spec(server: Server) -> ContainerSpec {
    match server {
        Server::Etcd => ContainerSpec {
            server,
            image: "gcr.io/etcd-development/etcd",
            tag: "v3.5.21",
            port: 2379,
            env: vec![],
            cmd: strings(&[
                "/usr/local/bin/etcd",
                "--name=n1",
                "--data-dir=/etcd-data",
                "--listen-client-urls=http://0.0.0.0:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://0.0.0.0:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=n1=http://127.0.0.1:2380",
            ]),
        },
        Server::DynamoDb => ContainerSpec {
            server,
            image: "amazon/dynamodb-local",
            tag: "2.5.4",
            port: 8000,
            env: vec![],
            // The image's entrypoint is `java`.
            cmd: strings(&["-jar", "DynamoDBLocal.jar", "-inMemory", "-sharedDb"]),
        },
        Server::S3 | Server::S3Versioned => ContainerSpec {
            server,
            image: "minio/minio",
            tag: "RELEASE.2025-04-22T22-12-28Z",
            port: 9000,
            env: vec![
                ("MINIO_ROOT_USER", s3::ACCESS_KEY_ID.to_string()),
                ("MINIO_ROOT_PASSWORD", s3::SECRET_ACCESS_KEY.to_string()),
                ("MINIO_SITE_REGION", s3::REGION.to_string()),
            ],
            cmd: strings(&["server", "/data", "--address", ":9000"]),
        },
        Server::Gcs => ContainerSpec {
            server,
            image: "fsouza/fake-gcs-server",
            tag: "1.52.2",
            port: 4443,
            env: vec![],
            cmd: strings(&["-scheme", "http", "-host", "0.0.0.0", "-port", "4443", "-backend", "memory"]),
        },
        Server::Azure => ContainerSpec {
            server,
            image: "mcr.microsoft.com/azure-storage/azurite",
            tag: "3.37.0",
            port: 10000,
            env: vec![],
            cmd: strings(&[
                "azurite-blob",
                "--blobHost",
                "0.0.0.0",
                "--blobPort",
                "10000",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--inMemoryPersistence",
            ]),
        },
        Server::Firestore => ContainerSpec {
            server,
            image: FIRESTORE_EMULATOR_IMAGE.0,
            tag: FIRESTORE_EMULATOR_IMAGE.1,
            port: FIRESTORE_EMULATOR_PORT,
            env: vec![],
            cmd: strings(&[
                "gcloud",
                "emulators",
                "firestore",
                "start",
                &format!("--host-port=0.0.0.0:{FIRESTORE_EMULATOR_PORT}"),
            ]),
        },
        Server::Postgres => ContainerSpec {
            server,
            image: "postgres",
            tag: "15",
            port: 5432,
            env: vec![
                ("POSTGRES_HOST_AUTH_METHOD", "trust".to_string()),
                ("POSTGRES_USER", postgres::USER.to_string()),
            ],
            // The official image has no wal2json: the postgres store's
            // watchers cannot start there (see docs/testing.md).
            cmd: {
                let mut cmd = strings(&["postgres", "-c", "fsync=off"]);
                for (name, value) in postgres::LOGICAL_DECODING {
                    cmd.push("-c".to_string());
                    cmd.push(format!("{name}={value}"));
                }
                cmd
            },
        },
    }
}

/// A running container; dropping it removes the container.
pub(crate) struct Running {
    container: ContainerAsync<GenericImage>,
    /// Host name or address the mapped port is on.
    pub(crate) host: String,
    /// The host port mapped to [`ContainerSpec::port`].
    pub(crate) port: u16,
    server: Server,
    image: String,
}

impl Running {
    pub(crate) fn id(&self) -> &str {
        self.container.id()
    }

    /// Waits until `probe` succeeds against the mapped port.
    pub(crate) async fn wait_ready<Fut>(&self, endpoint: &str, probe: impl FnMut() -> Fut) -> Result<(), Error>
    where
        Fut: Future<Output = Result<(), String>>,
    {
        let id = self.id().to_string();
        let image = self.image.clone();
        poll_ready(
            self.server,
            endpoint,
            start_timeout(),
            probe,
            || None,
            || {
                (
                    PathBuf::from(format!("(container {id}, image {image})")),
                    format!("run `docker logs {id}` while the test is paused to see it"),
                )
            },
        )
        .await
    }
}

/// Starts the container described by `spec` and maps its port.
pub(crate) async fn run(spec: &ContainerSpec) -> Result<Running, Error> {
    let fail = |detail: String| Error::Container { server: spec.server, image: spec.reference(), detail };
    let image = GenericImage::new(spec.image, spec.tag)
        .with_exposed_port(ContainerPort::Tcp(spec.port))
        .with_wait_for(WaitFor::Nothing);
    let mut request: ContainerRequest<GenericImage> = image.into();
    if !spec.cmd.is_empty() {
        request = request.with_cmd(spec.cmd.clone());
    }
    for (key, value) in &spec.env {
        request = request.with_env_var(*key, value.clone());
    }
    request =
        request.with_startup_timeout(start_timeout()).with_label("org.teleport.testcontainers", spec.server.name());
    let container = request.start().await.map_err(|e| fail(format!("start: {e}")))?;
    let host = container.get_host().await.map_err(|e| fail(format!("find the host: {e}")))?.to_string();
    let port = container
        .get_host_port_ipv4(ContainerPort::Tcp(spec.port))
        .await
        .map_err(|e| fail(format!("find the port mapped to {}: {e}", spec.port)))?;
    Ok(Running { container, host, port, server: spec.server, image: spec.reference() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_has_a_pinned_official_image() {
        for server in Server::ALL {
            let s = spec(server);
            assert_eq!(s.server, server);
            assert!(!s.tag.is_empty() && s.tag != "latest", "{server}: pin a tag");
            assert!(s.port > 0);
        }
        assert_eq!(spec(Server::Etcd).image, "gcr.io/etcd-development/etcd");
        assert_eq!(spec(Server::DynamoDb).image, "amazon/dynamodb-local");
        assert_eq!(spec(Server::S3).image, "minio/minio");
        assert_eq!(spec(Server::S3Versioned).image, "minio/minio");
        assert_eq!(spec(Server::Gcs).image, "fsouza/fake-gcs-server");
        assert_eq!(spec(Server::Azure).image, "mcr.microsoft.com/azure-storage/azurite");
        assert_eq!(spec(Server::Postgres).reference(), "postgres:15");
        assert_eq!(spec(Server::Firestore).reference(), "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators");
    }

    #[test]
    fn ports_match_what_each_image_listens_on() {
        let ports: Vec<(Server, u16)> = Server::ALL.iter().map(|&s| (s, spec(s).port)).collect();
        assert_eq!(
            ports,
            vec![
                (Server::Etcd, 2379),
                (Server::DynamoDb, 8000),
                (Server::S3, 9000),
                (Server::S3Versioned, 9000),
                (Server::Gcs, 4443),
                (Server::Azure, 10000),
                (Server::Firestore, 8080),
                (Server::Postgres, 5432),
            ]
        );
        let etcd = spec(Server::Etcd);
        assert!(etcd.cmd.contains(&"--listen-client-urls=http://0.0.0.0:2379".to_string()));
        let gcs = spec(Server::Gcs);
        assert!(gcs.cmd.windows(2).any(|w| w == ["-port", "4443"]));
        assert!(gcs.cmd.windows(2).any(|w| w == ["-scheme", "http"]));
    }

    #[test]
    fn credentials_and_flags_match_the_local_fixtures() {
        let minio = spec(Server::S3);
        let env = |name: &str| minio.env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        assert_eq!(env("MINIO_ROOT_USER").as_deref(), Some(s3::ACCESS_KEY_ID));
        assert_eq!(env("MINIO_ROOT_PASSWORD").as_deref(), Some(s3::SECRET_ACCESS_KEY));
        // MinIO refuses a root password shorter than 8 characters.
        assert!(s3::SECRET_ACCESS_KEY.len() >= 8);

        let azurite = spec(Server::Azure);
        assert!(azurite.cmd.contains(&"--skipApiVersionCheck".to_string()));
        assert!(azurite.cmd.windows(2).any(|w| w == ["--blobHost", "0.0.0.0"]));

        let pg = spec(Server::Postgres);
        assert!(pg.env.contains(&("POSTGRES_HOST_AUTH_METHOD", "trust".to_string())));
        assert!(pg.env.contains(&("POSTGRES_USER", postgres::USER.to_string())));
        assert!(pg.cmd.windows(2).any(|w| w == ["-c", "wal_level=logical"]));

        let dynamo = spec(Server::DynamoDb);
        assert_eq!(dynamo.cmd[..2], ["-jar", "DynamoDBLocal.jar"]);

        let firestore = spec(Server::Firestore);
        assert_eq!(firestore.cmd, ["gcloud", "emulators", "firestore", "start", "--host-port=0.0.0.0:8080"]);
    }
}
