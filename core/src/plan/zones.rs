//! Zones: where a new node's machine goes. A group's nodes spread over its
//! zones, each new one to the least-filled; a failing zone (the cloud
//! lists it unavailable, or the cluster has nodes down there and none
//! healthy) is skipped while another is not, so a replacement goes back to
//! its own zone unless that zone is failing.
//! Spread this way, no zone holds a majority of the managers when they
//! have three zones or more (Cluster API's failure domains, kops'
//! one master per zone).

use std::collections::{BTreeMap, BTreeSet};

use super::NodeView;
use crate::state::Reason;

/// The cluster's failing zones, from one observation.
pub(super) struct Zones {
    /// Each failing zone's down nodes.
    failing: BTreeMap<String, Vec<String>>,
}

impl Zones {
    /// A zone fails when the cluster has nodes there, none of them
    /// healthy, and one at least down (its machine failed, gone or
    /// stopped, or it does not answer). A node still starting, or one the
    /// cloud is only busy with, says nothing about the zone.
    /// Zones the cloud lists as unavailable (`down`) fail too, with no
    /// node of the cluster needed there to tell.
    pub(super) fn of(views: &[NodeView], down_in_cloud: &BTreeSet<String>) -> Zones {
        let mut healthy: BTreeMap<&str, bool> = BTreeMap::new();
        let mut down: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for v in views {
            let Some(zone) = v.record.zone.as_deref() else {
                continue;
            };
            *healthy.entry(zone).or_default() |= v.condition.is_healthy();
            let is_down = v
                .condition
                .kind()
                .is_some_and(|k| k != crate::state::UnhealthyKind::Busy);
            if is_down {
                down.entry(zone).or_default().push(v.name().to_string());
            }
        }
        let mut failing: BTreeMap<String, Vec<String>> = down
            .into_iter()
            .filter(|(zone, _)| !healthy.get(zone).copied().unwrap_or(false))
            .map(|(zone, nodes)| (zone.to_string(), nodes))
            .collect();
        for zone in down_in_cloud {
            failing.entry(zone.clone()).or_default();
        }
        Zones { failing }
    }

    /// The zone of `zones` for one more node, given how many of the
    /// group's nodes each already holds: the least-filled that is not
    /// failing (the first listed on a tie), or the least-filled of all
    /// when every one is. `None` when the group names no zones.
    pub(super) fn choose(
        &self,
        zones: &[String],
        placed: &BTreeMap<String, usize>,
    ) -> Option<String> {
        let fill = |z: &String| placed.get(z).copied().unwrap_or(0);
        let least = |healthy_only: bool| {
            zones
                .iter()
                .filter(|z| !healthy_only || !self.failing.contains_key(*z))
                .enumerate()
                .min_by_key(|(i, z)| (fill(z), *i))
                .map(|(_, z)| z.clone())
        };
        least(true).or_else(|| least(false))
    }

    /// Whether placing in `zones` skips a failing one: a reason to note.
    pub(super) fn notes(&self, zones: &[String]) -> Vec<Reason> {
        zones
            .iter()
            .filter_map(|z| {
                self.failing.get(z).map(|nodes| Reason::ZoneFailing {
                    zone: z.clone(),
                    nodes: nodes.clone(),
                })
            })
            .collect()
    }
}

/// How many of `nodes` each zone holds.
pub(super) fn placed<'a, 'b: 'a>(
    nodes: impl Iterator<Item = &'a NodeView<'b>>,
) -> BTreeMap<String, usize> {
    let mut fill = BTreeMap::new();
    for v in nodes {
        if let Some(zone) = &v.record.zone {
            *fill.entry(zone.clone()).or_default() += 1;
        }
    }
    fill
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(names: &[&str]) -> Vec<String> {
        names.iter().map(|z| z.to_string()).collect()
    }

    fn placed(counts: &[(&str, usize)]) -> BTreeMap<String, usize> {
        counts.iter().map(|(z, n)| (z.to_string(), *n)).collect()
    }

    #[test]
    fn the_least_filled_zone_first_listed_on_a_tie() {
        let none = Zones {
            failing: BTreeMap::new(),
        };
        let three = zones(&["az-1", "az-2", "az-3"]);
        assert_eq!(none.choose(&three, &placed(&[])).as_deref(), Some("az-1"));
        assert_eq!(
            none.choose(&three, &placed(&[("az-1", 1)])).as_deref(),
            Some("az-2")
        );
        assert_eq!(
            none.choose(&three, &placed(&[("az-1", 1), ("az-2", 1), ("az-3", 0)]))
                .as_deref(),
            Some("az-3")
        );
        assert_eq!(none.choose(&[], &placed(&[])), None);
    }

    #[test]
    fn a_failing_zone_is_skipped_unless_every_zone_fails() {
        let failing = Zones {
            failing: [("az-1".to_string(), vec!["web-worker-1".to_string()])].into(),
        };
        let two = zones(&["az-1", "az-2"]);
        assert_eq!(
            failing.choose(&two, &placed(&[("az-2", 3)])).as_deref(),
            Some("az-2")
        );
        // A zone the cloud lists unavailable fails with no node there.
        let listed_down = Zones::of(&[], &["az-1".to_string()].into());
        assert_eq!(
            listed_down.choose(&two, &placed(&[("az-2", 5)])).as_deref(),
            Some("az-2")
        );
        assert!(listed_down.notes(&two)[0]
            .to_string()
            .contains("lists it unavailable"));
        let one = zones(&["az-1"]);
        assert_eq!(failing.choose(&one, &placed(&[])).as_deref(), Some("az-1"));
        assert_eq!(
            failing.notes(&two),
            [Reason::ZoneFailing {
                zone: "az-1".into(),
                nodes: vec!["web-worker-1".into()]
            }]
        );
    }
}
