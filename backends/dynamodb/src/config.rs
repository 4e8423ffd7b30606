//! How to reach the table, and how items are laid out in it.

use std::time::Duration;

use aws_sdk_dynamodb::config::{
    retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Credentials, Region,
};
use aws_sdk_dynamodb::Client;
use cachekit_core::BackendError;

/// Attribute names of a cache item.
///
/// The defaults, `key` / `value` / `ttl`, are those of the Python cachekit example and
/// are all DynamoDB reserved words; the backend therefore never writes an attribute name
/// into an expression, only `#placeholders` bound through `ExpressionAttributeNames`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeNames {
    /// Partition key, a string attribute holding the cache key.
    pub key: String,
    /// Binary attribute holding the value.
    pub value: String,
    /// Number attribute holding the expiry in epoch seconds; absent for persistent entries.
    pub ttl: String,
}

impl Default for AttributeNames {
    fn default() -> Self {
        AttributeNames {
            key: "key".to_owned(),
            value: "value".to_owned(),
            ttl: "ttl".to_owned(),
        }
    }
}

/// Configuration of a [`DynamoDbBackend`](crate::DynamoDbBackend).
///
/// `Debug` never shows the secret key: [`Credentials`] redacts it.
#[derive(Debug, Clone)]
pub struct DynamoDbConfig {
    /// Table name.
    pub table: String,
    /// AWS region, e.g. `us-east-1`. DynamoDB Local accepts any.
    pub region: String,
    /// Endpoint override, e.g. `http://127.0.0.1:8000` for DynamoDB Local.
    pub endpoint: Option<String>,
    /// Attribute names; see [`AttributeNames`].
    pub attributes: AttributeNames,
    /// Strongly consistent reads (default `true`): a `get` right after a `set` sees it.
    pub consistent_reads: bool,
    /// Deadline of one operation including the SDK's retries.
    pub operation_timeout: Duration,
    /// Deadline of one health check.
    pub health_timeout: Duration,
    /// Attempts per read, the first included (the SDK's standard retry mode retries
    /// throttling and transient errors with jittered backoff). Writes make one attempt:
    /// see the README's "Consistency and faults".
    pub max_attempts: u32,
    /// Credentials; `None` reads `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
    /// `AWS_SESSION_TOKEN`, and with an endpoint override falls back to dummy credentials
    /// (DynamoDB Local accepts any).
    pub credentials: Option<Credentials>,
}

impl DynamoDbConfig {
    /// Defaults: region `us-east-1`, attribute names `key`/`value`/`ttl`, consistent reads,
    /// 5 s per operation, 3 attempts, a 2 s health check.
    pub fn new(table: impl Into<String>) -> Self {
        DynamoDbConfig {
            table: table.into(),
            region: "us-east-1".to_owned(),
            endpoint: None,
            attributes: AttributeNames::default(),
            consistent_reads: true,
            operation_timeout: Duration::from_secs(5),
            health_timeout: Duration::from_secs(2),
            max_attempts: 3,
            credentials: None,
        }
    }

    /// Points the client at `endpoint` instead of AWS.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets the attribute names.
    pub fn with_attributes(mut self, attributes: AttributeNames) -> Self {
        self.attributes = attributes;
        self
    }

    /// Sets the per-operation deadline.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets the health-check deadline.
    pub fn with_health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// Sets the attempts per operation (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets explicit credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Turns strongly consistent reads on or off.
    pub fn with_consistent_reads(mut self, consistent: bool) -> Self {
        self.consistent_reads = consistent;
        self
    }

    /// What a write (PutItem, DeleteItem) overrides: one attempt, with the whole operation
    /// deadline. A write retried after a timeout or a lost answer can succeed while its first
    /// attempt lands later, over another client's newer write, and a DeleteItem retried
    /// after its answer was lost finds the item gone and reports `false` for an entry that
    /// existed; so only reads are retried, and a throttled write is returned as `Throttled`
    /// for the caller to retry if it wants to.
    pub(crate) fn write_override(&self) -> aws_sdk_dynamodb::config::Builder {
        aws_sdk_dynamodb::config::Builder::default()
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(self.operation_timeout)
                    .operation_attempt_timeout(self.operation_timeout)
                    .build(),
            )
    }

    /// Builds an SDK client from this configuration.
    pub fn client(&self) -> Result<Client, BackendError> {
        let credentials = match &self.credentials {
            Some(credentials) => credentials.clone(),
            None => credentials_from_env(self.endpoint.is_some())?,
        };
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(self.operation_timeout)
            .operation_attempt_timeout(self.operation_timeout / self.max_attempts.max(1))
            .connect_timeout(self.operation_timeout.min(Duration::from_secs(2)))
            .build();
        let mut builder = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(credentials)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts.max(1)));
        if let Some(endpoint) = &self.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(Client::from_conf(builder.build()))
    }
}

fn credentials_from_env(local_endpoint: bool) -> Result<Credentials, BackendError> {
    let id = std::env::var("AWS_ACCESS_KEY_ID").ok();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Credentials::new(
            id,
            secret,
            std::env::var("AWS_SESSION_TOKEN").ok(),
            None,
            "environment",
        )),
        _ if local_endpoint => Ok(Credentials::new(
            // DynamoDB Local only accepts letters and digits here.
            "cachekitlocal",
            "cachekitlocal",
            None,
            None,
            "dummy credentials for a local endpoint",
        )),
        _ => Err(BackendError::new(
            cachekit_core::ErrorKind::Auth,
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, pass \
             DynamoDbConfig::with_credentials, or build a client with aws-config and use \
             DynamoDbBackend::with_client",
        )),
    }
}
