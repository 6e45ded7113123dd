//! Mapping DynamoDB SDK errors into [`kcl_core::Error`], and the store's
//! own contract outcomes.
//!
//! | SDK error | `kcl_core::Error` |
//! |---|---|
//! | `ProvisionedThroughputExceededException`, `RequestLimitExceeded`, `ThrottlingException`, `LimitExceededException` | `Throttled` |
//! | dispatch failure, timeout, HTTP 5xx, `InternalServerError`, unparsable response | `Unavailable` |
//! | `ConditionalCheckFailedException` | `Conflict` (the store inspects it first to tell a lost race from a missing lease) |
//! | `ResourceNotFoundException` | `NotInitialized` (the table is gone) |
//! | anything else | `Generic { store: "dynamodb" }` |
//!
//! The SDK has already retried throttling and transient errors (standard
//! retry mode, exponential backoff with jitter, 3 attempts unless the
//! client was configured otherwise) before an error reaches this mapping,
//! so a `Throttled` or `Unavailable` here means the retries ran out.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use kcl_core::Error;

pub(crate) const STORE: &str = "dynamodb";

const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "Throttling",
    "LimitExceededException",
];

const TRANSIENT_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// What kind of failure an SDK error is, before it becomes an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    ConditionFailed,
    TableMissing,
    Throttled,
    Unavailable,
    Other,
}

/// Classify an SDK error by its code, its HTTP status and how it failed.
pub(crate) fn kind<E>(err: &SdkError<E, HttpResponse>) -> Kind
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            return Kind::Unavailable;
        }
        SdkError::ConstructionFailure(_) => return Kind::Other,
        _ => {}
    }
    match err.code() {
        Some("ConditionalCheckFailedException") => return Kind::ConditionFailed,
        Some("ResourceNotFoundException") => return Kind::TableMissing,
        Some(code) if THROTTLING_CODES.contains(&code) => return Kind::Throttled,
        Some(code) if TRANSIENT_CODES.contains(&code) => return Kind::Unavailable,
        _ => {}
    }
    if err
        .raw_response()
        .is_some_and(|r| r.status().is_server_error())
    {
        return Kind::Unavailable;
    }
    Kind::Other
}

/// Map an SDK error from an operation on `table` into the contract's error.
pub(crate) fn map_sdk<E>(table: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match kind(&err) {
        Kind::Throttled => Error::Throttled {
            service: STORE,
            source: Some(err.into_service_error_or_self()),
        },
        Kind::Unavailable => Error::Unavailable {
            service: STORE,
            source: Some(err.into_service_error_or_self()),
        },
        Kind::TableMissing => Error::NotInitialized(format!(
            "DynamoDB table {table} does not exist (build the store with create_tables_if_absent(true), or create it)"
        )),
        Kind::ConditionFailed => Error::conflict(table, "a conditional write failed"),
        Kind::Other => Error::generic(STORE, err.into_service_error_or_self()),
    }
}

/// The SDK error's service error when there is one (it carries the code
/// and message), else the whole `SdkError`, boxed for an error source.
trait IntoServiceErrorOrSelf {
    fn into_service_error_or_self(self) -> Box<dyn std::error::Error + Send + Sync>;
}

impl<E> IntoServiceErrorOrSelf for SdkError<E, HttpResponse>
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn into_service_error_or_self(self) -> Box<dyn std::error::Error + Send + Sync> {
        match self {
            SdkError::ServiceError(inner) => Box::new(inner.into_err()),
            other => Box::new(other),
        }
    }
}

/// An item in the table that does not read as a lease.
pub(crate) fn malformed(table: &str, key: &str, why: impl std::fmt::Display) -> Error {
    Error::generic(
        STORE,
        format!("item {key:?} in table {table} is not a lease this store can read: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;

    fn service(code: &str, status: u16) -> SdkError<GetItemError, HttpResponse> {
        let err = GetItemError::generic(ErrorMetadata::builder().code(code).message("m").build());
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    #[test]
    fn throttling_codes_are_throttled() {
        for code in [
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "ThrottlingException",
        ] {
            let e = map_sdk("t", service(code, 400));
            assert!(matches!(e, Error::Throttled { .. }), "{code}: {e:?}");
            assert!(e.is_retryable());
        }
    }

    #[test]
    fn server_errors_and_dispatch_failures_are_unavailable() {
        let e = map_sdk("t", service("SomethingNew", 503));
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        let e = map_sdk("t", service("InternalServerError", 500));
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        let refused = SdkError::<GetItemError, HttpResponse>::dispatch_failure(ConnectorError::io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
        ));
        let e = map_sdk("t", refused);
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    }

    #[test]
    fn conditions_tables_and_the_rest() {
        assert_eq!(
            kind(&service("ConditionalCheckFailedException", 400)),
            Kind::ConditionFailed
        );
        assert!(map_sdk("t", service("ConditionalCheckFailedException", 400)).is_conflict());
        let e = map_sdk("leases", service("ResourceNotFoundException", 400));
        assert!(
            matches!(&e, Error::NotInitialized(m) if m.contains("leases")),
            "{e:?}"
        );
        let e = map_sdk("t", service("ValidationException", 400));
        assert!(
            matches!(
                e,
                Error::Generic {
                    store: "dynamodb",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("ValidationException") || e.to_string().contains("m"));
    }
}
