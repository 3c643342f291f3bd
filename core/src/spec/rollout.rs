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
        format!(
            "image={} flavor={}",
            self.image.unwrap_or("-"),
            self.flavor.unwrap_or("-")
        )
    }
}

/// Refuses a policy under which nothing could move.
pub(super) fn validate(spec: &ClusterSpec) -> Result<(), SpecError> {
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
