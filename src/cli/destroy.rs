//! `provision destroy`: delete everything carrying the cluster's id.

use anyhow::{bail, Context, Result};
use provision_provider::Provider;

use super::session::{self, connect_provider, Session};
use super::Global;
use crate::controller::cluster_ref;
use crate::state::ClusterRecord;

pub async fn run(global: &Global, name: &str, yes: bool, dry_run: bool) -> Result<()> {
    if !yes && !dry_run {
        bail!("destroy deletes cluster {name}'s machines and data: add --yes to confirm (or --dry-run to see what it deletes)");
    }
    let session = session::open_unless_dry(global, dry_run)?;
    let _lock = session.lock_unless_dry(name, dry_run)?;
    let record = session.cluster(name)?;
    let provider = connect_provider(&record.spec, None).await?;
    if dry_run {
        return print_dry_run(&session, &record, provider.as_ref()).await;
    }
    // Marked first: a destroy cut short shows as such, and running it again finishes.
    session
        .store
        .set_cluster_phase(name, ClusterRecord::DESTROYING)?;
    provider
        .destroy_cluster(&cluster_ref(&record, String::new()))
        .await
        .with_context(|| {
            format!("deleting cluster {name}'s resources; run destroy again to finish")
        })?;
    let dir = session.paths.cluster_dir(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    session.store.delete_cluster(name)?;
    println!("Cluster {name} destroyed.");
    Ok(())
}

/// Lists what a destroy would delete: the machines the cloud lists with the
/// cluster's id, the resources state recorded, and the local files.
async fn print_dry_run(
    session: &Session,
    record: &ClusterRecord,
    provider: &dyn Provider,
) -> Result<()> {
    let name = &record.spec.name;
    let machines = provider
        .list_machines(&cluster_ref(record, String::new()))
        .await
        .with_context(|| format!("listing cluster {name}'s machines"))?;
    println!("{name}: destroy would delete");
    for m in &machines {
        let state = format!("{:?}", m.state).to_lowercase();
        println!("  - machine {} of node {} ({state})", m.id, m.node);
    }
    for r in session.store.resources(name)? {
        println!("  - {} {}", r.kind, r.id);
    }
    println!(
        "  - any other {} resource tagged with cluster id {}",
        provider.cloud(),
        record.id
    );
    println!(
        "  - the cluster's state (nodes, events) and its directory {} (SSH key, logs)",
        session.paths.cluster_dir(name).display()
    );
    println!("Dry run: nothing was changed.");
    Ok(())
}
