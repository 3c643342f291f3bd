use std::fmt;

use serde::{Deserialize, Serialize};

/// IP protocol of a firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Ports opened between the cluster's own machines only (a security group
/// that admits itself), never to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRule {
    pub protocol: Protocol,
    /// First port.
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

    pub fn last_port(&self) -> u16 {
        self.to.unwrap_or(self.port)
    }
}

impl fmt::Display for PortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
