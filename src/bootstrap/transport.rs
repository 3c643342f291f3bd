//! How commands reach a node, behind two small traits: [`Connector`] opens
//! a [`Transport`] to a node. Production uses SSH ([`SshConnector`], russh);
//! the controller's in-process tests use an in-memory double, as bollard's
//! tests use a mock transport.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use russh::keys::PrivateKey;
use tokio::io::AsyncRead;

use super::ssh::{SshError, SshSession, SshTarget};

/// An open connection to one node that runs commands.
#[async_trait]
pub trait Transport: Send + Sync {
    fn node(&self) -> &str;
    /// Who the commands run as; anyone but root goes through sudo.
    fn user(&self) -> &str;
    /// The node's host key, as an OpenSSH public key line.
    fn host_key(&self) -> &str;
    /// Runs `command`, feeding it what `stdin` reads (streamed: a backup's
    /// archive is never held whole) and passing output chunks to
    /// `on_output` as they arrive; when it answers `Break`, the command's
    /// channel is closed and nothing more is read. Returns the exit status.
    async fn exec(
        &self,
        command: &str,
        stdin: Option<&mut (dyn AsyncRead + Send + Unpin)>,
        on_output: &mut (dyn for<'c> FnMut(&'c [u8]) -> ControlFlow<()> + Send),
    ) -> Result<u32, SshError>;
    /// Whether the connection is known to be gone (the peer or the network
    /// closed it). A connection to a machine that vanished without a word
    /// still looks open: only a command with a deadline finds that out.
    fn is_closed(&self) -> bool;
    async fn close(self: Box<Self>);
}

/// Opens transports to nodes.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Connects to `target` once within `timeout`, or, with `wait`, keeps
    /// trying while the machine boots until `wait` has passed. The node
    /// must present `recorded_host_key` when one is given.
    async fn connect(
        &self,
        target: &SshTarget,
        key: Arc<PrivateKey>,
        recorded_host_key: Option<&str>,
        wait: Option<Duration>,
        timeout: Duration,
    ) -> Result<Box<dyn Transport>, SshError>;
}

/// SSH with russh.
pub struct SshConnector;

#[async_trait]
impl Connector for SshConnector {
    async fn connect(
        &self,
        target: &SshTarget,
        key: Arc<PrivateKey>,
        recorded_host_key: Option<&str>,
        wait: Option<Duration>,
        timeout: Duration,
    ) -> Result<Box<dyn Transport>, SshError> {
        let session = match wait {
            Some(deadline) => {
                SshSession::wait_for(target, key, recorded_host_key, deadline).await?
            }
            None => SshSession::connect(target, key, recorded_host_key, timeout).await?,
        };
        Ok(Box::new(session))
    }
}

#[async_trait]
impl Transport for SshSession {
    fn node(&self) -> &str {
        SshSession::node(self)
    }
    fn user(&self) -> &str {
        SshSession::user(self)
    }
    fn host_key(&self) -> &str {
        SshSession::host_key(self)
    }
    async fn exec(
        &self,
        command: &str,
        stdin: Option<&mut (dyn AsyncRead + Send + Unpin)>,
        on_output: &mut (dyn for<'c> FnMut(&'c [u8]) -> ControlFlow<()> + Send),
    ) -> Result<u32, SshError> {
        SshSession::exec(self, command, stdin, |chunk: &[u8]| on_output(chunk)).await
    }
    fn is_closed(&self) -> bool {
        SshSession::is_closed(self)
    }
    async fn close(self: Box<Self>) {
        SshSession::close(*self).await
    }
}
