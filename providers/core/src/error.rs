use thiserror::Error;

/// What went wrong in a cloud call, said so the user knows what to do.
#[derive(Debug, Error)]
pub enum ProviderError {
    /// The cloud itself cannot be reached or used (engine down, no credentials).
    #[error("{cloud} cloud is not available: {message}; {hint}")]
    Unavailable {
        cloud: &'static str,
        message: String,
        hint: String,
    },
    /// A call to the cloud failed.
    #[error("{cloud} call {call} failed: {message}")]
    Call {
        cloud: &'static str,
        call: String,
        message: String,
        /// Worth retrying as-is (throttling, 5xx, conflicts in flight).
        retryable: bool,
    },
    /// A value in the spec the cloud cannot use.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A resource with our name exists but belongs to someone else.
    #[error("{what} already exists and does not belong to cluster {cluster}: {hint}")]
    Conflict {
        what: String,
        cluster: String,
        hint: String,
    },
    /// A machine reached a state it cannot leave by itself.
    #[error("machine {node} failed: {message}")]
    MachineFailed { node: String, message: String },
}

impl ProviderError {
    /// True when the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Call {
                retryable: true,
                ..
            }
        )
    }
}

/// Names the group (`managers`, `workers`, a pool) whose flavor, image or
/// zone a refusal is about: `flavor of the gpu`, for a cluster of several
/// kinds of machine.
pub fn in_group(e: ProviderError, group: &str) -> ProviderError {
    match e {
        ProviderError::Invalid { field, message } => ProviderError::Invalid {
            field: format!("{field} of the {group}"),
            message,
        },
        other => other,
    }
}
