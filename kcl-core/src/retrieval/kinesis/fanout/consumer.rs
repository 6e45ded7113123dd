//! Registering the stream consumer an enhanced fan-out application reads
//! through: reuse it if it exists, register it if not, wait until ACTIVE.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ConsumerStatus;
use tokio::time::Instant;

use super::super::config::StreamRef;
use super::super::error::{Failure, classify, map_error};
use super::settings::FanOutSettings;
use crate::error::{Error, Result};

/// Which consumer to read through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConsumerRef {
    /// By name: registered on the stream if absent.
    Name(String),
    /// An existing consumer's ARN, used as is (never registered).
    Arn(String),
}

/// The consumer's ARN once it is ACTIVE.
///
/// - `ConsumerRef::Arn`: wait until that consumer is ACTIVE.
/// - `ConsumerRef::Name`: `DescribeStreamConsumer` by stream ARN and name;
///   if absent, `RegisterStreamConsumer` (a peer registering it at the same
///   moment gives `ResourceInUseException`, which means "it exists now");
///   then wait until ACTIVE.
///
/// Waiting polls `DescribeStreamConsumer` no more often than
/// `describe_interval`, backing off further on `LimitExceededException`.
pub(crate) async fn ensure_active(
    client: &Client,
    stream: &StreamRef,
    consumer: &ConsumerRef,
    settings: &FanOutSettings,
) -> Result<String> {
    let deadline = Instant::now() + settings.activation_timeout;
    let arn = match consumer {
        ConsumerRef::Arn(arn) => arn.clone(),
        ConsumerRef::Name(name) => {
            let stream_arn = stream_arn(client, stream).await?;
            match describe(client, Lookup::Name(&stream_arn, name), settings, deadline).await? {
                Some((arn, _)) => {
                    tracing::info!(consumer = %name, %arn, "reusing the registered stream consumer");
                    arn
                }
                None => register(client, &stream_arn, name, settings, deadline).await?,
            }
        }
    };
    loop {
        match describe(client, Lookup::Arn(&arn), settings, deadline).await? {
            Some((_, ConsumerStatus::Active)) => return Ok(arn),
            Some((_, ConsumerStatus::Deleting)) => {
                return Err(Error::Config(format!(
                    "stream consumer {arn} is being deleted"
                )));
            }
            Some(_) => {}
            None => {
                return Err(Error::NotFound {
                    what: format!("stream consumer {arn}"),
                });
            }
        }
        if Instant::now() + settings.describe_interval > deadline {
            return Err(Error::Unavailable {
                service: "kinesis",
                source: Some(
                    format!(
                        "stream consumer {arn} not ACTIVE after {:?}",
                        settings.activation_timeout
                    )
                    .into(),
                ),
            });
        }
        tokio::time::sleep(settings.describe_interval).await;
    }
}

/// Deregister a stream consumer (`DeregisterStreamConsumer`) by its ARN.
///
/// Fan-out readers never deregister on their own: the consumer is shared
/// by every worker of the application, and a restart reuses it. Call this
/// (or the admin CLI) when the application is retired; a consumer that is
/// already gone is not an error.
pub async fn deregister_consumer(client: &Client, consumer_arn: &str) -> Result<()> {
    match client
        .deregister_stream_consumer()
        .consumer_arn(consumer_arn)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if classify(&e) == Failure::NotFound => Ok(()),
        Err(e) => Err(map_error(e, &format!("stream consumer {consumer_arn}"))),
    }
}

async fn stream_arn(client: &Client, stream: &StreamRef) -> Result<String> {
    let name = match stream {
        StreamRef::Arn(arn) => return Ok(arn.clone()),
        StreamRef::Name(name) => name,
    };
    let out = client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .map_err(|e| map_error(e, &format!("stream {name}")))?;
    out.stream_description_summary()
        .map(|s| s.stream_arn().to_owned())
        .ok_or_else(|| Error::generic("kinesis", format!("stream {name} has no ARN")))
}

enum Lookup<'a> {
    Name(&'a str, &'a str),
    Arn(&'a str),
}

/// One `DescribeStreamConsumer`, retried on throttling until `deadline`;
/// `None` when the consumer does not exist.
async fn describe(
    client: &Client,
    lookup: Lookup<'_>,
    settings: &FanOutSettings,
    deadline: Instant,
) -> Result<Option<(String, ConsumerStatus)>> {
    let mut attempt = 0;
    loop {
        let req = client.describe_stream_consumer();
        let req = match lookup {
            Lookup::Name(stream_arn, name) => req.stream_arn(stream_arn).consumer_name(name),
            Lookup::Arn(arn) => req.consumer_arn(arn),
        };
        match req.send().await {
            Ok(out) => {
                return Ok(out
                    .consumer_description()
                    .map(|d| (d.consumer_arn().to_owned(), d.consumer_status().clone())));
            }
            Err(e) => match classify(&e) {
                Failure::NotFound => return Ok(None),
                f if f.is_retryable() && Instant::now() < deadline => {
                    attempt += 1;
                    let delay = settings.describe_interval.max(settings.backoff(attempt));
                    tracing::debug!(?delay, "DescribeStreamConsumer throttled, backing off");
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(map_error(e, "stream consumer")),
            },
        }
    }
}

async fn register(
    client: &Client,
    stream_arn: &str,
    name: &str,
    settings: &FanOutSettings,
    deadline: Instant,
) -> Result<String> {
    let mut attempt = 0;
    loop {
        let result = client
            .register_stream_consumer()
            .stream_arn(stream_arn)
            .consumer_name(name)
            .send()
            .await;
        let err = match result {
            Ok(out) => {
                let arn = out
                    .consumer()
                    .map(|c| c.consumer_arn().to_owned())
                    .ok_or_else(|| {
                        Error::generic("kinesis", "RegisterStreamConsumer returned no consumer")
                    })?;
                tracing::info!(consumer = %name, %arn, "registered the stream consumer");
                return Ok(arn);
            }
            Err(e) => e,
        };
        match classify(&err) {
            // A peer registered it first: use theirs.
            Failure::InUse => {
                if let Some((arn, _)) =
                    describe(client, Lookup::Name(stream_arn, name), settings, deadline).await?
                {
                    return Ok(arn);
                }
            }
            f if f.is_retryable() => {}
            _ => return Err(map_error(err, &format!("stream {stream_arn}"))),
        }
        attempt += 1;
        if Instant::now() >= deadline {
            return Err(map_error(err, &format!("stream {stream_arn}")));
        }
        let delay: Duration = settings.describe_interval.max(settings.backoff(attempt));
        tokio::time::sleep(delay).await;
    }
}
