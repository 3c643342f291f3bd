//! What most commands start with: the state store, and for the commands that
//! touch machines, a controller on the cluster's cloud.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use provision_provider::Provider;
use provision_provider_ec2::{Ec2Options, Ec2Provider};
use provision_provider_local::{LocalOptions, LocalProvider};
use provision_provider_openstack::{OpenStackOptions, OpenStackProvider};

use super::Global;
use crate::bootstrap::client_files::write_client_files;
use crate::bootstrap::Scripts;
use crate::controller::{clear_node_backoff, ClusterContext, Controller, ConvergeReport};
use crate::orchestrator;
use crate::progress::{LogReporter, Reporter};
use crate::spec::{Cloud, ClusterSpec};
use crate::state::{
    ClusterLock, ClusterRecord, LockError, NodeRecord, SqliteStore, StatePaths, Store,
};

pub struct Session {
    pub paths: StatePaths,
    pub store: Arc<dyn Store>,
}

impl Session {
    pub fn open(global: &Global) -> Result<Session> {
        let paths =
            StatePaths::resolve(global.state.clone()).context("finding the state directory")?;
        let store = SqliteStore::open(paths.db()).context("opening the state store")?;
        Ok(Session {
            paths,
            store: Arc::new(store),
        })
    }

    /// The state store if it exists, never creating it (for `--dry-run`,
    /// which writes nothing): `None` when there is no state yet.
    pub fn open_existing(global: &Global) -> Result<Option<Session>> {
        let paths =
            StatePaths::resolve(global.state.clone()).context("finding the state directory")?;
        if !paths.db().exists() {
            return Ok(None);
        }
        Self::open(global).map(Some)
    }

    /// [`Session::open`] for a command that changes nothing on `--dry-run`:
    /// then a missing state store is an error, not created.
    pub fn open_unless_dry(global: &Global, dry_run: bool) -> Result<Session> {
        if !dry_run {
            return Self::open(global);
        }
        Self::open_existing(global)?.ok_or_else(|| {
            anyhow!(
                "there is no state store at {} yet, so no cluster to plan for: create one first, or give --state",
                StatePaths::resolve(global.state.clone())
                    .map(|p| p.db().display().to_string())
                    .unwrap_or_default()
            )
        })
    }

    /// Takes the cluster's lock for a command that changes it; a dry run
    /// changes nothing and takes none.
    pub fn lock_unless_dry(
        &self,
        name: &str,
        dry_run: bool,
    ) -> Result<Option<ClusterLock>, LockError> {
        if dry_run {
            return Ok(None);
        }
        ClusterLock::acquire(name, &self.paths.lock(name)).map(Some)
    }

    /// The cluster's record, or an error saying how to see the known ones.
    pub fn cluster(&self, name: &str) -> Result<ClusterRecord> {
        self.store.cluster(name)?.ok_or_else(|| {
            anyhow!(
                "no cluster named {name:?} in {} (`provision list` shows them)",
                self.paths.db().display()
            )
        })
    }

    /// The cluster's record for a command that changes it: refused while
    /// a destroy is unfinished, which only `destroy` may finish.
    pub fn cluster_to_change(&self, name: &str) -> Result<ClusterRecord> {
        let record = self.cluster(name)?;
        refuse_if_destroying(&record)?;
        Ok(record)
    }

    pub fn controller(
        &self,
        global: &Global,
        provider: Arc<dyn Provider>,
        spec: &ClusterSpec,
        reporter: Arc<dyn Reporter>,
    ) -> Controller {
        Controller {
            store: self.store.clone(),
            provider,
            orchestrator: Arc::from(orchestrator::for_spec(spec)),
            scripts: Arc::new(Scripts::new(global.scripts_dir.as_deref())),
            paths: self.paths.clone(),
            reporter,
        }
    }
}

impl Session {
    /// Reconciles the cluster as a person asked for it now (no backoff),
    /// then rewrites its ssh_config whatever the outcome. Errors say where
    /// the node logs are and that running the command again continues.
    pub async fn reconcile(
        &self,
        global: &Global,
        record: &ClusterRecord,
        provider: Arc<dyn Provider>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<(ConvergeReport, Vec<NodeRecord>)> {
        let name = &record.spec.name;
        let ctx = ClusterContext::new(&self.paths, record.clone())?;
        let controller = self.controller(global, provider, &record.spec, reporter.clone());
        controller.clear_backoff(&ctx)?;
        let result = controller.converge(&ctx).await;
        reporter.finish();
        let nodes = self.store.nodes(name)?;
        write_client_files(&self.paths, name, &record.spec.ssh_user, &nodes)
            .context("writing the cluster's ssh_config")?;
        let report = result.with_context(|| {
            format!(
                "cluster {name} did not converge; node logs are in {}; run the same command again to continue",
                self.paths.cluster_dir(name).join("logs").display()
            )
        })?;
        Ok((report, nodes))
    }
}

impl Session {
    /// Prints what the next run would do to `record` (the cluster as the
    /// command would leave it, `leaving` its nodes the command removes) and
    /// changes nothing: the records are changed in memory only, as a
    /// person's command changes them (backoff cleared).
    pub async fn print_dry_run(
        &self,
        global: &Global,
        record: &ClusterRecord,
        provider: Arc<dyn Provider>,
        leaving: &[String],
    ) -> Result<()> {
        let name = &record.spec.name;
        let ctx = ClusterContext::new(&self.paths, record.clone())?;
        let mut records = self.store.nodes(name)?;
        for n in &mut records {
            clear_node_backoff(n);
            if leaving.contains(&n.name) {
                n.retiring = true;
            }
        }
        let controller = self.controller(global, provider, &record.spec, Arc::new(LogReporter));
        let dry = controller
            .dry_run(&ctx, &records)
            .await
            .with_context(|| format!("planning cluster {name} (dry run)"))?;
        super::dry_run::print(name, &dry);
        Ok(())
    }
}

/// The error for a change asked of a cluster whose destroy did not finish.
pub fn refuse_if_destroying(record: &ClusterRecord) -> Result<()> {
    if record.is_destroying() {
        bail!(
            "cluster {name} is being destroyed (a destroy started and did not finish): \
             `provision destroy {name} --yes` finishes it; nothing else may change it",
            name = record.spec.name
        );
    }
    Ok(())
}

/// Connects to the spec's cloud; fails before anything is created when the
/// cloud cannot be used.
pub async fn connect_provider(
    spec: &ClusterSpec,
    image_suite: Option<&str>,
) -> Result<Arc<dyn Provider>> {
    match spec.cloud {
        Cloud::Local => {
            let mut options = LocalOptions::default();
            if let Some(image) = &spec.image {
                options.image = image.clone();
            }
            if let Some(suite) = image_suite {
                options.suite = suite.to_string();
            }
            let provider = LocalProvider::connect(options)
                .await
                .context("connecting to the local cloud")?;
            Ok(Arc::new(provider))
        }
        Cloud::Ec2 => {
            let options = Ec2Options {
                settings: spec.ec2.clone().unwrap_or_default(),
                image: spec.image.clone(),
                instance_type: spec.flavor.clone(),
            };
            let provider = Ec2Provider::connect(options)
                .await
                .context("connecting to the ec2 cloud")?;
            Ok(Arc::new(provider))
        }
        Cloud::OpenStack => {
            let options = OpenStackOptions {
                settings: spec.openstack.clone().unwrap_or_default(),
                image: spec.image.clone(),
                flavor: spec.flavor.clone(),
            };
            let provider = OpenStackProvider::connect(options)
                .await
                .context("connecting to the openstack cloud")?;
            Ok(Arc::new(provider))
        }
    }
}
