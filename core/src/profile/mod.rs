//! What each orchestrator is, as data: the one place its facts are declared.
//!
//! A profile is pure (no I/O): the ports its members and clients use, the
//! smallest machine it runs on, which recoveries and backups it has, how its
//! manager count may change, and the variables its client reads. Everything
//! else — the spec's firewall, the planner, the controller, the CLI — reads
//! the profile of a cluster's [`Coe`] instead of naming an orchestrator.
//! Adding one means a profile here (with its settings section, if it has
//! one), an implementation of
//! [`Orchestrator`](crate::orchestrator::Orchestrator), a folder of scripts
//! under `scripts/bootstrap/`, and a variant of `Coe`.

pub mod kubernetes;
pub mod mesos;
pub mod swarm;

use std::fmt;

use provision_provider::{MinimumSize, PortRule};
use serde::{Deserialize, Serialize};

/// Container orchestration engine. Its command-line values, aliases and
/// help come from its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coe {
    Swarm,
    Kubernetes,
    Mesos,
}

impl Coe {
    /// Every orchestrator, in the order the command line lists them.
    pub const ALL: [Coe; 3] = [Coe::Swarm, Coe::Kubernetes, Coe::Mesos];

    /// The orchestrator's facts (the one place they are declared).
    pub fn profile(self) -> &'static Profile {
        match self {
            Coe::Swarm => &swarm::PROFILE,
            Coe::Kubernetes => &kubernetes::PROFILE,
            Coe::Mesos => &mesos::PROFILE,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.profile().name
    }

    /// The orchestrator a command-line name or alias means.
    pub fn from_name(name: &str) -> Option<Coe> {
        Coe::ALL
            .into_iter()
            .find(|c| c.profile().name == name || c.profile().aliases.contains(&name))
    }
}

impl fmt::Display for Coe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for Coe {
    fn value_variants<'a>() -> &'a [Self] {
        &Coe::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let p = self.profile();
        Some(
            clap::builder::PossibleValue::new(p.name)
                .aliases(p.aliases.iter().copied())
                .help(p.summary),
        )
    }
}

/// An orchestrator's own settings section of a template and a spec
/// (`kubernetes:`, `mesos:`), declared beside its profile.
pub trait Settings: Clone + Default + Serialize {
    const COE: Coe;

    /// Checks what needs no cloud or node: the error names the field
    /// within the section (`version`). `managers` is the cluster's count.
    fn validate(&self, _managers: u32) -> Result<(), SettingError> {
        Ok(())
    }

    /// Ports (or protocols) the members need between them because of these
    /// settings, beyond the profile's `member_ports`.
    fn member_ports(&self) -> Vec<PortRule> {
        Vec::new()
    }

    /// What scripts see as `cluster.<section>`: the section's fields, and
    /// any value derived from them a script needs.
    fn script_values(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("settings serialize")
    }
}

/// A field of a settings section that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The field within the section.
    pub field: &'static str,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// The section a cluster of `coe` has: the given one or its defaults when
/// it is `T`'s orchestrator, none otherwise.
pub fn section<T: Settings>(coe: Coe, given: &Option<T>) -> Option<T> {
    (coe == T::COE).then(|| given.clone().unwrap_or_default())
}

/// One orchestrator's facts.
#[derive(Debug)]
pub struct Profile {
    /// Its name on the command line, in templates and in the store.
    pub name: &'static str,
    /// Other names the command line takes for it.
    pub aliases: &'static [&'static str],
    /// What it is, in a few words (`--coe`'s help).
    pub summary: &'static str,
    /// Its create command's help.
    pub create_about: &'static str,
    /// Ports the members talk to each other on (opened between members).
    pub member_ports: &'static [PortRule],
    /// Ports its own clients reach from outside (`firewall.clients_from`).
    pub client_ports: &'static [PortRule],
    /// The smallest machine every node needs, when the orchestrator checks.
    pub minimum_machine: Option<MinimumMachine>,
    /// Whether the cluster can be formed again on one surviving manager
    /// when most managers are gone for good (`Orchestrator::recover_quorum`).
    pub recovers_quorum: bool,
    /// Whether backups and restores are implemented (a template's `backup:`
    /// section is accepted, `provision restore` runs).
    pub backs_up: bool,
    /// Whether a backup is taken with the manager serving on, so any Ready
    /// manager may give it; otherwise a manager stops for the copy and one
    /// is chosen so the others keep quorum.
    pub backs_up_online: bool,
    /// Whether a manager joining a cluster being restored needs part of the
    /// backup first (`Orchestrator::seed_from_backup`).
    pub seeds_joining_managers: bool,
    /// Whether a node's configuration follows the managers (its probe's
    /// `config_stale`), so it must be probed, not only listed, after the
    /// managers change.
    pub config_follows_managers: bool,
    /// Whether a leaving node runs `Orchestrator::leave` (saves an SSH
    /// connection when not).
    pub needs_leave: bool,
    /// The rule for growing the managers from `from` to `to`, on top of the
    /// quorum check every orchestrator has; `force` accepts what loses state.
    pub manager_growth: fn(from: u32, to: u32, force: bool) -> Result<(), String>,
    /// Every environment variable its client configuration sets (`env`).
    pub client_env_keys: &'static [&'static str],
    /// A client command that lists the nodes, for the "Connect:" hint.
    pub client_hint: &'static str,
    /// What provision does about its certificates' lifetimes.
    pub certificates: Certificates,
}

/// How an orchestrator's certificates are kept from expiring: what the
/// planner renews before `health.renew_certificates_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certificates {
    /// None to renew (Mesos runs without TLS here).
    None,
    /// Swarm: each node's certificate is renewed by Swarm itself (at a
    /// random point of 50–80 % of its lifetime); the root CA is rotated
    /// (`docker swarm ca --rotate`) when it nears expiry; a node whose
    /// certificate has expired cannot renew it and is rejoined.
    RotateCa,
    /// kubeadm: the control plane's certificates are renewed on each
    /// control-plane node (`kubeadm certs renew all`, then its static pods
    /// restarted), one node at a time; kubeadm renews no CA (ten years).
    RenewControlPlane,
}

impl Certificates {
    /// How long what is renewed lasts afterwards: a threshold as long would
    /// renew it again at once. (swarmkit's root CA: 20 years,
    /// `ca.RootCAExpiration`; kubeadm's certificates: one year.)
    pub fn renewed_for(self) -> Option<std::time::Duration> {
        const DAY: u64 = 86_400;
        match self {
            Certificates::None => None,
            Certificates::RotateCa => Some(std::time::Duration::from_secs(20 * 365 * DAY)),
            Certificates::RenewControlPlane => Some(std::time::Duration::from_secs(365 * DAY)),
        }
    }
}

/// A minimum machine size, and who needs it (for the message).
#[derive(Debug)]
pub struct MinimumMachine {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub needed_by: &'static str,
}

impl Profile {
    /// The smallest machine, in the providers' terms.
    pub fn minimum_size(&self) -> Option<MinimumSize> {
        self.minimum_machine.as_ref().map(|m| MinimumSize {
            vcpus: m.vcpus,
            memory_mib: m.memory_mib,
            needed_by: m.needed_by.into(),
        })
    }

    /// Checks a change of the manager count against this orchestrator's
    /// own rule (see [`Profile::manager_growth`]).
    pub fn check_manager_growth(&self, from: u32, to: u32, force: bool) -> Result<(), String> {
        (self.manager_growth)(from, to, force)
    }
}

/// Managers may change in any step (the quorum check still applies).
pub(crate) fn any_growth(_from: u32, _to: u32, _force: bool) -> Result<(), String> {
    Ok(())
}

/// Every variable any orchestrator's client configuration sets, once each.
pub fn client_env_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for key in Coe::ALL.iter().flat_map(|c| c.profile().client_env_keys) {
        if !keys.contains(key) {
            keys.push(key);
        }
    }
    keys
}
