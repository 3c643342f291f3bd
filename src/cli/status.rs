//! `provision status`: the stored record, refreshed by a live observation
//! unless another command is working on the cluster.

use anyhow::Result;

use super::output::{node_table, pools_line, ClusterStatus};
use super::session::{self, connect_provider, Session};
use super::{Global, OutputFormat};
use crate::controller::{ClusterContext, Connections, Probing};
use crate::progress::LogReporter;
use crate::state::LockError;

pub async fn run(global: &Global, name: &str, output: OutputFormat, events: bool) -> Result<()> {
    let session = session::open(global)?;
    let record = session.cluster(name)?;
    let mut note = None;
    match session.lock(name) {
        Ok(_lock) => {
            if let Err(e) = refresh(&session, &record).await {
                note = Some(format!(
                    "could not observe the cluster now ({e:#}); showing the last recorded state"
                ));
            }
        }
        Err(LockError::Busy { holder, .. }) => {
            note = Some(format!(
                "pid {} on {} is working on the cluster; showing the last recorded state",
                holder.pid, holder.host
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let record = session.cluster(name)?;
    let nodes = session.store.nodes(name)?;
    let mut status = ClusterStatus::new(&record, &nodes);
    status.resources = Some(session.store.resources(name)?);
    if events {
        status.events = Some(session.store.events(name, 50)?);
    }
    if let Some(n) = &note {
        eprintln!("note: {n}");
    }
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        OutputFormat::Table => {
            println!(
                "{}: {} on {}, {} manager(s), {} worker(s), {}",
                status.name,
                status.coe,
                status.cloud,
                status.managers,
                status.workers,
                status.phase
            );
            println!("{}", pools_line(&status.pools));
            if let Some(c) = &status.certificates {
                println!("{}", c.line());
            }
            let groups = crate::controller::plan::rollout::pending(&record.spec, &nodes);
            if !groups.is_empty() {
                println!("rollout (`provision rollout {} status`):", status.name);
                for line in super::rollout::order_lines(&groups) {
                    println!("{line}");
                }
            }
            println!();
            println!("{}", node_table(&record.spec, &nodes));
            let resources = status.resources.as_deref().unwrap_or_default();
            if !resources.is_empty() {
                println!("\nRESOURCES");
                for r in resources {
                    println!("{}  {}", r.kind, r.id);
                }
            }
            if let Some(evts) = &status.events {
                println!("\nEVENTS");
                for e in evts {
                    println!(
                        "{}  {}  {}",
                        e.at,
                        e.node.as_deref().unwrap_or("-"),
                        e.message
                    );
                }
            }
        }
    }
    Ok(())
}

async fn refresh(session: &Session, record: &crate::state::ClusterRecord) -> Result<()> {
    let provider = connect_provider(&record.spec, None).await?;
    let ctx = ClusterContext::new(&*session.store, record.clone())?;
    let controller = session.controller(provider, &record.spec, std::sync::Arc::new(LogReporter));
    let connections = Connections::default();
    let observed = controller
        .observe(&ctx, Probing::EveryNode, &connections)
        .await;
    connections.close_all().await;
    observed?;
    Ok(())
}
