//! `provision rollout NAME status|pause|resume|undo`: where a change of the
//! nodes' machines stands, and a person's hand on it. The change itself is
//! made by the cluster command (`--image`, `--flavor`, `--template`); the
//! rollout's state is the spec and each node's record, so any run (the
//! daemon, `heal`, the cluster command again) carries it on.

use anyhow::{bail, Result};

use super::session::{self, connect_provider};
use super::Global;
use crate::controller::plan::rollout::{pending, GroupRollout};
use crate::progress;
use crate::spec::{self, Change, ClusterSpec};
use crate::state::{NodeRecord, Reason};

/// What `provision rollout` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RolloutAction {
    /// Each group to replace, its nodes in order, and why it waits.
    Status,
    /// Add and retire nothing more for the rollout until `resume`.
    Pause,
    /// Go on with a paused rollout.
    Resume,
    /// Go back to the machines from before the change, the same way.
    Undo,
}

pub async fn run(global: &Global, name: &str, action: RolloutAction, no_wait: bool) -> Result<()> {
    let session = session::open(global)?;
    if action == RolloutAction::Status {
        let record = session.cluster(name)?;
        let nodes = session.store.nodes(name)?;
        for line in status_lines(&record.spec, &nodes) {
            println!("{line}");
        }
        return Ok(());
    }
    let _lock = session.lock(name)?;
    let mut record = session.cluster_to_change(name)?;
    let nodes = session.store.nodes(name)?;
    let Some(change) = record.spec.change.clone() else {
        bail!(
            "cluster {name} has no change of machines on record: give the cluster command \
             --image, --flavor or --template to start one"
        );
    };
    let event = match action {
        RolloutAction::Pause | RolloutAction::Resume
            if pending(&record.spec, &nodes).is_empty() =>
        {
            bail!("cluster {name} has no rollout under way: every node's machine is its group's")
        }
        RolloutAction::Pause => {
            record.spec.change = Some(Change {
                paused: true,
                ..change
            });
            "rollout paused by request".to_string()
        }
        RolloutAction::Resume => {
            record.spec.change = Some(Change {
                paused: false,
                ..change
            });
            "rollout resumed by request".to_string()
        }
        RolloutAction::Undo => {
            let was = record.spec.set_machines(&change.before);
            record.spec.change = Some(Change {
                before: was,
                paused: false,
            });
            "rollout undone by request: back to the machines from before the change".to_string()
        }
        RolloutAction::Status => unreachable!("answered above"),
    };
    let reporter = progress::for_stderr();
    for warning in spec::validate(&record.spec)? {
        reporter.note(&format!("warning: {warning}"));
    }
    session.store.put_cluster(&record)?;
    session.store.add_event(name, None, &event)?;
    println!("Cluster {name}: {event}.");
    if action == RolloutAction::Pause || no_wait {
        println!("A running `provision daemon` goes by it; `provision rollout {name} status` shows where it stands.");
        return Ok(());
    }
    let provider = connect_provider(&record.spec, None).await?;
    super::scale::converge_and_show(&session, record, provider, reporter).await
}

/// `provision rollout NAME status`, and the order a dry run prints.
pub fn status_lines(spec: &ClusterSpec, nodes: &[NodeRecord]) -> Vec<String> {
    let groups = pending(spec, nodes);
    if groups.is_empty() {
        return vec![format!(
            "{}: no rollout under way (every node's machine is its group's)",
            spec.name
        )];
    }
    let paused = spec.change.as_ref().is_some_and(|c| c.paused);
    let mut out = vec![format!(
        "{}: rollout{}, the groups in this order:",
        spec.name,
        if paused { " (paused)" } else { "" }
    )];
    out.extend(order_lines(&groups));
    for n in nodes {
        for c in &n.conditions {
            if matches!(c, Reason::RolloutHalted { .. }) {
                out.push(format!("  halted: {c}"));
            }
        }
    }
    out
}

/// One line a group: what it becomes, how many are new, who goes next.
pub fn order_lines(groups: &[GroupRollout]) -> Vec<String> {
    groups
        .iter()
        .map(|g| {
            format!(
                "  {} -> {}: {} new, {} to {} ({})",
                g.group,
                g.machine,
                g.current,
                g.outdated.len(),
                if g.in_place {
                    "upgrade in place"
                } else {
                    "replace"
                },
                g.outdated.join(", ")
            )
        })
        .collect()
}
