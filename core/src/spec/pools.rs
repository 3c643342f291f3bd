//! Pools: groups of nodes of one kind (count, flavor, image, zones,
//! labels). The managers are one group, the template's `workers` another
//! (the default pool), and each entry of `pools:` one more, as Cluster
//! API's MachineDeployments or Magnum's node groups.

use std::collections::{BTreeMap, BTreeSet};

use provision_provider::Role;
use serde::{Deserialize, Serialize};

use super::{Cloud, ClusterSpec, Coe, SpecError};

/// A named pool of workers (template `pools:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// A DNS label of at most [`MAX_POOL_NAME`] characters; its nodes are
    /// named `CLUSTER-POOL-N`.
    pub name: String,
    pub count: u32,
    /// The cluster's (`node.flavor`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    /// The cluster's (`node.image`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Availability zones its nodes spread over; `node.zones` when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Swarm node labels, Kubernetes node labels, Mesos agent attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Kubernetes taints, written `key=value:Effect` or `key:Effect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<String>,
    /// How its nodes are replaced when its machines change; the
    /// template's `rollout:` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::RolloutPolicy>,
}

/// Longest pool name: a cluster name (40) and a node's index still fit a
/// hostname (63).
pub const MAX_POOL_NAME: usize = 15;

/// Names a pool may not have: the groups' own names in `status`, and the
/// words of node names (`web-manager-1`).
const RESERVED: &[&str] = &["manager", "managers", "worker", "workers"];

/// One group of nodes, as the planner and the actor see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group<'a> {
    pub role: Role,
    /// The pool's name; `None` for the managers and the default workers.
    pub pool: Option<&'a str>,
    pub count: u32,
    /// Zones its nodes spread over; empty for the cloud's choice.
    pub zones: &'a [String],
    pub flavor: Option<&'a str>,
    pub image: Option<&'a str>,
    pub labels: Option<&'a BTreeMap<String, String>>,
    pub taints: &'a [String],
    /// The orchestrator's version its nodes install, where the template
    /// picks one (`kubernetes.version`).
    pub version: Option<&'a str>,
    /// The Docker engine's version its nodes install (`node.engine_version`).
    pub engine: Option<&'a str>,
}

impl Group<'_> {
    /// What `status` calls it: `managers`, `workers`, or the pool's name.
    pub fn label(&self) -> &str {
        group_label(self.role, self.pool)
    }

    /// `web-manager-1`, `web-worker-3`, `web-gpu-2`.
    pub fn node_name(&self, cluster: &str, index: u32) -> String {
        match self.pool {
            Some(pool) => format!("{cluster}-{pool}-{index}"),
            None => super::node_name(cluster, self.role, index),
        }
    }

    /// The labels its nodes carry: the pool's own, and `provision.pool`
    /// (the group's name) for placement constraints on any group.
    pub fn node_labels(&self) -> Vec<(String, String)> {
        let mut labels: Vec<(String, String)> = self
            .labels
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        labels.push(("provision.pool".into(), self.label().to_string()));
        labels
    }

    /// Its taints as (key, value, effect); checked by `validate`.
    pub fn node_taints(&self) -> Vec<(String, String, String)> {
        self.taints
            .iter()
            .filter_map(|t| {
                let (pair, effect) = t.rsplit_once(':')?;
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((key.to_string(), value.to_string(), effect.to_string()))
            })
            .collect()
    }

    /// Whether a node of `role` in `pool` belongs to it.
    pub fn holds(&self, role: Role, pool: Option<&str>) -> bool {
        self.role == role && self.pool == pool
    }
}

/// What `status` calls a node's group.
pub fn group_label(role: Role, pool: Option<&str>) -> &str {
    match (role, pool) {
        (Role::Manager, _) => "managers",
        (Role::Worker, None) => "workers",
        (Role::Worker, Some(pool)) => pool,
    }
}

impl ClusterSpec {
    /// Every group: the managers, the default workers, then the pools in
    /// the template's order.
    pub fn groups(&self) -> Vec<Group<'_>> {
        let version = self.kubernetes.as_ref().map(|k| k.version.as_str());
        let engine = self.engine_version.as_deref();
        let base = |role, count| Group {
            role,
            pool: None,
            count,
            zones: &self.zones,
            flavor: self.flavor.as_deref(),
            image: self.image.as_deref(),
            labels: None,
            taints: &[],
            version,
            engine,
        };
        let mut groups = vec![
            base(Role::Manager, self.managers),
            base(Role::Worker, self.workers),
        ];
        groups.extend(self.pools.iter().map(|p| Group {
            role: Role::Worker,
            pool: Some(&p.name),
            count: p.count,
            zones: if p.zones.is_empty() {
                &self.zones
            } else {
                &p.zones
            },
            flavor: p.flavor.as_deref().or(self.flavor.as_deref()),
            image: p.image.as_deref().or(self.image.as_deref()),
            labels: Some(&p.labels),
            taints: &p.taints,
            version,
            engine,
        }));
        groups
    }

    /// The group of a node of `role` in `pool`; `None` for a pool the spec
    /// no longer has.
    pub fn group(&self, role: Role, pool: Option<&str>) -> Option<Group<'_>> {
        self.groups().into_iter().find(|g| g.holds(role, pool))
    }

    /// The pool named `name`, for a command that changes it.
    pub fn pool_mut(&mut self, name: &str) -> Result<&mut Pool, SpecError> {
        let names: Vec<String> = self.pools.iter().map(|p| p.name.clone()).collect();
        self.pools
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| SpecError::Field {
                field: "--pool".into(),
                message: format!(
                    "the cluster has no pool {name:?} ({}): give one of those, or leave --pool \
                     out for the default workers",
                    if names.is_empty() {
                        "it has none".to_string()
                    } else {
                        format!("it has {}", names.join(", "))
                    }
                ),
            })
    }

    /// What a provider's `preflight` checks of each group's machines; a
    /// group of no nodes is left out.
    pub fn machine_kinds(&self) -> Vec<provision_provider::MachineKind> {
        self.groups()
            .iter()
            .filter(|g| g.count > 0)
            .map(|g| provision_provider::MachineKind {
                group: g.label().to_string(),
                flavor: g.flavor.map(str::to_string),
                image: g.image.map(str::to_string),
                zones: g.zones.to_vec(),
            })
            .collect()
    }

    /// Every zone the spec names, each once, in order.
    pub fn all_zones(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.zones
            .iter()
            .chain(self.pools.iter().flat_map(|p| p.zones.iter()))
            .filter(|z| seen.insert(z.as_str()))
            .cloned()
            .collect()
    }
}

fn field(name: String, message: String) -> SpecError {
    SpecError::Field {
        field: name,
        message,
    }
}

/// Checks the pools and zones; returns warnings to show.
pub(super) fn validate(spec: &ClusterSpec) -> Result<Vec<String>, SpecError> {
    let mut warnings = Vec::new();
    check_zones("node.zones", &spec.zones)?;
    let mut names = BTreeSet::new();
    for (i, pool) in spec.pools.iter().enumerate() {
        let at = |what: &str| format!("pools[{i}].{what}");
        check_pool_name(&pool.name).map_err(|m| field(at("name"), m))?;
        if !names.insert(pool.name.as_str()) {
            return Err(field(
                at("name"),
                format!(
                    "{:?} names two pools: give each pool its own name",
                    pool.name
                ),
            ));
        }
        check_zones(&at("zones"), &pool.zones)?;
        for (key, value) in &pool.labels {
            check_label(key, value).map_err(|m| field(at("labels"), m))?;
            check_label_for(spec.coe, key, value).map_err(|m| field(at("labels"), m))?;
        }
        if !pool.taints.is_empty() && spec.coe != Coe::Kubernetes {
            return Err(field(
                at("taints"),
                format!(
                    "taints are Kubernetes': a {} cluster has none; use labels",
                    spec.coe
                ),
            ));
        }
        for taint in &pool.taints {
            check_taint(taint).map_err(|m| field(at("taints"), m))?;
        }
    }
    if !spec.all_zones().is_empty() && spec.cloud == Cloud::Local {
        return Err(field(
            "node.zones".into(),
            "the local cloud has no availability zones: remove node.zones and the pools' zones \
             (they are for --cloud openstack and ec2)"
                .into(),
        ));
    }
    if spec.managers >= 3 && (1..3).contains(&spec.zones.len()) {
        warnings.push(format!(
            "node.zones has {} zone(s) for {} managers: one zone holds a majority of them, so \
             losing that zone loses the quorum; list three or more zones",
            spec.zones.len(),
            spec.managers
        ));
    }
    Ok(warnings)
}

fn check_pool_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POOL_NAME
        && name.as_bytes()[0].is_ascii_lowercase()
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(format!(
            "{name:?} is not a pool name: use at most {MAX_POOL_NAME} lowercase letters, digits \
             and '-', starting with a letter (it becomes part of node names), e.g. gpu"
        ));
    }
    // `web-manager-1` is a manager's name: a pool `x-manager` of cluster
    // `web` would name a node as cluster `web-x`'s first manager.
    if RESERVED.contains(&name) || name.split('-').any(|w| RESERVED.contains(&w)) {
        return Err(format!(
            "{name:?} is or contains the name of a built-in group (manager, worker): choose \
             another"
        ));
    }
    Ok(())
}

fn check_zones(at: &str, zones: &[String]) -> Result<(), SpecError> {
    let mut seen = BTreeSet::new();
    for zone in zones {
        let ok = !zone.is_empty()
            && zone.len() <= 255
            && zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            return Err(field(
                at.into(),
                format!("{zone:?} is not a zone name: give the cloud's name of it, e.g. az-1 or us-east-1a"),
            ));
        }
        if !seen.insert(zone) {
            return Err(field(at.into(), format!("{zone:?} is listed twice")));
        }
    }
    Ok(())
}

/// A key and value every orchestrator takes as they are (a Kubernetes
/// label, a Swarm label, a Mesos attribute `key:value`).
fn check_label(key: &str, value: &str) -> Result<(), String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let prefix_ok = match key.split_once('/') {
        Some((prefix, rest)) => {
            !rest.contains('/')
                && !prefix.is_empty()
                && prefix.len() <= 253
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
        }
        None => true,
    };
    if !prefix_ok || !label_text(name, false) {
        return Err(format!(
            "{key:?} is not a label key: use at most 63 letters, digits, '-', '_' and '.', \
             starting and ending with a letter or digit, with an optional DNS prefix and '/' \
             (example.com/tier)"
        ));
    }
    if !label_text(value, true) {
        return Err(format!(
            "the value of {key} ({value:?}) is not a label value: use at most 63 letters, \
             digits, '-', '_' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Kubernetes' label name and value syntax (qualified name's name part),
/// which Swarm and Mesos also take unchanged.
fn label_text(text: &str, may_be_empty: bool) -> bool {
    if text.is_empty() {
        return may_be_empty;
    }
    let b = text.as_bytes();
    text.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// What one orchestrator refuses of a label beyond the common syntax:
/// Kubernetes' NodeRestriction admission lets a kubelet set no label of
/// the `kubernetes.io` and `k8s.io` namespaces but a listed few (so a node
/// whose kubelet asked would fail to register), and a Mesos attribute is
/// `name:value` with a value.
fn check_label_for(coe: Coe, key: &str, value: &str) -> Result<(), String> {
    let prefix = key.split_once('/').map(|(p, _)| p).unwrap_or("");
    let reserved = |ns: &str| prefix == ns || prefix.ends_with(&format!(".{ns}"));
    if coe == Coe::Kubernetes && (reserved("kubernetes.io") || reserved("k8s.io")) {
        return Err(format!(
            "{key}: a kubelet may not set labels of the kubernetes.io and k8s.io namespaces \
             (NodeRestriction admission): use a prefix of your own, e.g. example.com/"
        ));
    }
    if coe == Coe::Mesos && value.is_empty() {
        return Err(format!(
            "{key} has no value, and a Mesos attribute needs one (name:value): give it a value"
        ));
    }
    Ok(())
}

/// `key=value:Effect` or `key:Effect` (kubectl taint's form).
fn check_taint(taint: &str) -> Result<(), String> {
    const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    let bad = || {
        format!(
            "{taint:?} is not a taint: write key=value:Effect or key:Effect, the effect one of {}",
            EFFECTS.join(", ")
        )
    };
    let (pair, effect) = taint.rsplit_once(':').ok_or_else(bad)?;
    if !EFFECTS.contains(&effect) {
        return Err(bad());
    }
    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
    check_label(key, value).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, count: u32) -> Pool {
        Pool {
            name: name.into(),
            count,
            flavor: None,
            image: None,
            zones: Vec::new(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            rollout: None,
        }
    }

    fn openstack(pools: Vec<Pool>) -> ClusterSpec {
        let mut s = ClusterSpec::example("web", 3, 0);
        s.cloud = Cloud::OpenStack;
        s.pools = pools;
        s
    }

    #[test]
    fn groups_are_managers_the_default_workers_then_pools() {
        let mut s = openstack(vec![pool("gpu", 2)]);
        s.flavor = Some("m1.small".into());
        s.zones = vec!["az-1".into(), "az-2".into()];
        s.pools[0].flavor = Some("m1.large".into());
        s.pools[0].zones = vec!["az-3".into()];
        let g = s.groups();
        assert_eq!(
            g.iter().map(|g| (g.label(), g.count)).collect::<Vec<_>>(),
            [("managers", 3), ("workers", 0), ("gpu", 2)]
        );
        assert_eq!(g[0].flavor, Some("m1.small"));
        assert_eq!(g[2].flavor, Some("m1.large"));
        assert_eq!(g[0].zones, ["az-1", "az-2"]);
        assert_eq!(g[2].zones, ["az-3"]);
        assert_eq!(g[2].node_name("web", 4), "web-gpu-4");
        assert_eq!(g[1].node_name("web", 4), "web-worker-4");
        assert_eq!(s.count(Role::Worker), 2);
        assert_eq!(s.all_zones(), ["az-1", "az-2", "az-3"]);
    }

    #[test]
    fn pool_names_must_be_short_labels_and_not_a_groups() {
        for bad in [
            "",
            "GPU",
            "workers",
            "manager",
            "x-worker",
            "a-very-long-pool-name",
            "1x",
            "x-",
        ] {
            let err = validate(&openstack(vec![pool(bad, 1)]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("pools[0].name:"), "{bad}: {err}");
        }
        let err = validate(&openstack(vec![pool("a", 1), pool("a", 2)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("pools[1].name:") && err.contains("two pools"),
            "{err}"
        );
    }

    #[test]
    fn labels_and_taints_are_checked() {
        let mut p = pool("gpu", 1);
        p.labels.insert("example.com/tier".into(), "web".into());
        p.labels.insert("disk".into(), "".into());
        let mut s = openstack(vec![p.clone()]);
        validate(&s).unwrap();
        s.pools[0].labels.insert("bad key".into(), "x".into());
        let err = validate(&s).unwrap_err().to_string();
        assert!(
            err.starts_with("pools[0].labels:") && err.contains("bad key"),
            "{err}"
        );
        let mut s = openstack(vec![p.clone()]);
        s.pools[0].labels.insert("tier".into(), "a;b".into());
        assert!(validate(&s).is_err());

        let mut s = openstack(vec![p]);
        s.pools[0].taints = vec!["gpu=yes:NoSchedule".into()];
        let err = validate(&s).unwrap_err().to_string();
        assert!(
            err.starts_with("pools[0].taints:") && err.contains("Kubernetes"),
            "{err}"
        );
        s.coe = Coe::Kubernetes;
        validate(&s).unwrap();
        for bad in ["gpu=yes", "gpu:Never", "=x:NoSchedule"] {
            s.pools[0].taints = vec![bad.into()];
            assert!(validate(&s).is_err(), "{bad}");
        }
        s.pools[0].taints = vec!["dedicated:NoExecute".into()];
        validate(&s).unwrap();
        assert_eq!(
            s.groups()[2].node_taints(),
            [(
                "dedicated".to_string(),
                String::new(),
                "NoExecute".to_string()
            )]
        );
        // Kubernetes: no kubelet may set labels of its own namespaces.
        s.pools[0]
            .labels
            .insert("node.kubernetes.io/x".into(), "y".into());
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.contains("NodeRestriction"), "{err}");
        // Mesos: an attribute needs a value (`disk` has none).
        let mut s = openstack(vec![p_with_labels()]);
        s.coe = Coe::Mesos;
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.contains("Mesos attribute"), "{err}");
    }

    fn p_with_labels() -> Pool {
        let mut p = pool("gpu", 1);
        p.labels.insert("disk".into(), "".into());
        p
    }

    #[test]
    fn zones_are_names_once_each_and_not_on_the_local_cloud() {
        let mut s = openstack(vec![]);
        s.zones = vec!["az-1".into(), "az-1".into()];
        let err = validate(&s).unwrap_err().to_string();
        assert!(
            err.starts_with("node.zones:") && err.contains("twice"),
            "{err}"
        );
        s.zones = vec!["az 1".into()];
        assert!(validate(&s).is_err());
        s.zones = vec!["az-1".into(), "az-2".into()];
        let warnings = validate(&s).unwrap();
        assert!(warnings[0].contains("majority"), "{warnings:?}");
        s.zones.push("az-3".into());
        assert!(validate(&s).unwrap().is_empty());
        s.cloud = Cloud::Local;
        let err = validate(&s).unwrap_err().to_string();
        assert!(
            err.contains("local cloud has no availability zones"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_pool_is_named_with_the_ones_there_are() {
        let mut s = openstack(vec![pool("gpu", 1), pool("db", 1)]);
        let err = s.pool_mut("web").unwrap_err().to_string();
        assert!(err.contains("\"web\"") && err.contains("gpu, db"), "{err}");
        s.pool_mut("db").unwrap().count = 4;
        assert_eq!(s.count(Role::Worker), 5);
    }
}
