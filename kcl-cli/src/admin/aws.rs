//! The AWS settings of the commands that read the stream (`--stream`,
//! `--region`, `--endpoint`) and a Kinesis client built from them.

use aws_config::BehaviorVersion;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use clap::Args;

use super::{AdminError, Exit};

/// The stream and how to reach Kinesis. Credentials come from aws-config's
/// default chain (environment, profile, instance role...), never from a flag.
#[derive(Args, Debug, Clone, Default)]
pub struct StreamArgs {
    /// The stream the application reads (name or ARN); enables lag and
    /// position checks.
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Region and endpoint.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Region and endpoint of the AWS calls.
#[derive(Args, Debug, Clone, Default)]
pub struct AwsArgs {
    /// The AWS region (default: AWS_REGION or the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The Kinesis endpoint, for an emulator (default: AWS_ENDPOINT_URL or
    /// the region's).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

impl AwsArgs {
    /// A Kinesis client for these settings.
    pub async fn kinesis(&self) -> Result<Client, AdminError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(AdminError::usage(
                "no AWS region: pass --region or set AWS_REGION",
            ));
        }
        Ok(Client::new(&sdk))
    }
}

/// A Kinesis error as an admin error: what failed, the service's own
/// words, and the exit code its kind calls for.
pub fn kinesis_error<E, R>(what: &str, e: SdkError<E, R>) -> AdminError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or_default().to_string();
    let exit = match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Exit::Unavailable,
        SdkError::ConstructionFailure(_) => Exit::Unavailable,
        _ => match code.as_str() {
            "ResourceNotFoundException" => Exit::NotFound,
            "InvalidArgumentException" => Exit::Refused,
            "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            | "ThrottlingException" => Exit::Unavailable,
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "AccessDeniedException"
            | "ExpiredTokenException" => Exit::Unavailable,
            _ => Exit::Failed,
        },
    };
    let detail = match e.message() {
        Some(message) if !code.is_empty() => format!("{code}: {message}"),
        _ => DisplayErrorContext(&e).to_string(),
    };
    AdminError::new(exit, format!("{what}: {detail}"))
}
