//! Creating the cache table.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use cachekit_core::{BackendError, Result};

use crate::{error, DynamoDbBackend};

/// How long [`DynamoDbBackend::ensure_table`] waits for a new table to become active.
const ACTIVE_WAIT: Duration = Duration::from_secs(60);

/// Whether DynamoDB's own TTL deletion runs on the table.
///
/// It only reclaims space: this backend filters expired items on every read either way.
/// Tests that want to prove that read-side filter run with it disabled, because
/// DynamoDB Local deletes expired items within about a second and would hide its absence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlDeletion {
    /// Turn TTL deletion on for the ttl attribute.
    Enabled,
    /// Leave TTL deletion as it is (off on a new table).
    Untouched,
}

impl DynamoDbBackend {
    /// Creates the table (on-demand billing, string partition key) if it is missing, waits
    /// until it is active, and turns on TTL deletion on the ttl attribute. Idempotent.
    pub async fn ensure_table(&self) -> Result<()> {
        self.ensure_table_with(TtlDeletion::Enabled).await
    }

    /// [`ensure_table`](Self::ensure_table), choosing whether TTL deletion is turned on.
    pub async fn ensure_table_with(&self, ttl_deletion: TtlDeletion) -> Result<()> {
        let table = &self.config.table;
        let key = &self.config.attributes.key;
        let created = self
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|err| BackendError::invalid_argument(err.to_string()))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|err| BackendError::invalid_argument(err.to_string()))?,
            )
            .send()
            .await;
        if let Err(err) = created {
            let exists = err
                .as_service_error()
                .is_some_and(|service| service.is_resource_in_use_exception());
            if !exists {
                return Err(error::classify("CreateTable", table, err));
            }
        }
        self.wait_until_active().await?;
        if ttl_deletion == TtlDeletion::Enabled {
            self.enable_ttl_deletion().await?;
        }
        Ok(())
    }

    async fn wait_until_active(&self) -> Result<()> {
        let table = &self.config.table;
        let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
        loop {
            let output = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|err| error::classify("DescribeTable", table, err))?;
            let status = output.table.and_then(|table| table.table_status);
            if status == Some(TableStatus::Active) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::timeout(format!(
                    "table `{table}` is not active after {ACTIVE_WAIT:?} (status {status:?})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn enable_ttl_deletion(&self) -> Result<()> {
        let table = &self.config.table;
        let ttl = &self.config.attributes.ttl;
        let current = self
            .client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|err| error::classify("DescribeTimeToLive", table, err))?;
        if let Some(description) = current.time_to_live_description {
            let on = matches!(
                description.time_to_live_status,
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            );
            if on {
                return match description.attribute_name {
                    Some(name) if &name != ttl => Err(BackendError::invalid_argument(format!(
                        "table `{table}` already deletes expired items by `{name}`, not `{ttl}`"
                    ))),
                    _ => Ok(()),
                };
            }
        }
        let specification = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(ttl)
            .build()
            .map_err(|err| BackendError::invalid_argument(err.to_string()))?;
        self.client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(|err| error::classify("UpdateTimeToLive", table, err))?;
        Ok(())
    }
}
