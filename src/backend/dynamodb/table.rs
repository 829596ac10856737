//! Table setup, as upstream's `configureTable`: find the table, refuse a
//! foreign key schema, and, only when the caller may create (a service
//! starting; never a tool that reads), create a missing table and turn on
//! what the store relies on: TTL on `Expires`, Streams with NEW_IMAGE, and
//! point-in-time recovery when `continuous_backups` is set.
//!
//! Application Auto Scaling (`auto_scaling`) is not applied by this build
//! (it needs another AWS SDK crate): a warning says so, and the operator sets
//! it up once with the AWS console or CLI (docs/backends.md).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    ProvisionedThroughput, ScalarAttributeType, StreamSpecification, StreamViewType, TableDescription, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};

use super::error::{DynamoError, classify, sdk};
use super::record::{EXPIRES, FULL_PATH, HASH_KEY, LEGACY_KEY};
use crate::backend::{Error, ErrorKind, Result};
use crate::config::{BillingMode as ConfigBillingMode, DynamoDbConfig};

/// Upstream's default provisioned capacity.
pub const DEFAULT_CAPACITY_UNITS: i64 = 10;
/// How long to wait for a table to become ACTIVE (upstream waits 10 min).
pub const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

/// Makes the table ready; returns its description.
pub async fn prepare(client: &Client, cfg: &DynamoDbConfig, store: &str, create: bool) -> Result<TableDescription> {
    let table = cfg.table_name.as_str();
    let desc = match describe(client, table, store).await {
        Ok(d) => d,
        Err(DynamoError::NoTable { store, .. }) if !create => {
            return Err(DynamoError::NoTable {
                store,
                hint: "; a teleport service creates it on first start, tools that read never do: check table_name and region",
            }
            .into());
        }
        Err(DynamoError::NoTable { .. }) => {
            create_table(client, cfg, store).await?;
            wait_active(client, table, store).await?
        }
        Err(e) => return Err(e.into()),
    };
    check_schema(&desc, store)?;
    let desc = if matches!(desc.table_status(), Some(TableStatus::Active)) {
        desc
    } else {
        wait_active(client, table, store).await?
    };
    if !create {
        return Ok(desc);
    }
    ensure_ttl(client, table, store).await?;
    let desc = ensure_stream(client, table, store, desc).await?;
    if cfg.continuous_backups {
        client
            .update_continuous_backups()
            .table_name(table)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .build()
                    .map_err(|e| Error::new(ErrorKind::Internal, "build PITR request").with_source(e))?,
            )
            .send()
            .await
            .map_err(|e| sdk(e, store, "enable point-in-time recovery"))?;
    }
    if cfg.auto_scaling {
        let on_demand = desc
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .is_some_and(|m| *m == BillingMode::PayPerRequest);
        if on_demand {
            tracing::info!(store, "ignoring auto_scaling: the table is in on-demand (pay_per_request) mode");
        } else {
            tracing::warn!(
                store,
                "auto_scaling is set but this build does not configure Application Auto Scaling; \
                 register the table's read/write capacity as scalable targets with the AWS console or CLI \
                 (see docs/backends.md)"
            );
        }
    }
    Ok(desc)
}

async fn describe(client: &Client, table: &str, store: &str) -> std::result::Result<TableDescription, DynamoError> {
    let out =
        client.describe_table().table_name(table).send().await.map_err(|e| classify(e, store, "describe table"))?;
    out.table().cloned().ok_or_else(|| DynamoError::Service {
        store: store.to_string(),
        op: "describe table",
        code: "EmptyResponse".into(),
        message: "DescribeTable returned no table".into(),
    })
}

/// Refuses a table whose keys are not HashKey (S, HASH) + FullPath (S, RANGE).
pub fn check_schema(desc: &TableDescription, store: &str) -> Result<()> {
    let keys: Vec<(String, String)> =
        desc.key_schema().iter().map(|k| (k.attribute_name().to_string(), k.key_type().as_str().to_string())).collect();
    let attr_type = |name: &str| {
        desc.attribute_definitions()
            .iter()
            .find(|a| a.attribute_name() == name)
            .map(|a| a.attribute_type().as_str().to_string())
    };
    let ours = keys == [(HASH_KEY.to_string(), "HASH".to_string()), (FULL_PATH.to_string(), "RANGE".to_string())]
        && attr_type(HASH_KEY).as_deref() == Some("S")
        && attr_type(FULL_PATH).as_deref() == Some("S");
    if ours {
        return Ok(());
    }
    let found = keys
        .iter()
        .map(|(name, kind)| format!("{name} ({}, {})", attr_type(name).unwrap_or_else(|| "?".into()), kind))
        .collect::<Vec<_>>()
        .join(" + ");
    let legacy = desc.attribute_definitions().iter().any(|a| a.attribute_name() == LEGACY_KEY);
    Err(DynamoError::ForeignSchema {
        store: store.to_string(),
        found: if found.is_empty() { "empty".into() } else { found },
        hint: if legacy {
            "; this is the legacy schema with a `Key` attribute (Teleport before 4.0), which upstream refuses too: migrate the table with upstream's tooling or use a new table_name"
        } else {
            "; use another table_name (the audit events table, for one, must be a different table)"
        },
    }
    .into())
}

async fn create_table(client: &Client, cfg: &DynamoDbConfig, store: &str) -> Result<()> {
    let build =
        |e: aws_sdk_dynamodb::error::BuildError| Error::new(ErrorKind::Internal, "build CreateTable").with_source(e);
    let mut req = client
        .create_table()
        .table_name(&cfg.table_name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(HASH_KEY)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(FULL_PATH)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder().attribute_name(HASH_KEY).key_type(KeyType::Hash).build().map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder().attribute_name(FULL_PATH).key_type(KeyType::Range).build().map_err(build)?,
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(build)?,
        );
    req = match cfg.billing_mode {
        ConfigBillingMode::PayPerRequest => req.billing_mode(BillingMode::PayPerRequest),
        ConfigBillingMode::Provisioned => req.billing_mode(BillingMode::Provisioned).provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(cfg.read_capacity_units.unwrap_or(DEFAULT_CAPACITY_UNITS))
                .write_capacity_units(cfg.write_capacity_units.unwrap_or(DEFAULT_CAPACITY_UNITS))
                .build()
                .map_err(build)?,
        ),
    };
    tracing::info!(store, billing_mode = ?cfg.billing_mode, "creating the cluster state table");
    match req.send().await {
        Ok(_) => Ok(()),
        // Another process created it meanwhile.
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => Ok(()),
        Err(e) => Err(sdk(e, store, "create table")),
    }
}

async fn wait_active(client: &Client, table: &str, store: &str) -> Result<TableDescription> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        let desc = describe(client, table, store).await.map_err(Error::from)?;
        if matches!(desc.table_status(), Some(TableStatus::Active)) {
            return Ok(desc);
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            return Err(Error::new(
                ErrorKind::ConnectionProblem,
                format!("{store}: the table is still {:?} after {ACTIVE_TIMEOUT:?}", desc.table_status()),
            ));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

async fn ensure_ttl(client: &Client, table: &str, store: &str) -> Result<()> {
    let out = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk(e, store, "describe time to live"))?;
    let status = out.time_to_live_description().and_then(|d| d.time_to_live_status());
    if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(EXPIRES)
                .enabled(true)
                .build()
                .map_err(|e| Error::new(ErrorKind::Internal, "build UpdateTimeToLive").with_source(e))?,
        )
        .send()
        .await
        .map_err(|e| sdk(e, store, "enable time to live on Expires"))?;
    Ok(())
}

async fn ensure_stream(client: &Client, table: &str, store: &str, desc: TableDescription) -> Result<TableDescription> {
    let enabled = desc.stream_specification().is_some_and(|s| s.stream_enabled());
    if enabled {
        return Ok(desc);
    }
    client
        .update_table()
        .table_name(table)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(|e| Error::new(ErrorKind::Internal, "build UpdateTable").with_source(e))?,
        )
        .send()
        .await
        .map_err(|e| sdk(e, store, "enable the table's stream"))?;
    wait_active(client, table, store).await
}
