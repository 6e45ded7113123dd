//! Classifying `aws-sdk-kinesis` errors and mapping them into [`Error`].
//!
//! The reader retries what Kinesis documents as transient
//! (`ProvisionedThroughputExceededException`, `KMSThrottlingException`,
//! `LimitExceededException`, any 5xx, timeouts and connection failures),
//! re-seeks on `ExpiredIteratorException`, and gives up on the rest.

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::deregister_stream_consumer::DeregisterStreamConsumerError;
use aws_sdk_kinesis::operation::describe_stream_consumer::DescribeStreamConsumerError;
use aws_sdk_kinesis::operation::describe_stream_summary::DescribeStreamSummaryError;
use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_kinesis::operation::list_shards::ListShardsError;
use aws_sdk_kinesis::operation::register_stream_consumer::RegisterStreamConsumerError;
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardError;

use crate::error::{BoxError, Error};

const SERVICE: &str = "kinesis";

/// What a failed call means to the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Slow down and try again (throughput, KMS or limit throttling).
    Throttled,
    /// Transient service or network failure (5xx, timeout, dispatch).
    Unavailable,
    /// The shard iterator expired: get a new one and carry on.
    ExpiredIterator,
    /// The stream or shard does not exist.
    NotFound,
    /// The resource is busy: a consumer being registered or deleted, or
    /// (on `SubscribeToShard`) the shard's previous subscription still open
    /// after a failover. Worth retrying after a backoff.
    InUse,
    /// Anything else: not worth retrying.
    Fatal,
}

impl Failure {
    pub(crate) fn is_retryable(self) -> bool {
        matches!(
            self,
            Failure::Throttled | Failure::Unavailable | Failure::InUse
        )
    }
}

/// The modeled error variants of one operation, by what they mean.
pub(crate) trait Modeled: ProvideErrorMetadata {
    fn failure(&self) -> Option<Failure>;
}

impl Modeled for GetRecordsError {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            GetRecordsError::ProvisionedThroughputExceededException(_)
            | GetRecordsError::KmsThrottlingException(_) => Failure::Throttled,
            GetRecordsError::InternalFailureException(_) => Failure::Unavailable,
            GetRecordsError::ExpiredIteratorException(_) => Failure::ExpiredIterator,
            GetRecordsError::ResourceNotFoundException(_) => Failure::NotFound,
            _ => return None,
        })
    }
}

impl Modeled for GetShardIteratorError {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            GetShardIteratorError::ProvisionedThroughputExceededException(_) => Failure::Throttled,
            GetShardIteratorError::InternalFailureException(_) => Failure::Unavailable,
            GetShardIteratorError::ResourceNotFoundException(_) => Failure::NotFound,
            _ => return None,
        })
    }
}

impl Modeled for ListShardsError {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            ListShardsError::LimitExceededException(_) => Failure::Throttled,
            ListShardsError::ResourceNotFoundException(_) => Failure::NotFound,
            _ => return None,
        })
    }
}

impl Modeled for SubscribeToShardError {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            // At most one subscribe per second per shard and consumer.
            SubscribeToShardError::LimitExceededException(_)
            | SubscribeToShardError::KmsThrottlingException(_) => Failure::Throttled,
            SubscribeToShardError::ResourceInUseException(_) => Failure::InUse,
            SubscribeToShardError::InternalFailureException(_) => Failure::Unavailable,
            SubscribeToShardError::ResourceNotFoundException(_) => Failure::NotFound,
            _ => return None,
        })
    }
}

impl Modeled for DescribeStreamConsumerError {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            DescribeStreamConsumerError::LimitExceededException(_) => Failure::Throttled,
            DescribeStreamConsumerError::ResourceNotFoundException(_) => Failure::NotFound,
            _ => return None,
        })
    }
}

impl Modeled for RegisterStreamConsumerError {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            RegisterStreamConsumerError::LimitExceededException(_) => Failure::Throttled,
            RegisterStreamConsumerError::ResourceInUseException(_) => Failure::InUse,
            RegisterStreamConsumerError::ResourceNotFoundException(_) => Failure::NotFound,
            _ => return None,
        })
    }
}

impl Modeled for DeregisterStreamConsumerError {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            DeregisterStreamConsumerError::LimitExceededException(_) => Failure::Throttled,
            DeregisterStreamConsumerError::ResourceNotFoundException(_) => Failure::NotFound,
            _ => return None,
        })
    }
}

impl Modeled for DescribeStreamSummaryError {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            DescribeStreamSummaryError::LimitExceededException(_) => Failure::Throttled,
            DescribeStreamSummaryError::ResourceNotFoundException(_) => Failure::NotFound,
            _ => return None,
        })
    }
}

/// Classify an SDK error by its modeled variant, then its error code (for
/// errors the model does not list, like `LimitExceededException` on
/// `GetRecords`), then its HTTP status.
pub(crate) fn classify<E, R>(err: &SdkError<E, R>) -> Failure
where
    E: Modeled,
    R: HasStatus,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => return Failure::Unavailable,
        SdkError::ResponseError(_) => return Failure::Unavailable,
        SdkError::ConstructionFailure(_) => return Failure::Fatal,
        _ => {}
    }
    if let Some(failure) = err.as_service_error().and_then(Modeled::failure) {
        return failure;
    }
    match err.code() {
        Some(
            "ProvisionedThroughputExceededException"
            | "KMSThrottlingException"
            | "LimitExceededException"
            | "ThrottlingException"
            | "Throttling"
            | "RequestLimitExceeded"
            | "TooManyRequestsException",
        ) => return Failure::Throttled,
        Some("ExpiredIteratorException") => return Failure::ExpiredIterator,
        Some("ResourceNotFoundException") => return Failure::NotFound,
        Some("ResourceInUseException") => return Failure::InUse,
        Some("InternalFailureException" | "ServiceUnavailable" | "ServiceUnavailableException") => {
            return Failure::Unavailable;
        }
        _ => {}
    }
    match err.raw_response().map(HasStatus::status) {
        Some(429) => Failure::Throttled,
        Some(status) if status >= 500 => Failure::Unavailable,
        _ => Failure::Fatal,
    }
}

/// Lets [`classify`] read the HTTP status of the raw response.
pub(crate) trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_kinesis::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Map an SDK error into the crate's [`Error`]; `what` names the stream or
/// shard for a not-found error.
pub(crate) fn map_error<E, R>(err: SdkError<E, R>, what: &str) -> Error
where
    E: Modeled + std::error::Error + Send + Sync + 'static,
    R: HasStatus + std::fmt::Debug + Send + Sync + 'static,
{
    let failure = classify(&err);
    let source: BoxError = Box::new(err);
    match failure {
        Failure::Throttled => Error::Throttled {
            service: SERVICE,
            source: Some(source),
        },
        Failure::Unavailable | Failure::InUse => Error::Unavailable {
            service: SERVICE,
            source: Some(source),
        },
        Failure::NotFound => Error::NotFound {
            what: format!("{what}: {}", display_chain(&*source)),
        },
        Failure::ExpiredIterator | Failure::Fatal => Error::Generic {
            store: SERVICE,
            source,
        },
    }
}

/// The error with its causes, as the SDK's `DisplayErrorContext` shows it.
fn display_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}
