use std::fmt;

use serde::{Deserialize, Serialize};

/// IP protocol of a firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    /// IP-in-IP (IP protocol 4, no ports): Calico's default encapsulation.
    Ipip,
}

impl Protocol {
    /// The name in templates, and Neutron's (neutron-lib's `ipip` included).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Ipip => "ipip",
        }
    }

    /// The IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Ipip => 4,
        }
    }

    /// Whether rules of this protocol name ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

/// Ports opened between the cluster's own machines only (a security group
/// that admits itself), never to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRule {
    pub protocol: Protocol,
    /// First port (none for a protocol without ports, like `ipip`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u16,
    /// Last port of a range; `port` alone when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u16>,
}

impl PortRule {
    pub const fn new(protocol: Protocol, port: u16) -> PortRule {
        PortRule {
            protocol,
            port,
            to: None,
        }
    }

    pub const fn range(protocol: Protocol, from: u16, to: u16) -> PortRule {
        PortRule {
            protocol,
            port: from,
            to: Some(to),
        }
    }

    /// A whole IP protocol without ports, like `ipip`.
    pub const fn protocol(protocol: Protocol) -> PortRule {
        PortRule {
            protocol,
            port: 0,
            to: None,
        }
    }

    pub fn last_port(&self) -> u16 {
        self.to.unwrap_or(self.port)
    }

    /// First and last port, for a protocol that has ports.
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.protocol
            .has_ports()
            .then(|| (self.port, self.last_port()))
    }

    /// What is wrong with the rule as written, if anything.
    pub fn problem(&self) -> Option<String> {
        match self.ports() {
            Some((0, _)) => Some(format!("a {} rule needs a port", self.protocol.as_str())),
            Some((from, to)) if to < from => Some(format!(
                "port range {from}-{to} runs backwards: write the lower port first"
            )),
            None if self.port != 0 || self.to.is_some() => Some(format!(
                "{} has no ports: write it as {{protocol: {}}}",
                self.protocol.as_str(),
                self.protocol.as_str()
            )),
            _ => None,
        }
    }
}

fn is_zero(port: &u16) -> bool {
    *port == 0
}

impl fmt::Display for PortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.protocol.has_ports() {
            return f.write_str(self.protocol.as_str());
        }
        match self.to {
            Some(to) if to != self.port => {
                write!(f, "{}-{}/{}", self.port, to, self.protocol.as_str())
            }
            _ => write!(f, "{}/{}", self.port, self.protocol.as_str()),
        }
    }
}

/// What a cloud's security group lets in: SSH from `ssh_from`, the
/// orchestrator's client ports from `clients_from`, and the orchestrator's
/// member ports from the cluster's members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// CIDR allowed to reach SSH (22/tcp), the controller's address range.
    pub ssh_from: String,
    /// Ports open between members only.
    #[serde(default)]
    pub members: Vec<PortRule>,
    /// The orchestrator's client ports (the Kubernetes API server, the Mesos
    /// master and Marathon), open from `clients_from`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<PortRule>,
    /// CIDR the client ports are open from; `ssh_from` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_from: Option<String>,
}

/// Whom a port open to a range of addresses serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// The controller and the admins: 22/tcp.
    Ssh,
    /// The orchestrator's own clients (kubectl, Marathon's API users).
    Clients,
}

/// A port open to a range of addresses, not only to the members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRule<'a> {
    pub audience: Audience,
    pub port: PortRule,
    /// The CIDR it is open from.
    pub from: &'a str,
}

impl Firewall {
    /// The range the client ports are open from.
    pub fn clients_from(&self) -> &str {
        self.clients_from.as_deref().unwrap_or(&self.ssh_from)
    }

    /// Every port open to a range of addresses: SSH from `ssh_from`, each
    /// client port from `clients_from`.
    pub fn range_rules(&self) -> Vec<RangeRule<'_>> {
        let mut rules = vec![RangeRule {
            audience: Audience::Ssh,
            port: PortRule::new(Protocol::Tcp, 22),
            from: &self.ssh_from,
        }];
        rules.extend(self.clients.iter().map(|port| RangeRule {
            audience: Audience::Clients,
            port: *port,
            from: self.clients_from(),
        }));
        rules
    }
}

/// Whether `text` is an address range (`203.0.113.0/24`, `2001:db8::/32`),
/// as `ssh_from`, `clients_from` and a pod network are written.
pub fn is_cidr(text: &str) -> bool {
    let Some((addr, len)) = text.split_once('/') else {
        return false;
    };
    match (addr.parse::<std::net::IpAddr>(), len.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(n)) => n <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(n)) => n <= 128,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ports_are_open_from_ssh_from_unless_clients_from_is_given() {
        let mut f = Firewall {
            ssh_from: "10.0.0.0/8".into(),
            clients: vec![PortRule::new(Protocol::Tcp, 6443)],
            ..Firewall::default()
        };
        let shown = |f: &Firewall| {
            f.range_rules()
                .iter()
                .map(|r| format!("{:?} {} {}", r.audience, r.port, r.from))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shown(&f),
            ["Ssh 22/tcp 10.0.0.0/8", "Clients 6443/tcp 10.0.0.0/8"]
        );
        f.clients_from = Some("192.0.2.0/24".into());
        assert_eq!(
            shown(&f),
            ["Ssh 22/tcp 10.0.0.0/8", "Clients 6443/tcp 192.0.2.0/24"]
        );
    }

    #[test]
    fn a_stored_firewall_without_client_fields_still_reads() {
        let f: Firewall = serde_json::from_str(r#"{"ssh_from":"0.0.0.0/0","members":[]}"#).unwrap();
        assert!(f.clients.is_empty() && f.clients_from.is_none());
    }
}
