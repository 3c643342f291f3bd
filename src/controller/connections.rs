//! The SSH connections of one converge run: what an observation opened is
//! reused by the actions that follow (joins through a manager, drains, a
//! bootstrap of a node it probed) and by the next pass's observation (after
//! a check that it still works), and all of it is closed when the run
//! ends. Opening one is a TCP and SSH handshake: seconds on a busy node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use provision_provider::Addresses;

use crate::bootstrap::NodeShell;
use crate::orchestrator::NodeProbe;

#[derive(Default)]
pub struct Connections {
    shells: Mutex<BTreeMap<String, Arc<NodeShell>>>,
    /// Nodes whose last report over their kept connection was that of a
    /// member with its engine running.
    members: Mutex<BTreeSet<String>>,
}

impl Connections {
    fn shells(&self) -> MutexGuard<'_, BTreeMap<String, Arc<NodeShell>>> {
        self.shells.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn members(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes what `node` just reported over its kept connection.
    pub fn note_report(&self, node: &str, probe: &NodeProbe) {
        let kept = self.get(node).is_some();
        if probe.joined && probe.engine_running && kept {
            self.members().insert(node.to_string());
        } else {
            self.members().remove(node);
        }
    }

    /// Whether this run reached `node` and its last report was a running
    /// member's: a later pass may take the membership's word for it.
    pub fn reported_member(&self, node: &str) -> bool {
        let reported = self.members().contains(node);
        reported && self.get(node).is_some_and(|s| !s.is_closed())
    }

    /// Keeps `shell` for the rest of the pass; returns it shared. A shell
    /// already kept for the node wins (two openers raced; the later one
    /// is dropped, which closes it).
    pub fn keep(&self, shell: NodeShell) -> Arc<NodeShell> {
        self.shells()
            .entry(shell.node().to_string())
            .or_insert_with(|| Arc::new(shell))
            .clone()
    }

    /// The open connection to `node`, if the pass has one.
    pub fn get(&self, node: &str) -> Option<Arc<NodeShell>> {
        self.shells().get(node).cloned()
    }

    /// The kept connection to `node` if it may still be used for the
    /// machine at `addresses`: not closed, and to those addresses (the
    /// scripts are rendered with them). Whether it answers is for the caller
    /// to find out, within a deadline.
    pub fn open_to(&self, node: &str, addresses: &Addresses) -> Option<Arc<NodeShell>> {
        self.get(node)
            .filter(|kept| !kept.is_closed() && kept.addresses() == addresses)
    }

    /// Drops the connection to `node` (its machine is being replaced or
    /// deleted: the old connection leads nowhere useful).
    pub fn forget(&self, node: &str) {
        self.shells().remove(node);
        self.members().remove(node);
    }

    /// Drops every connection whose node `keep` refuses.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.shells().retain(|node, _| keep(node));
        let shells = self.shells();
        self.members().retain(|node| shells.contains_key(node));
    }

    /// How many connections the pass holds.
    pub fn len(&self) -> usize {
        self.shells().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every connection no step still uses (the rest close when
    /// their last user drops them).
    pub async fn close_all(&self) {
        self.members().clear();
        let shells = std::mem::take(&mut *self.shells());
        for shell in shells.into_values() {
            if let Ok(shell) = Arc::try_unwrap(shell) {
                shell.close().await;
            }
        }
    }
}
