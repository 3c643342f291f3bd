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

/// What a cloud's security group lets in: SSH from `ssh_from`, and the
/// orchestrator's ports from the cluster's members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// CIDR allowed to reach SSH (22/tcp), the controller's address range.
    pub ssh_from: String,
    /// Ports open between members only.
    #[serde(default)]
    pub members: Vec<PortRule>,
}
