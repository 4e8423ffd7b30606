//! cachekit backend on Amazon DynamoDB, or any endpoint that speaks its API (DynamoDB Local).
//!
//! One item per entry: the key in a string partition key, the value in a binary
//! attribute, the expiry in a number attribute as epoch seconds (the format DynamoDB's
//! TTL feature reads, so the table can have TTL deletion turned on to reclaim space).
//!
//! DynamoDB deletes expired items lazily, possibly days late, so expiry is enforced
//! here on every read: an item whose ttl has passed is absent to `get` and `exists`,
//! and `delete` reports `true` only when it removed a live item.
//!
//! ```no_run
//! use std::time::Duration;
//! use cachekit_backend_dynamodb::{DynamoDbBackend, DynamoDbConfig};
//! use cachekit_core::{Backend, Bytes};
//!
//! # async fn demo() -> Result<(), cachekit_core::BackendError> {
//! let config = DynamoDbConfig::new("cache").with_endpoint("http://127.0.0.1:8000");
//! let cache = DynamoDbBackend::connect(config)?;
//! cache.ensure_table().await?;
//! cache.set("user:1", Bytes::from_static(b"alice"), Some(Duration::from_secs(60))).await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
#[cfg(feature = "local")]
pub mod local;
mod table;
mod write_order;

use write_order::WriteOrder;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, HealthReport, Result, TtlSupport,
};

pub use crate::config::{AttributeNames, DynamoDbConfig};
pub use crate::table::TtlDeletion;
pub use aws_sdk_dynamodb;

/// DynamoDB's limit on one item: attribute names plus values, 400 KB.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit on a partition key value, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 2048;
/// The most an expiry number can count toward the item size (DynamoDB sizes a number at
/// one byte per two significant digits plus one; 38 digits at most).
const MAX_NUMBER_BYTES: usize = 21;

/// A [`Backend`] on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbBackend {
    client: Client,
    config: DynamoDbConfig,
    caps: Capabilities,
    writes: WriteOrder,
}

impl DynamoDbBackend {
    /// Builds a client from `config` (endpoint, region, credentials, timeouts).
    pub fn connect(config: DynamoDbConfig) -> Result<Self> {
        let client = config.client()?;
        Ok(Self::with_client(client, config))
    }

    /// Uses an existing SDK client, e.g. one built from `aws-config`'s environment. The
    /// client's own endpoint, credentials and timeouts apply; `config` gives the table,
    /// attribute names, read consistency and health timeout.
    pub fn with_client(client: Client, config: DynamoDbConfig) -> Self {
        let caps = Capabilities::new("dynamodb")
            .with_ttl(TtlSupport::SECONDS)
            .with_max_key_bytes(MAX_KEY_BYTES)
            .with_max_value_bytes(max_value_bytes(&config.attributes))
            .with_shared_across_instances(true);
        DynamoDbBackend {
            client,
            config,
            caps,
            writes: WriteOrder::default(),
        }
    }

    /// The SDK client, for what this backend does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &DynamoDbConfig {
        &self.config
    }

    /// The largest value this backend accepts whatever the key: the item limit minus the
    /// attribute names, the longest key and the expiry number.
    pub fn max_value_bytes(&self) -> usize {
        max_value_bytes(&self.config.attributes)
    }

    fn key_value(key: &str) -> AttributeValue {
        AttributeValue::S(key.to_owned())
    }

    /// Reads the item of `key`, limited to the attributes in `projection` (placeholders
    /// `#k`, `#v`, `#t`) if given, and returns it if it is live.
    async fn live_item(
        &self,
        operation: &str,
        key: &str,
        projection: Option<&str>,
    ) -> Result<Option<HashMap<String, AttributeValue>>> {
        self.caps.check_key(key)?;
        let names = &self.config.attributes;
        let mut request = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .key(&names.key, Self::key_value(key))
            .consistent_read(self.config.consistent_reads);
        if let Some(projection) = projection {
            request = request.projection_expression(projection);
            for (placeholder, name) in
                [("#k", &names.key), ("#v", &names.value), ("#t", &names.ttl)]
            {
                if projection.contains(placeholder) {
                    request = request.expression_attribute_names(placeholder, name);
                }
            }
        }
        let output = request
            .send()
            .await
            .map_err(|err| error::classify(operation, &self.config.table, err))?;
        match output.item {
            Some(item) if self.is_live(key, &item)? => Ok(Some(item)),
            _ => Ok(None),
        }
    }

    /// Whether an item's expiry, if it has one, is still ahead.
    fn is_live(&self, key: &str, item: &HashMap<String, AttributeValue>) -> Result<bool> {
        let Some(expiry) = item.get(&self.config.attributes.ttl) else {
            return Ok(true);
        };
        let expires_at = match expiry {
            AttributeValue::N(number) => number.parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            BackendError::protocol(format!(
                "item `{key}` has a corrupt `{}` attribute: expected epoch seconds, found {expiry:?}",
                self.config.attributes.ttl
            ))
        })?;
        Ok(epoch_seconds(SystemTime::now()) < expires_at)
    }
}

fn max_value_bytes(names: &AttributeNames) -> usize {
    MAX_ITEM_BYTES
        .saturating_sub(names.key.len() + names.value.len() + names.ttl.len())
        .saturating_sub(MAX_KEY_BYTES + MAX_NUMBER_BYTES)
}

fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// The expiry attribute for a ttl that starts now: whole epoch seconds, rounded up so
/// the entry never expires early.
fn expiry_number(ttl: Duration) -> String {
    let expires_at = epoch_seconds(SystemTime::now() + ttl).ceil();
    format!("{expires_at:.0}")
}

#[async_trait]
impl Backend for DynamoDbBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        // The whole item: a projection would save only the key's bytes and costs the
        // service an expression to parse (measured: about 15% of get throughput).
        let Some(mut item) = self.live_item("GetItem", key, None).await? else {
            return Ok(None);
        };
        match item.remove(&self.config.attributes.value) {
            Some(AttributeValue::B(blob)) => Ok(Some(Bytes::from(blob.into_inner()))),
            other => Err(BackendError::protocol(format!(
                "item `{key}` has no binary `{}` attribute (found {other:?})",
                self.config.attributes.value
            ))),
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.caps.check_key(key)?;
        self.caps.check_value(&value)?;
        // Validated here, but the expiry is computed from the ttl as given: `expiry_number`
        // rounds the instant up once, and rounding the ttl first as well would let an entry
        // outlive its ttl by up to two seconds where one second of precision is declared.
        self.caps.check_ttl(ttl)?;
        // A ttl below the precision still lives a whole precision step.
        let precision = self
            .caps
            .ttl
            .map_or(Duration::ZERO, |support| support.precision);
        let ttl = ttl.map(|ttl| ttl.max(precision));
        let names = &self.config.attributes;
        let mut request = self
            .client
            .put_item()
            .table_name(&self.config.table)
            .item(&names.key, Self::key_value(key))
            .item(&names.value, AttributeValue::B(Blob::new(value.to_vec())));
        if let Some(ttl) = ttl {
            request = request.item(&names.ttl, AttributeValue::N(expiry_number(ttl)));
        }
        let put = request
            .customize()
            .config_override(self.config.write_override())
            .send();
        self.writes
            .run(key, put)
            .await?
            .map_err(|err| error::classify("PutItem", &self.config.table, err))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.caps.check_key(key)?;
        // The condition makes concurrent deletes of one item serialise: exactly one of
        // them finds it (DynamoDB Local hands ALL_OLD to several racing plain deletes).
        let delete = self
            .client
            .delete_item()
            .table_name(&self.config.table)
            .key(&self.config.attributes.key, Self::key_value(key))
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#k", &self.config.attributes.key)
            .return_values(ReturnValue::AllOld)
            .customize()
            .config_override(self.config.write_override())
            .send();
        let deleted = self.writes.run(key, delete).await?;
        match deleted {
            // An expired item is removed all the same, but it was not a live entry.
            Ok(output) => match output.attributes {
                Some(old) => self.is_live(key, &old),
                None => Ok(false),
            },
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|service| service.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(error::classify("DeleteItem", &self.config.table, err)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self
            .live_item("GetItem", key, Some("#k, #t"))
            .await?
            .is_some())
    }

    async fn health_check(&self) -> HealthReport {
        HealthReport::probe("dynamodb", self.config.health_timeout, async {
            let output = self
                .client
                .describe_table()
                .table_name(&self.config.table)
                .send()
                .await
                .map_err(|err| error::classify("DescribeTable", &self.config.table, err))?;
            let status = output
                .table
                .as_ref()
                .and_then(|table| table.table_status.as_ref())
                .map(|status| status.as_str().to_owned())
                .unwrap_or_else(|| "UNKNOWN".to_owned());
            if status != "ACTIVE" {
                return Err(BackendError::unavailable(format!(
                    "table `{}` is {status}, not ACTIVE",
                    self.config.table
                )));
            }
            let mut details = BTreeMap::from([
                ("table".to_owned(), self.config.table.clone()),
                ("status".to_owned(), status),
                ("region".to_owned(), self.config.region.clone()),
            ]);
            if let Some(endpoint) = &self.config.endpoint {
                details.insert("endpoint".to_owned(), endpoint.clone());
            }
            Ok(details)
        })
        .await
    }

    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_limit_leaves_room_for_the_longest_key_and_the_names() {
        let backend =
            DynamoDbBackend::connect(DynamoDbConfig::new("t").with_endpoint("http://127.0.0.1:9"))
                .expect("a local endpoint needs no credentials");
        assert_eq!(backend.max_value_bytes(), 409_600 - 11 - 2048 - 21);
    }

    #[test]
    fn expiry_is_rounded_up_to_whole_seconds() {
        let before = epoch_seconds(SystemTime::now());
        let expiry: f64 = expiry_number(Duration::from_secs(2))
            .parse()
            .expect("a number");
        assert_eq!(expiry.fract(), 0.0);
        assert!(expiry >= before + 2.0, "{expiry} < {before} + 2");
        assert!(expiry <= before + 4.0);
    }
}
