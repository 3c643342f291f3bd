//! Cluster and node names.

use provision_provider::Role;

use super::SpecError;

/// A cluster name becomes part of hostnames, container and network names,
/// so it must be a DNS label (RFC 1123), short enough to leave room for the
/// node suffix.
pub fn validate_cluster_name(name: &str) -> Result<(), SpecError> {
    let fail = |reason: &str| {
        Err(SpecError::Name {
            name: name.to_string(),
            reason: format!("{reason}; use lowercase letters, digits and '-', e.g. web-1"),
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > 40 {
        return fail("it is longer than 40 characters (node names add a suffix to it)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("it is not a DNS label");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return fail("it starts or ends with '-'");
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return fail("it must start with a letter");
    }
    Ok(())
}

/// `web-manager-1`, `web-worker-3`: the node's name, hostname and machine name.
pub fn node_name(cluster: &str, role: Role, index: u32) -> String {
    format!("{cluster}-{}-{index}", role.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_pass() {
        for ok in ["web", "a", "web-1", "x9-y"] {
            validate_cluster_name(ok).unwrap();
        }
    }

    #[test]
    fn non_labels_fail() {
        for bad in [
            "",
            "Web",
            "web_1",
            "-web",
            "web-",
            "1web",
            "web.example",
            &"a".repeat(41),
        ] {
            assert!(validate_cluster_name(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn node_names() {
        assert_eq!(node_name("web", Role::Manager, 1), "web-manager-1");
        assert_eq!(node_name("web", Role::Worker, 12), "web-worker-12");
    }
}
