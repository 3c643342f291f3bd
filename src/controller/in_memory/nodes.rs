//! Shells on the in-memory cloud's machines: a connection succeeds to a
//! running machine at its address, and is counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use russh::keys::PrivateKey;

use super::Cloud;
use crate::bootstrap::{Connector, SshError, SshTarget, Transport};

pub struct Nodes {
    cloud: Arc<Cloud>,
    connections: Mutex<BTreeMap<String, u32>>,
    /// Each open connection's "closed" flag, by node.
    open: Mutex<BTreeMap<String, Vec<Arc<AtomicBool>>>>,
}

impl Nodes {
    pub fn new(cloud: Arc<Cloud>) -> Nodes {
        Nodes {
            cloud,
            connections: Mutex::default(),
            open: Mutex::default(),
        }
    }

    /// Closes every connection open to `node`, as a reset from its side does.
    pub fn sever(&self, node: &str) {
        if let Some(flags) = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
        {
            for closed in flags {
                closed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Connections opened to each node so far.
    pub fn connections(&self) -> BTreeMap<String, u32> {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn total(&self) -> u32 {
        self.connections().values().sum()
    }
}

#[async_trait]
impl Connector for Nodes {
    async fn connect(
        &self,
        target: &SshTarget,
        _key: Arc<PrivateKey>,
        _recorded_host_key: Option<&str>,
        wait: Option<Duration>,
        _timeout: Duration,
    ) -> Result<Box<dyn Transport>, SshError> {
        let started = tokio::time::Instant::now();
        while !self.cloud.running_at(&target.node, &target.address) {
            match wait {
                Some(deadline) if started.elapsed() < deadline => {
                    tokio::time::sleep(Duration::from_secs(1)).await
                }
                _ => {
                    return Err(SshError::Connect {
                        node: target.node.clone(),
                        address: target.address.clone(),
                        message: "Connection refused (in-memory machine not running)".into(),
                    })
                }
            }
        }
        *self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(target.node.clone())
            .or_default() += 1;
        let closed = Arc::new(AtomicBool::new(false));
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(target.node.clone())
            .or_default()
            .push(closed.clone());
        Ok(Box::new(Shell {
            closed,
            node: target.node.clone(),
            user: target.user.clone(),
            host_key: format!("ssh-ed25519 in-memory-{}", target.node),
        }))
    }
}

/// A node's end: the in-memory orchestrator keeps node state itself, so
/// no command reaches here but an override script's, which has no node to run on.
struct Shell {
    closed: Arc<AtomicBool>,
    node: String,
    user: String,
    host_key: String,
}

#[async_trait]
impl Transport for Shell {
    fn node(&self) -> &str {
        &self.node
    }
    fn user(&self) -> &str {
        &self.user
    }
    fn host_key(&self) -> &str {
        &self.host_key
    }
    async fn exec(
        &self,
        command: &str,
        _stdin: Option<&mut (dyn tokio::io::AsyncRead + Send + Unpin)>,
        on_output: &mut (dyn for<'c> FnMut(&'c [u8]) -> std::ops::ControlFlow<()> + Send),
    ) -> Result<u32, SshError> {
        let _ = on_output(
            format!("in-memory node {}: no shell for {command:?}\n", self.node).as_bytes(),
        );
        Ok(127)
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
    async fn close(self: Box<Self>) {
        self.closed.store(true, Ordering::Relaxed);
    }
}
