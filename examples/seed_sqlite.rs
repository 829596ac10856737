//! Creates a SQLite cluster-state store with a few items shaped like a real
//! cluster's (cluster name, a role, a join token that expires), for trying
//! `teleport backend ls/get` on the embedded default.
//!
//! Usage: `cargo run --example seed_sqlite -- <dir>` (creates <dir>/sqlite.db).

use std::time::Duration;

use teleport::backend::registry::{self, OpenOptions};
use teleport::backend::{Item, Key};
use teleport::config::{SqliteConfig, StorageConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "quickstart/backend".into());
    let cfg = StorageConfig::Sqlite(SqliteConfig::new(&dir));
    let b = registry::open(&cfg, OpenOptions::create()).await?;
    let now = b.clock().now();
    let items = vec![
        Item::new(
            Key::new(["cluster_configuration", "name"]),
            r#"{"kind":"cluster_name","version":"v2","metadata":{"name":"cluster-name"},"spec":{"cluster_name":"quickstart.example.com"}}"#,
        ),
        Item::new(
            Key::new(["roles", "access", "params"]),
            r#"{"kind":"role","version":"v7","metadata":{"name":"access"},"spec":{"allow":{"logins":["{{internal.logins}}"]}}}"#,
        ),
        Item::new(
            Key::new(["tokens", "quickstart-node-token"]),
            r#"{"kind":"token","version":"v2","metadata":{"name":"quickstart-node-token"},"spec":{"roles":["Node"]}}"#,
        )
        .expires_at(now + Duration::from_secs(3600)),
    ];
    let n = items.len();
    b.put_batch(items).await?;
    b.close().await?;
    println!("wrote {n} items to {dir}/sqlite.db");
    Ok(())
}
