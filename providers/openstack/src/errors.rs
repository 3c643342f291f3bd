//! OpenStack errors turned into messages that say what to do.

use osauth::ErrorKind;
use provision_provider::ProviderError;
use reqwest::StatusCode;

use crate::api::status_of;

pub const CLOUD: &str = "openstack";

const CREDENTIALS_HINT: &str = "check the cloud's auth section in clouds.yaml (or the OS_* \
     variables): auth_url, username and password or the application credential, project and \
     domains";

/// Maps a failed call (after its retries) to a [`ProviderError`].
pub fn call_error(call: &str, err: osauth::Error) -> ProviderError {
    let message = message_text(&err);
    let failed = |text: String, retryable: bool| ProviderError::Call {
        cloud: CLOUD,
        call: call.into(),
        message: text,
        retryable,
    };
    if let Some(quota) = quota_message(&message) {
        return failed(quota, false);
    }
    match err.kind() {
        ErrorKind::AuthenticationFailed => ProviderError::Unavailable {
            cloud: CLOUD,
            message: format!("{call}: Keystone refused the credentials ({message})"),
            hint: CREDENTIALS_HINT.into(),
        },
        ErrorKind::AccessDenied => failed(
            format!("not allowed: {message}; the user needs the member role on the project"),
            false,
        ),
        ErrorKind::EndpointNotFound => ProviderError::Unavailable {
            cloud: CLOUD,
            message: format!("{call}: {message}"),
            hint: "the service catalog has no such endpoint for the region and interface \
                   given; check region_name and interface in clouds.yaml"
                .into(),
        },
        ErrorKind::ProtocolError => ProviderError::Unavailable {
            cloud: CLOUD,
            message: format!("{call}: cannot reach the cloud: {message}"),
            hint: "check auth_url and that the cloud's endpoints are reachable from here \
                   (cacert, or verify: false for a test cloud)"
                .into(),
        },
        ErrorKind::InternalServerError | ErrorKind::Conflict => {
            failed(format!("{message} (still failing after retries)"), true)
        }
        _ if status_of(&err) == Some(StatusCode::TOO_MANY_REQUESTS) => failed(
            format!("rate limited: {message} (still after retries)"),
            true,
        ),
        _ => failed(message, false),
    }
}

/// The text of an error without osauth's generic kind prefix.
fn message_text(err: &osauth::Error) -> String {
    let shown = err.to_string();
    let prefix = format!("{}: ", err.kind());
    shown.strip_prefix(&prefix).unwrap_or(&shown).to_string()
}

/// The `message` OpenStack puts in an error body: Nova's
/// `{"forbidden": {"message": …}}`, Neutron's `{"NeutronError": {"message": …}}`,
/// Keystone's `{"error": {"message": …}}`; the raw text otherwise.
pub fn message_of(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let found = parsed.as_ref().and_then(|v| {
        v.get("message")
            .or_else(|| {
                v.as_object()?
                    .values()
                    .find_map(|inner| inner.get("message"))
            })
            .and_then(|m| m.as_str())
            .map(str::to_string)
    });
    found.unwrap_or_else(|| body.chars().take(300).collect())
}

pub(crate) fn is_quota(err: &osauth::Error) -> bool {
    quota_message(&message_text(err)).is_some()
}

/// Nova: "Quota exceeded for cores: Requested 2, but already used 20 of 20
/// cores." Neutron: "Quota exceeded for resources: ['floatingip']." Says
/// which quota and, when the cloud says, by how much.
pub fn quota_message(message: &str) -> Option<String> {
    let rest = message.split("Quota exceeded for ").nth(1)?;
    let (what, detail) = rest.split_once(':').unwrap_or((rest, ""));
    let numbers: Vec<u64> = detail
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    if let [requested, used, limit, ..] = numbers[..] {
        let short = (requested + used).saturating_sub(limit);
        return Some(format!(
            "quota {what} exceeded: {requested} more wanted, {used} of {limit} in use, short by \
             {short}; raise the project's {what} quota or remove servers"
        ));
    }
    let what = if what == "resources" {
        detail
            .trim()
            .trim_end_matches('.')
            .trim_matches(|c| "[]' ".contains(c))
    } else {
        what
    };
    Some(format!(
        "quota {what} exceeded ({}); raise the project's {what} quota or release unused ones",
        message.trim()
    ))
}

/// A lookup that found nothing: names the setting and what there is.
pub fn not_found(field: &str, what: &str, value: &str, known: &[String]) -> ProviderError {
    let known = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    ProviderError::Invalid {
        field: field.into(),
        message: format!("no {what} {value} in this cloud (there are: {known})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_quota_says_which_and_by_how_much() {
        let m = quota_message(
            "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances.",
        )
        .unwrap();
        assert!(m.contains("quota instances exceeded"), "{m}");
        assert!(m.contains("3 of 3 in use, short by 1"), "{m}");
        let m = quota_message(
            "Quota exceeded for cores: Requested 4, but already used 18 of 20 cores.",
        )
        .unwrap();
        assert!(m.contains("short by 2"), "{m}");
    }

    #[test]
    fn neutron_quota_names_the_resource() {
        let m = quota_message("Quota exceeded for resources: ['floatingip'].").unwrap();
        assert!(m.starts_with("quota floatingip exceeded"), "{m}");
        assert!(quota_message("Security group in use").is_none());
    }

    #[test]
    fn messages_come_out_of_error_bodies() {
        assert_eq!(
            message_of(
                r#"{"itemNotFound": {"code": 404, "message": "Flavor x could not be found."}}"#
            ),
            "Flavor x could not be found."
        );
        assert_eq!(
            message_of(
                r#"{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded", "detail": ""}}"#
            ),
            "Quota exceeded"
        );
        assert_eq!(message_of("plain text"), "plain text");
    }

    #[test]
    fn wrong_password_is_unavailable_with_a_hint() {
        let e = osauth::Error::new(
            ErrorKind::AuthenticationFailed,
            "The request you have made requires authentication.",
        );
        let p = call_error("authenticate", e);
        assert!(matches!(p, ProviderError::Unavailable { .. }));
        assert!(p.to_string().contains("clouds.yaml"));
    }
}
