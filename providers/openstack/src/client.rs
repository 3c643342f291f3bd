//! From a [`CloudConfig`] to an authenticated osauth session: TLS (CA file
//! or no checks), timeouts, the Keystone auth method, region and interface.

use std::str::FromStr;
use std::time::Duration;

use osauth::client::AuthenticatedClient;
use osauth::common::IdOrName;
use osauth::identity::{ApplicationCredential, Password, Scope};
use osauth::{InterfaceType, Session};
use provision_provider::ProviderError;

use crate::config::{AuthMethod, CloudConfig};
use crate::errors::{call_error, CLOUD};

/// How long one HTTP request may take; a hung endpoint fails, then retries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn invalid(source: &str, field: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Invalid {
        field: format!("{source}: {field}"),
        message: message.into(),
    }
}

/// Authenticates against Keystone (one token request) and returns the
/// session every later call uses. Bad credentials fail here.
pub async fn connect(
    config: &CloudConfig,
    source: &str,
    region: Option<&str>,
) -> Result<Session, ProviderError> {
    let method = config
        .auth_method(source)
        .map_err(|e| invalid(source, "auth", e.to_string()))?;
    let http = http_client(config, source)?;
    let client = match method {
        AuthMethod::Password => AuthenticatedClient::new(http, password(config, source)?).await,
        AuthMethod::ApplicationCredential => {
            AuthenticatedClient::new(http, application_credential(config, source)?).await
        }
    }
    .map_err(|e| call_error("authenticate", e))?;
    let mut session = Session::new_with_authenticated_client(client);
    if let Some(region) = region.or(config.region_name.as_deref()) {
        session.set_region(region);
    }
    if let Some(interface) = &config.interface {
        let parsed = InterfaceType::from_str(interface).map_err(|_| {
            invalid(
                source,
                "interface",
                format!("{interface} is not public, internal or admin"),
            )
        })?;
        session.set_endpoint_interface(parsed);
    }
    Ok(session)
}

fn http_client(config: &CloudConfig, source: &str) -> Result<reqwest::Client, ProviderError> {
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(path) = &config.cacert {
        let pem = std::fs::read(path)
            .map_err(|e| invalid(source, "cacert", format!("cannot read {path}: {e}")))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
            invalid(
                source,
                "cacert",
                format!("{path} is not a PEM certificate: {e}"),
            )
        })?;
        builder = builder.add_root_certificate(cert);
    }
    if config.insecure() {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| ProviderError::Unavailable {
        cloud: CLOUD,
        message: format!("cannot make an HTTP client: {e}"),
        hint: "check cacert".into(),
    })
}

fn project_scope(config: &CloudConfig) -> Option<Scope> {
    let a = &config.auth;
    let domain = a
        .project_domain_id
        .clone()
        .or(a.domain_id.clone())
        .map(IdOrName::Id)
        .or_else(|| {
            a.project_domain_name
                .clone()
                .or(a.domain_name.clone())
                .map(IdOrName::Name)
        })
        .unwrap_or_else(|| IdOrName::Name("Default".into()));
    let project = a
        .project_id
        .clone()
        .map(IdOrName::Id)
        .or_else(|| a.project_name.clone().map(IdOrName::Name))?;
    Some(Scope::Project {
        project,
        domain: Some(domain),
    })
}

fn password(config: &CloudConfig, source: &str) -> Result<Password, ProviderError> {
    let a = &config.auth;
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    if a.user_domain_id.is_some() && a.user_domain_name.is_none() {
        return Err(invalid(
            source,
            "auth.user_domain_id",
            "give the user's domain by name (auth.user_domain_name)",
        ));
    }
    let user_domain = a
        .user_domain_name
        .clone()
        .or(a.domain_name.clone())
        .unwrap_or_else(|| "Default".into());
    let mut auth = Password::new(
        field(&a.auth_url),
        field(&a.username),
        field(&a.password),
        user_domain,
    )
    .map_err(|e| invalid(source, "auth.auth_url", e.to_string()))?;
    if let Some(scope) = project_scope(config) {
        auth.set_scope(scope);
    }
    Ok(auth)
}

fn application_credential(
    config: &CloudConfig,
    source: &str,
) -> Result<ApplicationCredential, ProviderError> {
    let a = &config.auth;
    let url = a.auth_url.clone().unwrap_or_default();
    let secret = a.application_credential_secret.clone().unwrap_or_default();
    let made = match (
        &a.application_credential_id,
        &a.application_credential_name,
        &a.user_id,
    ) {
        (Some(id), _, _) => ApplicationCredential::new(url, id.clone(), secret),
        (None, Some(name), Some(user)) => {
            ApplicationCredential::with_user_id(url, name.clone(), secret, user.clone())
        }
        _ => unreachable!("auth_method checked the credential's id or name"),
    };
    made.map_err(|e| invalid(source, "auth.auth_url", e.to_string()))
}
