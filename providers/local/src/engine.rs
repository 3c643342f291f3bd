//! Talking to the Docker engine: connecting, and turning its errors into
//! provider errors that say what to do.

use bollard::errors::Error as DockerError;
use bollard::Docker;
use provision_provider::ProviderError;

pub const CLOUD: &str = "local";

/// Connects to the engine named by DOCKER_HOST (or the local socket) and
/// checks that it answers, so "Docker is not running" is found before any
/// state is written.
pub async fn connect() -> Result<Docker, ProviderError> {
    let unavailable = |message: String| ProviderError::Unavailable {
        cloud: CLOUD,
        message,
        hint:
            "start Docker (`systemctl start docker`, or `dockerd &` where systemd is not PID 1), \
               or point DOCKER_HOST at a running engine"
                .to_string(),
    };
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| unavailable(format!("Docker is not running ({e})")))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| unavailable(format!("Docker is not running: {e}")))?;
    docker
        .ping()
        .await
        .map_err(|e| unavailable(format!("Docker is not running: {e}")))?;
    Ok(docker)
}

/// HTTP status of an engine error, when it has one.
pub fn status_of(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub fn is_not_found(err: &DockerError) -> bool {
    status_of(err) == Some(404)
}

/// Wraps an engine error with the call that failed.
pub fn call_error(call: impl Into<String>, err: DockerError) -> ProviderError {
    let retryable = matches!(
        status_of(&err),
        Some(409) | Some(429) | Some(500..=599) | None
    );
    let message = match &err {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    ProviderError::Call {
        cloud: CLOUD,
        call: call.into(),
        message,
        retryable,
    }
}
