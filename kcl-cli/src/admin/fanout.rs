//! `kcl fanout deregister`: remove the application's enhanced fan-out
//! consumer (readers never deregister it themselves: every worker shares
//! it, and a restart reuses it).

use clap::{Args, Subcommand};
use kcl_core::retrieval::kinesis::fanout::deregister_consumer;

use super::AdminError;
use super::aws::{AwsArgs, kinesis_error};

/// `kcl fanout …`.
#[derive(Subcommand, Debug)]
pub enum FanoutCommand {
    /// Deregister a stream consumer (by ARN, or by stream and name; the
    /// name defaults to the application's, as `kcl multilang` registers it).
    Deregister(DeregisterArgs),
}

impl FanoutCommand {
    /// Run it.
    pub async fn run(self) -> Result<(), AdminError> {
        match self {
            FanoutCommand::Deregister(args) => args.run().await,
        }
    }
}

/// `kcl fanout deregister`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("consumer").required(true).args(["consumer_arn", "stream"])))]
pub struct DeregisterArgs {
    /// The consumer's ARN.
    #[arg(long, value_name = "ARN", conflicts_with_all = ["stream", "consumer_name"])]
    consumer_arn: Option<String>,
    /// The stream (name or ARN) the consumer is registered on.
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    /// The consumer's name.
    #[arg(long, value_name = "NAME")]
    consumer_name: Option<String>,
    /// The application, whose name is the consumer's by default.
    #[arg(long = "app", env = "KCL_APPLICATION", value_name = "NAME")]
    app: Option<String>,
    #[command(flatten)]
    aws: AwsArgs,
}

impl DeregisterArgs {
    async fn run(self) -> Result<(), AdminError> {
        let client = self.aws.kinesis().await?;
        let arn = match (&self.consumer_arn, &self.stream) {
            (Some(arn), _) => arn.clone(),
            (None, Some(stream)) => {
                let name = self
                    .consumer_name
                    .clone()
                    .or_else(|| self.app.clone())
                    .ok_or_else(|| AdminError::usage("give --consumer-name or --app"))?;
                let stream_arn = if stream.starts_with("arn:") {
                    stream.clone()
                } else {
                    client
                        .describe_stream_summary()
                        .stream_name(stream)
                        .send()
                        .await
                        .map_err(|e| kinesis_error(&format!("stream {stream}"), e))?
                        .stream_description_summary()
                        .map(|s| s.stream_arn().to_string())
                        .ok_or_else(|| {
                            AdminError::new(
                                super::Exit::Failed,
                                format!("stream {stream} has no ARN"),
                            )
                        })?
                };
                let what = format!("consumer {name} of stream {stream}");
                client
                    .describe_stream_consumer()
                    .stream_arn(stream_arn)
                    .consumer_name(&name)
                    .send()
                    .await
                    .map_err(|e| kinesis_error(&what, e))?
                    .consumer_description()
                    .map(|c| c.consumer_arn().to_string())
                    .ok_or_else(|| {
                        AdminError::new(super::Exit::NotFound, format!("{what}: not found"))
                    })?
            }
            (None, None) => return Err(AdminError::usage("give --consumer-arn, or --stream")),
        };
        deregister_consumer(&client, &arn).await?;
        println!("deregistered stream consumer {arn}");
        Ok(())
    }
}
