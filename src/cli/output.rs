//! Tables and JSON for cluster listings.

use serde::Serialize;

use crate::spec::ClusterSpec;
use crate::state::{ClusterRecord, NodeRecord};

/// `status --output json`: one object.
#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub name: String,
    /// Stamped on every cloud resource of the cluster.
    pub id: String,
    pub coe: String,
    pub cloud: String,
    pub phase: String,
    pub managers: u32,
    /// Workers of every pool together.
    pub workers: u32,
    /// Each group: the managers, the default workers, each pool.
    pub pools: Vec<PoolStatus>,
    /// Groups whose machines changed, with the nodes still to replace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollout: Vec<crate::controller::plan::rollout::GroupRollout>,
    /// The nearest certificate expiry its nodes last reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesStatus>,
    pub nodes: Vec<NodeStatus>,
    /// Cloud resources made for the cluster besides its machines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<crate::state::Resource>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<crate::state::Event>>,
}

/// The cluster's nearest certificate expiry, and when renewal starts.
#[derive(Debug, Serialize)]
pub struct CertificatesStatus {
    /// Unix seconds.
    pub nearest_expiry: i64,
    /// The same, RFC 3339.
    pub nearest_expiry_at: String,
    /// The node that reported it.
    pub node: String,
    /// `certificate` (the node's own) or `ca`.
    pub kind: &'static str,
    /// The nearest CA expiry, Unix seconds, when the nearest is a node's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_expiry: Option<i64>,
    /// `health.renew_certificates_before`.
    pub renew_before: String,
}

impl CertificatesStatus {
    pub fn of(spec: &ClusterSpec, nodes: &[NodeRecord]) -> Option<CertificatesStatus> {
        let (at, ca, node) = nodes
            .iter()
            .filter(|n| !n.retiring)
            .filter_map(|n| n.nearest_certificate().map(|(at, ca)| (at, ca, n)))
            .min_by_key(|(at, _, _)| *at)?;
        let ca_expiry = nodes
            .iter()
            .filter(|n| !n.retiring)
            .filter_map(|n| n.ca_expires)
            .min()
            .filter(|_| !ca);
        let before = spec.health.renew_certificates_before;
        Some(CertificatesStatus {
            nearest_expiry: at,
            nearest_expiry_at: crate::state::rfc3339(at),
            node: node.name.clone(),
            kind: if ca { "ca" } else { "certificate" },
            ca_expiry,
            renew_before: if before.as_secs() % 86_400 == 0 {
                format!("{}d", before.as_secs() / 86_400)
            } else {
                humantime::format_duration(before).to_string()
            },
        })
    }

    /// One line for the table.
    pub fn line(&self) -> String {
        let ca = self
            .ca_expiry
            .map(|t| format!("; the CA expires {}", crate::state::rfc3339(t)))
            .unwrap_or_default();
        format!(
            "certificates: the nearest expires {} ({} of {}){ca}; renewed {} before",
            self.nearest_expiry_at,
            if self.kind == "ca" {
                "the CA"
            } else {
                "the certificate"
            },
            self.node,
            self.renew_before
        )
    }
}

/// One group of nodes: how many are wanted, there, and ready.
#[derive(Debug, Serialize)]
pub struct PoolStatus {
    /// `managers`, `workers`, or the pool's name.
    pub name: String,
    pub role: String,
    pub wanted: u32,
    /// Its nodes not leaving.
    pub nodes: usize,
    /// Of those, the healthy members.
    pub ready: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: String,
    /// Its group: `managers`, `workers`, or its pool.
    pub pool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub phase: String,
    pub health: String,
    /// On the node's interface: what the cluster uses.
    pub private_address: Option<String>,
    /// The cloud's NAT address (EC2 public IPv4, floating IP), if any.
    pub public_address: Option<String>,
    /// Where provision's SSH and the user's clients reach it.
    pub ssh_address: Option<String>,
    pub machine_id: Option<String>,
    /// Why the node is not healthy, when it is not.
    pub reason: Option<String>,
    /// When its own certificates expire, as it last reported (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_expires: Option<i64>,
    /// When the CAs it trusts expire, as it last reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_expires: Option<i64>,
}

impl ClusterStatus {
    pub fn new(record: &ClusterRecord, nodes: &[NodeRecord]) -> ClusterStatus {
        ClusterStatus {
            name: record.spec.name.clone(),
            id: record.id.clone(),
            coe: record.spec.coe.to_string(),
            cloud: record.spec.cloud.to_string(),
            phase: record.phase.clone(),
            managers: record.spec.managers,
            workers: record.spec.count(provision_provider::Role::Worker),
            pools: pools(&record.spec, nodes),
            rollout: crate::controller::plan::rollout::pending(&record.spec, nodes),
            nodes: in_group_order(&record.spec, nodes)
                .into_iter()
                .map(|n| NodeStatus {
                    name: n.name.clone(),
                    role: n.role.to_string(),
                    pool: n.group_label().to_string(),
                    zone: n.zone.clone(),
                    phase: display_phase(n),
                    health: n.health.as_str().to_string(),
                    private_address: n.addresses.as_ref().map(|a| a.private.clone()),
                    public_address: n.addresses.as_ref().and_then(|a| a.public.clone()),
                    ssh_address: n.addresses.as_ref().map(|a| a.ssh.clone()),
                    machine_id: n.machine_id.clone(),
                    reason: n.reason.clone(),
                    cert_expires: n.cert_expires,
                    ca_expires: n.ca_expires,
                })
                .collect(),
            certificates: CertificatesStatus::of(&record.spec, nodes),
            resources: None,
            events: None,
        }
    }
}

/// Left-aligned columns, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        text.join("  ").trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.clone()));
    }
    out
}

/// Each group of the spec with its nodes counted, then any pool the spec
/// no longer has whose nodes are still leaving.
pub fn pools(spec: &ClusterSpec, nodes: &[NodeRecord]) -> Vec<PoolStatus> {
    let mut out: Vec<PoolStatus> = spec
        .groups()
        .iter()
        .map(|g| PoolStatus {
            name: g.label().to_string(),
            role: g.role.to_string(),
            wanted: g.count,
            nodes: 0,
            ready: 0,
            zones: g.zones.to_vec(),
        })
        .collect();
    for n in nodes {
        let at = match out.iter().position(|p| p.name == n.group_label()) {
            Some(at) => at,
            None => {
                out.push(PoolStatus {
                    name: n.group_label().to_string(),
                    role: n.role.to_string(),
                    wanted: 0,
                    nodes: 0,
                    ready: 0,
                    zones: Vec::new(),
                });
                out.len() - 1
            }
        };
        if !n.retiring {
            out[at].nodes += 1;
            if n.phase == crate::state::NodePhase::Ready
                && n.health == crate::state::Health::Healthy
            {
                out[at].ready += 1;
            }
        }
    }
    out
}

/// `managers 3/3 ready, workers 2/2 ready, gpu 1/2 ready`: the groups that
/// are wanted or still have nodes.
pub fn pools_line(pools: &[PoolStatus]) -> String {
    pools
        .iter()
        .filter(|p| p.wanted > 0 || p.nodes > 0)
        .map(|p| format!("{} {}/{} ready", p.name, p.ready, p.wanted))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The nodes grouped as the spec lists its groups (managers, default
/// workers, pools), by index within each.
fn in_group_order<'a>(spec: &ClusterSpec, nodes: &'a [NodeRecord]) -> Vec<&'a NodeRecord> {
    let groups = spec.groups();
    let rank = |n: &NodeRecord| {
        groups
            .iter()
            .position(|g| g.holds(n.role, n.pool.as_deref()))
            .unwrap_or(groups.len())
    };
    let mut sorted: Vec<&NodeRecord> = nodes.iter().collect();
    sorted.sort_by(|a, b| (rank(a), &a.pool, a.index).cmp(&(rank(b), &b.pool, b.index)));
    sorted
}

pub fn node_table(spec: &ClusterSpec, nodes: &[NodeRecord]) -> String {
    let zoned = nodes.iter().any(|n| n.zone.is_some());
    let rows: Vec<Vec<String>> = in_group_order(spec, nodes)
        .into_iter()
        .map(|n| {
            let mut row = vec![n.name.clone(), n.group_label().to_string()];
            if zoned {
                row.push(n.zone.clone().unwrap_or_else(|| "-".into()));
            }
            row.extend([
                n.role.to_string(),
                display_phase(n),
                n.health.as_str().to_string(),
                address_cell(n.addresses.as_ref().map(|a| a.private.as_str())),
                address_cell(n.addresses.as_ref().and_then(|a| a.public.as_deref())),
                n.machine_id
                    .as_deref()
                    .map(short_id)
                    .unwrap_or("-")
                    .to_string(),
            ]);
            row
        })
        .collect();
    let mut header = vec!["NODE", "POOL"];
    if zoned {
        header.push("ZONE");
    }
    header.extend([
        "ROLE",
        "PHASE",
        "HEALTH",
        "PRIVATE IP",
        "PUBLIC IP",
        "MACHINE",
    ]);
    table(&header, &rows)
}

/// The node's phase, or `leaving` while it is on its way out.
fn display_phase(n: &NodeRecord) -> String {
    if n.retiring {
        "leaving".to_string()
    } else {
        n.phase.to_string()
    }
}

fn address_cell(address: Option<&str>) -> String {
    address.unwrap_or("-").to_string()
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1");
    }
}
