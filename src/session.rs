//! What every command and the daemon start with: the state store, the
//! script templates, and for work on machines, a controller on the
//! cluster's cloud. Shared by `cli` and `daemon`, which know nothing of
//! each other.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use provision_provider::Provider;
#[cfg(feature = "ec2")]
use provision_provider_ec2::{Ec2Options, Ec2Provider};
use provision_provider_local::{LocalOptions, LocalProvider};
#[cfg(feature = "openstack")]
use provision_provider_openstack::{OpenStackOptions, OpenStackProvider};

use crate::bootstrap::client_files::{copy_cluster_files, write_client_files};
use crate::bootstrap::{Scripts, SshConnector};
use crate::controller::{
    clear_node_backoff, ClusterContext, Controller, ConvergeReport, DryRun, GoneWatch, Probing,
    Stop,
};
use crate::orchestrator;
use crate::progress::{LogReporter, Reporter};
use crate::spec::{Cloud, ClusterSpec};
#[cfg(feature = "etcd")]
use crate::state::EtcdStore;
use crate::state::{
    ClusterLock, ClusterRecord, LockError, NodeRecord, SqliteStore, StateLocation, StatePaths,
    Store,
};

pub struct Session {
    pub paths: StatePaths,
    pub store: Arc<dyn Store>,
    /// The etcd store behind `store` when the state is shared: its locks
    /// are leases, and daemons divide the clusters through it.
    #[cfg(feature = "etcd")]
    pub etcd: Option<Arc<EtcdStore>>,
    /// Script templates, loaded once for every controller of the session.
    pub scripts: Arc<Scripts>,
    /// Machines this process saw gone, shared by the session's controllers.
    pub gone: Arc<GoneWatch>,
    /// Asked on the daemon's SIGTERM: its controllers' passes stop at their
    /// next step.
    pub stop: Arc<Stop>,
}

impl Session {
    /// The state store at `location`, created when missing, with the
    /// scripts of `scripts_dir` over the built-in ones.
    pub fn open(location: &StateLocation, scripts_dir: Option<&Path>) -> Result<Session> {
        let scripts = Arc::new(Scripts::new(scripts_dir));
        match location {
            StateLocation::Sqlite(path) => {
                let paths =
                    StatePaths::resolve(path.clone()).context("finding the state directory")?;
                let store = SqliteStore::open(paths.db()).context("opening the state store")?;
                Ok(Session {
                    paths,
                    store: Arc::new(store),
                    #[cfg(feature = "etcd")]
                    etcd: None,
                    scripts,
                    gone: Arc::default(),
                    stop: Arc::default(),
                })
            }
            #[cfg(not(feature = "etcd"))]
            StateLocation::Etcd(_) => Err(not_built_in("the etcd state store", "etcd")),
            #[cfg(feature = "etcd")]
            StateLocation::Etcd(target) => {
                let paths = StatePaths::for_location(location)
                    .context("finding the local directory for the etcd state's files")?;
                let store = Arc::new(
                    EtcdStore::open(target)
                        .with_context(|| format!("opening the state store {}", target.shown()))?,
                );
                Ok(Session {
                    paths,
                    store: store.clone(),
                    etcd: Some(store),
                    scripts,
                    gone: Arc::default(),
                    stop: Arc::default(),
                })
            }
        }
    }

    /// [`Session::open`] if the state store exists, never creating it (for
    /// `--dry-run`, which writes nothing): `None` when there is no state yet.
    /// An etcd store always exists (opening it writes nothing).
    pub fn open_existing(
        location: &StateLocation,
        scripts_dir: Option<&Path>,
    ) -> Result<Option<Session>> {
        if let StateLocation::Sqlite(path) = location {
            let paths = StatePaths::resolve(path.clone()).context("finding the state directory")?;
            if !paths.db().exists() {
                return Ok(None);
            }
        }
        Self::open(location, scripts_dir).map(Some)
    }

    /// Takes the cluster's lock or says who holds it; never waits.
    pub fn lock(&self, name: &str) -> Result<ClusterLock, LockError> {
        #[cfg(feature = "etcd")]
        if let Some(etcd) = &self.etcd {
            return ClusterLock::acquire_etcd(etcd, name);
        }
        ClusterLock::acquire(name, &self.paths.lock(name))
    }

    /// Resolves once this process's lock on `name` is lost (an etcd lease
    /// not renewed in time); never for a file lock, which cannot be.
    pub async fn lock_lost(&self, name: &str) {
        #[cfg(feature = "etcd")]
        if let Some(etcd) = &self.etcd {
            return etcd.lock_lost(name).await;
        }
        let _ = name;
        std::future::pending().await
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
        self.lock(name).map(Some)
    }

    /// Writes what OpenSSH and the COE's clients read for the cluster: its
    /// key and kubeconfig (copied from the store), ssh_config, known_hosts.
    pub fn write_client_files(&self, record: &ClusterRecord, nodes: &[NodeRecord]) -> Result<()> {
        let name = &record.spec.name;
        copy_cluster_files(&*self.store, &self.paths, name)
            .context("copying the cluster's key and client configuration")?;
        write_client_files(&self.paths, name, &record.spec.ssh_user, nodes)
            .context("writing the cluster's ssh_config")
    }

    /// The cluster's record, or an error saying how to see the known ones.
    pub fn cluster(&self, name: &str) -> Result<ClusterRecord> {
        self.store.cluster(name)?.ok_or_else(|| {
            anyhow!(
                "no cluster named {name:?} in {} (`provision list` shows them)",
                self.store.location()
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

    /// Reconciles the cluster as a person asked for it now (no backoff),
    /// then rewrites its ssh_config whatever the outcome. Errors say where
    /// the node logs are and that running the command again continues.
    pub async fn reconcile(
        &self,
        record: &ClusterRecord,
        provider: Arc<dyn Provider>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<(ConvergeReport, Vec<NodeRecord>)> {
        let name = &record.spec.name;
        let ctx = ClusterContext::new(&*self.store, record.clone())?;
        let controller = self.controller(provider, &record.spec, reporter.clone());
        controller.clear_backoff(&ctx)?;
        let result = tokio::select! {
            result = controller.converge(&ctx) => result,
            () = self.lock_lost(name) => {
                reporter.finish();
                bail!(
                    "lost cluster {name}'s lock in {} while reconciling it (this process was stopped, or etcd was out of reach, for longer than the lock's TTL): stopped, writing and running nothing more, as another command or daemon may hold the cluster now; run the same command again to continue",
                    self.store.location()
                );
            }
        };
        reporter.finish();
        let nodes = self.store.nodes(name)?;
        self.write_client_files(record, &nodes)?;
        let report = result.with_context(|| {
            format!(
                "cluster {name} did not converge; node logs are in {}; run the same command again to continue",
                self.paths.cluster_dir(name).join("logs").display()
            )
        })?;
        Ok((report, nodes))
    }

    /// What the next run would do to `record` (the cluster as the command
    /// would leave it, `leaving` its nodes the command removes), changing
    /// nothing: the records are changed in memory only, as a person's
    /// command changes them (backoff cleared).
    pub async fn dry_run(
        &self,
        record: &ClusterRecord,
        provider: Arc<dyn Provider>,
        leaving: &[String],
    ) -> Result<DryRun> {
        let name = &record.spec.name;
        let ctx = ClusterContext::new(&*self.store, record.clone())?;
        let mut records = self.store.nodes(name)?;
        for n in &mut records {
            clear_node_backoff(n);
            if leaving.contains(&n.name) {
                n.retiring = true;
            }
        }
        let controller = self.controller(provider, &record.spec, Arc::new(LogReporter));
        controller
            .dry_run(&ctx, &records)
            .await
            .with_context(|| format!("planning cluster {name} (dry run)"))
    }

    /// A controller for `spec`'s cluster on `provider`, probing every node
    /// (the daemon sets [`Probing::MembershipFirst`]).
    pub fn controller(
        &self,
        provider: Arc<dyn Provider>,
        spec: &ClusterSpec,
        reporter: Arc<dyn Reporter>,
    ) -> Controller {
        Controller {
            store: self.store.clone(),
            provider,
            orchestrator: Arc::from(orchestrator::for_spec(spec)),
            scripts: self.scripts.clone(),
            paths: self.paths.clone(),
            reporter,
            connector: Arc::new(SshConnector),
            probing: Probing::EveryNode,
            gone: self.gone.clone(),
            stop: self.stop.clone(),
        }
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

/// The error for a part this binary was built without (a Cargo feature
/// left out: `scripts/local-cluster.sh` builds the local cloud alone).
#[cfg(not(all(feature = "ec2", feature = "openstack", feature = "etcd")))]
fn not_built_in(part: &str, feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "this provision binary was built without {part} (Cargo feature `{feature}`; \
         scripts/local-cluster.sh builds the local cloud alone, to be quick): build the whole \
         binary with scripts/build.sh, then run the command again"
    )
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
            // Nodes on the unified cgroup hierarchy on a v1 host (testing).
            options.cgroup2_root = std::env::var_os("PROVISION_LOCAL_CGROUP2").map(Into::into);
            let provider = LocalProvider::connect(options)
                .await
                .context("connecting to the local cloud")?;
            Ok(Arc::new(provider))
        }
        #[cfg(not(feature = "ec2"))]
        Cloud::Ec2 => Err(not_built_in("the ec2 cloud", "ec2")),
        #[cfg(feature = "ec2")]
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
        #[cfg(not(feature = "openstack"))]
        Cloud::OpenStack => Err(not_built_in("the openstack cloud", "openstack")),
        #[cfg(feature = "openstack")]
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
