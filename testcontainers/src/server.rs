//! The list of servers this crate can start: their names (as the CLI and the
//! env-var prefixes spell them) and how each one is installed.

use std::fmt;
use std::str::FromStr;

/// One kind of server a fixture can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    /// etcd (v3 API and JSON gateway).
    Etcd,
    /// DynamoDB: moto locally, dynamodb-local in a container.
    DynamoDb,
    /// S3 that checks signatures: s3s-fs locally, MinIO in a container.
    S3,
    /// S3 with bucket versioning: moto locally, MinIO in a container.
    S3Versioned,
    /// Google Cloud Storage JSON API: gcp-storage-emulator, fake-gcs-server in a container.
    Gcs,
    /// Azure Blob Storage: Azurite.
    Azure,
    /// Firestore (`google.firestore.v1` gRPC): this crate's in-process test
    /// server, the official emulator in a container.
    Firestore,
    /// PostgreSQL.
    Postgres,
}

impl Server {
    /// Every server, in the order the CLI starts them by default.
    pub const ALL: [Server; 8] = [
        Server::Etcd,
        Server::DynamoDb,
        Server::S3,
        Server::S3Versioned,
        Server::Gcs,
        Server::Azure,
        Server::Firestore,
        Server::Postgres,
    ];

    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Server::Etcd => "etcd",
            Server::DynamoDb => "dynamodb",
            Server::S3 => "s3",
            Server::S3Versioned => "s3-versioned",
            Server::Gcs => "gcs",
            Server::Azure => "azure",
            Server::Firestore => "firestore",
            Server::Postgres => "postgres",
        }
    }

    /// The program the local provider runs, for messages.
    pub fn program(self) -> &'static str {
        match self {
            Server::Etcd => "etcd",
            Server::DynamoDb | Server::S3Versioned => "moto server",
            Server::S3 => "s3s-fs",
            Server::Gcs => "gcp-storage-emulator",
            Server::Azure => "Azurite",
            Server::Firestore => "the in-process Firestore test server",
            Server::Postgres => "PostgreSQL",
        }
    }

    /// The prefix of the variables the CLI exports, e.g. `TELEPORT_TEST_ETCD_`.
    pub fn env_prefix(self) -> String {
        format!("TELEPORT_TEST_{}_", self.name().to_ascii_uppercase().replace('-', "_"))
    }

    /// The argument of `scripts/install-test-services.sh` that installs it.
    pub fn install_name(self) -> &'static str {
        match self {
            Server::Etcd => "etcd",
            Server::DynamoDb | Server::S3Versioned => "moto",
            Server::S3 => "s3s-fs",
            Server::Gcs => "gcs",
            Server::Azure => "azurite",
            // Built in: nothing to install (the script knows no such name).
            Server::Firestore => "firestore",
            Server::Postgres => "postgres",
        }
    }

    /// The full command that installs it, with the script's absolute path.
    pub fn install_command(self) -> String {
        format!("{}/scripts/install-test-services.sh {}", crate::workspace_root().display(), self.install_name())
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Server {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let found = match s.to_ascii_lowercase().as_str() {
            "etcd" => Server::Etcd,
            "dynamodb" | "dynamo" | "moto" => Server::DynamoDb,
            "s3" | "s3s" | "s3s-fs" => Server::S3,
            "s3-versioned" | "s3versioned" | "moto-s3" => Server::S3Versioned,
            "gcs" => Server::Gcs,
            "azure" | "azurite" => Server::Azure,
            "firestore" => Server::Firestore,
            "postgres" | "postgresql" | "pg" => Server::Postgres,
            _ => {
                let names: Vec<&str> = Server::ALL.iter().map(|s| s.name()).collect();
                return Err(format!("unknown server {s:?}; expected one of: {}", names.join(", ")));
            }
        };
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::Server;

    #[test]
    fn names_round_trip_and_prefixes_are_shell_safe() {
        for server in Server::ALL {
            assert_eq!(server.name().parse::<Server>(), Ok(server));
            let prefix = server.env_prefix();
            assert!(prefix.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()), "{prefix}");
        }
        assert_eq!(Server::S3Versioned.env_prefix(), "TELEPORT_TEST_S3_VERSIONED_");
        assert!("nope".parse::<Server>().is_err());
    }
}
