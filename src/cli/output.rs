//! Tables and JSON for cluster listings.

use serde::Serialize;

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
    pub workers: u32,
    pub nodes: Vec<NodeStatus>,
    /// Cloud resources made for the cluster besides its machines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<crate::state::Resource>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<crate::state::Event>>,
}

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: String,
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
            workers: record.spec.workers,
            nodes: nodes
                .iter()
                .map(|n| NodeStatus {
                    name: n.name.clone(),
                    role: n.role.to_string(),
                    phase: display_phase(n),
                    health: n.health.as_str().to_string(),
                    private_address: n.addresses.as_ref().map(|a| a.private.clone()),
                    public_address: n.addresses.as_ref().and_then(|a| a.public.clone()),
                    ssh_address: n.addresses.as_ref().map(|a| a.ssh.clone()),
                    machine_id: n.machine_id.clone(),
                    reason: n.reason.clone(),
                })
                .collect(),
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

pub fn node_table(nodes: &[NodeRecord]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
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
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "ROLE",
            "PHASE",
            "HEALTH",
            "PRIVATE IP",
            "PUBLIC IP",
            "MACHINE",
        ],
        &rows,
    )
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
