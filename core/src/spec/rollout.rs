//! Rolling changes of the nodes' machines: what each group's machines are
//! made of (its [`Group::machine`]), how fast a changed group is replaced
//! (`max_surge`, `max_unavailable`, as Cluster API's MachineDeployment
//! rolling update), and the change under way, which `provision rollout`
//! pauses, resumes and undoes.

use serde::{Deserialize, Serialize};

use super::{ClusterSpec, Group, SpecError};

/// How a worker group's nodes are replaced when its machines change. The
/// managers always go one at a time, a new one joined first (surge 1,
/// unavailable 0), so the quorum never loses two voters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    /// New nodes made beyond the group's count while it is replaced.
    #[serde(default = "one")]
    pub max_surge: u32,
    /// Nodes of the group that may be missing or unhealthy meanwhile.
    #[serde(default)]
    pub max_unavailable: u32,
}

fn one() -> u32 {
    1
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            max_surge: 1,
            max_unavailable: 0,
        }
    }
}

/// The managers' policy, whatever the template says.
pub const MANAGERS_ROLLOUT: RolloutPolicy = RolloutPolicy {
    max_surge: 1,
    max_unavailable: 0,
};

/// What the groups' machines were made of before a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machines {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    /// Each pool's own image and flavor, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<(String, Option<String>, Option<String>)>,
    /// The orchestrator's version (`kubernetes.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The Docker engine's version (`node.engine_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// A change of machines being rolled out: set by the cluster command when
/// its image or flavor changes (or `provision rollout`), never by a
/// template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What they were before, for `provision rollout NAME undo`.
    pub before: Machines,
    /// `provision rollout NAME pause`: no node is added or retired for it.
    #[serde(default)]
    pub paused: bool,
}

impl ClusterSpec {
    /// The groups' machines as the spec has them now.
    pub fn machines(&self) -> Machines {
        Machines {
            image: self.image.clone(),
            flavor: self.flavor.clone(),
            pools: self
                .pools
                .iter()
                .map(|p| (p.name.clone(), p.image.clone(), p.flavor.clone()))
                .collect(),
            version: self.kubernetes.as_ref().map(|k| k.version.clone()),
            engine: self.engine_version.clone(),
        }
    }

    /// Puts `machines` back (a pool since removed is left out), and
    /// returns what they were.
    pub fn set_machines(&mut self, machines: &Machines) -> Machines {
        let was = self.machines();
        self.image = machines.image.clone();
        self.flavor = machines.flavor.clone();
        for (name, image, flavor) in &machines.pools {
            if let Some(p) = self.pools.iter_mut().find(|p| &p.name == name) {
                p.image = image.clone();
                p.flavor = flavor.clone();
            }
        }
        if let (Some(k), Some(version)) = (self.kubernetes.as_mut(), &machines.version) {
            k.version = version.clone();
        }
        self.engine_version = machines.engine.clone();
        was
    }

    /// Starts a rollout from `before` to the spec's machines, unless they
    /// are the same; a change already under way keeps its own `before` (an
    /// undo goes back to before the first), and is resumed.
    pub fn change_machines_from(&mut self, before: Machines) {
        if before == self.machines() {
            return;
        }
        let before = self.change.take().map_or(before, |c| c.before);
        self.change = Some(Change {
            before,
            paused: false,
        });
    }

    /// The rollout policy of a group.
    pub fn rollout_policy(&self, group: &Group) -> RolloutPolicy {
        match group.role {
            provision_provider::Role::Manager => MANAGERS_ROLLOUT,
            provision_provider::Role::Worker => group
                .pool
                .and_then(|name| self.pools.iter().find(|p| p.name == name))
                .and_then(|p| p.rollout)
                .unwrap_or(self.rollout),
        }
    }
}

impl Group<'_> {
    /// What its machines are made of, as a node records it when it is
    /// added: a node whose record says otherwise is replaced by a rollout.
    pub fn machine(&self) -> String {
        let mut machine = format!(
            "image={} flavor={}",
            self.image.unwrap_or("-"),
            self.flavor.unwrap_or("-")
        );
        if let Some(engine) = self.engine {
            machine.push_str(&format!(" engine={engine}"));
        }
        if let Some(version) = self.version {
            machine.push_str(&format!(" kubernetes={version}"));
        }
        machine
    }
}

/// Whether a node recorded as `recorded` is made as `wanted` says: each
/// part both name is the same. A part the record lacks was not recorded yet when the node was made (provision
/// began recording the Kubernetes version later) and could not be changed
/// before: it is taken as the wanted one. The cluster command fills the
/// parts in before a change starts ([`fill_machine`]).
pub fn same_machine(recorded: &str, wanted: &str) -> bool {
    let recorded: Vec<(&str, &str)> = machine_parts(recorded).collect();
    machine_parts(wanted).all(|(key, value)| {
        match recorded.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => *v == value,
            // A pin is named only when set: a node without one was made
            // unpinned, so it differs from a pinned group.
            None => !PINS.contains(&key),
        }
    })
}

/// Whether a node recorded as `recorded` differs from `wanted` only in
/// its Kubernetes version: such a control-plane node is upgraded in place.
pub fn only_version_differs(recorded: &str, wanted: &str) -> bool {
    let without = |m: &str| {
        machine_parts(m)
            .filter(|(k, _)| *k != "kubernetes")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    !same_machine(recorded, wanted) && same_machine(&without(recorded), &without(wanted))
}

/// `recorded` with the parts it lacks taken from `was` (what its group
/// made before a change).
pub fn fill_machine(recorded: &str, was: &str) -> String {
    let mut filled = recorded.to_string();
    for (key, value) in machine_parts(was) {
        if !machine_parts(&filled).any(|(k, _)| k == key) {
            filled.push_str(&format!(" {key}={value}"));
        }
    }
    filled
}

/// Parts a machine names only when the template sets them.
const PINS: [&str; 1] = ["engine"];

fn machine_parts(machine: &str) -> impl Iterator<Item = (&str, &str)> + '_ {
    machine
        .split_whitespace()
        .filter_map(|part| part.split_once('='))
}

/// Refuses a policy under which nothing could move, and an engine version
/// that is no apt version (or pattern) or that a cluster would not use.
pub(super) fn validate(spec: &ClusterSpec) -> Result<(), SpecError> {
    if let Some(engine) = &spec.engine_version {
        let field = || "node.engine_version".to_string();
        if spec.coe == crate::profile::Coe::Kubernetes {
            return Err(SpecError::Field {
                field: field(),
                message: "Kubernetes nodes run containerd, not the Docker engine: leave it out"
                    .into(),
            });
        }
        let apt_version = !engine.is_empty()
            && engine.len() <= 64
            && engine.starts_with(|c: char| c.is_ascii_digit())
            && engine
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~:-*".contains(c));
        if !apt_version {
            return Err(SpecError::Field {
                field: field(),
                message: format!(
                    "{engine:?} is not a package version: write the docker.io version as apt \
                     lists it (`apt-cache policy docker.io`), or a pattern like 20.10.*"
                ),
            });
        }
    }
    let check = |field: String, p: &RolloutPolicy| {
        if p.max_surge == 0 && p.max_unavailable == 0 {
            return Err(SpecError::Field {
                field,
                message: "max_surge and max_unavailable are both 0: no node could be replaced; \
                          give max_surge 1 (the default) or max_unavailable 1"
                    .into(),
            });
        }
        Ok(())
    };
    check("rollout".into(), &spec.rollout)?;
    for (i, pool) in spec.pools.iter().enumerate() {
        if let Some(p) = &pool.rollout {
            check(format!("pools[{i}].rollout"), p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_keeps_what_was_first_and_undo_puts_it_back() {
        let mut s = ClusterSpec::example("web", 3, 2);
        let first = s.machines();
        s.flavor = Some("m1.medium".into());
        s.change_machines_from(first.clone());
        assert_eq!(s.change.as_ref().unwrap().before, first);
        let second = s.machines();
        s.flavor = Some("m1.large".into());
        s.change_machines_from(second);
        assert_eq!(s.change.as_ref().unwrap().before, first, "the first before");
        let was = s.set_machines(&first);
        assert_eq!(s.flavor, None);
        assert_eq!(was.flavor.as_deref(), Some("m1.large"));
        // The same machines again start nothing.
        let mut t = ClusterSpec::example("web", 1, 0);
        t.change_machines_from(t.machines());
        assert_eq!(t.change, None);
    }

    #[test]
    fn the_kubernetes_version_is_part_of_the_machine() {
        let mut s = ClusterSpec::example("web", 1, 1);
        assert_eq!(
            s.groups()[0].machine(),
            "image=- flavor=-",
            "swarm: no version"
        );
        s.coe = crate::spec::Coe::Kubernetes;
        s.kubernetes = Some(crate::spec::KubernetesSettings::default());
        let before = s.machines();
        assert_eq!(s.groups()[1].machine(), "image=- flavor=- kubernetes=1.31");
        s.kubernetes.as_mut().unwrap().version = "1.32".into();
        s.change_machines_from(before.clone());
        assert_eq!(
            s.change.as_ref().unwrap().before.version.as_deref(),
            Some("1.31")
        );
        s.set_machines(&before);
        assert_eq!(s.kubernetes.as_ref().unwrap().version, "1.31", "undo");
    }

    #[test]
    fn a_machine_recorded_before_a_part_existed_matches_on_the_rest() {
        let now = "image=a flavor=b kubernetes=1.31";
        assert!(same_machine("image=a flavor=b", now));
        assert!(!same_machine("image=a flavor=c", now));
        assert!(!same_machine("image=a flavor=b kubernetes=1.30", now));
        assert!(same_machine(now, now));
        // Before a change, the part is filled in from what the group made.
        let filled = fill_machine("image=a flavor=b", "image=a flavor=b kubernetes=1.30");
        assert_eq!(filled, "image=a flavor=b kubernetes=1.30");
        assert!(!same_machine(&filled, now));
        assert_eq!(fill_machine(now, "image=x flavor=y kubernetes=1.29"), now);
        // A pin the node was made without differs; dropping one does not.
        let pinned = "image=a flavor=b engine=20.10.*";
        assert!(!same_machine("image=a flavor=b", pinned));
        assert!(same_machine(pinned, "image=a flavor=b"));
        assert!(only_version_differs(
            "image=a flavor=b kubernetes=1.30",
            now
        ));
        assert!(!only_version_differs(
            "image=a flavor=c kubernetes=1.30",
            now
        ));
        assert!(!only_version_differs(now, now));
    }

    #[test]
    fn an_engine_version_is_an_apt_version_for_the_docker_engine() {
        let mut s = ClusterSpec::example("web", 1, 1);
        s.engine_version = Some("20.10.24+dfsg1-1+deb12u1".into());
        super::super::validate(&s).unwrap();
        assert_eq!(
            s.groups()[0].machine(),
            "image=- flavor=- engine=20.10.24+dfsg1-1+deb12u1"
        );
        s.engine_version = Some("20.10.*".into());
        super::super::validate(&s).unwrap();
        for bad in ["latest", "1.0; reboot", ""] {
            s.engine_version = Some(bad.into());
            let err = super::super::validate(&s).unwrap_err().to_string();
            assert!(err.starts_with("node.engine_version:"), "{err}");
        }
        s.engine_version = Some("20.10.*".into());
        s.coe = crate::spec::Coe::Kubernetes;
        s.kubernetes = Some(Default::default());
        let err = super::super::validate(&s).unwrap_err().to_string();
        assert!(err.contains("containerd"), "{err}");
    }

    #[test]
    fn a_policy_that_moves_nothing_is_refused() {
        let mut s = ClusterSpec::example("web", 1, 2);
        s.rollout = RolloutPolicy {
            max_surge: 0,
            max_unavailable: 0,
        };
        let err = super::super::validate(&s).unwrap_err().to_string();
        assert!(err.starts_with("rollout:"), "{err}");
        s.rollout.max_unavailable = 1;
        super::super::validate(&s).unwrap();
        assert_eq!(
            s.rollout_policy(&s.groups()[0]),
            MANAGERS_ROLLOUT,
            "managers one at a time, whatever the template says"
        );
    }
}
