//! `kcl multilang`: the JVM-free MultiLang daemon. Reads the Java
//! daemon's properties, then runs one child process per leased shard on
//! the kcl engine, reading Kinesis by enhanced fan-out or polling
//! (`retrievalMode`), leases in DynamoDB (as Java) or in the store
//! `leaseStoreUrl` names.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_sdk_kinesis::config::retry::RetryConfig;
use kcl_core::engine::Worker;
use kcl_core::retrieval::ShardSource;
use kcl_core::retrieval::kinesis::KinesisSource;
use kcl_core::{LeaseStore, ProcessorErrorPolicy};
use kcl_multilang::daemon::{ChildConfig, ChildProcessorFactory};
use tokio_util::sync::CancellationToken;

use crate::credentials;
use crate::properties::{MultiLangProperties, Retrieval};
use crate::store_url::{DynamoSettings, lease_store_from_url};

/// Behaviour that is ours to choose (command-line flags).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// Exit with status 1 on any child failure, as the Java daemon does,
    /// instead of restarting that shard's child.
    pub java_compatible_exit: bool,
    /// Speak KCL 1.x to the children (`shutdown` TERMINATE/ZOMBIE).
    pub legacy_protocol: bool,
}

impl Options {
    /// The defaults: restart failed children, KCL 2.1+/3.x protocol.
    pub fn new() -> Self {
        Options::default()
    }
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad properties or an unmappable credentials provider.
    #[error("{0}")]
    Config(String),
    /// The engine, the store or the stream failed.
    #[error(transparent)]
    Engine(#[from] kcl_core::Error),
}

/// Run until `cancel` (SIGTERM/SIGINT in the binary), then shut down
/// gracefully: `shutdownRequested` to every child, then `leaseLost`, all
/// within `shutdownGraceMillis`.
pub async fn run(
    props: MultiLangProperties,
    options: Options,
    cancel: CancellationToken,
) -> Result<(), RunError> {
    if props.command.is_empty() {
        return Err(RunError::Config("executableName is empty".into()));
    }
    let kinesis_chain = credentials::parse(&props.credentials).map_err(RunError::Config)?;
    let dynamo_chain = match &props.dynamo_credentials {
        Some(value) => credentials::parse(value).map_err(RunError::Config)?,
        None => kinesis_chain.clone(),
    };
    let region = props.region.as_deref();
    let kinesis_creds = credentials::provider(&kinesis_chain, region).await;
    let dynamo_creds = credentials::provider(&dynamo_chain, region).await;
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    let sdk = loader.load().await;

    let mut kinesis = aws_sdk_kinesis::config::Builder::from(&sdk)
        .credentials_provider(kinesis_creds)
        .retry_config(RetryConfig::disabled());
    if let Some(endpoint) = &props.kinesis_endpoint {
        kinesis = kinesis.endpoint_url(endpoint);
    }
    let polling = KinesisSource::builder()
        .client(aws_sdk_kinesis::Client::from_conf(kinesis.build()))
        .stream(props.stream.clone())
        .max_records(i32::try_from(props.max_records).unwrap_or(10_000))
        .idle_time(props.idle_time_between_reads)
        .build()
        .await?;
    let source: Arc<dyn ShardSource> = match &props.retrieval {
        Retrieval::Polling => Arc::new(polling),
        Retrieval::FanOut {
            consumer_name,
            consumer_arn,
        } => {
            // The consumer is named after the application unless told
            // otherwise, as Java; an ARN skips registration.
            let mut fan_out = polling.fan_out().application(&props.application_name);
            if let Some(name) = consumer_name {
                fan_out = fan_out.consumer_name(name);
            }
            if let Some(arn) = consumer_arn {
                fan_out = fan_out.consumer_arn(arn);
            }
            let source = fan_out.build().await?;
            tracing::info!(consumer = %source.consumer_arn(), "reading by enhanced fan-out");
            Arc::new(source)
        }
    };

    let mut dynamo =
        aws_sdk_dynamodb::config::Builder::from(&sdk).credentials_provider(dynamo_creds);
    if let Some(endpoint) = &props.dynamo_endpoint {
        dynamo = dynamo.endpoint_url(endpoint);
    }
    let dynamo = DynamoSettings {
        client: Some(aws_sdk_dynamodb::Client::from_conf(dynamo.build())),
        default_table: Some(props.table_name.clone()),
    };
    let url = props
        .lease_store_url
        .clone()
        .unwrap_or_else(|| "dynamodb://".to_string());
    let store: Arc<dyn LeaseStore> =
        lease_store_from_url(&url, &props.application_name, dynamo).await?;
    tracing::info!(store = %crate::store_url::redact(&url), stream = %props.stream, command = ?props.command, "kcl multilang starting");

    let mut child = ChildConfig::new(props.command.clone());
    child.action_timeout = props.action_timeout;
    child.exit_wait = props.child_exit_wait;
    child.legacy = options.legacy_protocol;
    let mut builder = Worker::builder()
        .lease_store(store)
        .source(source)
        .lease_duration(props.failover_time)
        .shard_sync_interval(props.shard_sync_interval)
        .max_records(props.max_records)
        .shutdown_grace(props.shutdown_grace)
        .initial_position(props.initial_position)
        .deliver_empty_batches(props.call_process_records_even_for_empty_record_list)
        .error_policy(if options.java_compatible_exit {
            ProcessorErrorPolicy::Stop
        } else {
            ProcessorErrorPolicy::Retry
        });
    if let Some(cap) = props.max_leases_for_worker {
        builder = builder.max_leases_per_worker(cap);
    }
    if let Some(poll) = props.parent_shard_poll_interval {
        builder = builder.parent_poll_interval(poll);
    }
    if let Some(id) = &props.worker_id {
        builder = builder.worker_id(id.clone());
    }
    let worker = builder
        .processor(ChildProcessorFactory::new(child))
        .build()?;
    tracing::info!(worker = %worker.id(), "worker started");
    worker.run(cancel).await?;
    Ok(())
}
