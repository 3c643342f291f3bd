//! The SSH connections of one converge run: what an observation opened is
//! reused by the actions that follow (joins through a manager, drains, a
//! bootstrap of a node it probed) and by the next pass's observation (after
//! a check that it still works), and all of it is closed when the run
//! ends. Opening one is a TCP and SSH handshake: seconds on a busy node.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::bootstrap::NodeShell;

#[derive(Default)]
pub struct Connections {
    shells: Mutex<BTreeMap<String, Arc<NodeShell>>>,
}

impl Connections {
    fn shells(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<NodeShell>>> {
        self.shells.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Drops the connection to `node` (its machine is being replaced or
    /// deleted: the old connection leads nowhere useful).
    pub fn forget(&self, node: &str) {
        self.shells().remove(node);
    }

    /// Drops every connection whose node `keep` refuses.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.shells().retain(|node, _| keep(node));
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
        let shells = std::mem::take(&mut *self.shells());
        for shell in shells.into_values() {
            if let Ok(shell) = Arc::try_unwrap(shell) {
                shell.close().await;
            }
        }
    }
}
