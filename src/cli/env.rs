//! `provision env`: exports that point the COE's client at the cluster.

use anyhow::{bail, Context, Result};
use provision_provider::Role;

use super::session::Session;
use super::Global;
use crate::bootstrap::client_files::write_client_files;
use crate::orchestrator;
use crate::state::NodePhase;

pub fn run(global: &Global, name: &str) -> Result<()> {
    let session = Session::open(global)?;
    let record = session.cluster(name)?;
    let nodes = session.store.nodes(name)?;
    write_client_files(&session.paths, name, &record.spec.ssh_user, &nodes)
        .context("writing the cluster's ssh_config")?;
    let Some(manager) = nodes
        .iter()
        .filter(|n| n.role == Role::Manager && n.addresses.is_some())
        .min_by_key(|n| (n.phase != NodePhase::Ready, n.index))
    else {
        bail!("cluster {name} has no manager with an address yet: run `provision swarm --name {name}` to finish it");
    };
    let config = session.paths.ssh_config(name);
    let cluster_dir = session.paths.cluster_dir(name);
    // The user's clients reach the cluster where provision does.
    let address = manager
        .addresses
        .as_ref()
        .map(|a| a.ssh.as_str())
        .unwrap_or_default();
    let env = orchestrator::for_spec(&record.spec).client_env(&manager.name, address, &cluster_dir);
    if env.iter().any(|(_, value)| value.starts_with("ssh://")) {
        println!(
            "# Cluster {name}: the client reaches manager {} over SSH.",
            manager.name
        );
        println!("# Once, let ssh find the cluster's hosts and key:");
        println!("#   echo 'Include {}' >> ~/.ssh/config", config.display());
    }
    for (key, value) in env {
        println!(
            "export {key}={}",
            crate::bootstrap::scripts::shell_quote(&value)
        );
    }
    Ok(())
}
