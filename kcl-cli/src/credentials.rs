//! `AwsCredentialsProvider` values, mapped onto aws-config's providers.
//!
//! Accepted (the short names and the fully qualified Java class names of
//! SDK v2 `software.amazon.awssdk.auth.credentials.*` and v1
//! `com.amazonaws.auth.*`, which KCL 1.x files carry), optionally as a
//! comma-separated chain (KCL 1.x):
//!
//! | value | provider |
//! |---|---|
//! | `DefaultCredentialsProvider`, `DefaultAWSCredentialsProviderChain` | aws-config's default chain |
//! | `EnvironmentVariableCredentialsProvider` | environment variables |
//! | `ProfileCredentialsProvider[\|name]` | the profile files, profile `name` (default: `AWS_PROFILE` or `default`) |
//! | `InstanceProfileCredentialsProvider` | EC2 instance metadata (IMDS) |
//! | `ContainerCredentialsProvider`, `EC2ContainerCredentialsProviderWrapper` | ECS / EKS container credentials |
//! | `WebIdentityTokenFileCredentialsProvider` | web identity token from the environment |
//! | `StsAssumeRoleCredentialsProvider\|roleArn\|session[\|externalId]`, `STSAssumeRoleSessionCredentialsProvider\|…` | STS AssumeRole on top of the default chain |
//!
//! Anything else (for example `SystemPropertyCredentialsProvider`, which
//! reads JVM system properties) is a start error naming the value, never
//! a silent empty chain as in Java 3.x.

use aws_config::BehaviorVersion;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_credential_types::provider::SharedCredentialsProvider;

/// One provider of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsSpec {
    /// aws-config's default chain.
    Default,
    /// Environment variables.
    Environment,
    /// A profile (default: `AWS_PROFILE` or `default`).
    Profile(Option<String>),
    /// EC2 instance metadata.
    InstanceProfile,
    /// Container (ECS/EKS) credentials.
    Container,
    /// Web identity token file.
    WebIdentity,
    /// STS AssumeRole.
    AssumeRole {
        /// The role ARN.
        role_arn: String,
        /// The session name.
        session: String,
        /// The external id, if any.
        external_id: Option<String>,
    },
}

/// Parse a property value into a chain of providers.
pub fn parse(value: &str) -> Result<Vec<CredentialsSpec>, String> {
    let mut chain = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut parts = item.split('|').map(str::trim);
        let class = parts.next().unwrap_or_default();
        let name = class.rsplit('.').next().unwrap_or(class);
        let args: Vec<&str> = parts.collect();
        let spec = match name {
            "DefaultCredentialsProvider" | "DefaultAWSCredentialsProviderChain" => {
                CredentialsSpec::Default
            }
            "EnvironmentVariableCredentialsProvider" => CredentialsSpec::Environment,
            "ProfileCredentialsProvider" => {
                CredentialsSpec::Profile(args.first().map(|s| s.to_string()))
            }
            "InstanceProfileCredentialsProvider" => CredentialsSpec::InstanceProfile,
            "ContainerCredentialsProvider" | "EC2ContainerCredentialsProviderWrapper" => {
                CredentialsSpec::Container
            }
            "WebIdentityTokenFileCredentialsProvider" | "WebIdentityTokenCredentialsProvider" => {
                CredentialsSpec::WebIdentity
            }
            "StsAssumeRoleCredentialsProvider" | "STSAssumeRoleSessionCredentialsProvider" => {
                match args.as_slice() {
                    [role, session, rest @ ..] if !role.is_empty() && !session.is_empty() => {
                        CredentialsSpec::AssumeRole {
                            role_arn: role.to_string(),
                            session: session.to_string(),
                            external_id: rest.first().map(|s| s.to_string()),
                        }
                    }
                    _ => {
                        return Err(format!(
                            "{name} needs a role ARN and a session name: {name}|arn:aws:iam::…:role/…|session"
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "AwsCredentialsProvider {other:?} cannot be mapped onto the Rust SDK's providers; use DefaultCredentialsProvider, EnvironmentVariableCredentialsProvider, ProfileCredentialsProvider|name, InstanceProfileCredentialsProvider, ContainerCredentialsProvider, WebIdentityTokenFileCredentialsProvider or StsAssumeRoleCredentialsProvider|roleArn|session"
                ));
            }
        };
        chain.push(spec);
    }
    if chain.is_empty() {
        return Err("AwsCredentialsProvider is empty".into());
    }
    Ok(chain)
}

/// Build the provider chain.
pub async fn provider(
    chain: &[CredentialsSpec],
    region: Option<&str>,
) -> SharedCredentialsProvider {
    let mut builder: Option<CredentialsProviderChain> = None;
    for (i, spec) in chain.iter().enumerate() {
        let name = format!("{i}:{spec:?}");
        let one = one_provider(spec, region).await;
        builder = Some(match builder {
            None => CredentialsProviderChain::first_try(name, one),
            Some(b) => b.or_else(name, one),
        });
    }
    match builder {
        Some(chain) => SharedCredentialsProvider::new(chain),
        None => SharedCredentialsProvider::new(
            aws_config::default_provider::credentials::default_provider().await,
        ),
    }
}

async fn one_provider(spec: &CredentialsSpec, region: Option<&str>) -> SharedCredentialsProvider {
    use aws_config::default_provider::credentials::DefaultCredentialsChain;
    match spec {
        CredentialsSpec::Default => {
            SharedCredentialsProvider::new(DefaultCredentialsChain::builder().build().await)
        }
        CredentialsSpec::Environment => SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        ),
        CredentialsSpec::Profile(name) => {
            let mut b = aws_config::profile::ProfileFileCredentialsProvider::builder();
            if let Some(name) = name {
                b = b.profile_name(name);
            }
            SharedCredentialsProvider::new(b.build())
        }
        CredentialsSpec::InstanceProfile => SharedCredentialsProvider::new(
            aws_config::imds::credentials::ImdsCredentialsProvider::builder().build(),
        ),
        CredentialsSpec::Container => SharedCredentialsProvider::new(
            aws_config::ecs::EcsCredentialsProvider::builder().build(),
        ),
        CredentialsSpec::WebIdentity => SharedCredentialsProvider::new(
            aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder().build(),
        ),
        CredentialsSpec::AssumeRole {
            role_arn,
            session,
            external_id,
        } => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(region) = region {
                loader = loader.region(aws_config::Region::new(region.to_string()));
            }
            let base = loader.load().await;
            let mut b = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                .session_name(session)
                .configure(&base);
            if let Some(id) = external_id {
                b = b.external_id(id);
            }
            SharedCredentialsProvider::new(b.build().await)
        }
    }
}
