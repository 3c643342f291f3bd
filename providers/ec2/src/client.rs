//! The SDK client, configured the way the `aws` CLI would be.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::Client;
use aws_smithy_http_client::tls;
use provision_provider::ProviderError;

use crate::errors::CLOUD;
use crate::Ec2Settings;

/// A client from the standard chain, with `settings`' profile and region on
/// top. Throttling and 5xx are retried by the SDK's standard mode
/// (exponential backoff with full jitter); every call has a deadline.
pub async fn connect(settings: &Ec2Settings) -> Result<Client, ProviderError> {
    let config = load(settings.profile.as_deref(), settings.region.as_deref()).await?;
    Ok(Client::new(&config))
}

/// The SDK configuration of the standard chain, with `profile` and `region`
/// on top; refused without a region or credentials.
pub async fn load(
    profile: Option<&str>,
    region: Option<&str>,
) -> Result<aws_config::SdkConfig, ProviderError> {
    // rustls on ring, with the system's root certificates (see Cargo.toml).
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(6)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(20)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(60))
                .operation_timeout(Duration::from_secs(180))
                .build(),
        );
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(ProviderError::Unavailable {
            cloud: CLOUD,
            message: "no region is set".into(),
            hint: "give --region, set AWS_REGION, or set region in the profile".into(),
        });
    }
    if config.credentials_provider().is_none() {
        return Err(ProviderError::Unavailable {
            cloud: CLOUD,
            message: "no credentials".into(),
            hint: "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or give --profile".into(),
        });
    }
    Ok(config)
}
