//! `provision list`.

use anyhow::Result;

use super::output::{table, ClusterStatus};
use super::session;
use super::{Global, OutputFormat};
use crate::state::NodePhase;

pub fn run(global: &Global, output: OutputFormat) -> Result<()> {
    let session = session::open(global)?;
    let mut all = Vec::new();
    for c in session.store.clusters()? {
        let nodes = session.store.nodes(&c.spec.name)?;
        all.push((ClusterStatus::new(&c, &nodes), nodes));
    }
    match output {
        OutputFormat::Json => {
            let list: Vec<&ClusterStatus> = all.iter().map(|(s, _)| s).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|(s, nodes)| {
                    let ready = nodes.iter().filter(|n| n.phase == NodePhase::Ready).count();
                    vec![
                        s.name.clone(),
                        s.coe.clone(),
                        s.cloud.clone(),
                        s.phase.clone(),
                        s.managers.to_string(),
                        s.workers.to_string(),
                        format!("{ready}/{}", nodes.len()),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &["NAME", "COE", "CLOUD", "PHASE", "MANAGERS", "WORKERS", "READY"],
                    &rows
                )
            );
        }
    }
    Ok(())
}
