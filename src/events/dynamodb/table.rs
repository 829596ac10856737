//! The audit events table, as upstream's `dynamoevents` creates it: key
//! `SessionID` (S, partition) + `EventIndex` (N, sort), the global secondary
//! index `timesearchV2` (`CreatedAtDate` S hash, `CreatedAt` N range,
//! projection ALL) that searches query day by day, and TTL on `Expires`.
//! A missing table is created (on-demand billing); a table with another key
//! schema or without the index is refused, naming the table.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::error::sdk;
use super::{CREATED_AT, CREATED_AT_DATE, EVENT_INDEX, EXPIRES, INDEX_TIME_SEARCH, SESSION_ID};
use crate::events::{EventsError, EventsErrorKind, Result};

/// How long to wait for the table to become ACTIVE.
pub const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

fn build(e: aws_sdk_dynamodb::error::BuildError) -> EventsError {
    EventsError::internal(format!("build a DynamoDB request: {e}"))
}

fn attr(name: &str, t: ScalarAttributeType) -> Result<AttributeDefinition> {
    AttributeDefinition::builder().attribute_name(name).attribute_type(t).build().map_err(build)
}

fn key(name: &str, t: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder().attribute_name(name).key_type(t).build().map_err(build)
}

/// Makes the table ready: creates it when missing, checks its schema,
/// waits for ACTIVE and turns TTL on.
pub async fn prepare(client: &Client, table: &str, store: &str) -> Result<()> {
    let desc = match client.describe_table().table_name(table).send().await {
        Ok(out) => out.table().cloned(),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            create(client, table, store).await?;
            None
        }
        Err(e) => return Err(sdk(e, store, "describe table")),
    };
    let desc = match desc {
        Some(d) if matches!(d.table_status(), Some(TableStatus::Active)) => d,
        _ => wait_active(client, table, store).await?,
    };
    check_schema(&desc, store)?;
    ensure_ttl(client, table, store).await
}

async fn create(client: &Client, table: &str, store: &str) -> Result<()> {
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(INDEX_TIME_SEARCH)
        .key_schema(key(CREATED_AT_DATE, KeyType::Hash)?)
        .key_schema(key(CREATED_AT, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build)?;
    tracing::info!(store, "creating the audit events table");
    let res = client
        .create_table()
        .table_name(table)
        .attribute_definitions(attr(SESSION_ID, ScalarAttributeType::S)?)
        .attribute_definitions(attr(EVENT_INDEX, ScalarAttributeType::N)?)
        .attribute_definitions(attr(CREATED_AT_DATE, ScalarAttributeType::S)?)
        .attribute_definitions(attr(CREATED_AT, ScalarAttributeType::N)?)
        .key_schema(key(SESSION_ID, KeyType::Hash)?)
        .key_schema(key(EVENT_INDEX, KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match res {
        Ok(_) => Ok(()),
        // Another auth server created it meanwhile.
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => Ok(()),
        Err(e) => Err(sdk(e, store, "create table")),
    }
}

/// Refuses a table that is not an audit events table.
pub fn check_schema(desc: &TableDescription, store: &str) -> Result<()> {
    let attr_type = |name: &str| {
        desc.attribute_definitions()
            .iter()
            .find(|a| a.attribute_name() == name)
            .map(|a| a.attribute_type().as_str().to_string())
            .unwrap_or_else(|| "?".into())
    };
    let keys = |ks: &[KeySchemaElement]| {
        ks.iter()
            .map(|k| format!("{} ({}, {})", k.attribute_name(), attr_type(k.attribute_name()), k.key_type().as_str()))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let found = keys(desc.key_schema());
    let want = format!("{SESSION_ID} (S, HASH) + {EVENT_INDEX} (N, RANGE)");
    if found != want {
        return Err(EventsError::bad(format!(
            "{store}: the table's key schema is {}, not {want} as audit events need; \
             it is not an audit events table (the cluster state table, for one, must be another table): \
             use another table name in audit_events_uri",
            if found.is_empty() { "empty".to_string() } else { found }
        )));
    }
    let gsi = desc.global_secondary_indexes().iter().find(|g| g.index_name() == Some(INDEX_TIME_SEARCH));
    let want_gsi = format!("{CREATED_AT_DATE} (S, HASH) + {CREATED_AT} (N, RANGE)");
    match gsi {
        Some(g) if keys(g.key_schema()) == want_gsi => Ok(()),
        Some(g) => Err(EventsError::bad(format!(
            "{store}: the index {INDEX_TIME_SEARCH} has keys {}, not {want_gsi}; use another table name",
            keys(g.key_schema())
        ))),
        None => Err(EventsError::bad(format!(
            "{store}: the table has no global secondary index {INDEX_TIME_SEARCH} ({want_gsi}, projection ALL) \
             that searches use; an older upstream table is migrated by upstream's auth server on start, \
             or use a new table name"
        ))),
    }
}

async fn wait_active(client: &Client, table: &str, store: &str) -> Result<TableDescription> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        let out =
            client.describe_table().table_name(table).send().await.map_err(|e| sdk(e, store, "describe table"))?;
        if let Some(d) = out.table()
            && matches!(d.table_status(), Some(TableStatus::Active))
        {
            return Ok(d.clone());
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            return Err(EventsError::new(
                EventsErrorKind::ConnectionProblem,
                format!("{store}: the table is not ACTIVE after {ACTIVE_TIMEOUT:?}"),
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
    let spec = TimeToLiveSpecification::builder().attribute_name(EXPIRES).enabled(true).build().map_err(build)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| sdk(e, store, "enable time to live on Expires"))?;
    Ok(())
}
