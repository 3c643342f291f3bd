//! The driver interface every `provision` cloud implements.
//!
//! Kept deliberately small, in the spirit of docker-machine's drivers and
//! Cluster API's infrastructure providers: a provider makes the per-cluster
//! prerequisites (network, keypair, security group…), creates, lists and
//! deletes machines by cluster tag, and tears the prerequisites down again.
//! Everything a provider creates carries the cluster id, so a crashed run is
//! finished — never duplicated — by the next one.

mod cache;
mod error;
mod firewall;
mod machine;
mod settings;
mod throttle;

pub use cache::PerCluster;
pub use error::{in_group, ProviderError};
pub use firewall::{is_cidr, Audience, Firewall, PortRule, Protocol, RangeRule};
pub use machine::{
    Addresses, ClusterRef, Machine, MachineKind, MachineSpec, MachineState, MinimumSize, Role,
};
pub use settings::{CloudSettings, SettingFlag};
pub use throttle::{CallLimit, Throttled};

use async_trait::async_trait;

/// Where a provider reports what it does while making prerequisites.
pub trait Recorder: Send + Sync {
    /// Human-readable progress of a slow step (an image build…).
    fn note(&self, message: &str);
    /// A cloud resource now exists for the cluster (`kind` like
    /// `security-group`, the cloud's `id`). Called right after the create
    /// call returns, before the next step, so state always knows it.
    fn created(&self, kind: &str, id: &str);
}

/// A recorder for machines created without an earlier
/// `ensure_prerequisites` in this process: what they need exists already,
/// so a log line is enough.
pub struct LogRecorder;

impl Recorder for LogRecorder {
    fn note(&self, message: &str) {
        tracing::info!("{message}");
    }
    fn created(&self, kind: &str, id: &str) {
        tracing::info!(kind, id, "created");
    }
}

/// Whether a step that can change the cloud does so, or only says what it
/// would change (`--dry-run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    Changes,
    DryRun,
}

impl Apply {
    /// The words for a change, as done or as it would be done:
    /// `firewall: added X` / `firewall: would add X`.
    pub fn describe(self, subject: &str, done: &str, would: &str, what: &str) -> String {
        match self {
            Apply::Changes => format!("{subject} {done} {what}"),
            Apply::DryRun => format!("{subject} would {would} {what}"),
        }
    }
}

/// One cloud: the operations the controller needs, and nothing more.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Short cloud name as the user types it (`local`, `openstack`, `ec2`).
    fn cloud(&self) -> &'static str;

    /// Checks what the cloud can refuse — credentials, image, flavor,
    /// network — without creating anything, so bad input fails before the
    /// first resource exists.
    async fn preflight(&self, _cluster: &ClusterRef) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Creates (or finds) everything the cluster's machines need before the
    /// first machine exists. Idempotent.
    async fn ensure_prerequisites(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<(), ProviderError>;

    /// Brings the cluster's firewall to `cluster.firewall`, once it exists:
    /// adds the rules it lacks (one an admin removed included) and revokes
    /// the rules this tool made that it no longer has (an old `ssh_from`, a
    /// port dropped from the template); rules anyone else added are left
    /// alone. Returns each change in words, for the cluster's events. One
    /// listing when nothing changes; none for a cloud without a firewall.
    /// With [`Apply::DryRun`] it only lists, and says what it would change.
    async fn reconcile_firewall(
        &self,
        _cluster: &ClusterRef,
        _apply: Apply,
    ) -> Result<Vec<String>, ProviderError> {
        Ok(Vec::new())
    }

    /// The kinds of cloud resource `ensure_prerequisites` makes when they
    /// are missing (`security group`, `key pair`…), for a dry run to name.
    fn prerequisite_kinds(&self) -> &'static [&'static str] {
        &[]
    }

    /// How many `create_machine` calls one run may have in flight: a
    /// cloud's API counts them against the account (EC2's request limits,
    /// Nova's quota checks); a local engine just queues them.
    fn create_concurrency(&self) -> usize {
        8
    }

    /// Creates the machine, or returns the existing one of the same node
    /// name in this cluster, so a retried call never makes two. The returned
    /// machine is started but may still be booting.
    async fn create_machine(
        &self,
        cluster: &ClusterRef,
        spec: &MachineSpec,
    ) -> Result<Machine, ProviderError>;

    /// The availability zones the cloud lists as unavailable now (Nova's
    /// `zoneState.available` false, EC2's zone state other than
    /// `available`), for the planner to place no machine there. A cloud
    /// without zones has none.
    async fn unavailable_zones(&self, _cluster: &ClusterRef) -> Result<Vec<String>, ProviderError> {
        Ok(Vec::new())
    }

    /// All machines carrying the cluster's id, in one call to the cloud.
    async fn list_machines(&self, cluster: &ClusterRef) -> Result<Vec<Machine>, ProviderError>;

    /// Deletes a machine and what belongs to it alone. Already gone is success.
    async fn delete_machine(
        &self,
        cluster: &ClusterRef,
        machine_id: &str,
    ) -> Result<(), ProviderError>;

    /// Deletes every remaining resource carrying the cluster's id (machines
    /// included). Already gone is success.
    async fn destroy_cluster(&self, cluster: &ClusterRef) -> Result<(), ProviderError>;
}
