//! `provision destroy`: delete everything carrying the cluster's id.

use anyhow::{bail, Context, Result};

use super::session::{connect_provider, Session};
use super::Global;
use crate::controller::cluster_ref;
use crate::state::{ClusterLock, ClusterRecord};

pub async fn run(global: &Global, name: &str, yes: bool) -> Result<()> {
    if !yes {
        bail!("destroy deletes cluster {name}'s machines and data: add --yes to confirm");
    }
    let session = Session::open(global)?;
    let _lock = ClusterLock::acquire(name, &session.paths.lock(name))?;
    let record = session.cluster(name)?;
    let provider = connect_provider(&record.spec, None).await?;
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
