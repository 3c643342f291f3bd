//! SSH to nodes with russh.
//!
//! Host keys are trusted on first contact only: the key seen then is
//! recorded with the node, and every later connection must present the same
//! key. A changed key is an error, never silently accepted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use russh::client::AuthResult;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{client, ChannelMsg, Disconnect};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use super::ssh_slots;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub node: String,
    pub address: String,
    pub port: u16,
    pub user: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("node {node}: cannot connect to {address}:22: {message}")]
    Connect {
        node: String,
        address: String,
        message: String,
    },
    #[error(
        "node {node}: host key changed (recorded {recorded}, now {presented}); this may be an attack. \
         If the machine was really rebuilt, remove and re-create the node"
    )]
    HostKeyChanged {
        node: String,
        recorded: String,
        presented: String,
    },
    #[error("node {node}: the recorded host key cannot be read: {message}")]
    BadRecordedKey { node: String, message: String },
    #[error(
        "node {node}: {user}@{address} refused the cluster key: check that {user} is the image's \
         login user (node.ssh_user) and that the image installs the cloud's key for it"
    )]
    AuthRejected {
        node: String,
        user: String,
        address: String,
    },
    /// sshd accepted the key and then closed the connection: OpenSSH does
    /// so when PAM's account stage refuses the user ("fatal: Access denied
    /// for user … by PAM account configuration [preauth]"), which
    /// pam_nologin(8) does to every user but root while a machine boots.
    #[error(
        "node {node}: {address} closed the connection while logging in {user} (a booting \
         machine does so until it allows logins other than root, pam_nologin(8))"
    )]
    ClosedDuringLogin {
        node: String,
        user: String,
        address: String,
    },
    #[error("node {node}: SSH {what} failed: {message}")]
    Protocol {
        node: String,
        what: &'static str,
        message: String,
    },
    #[error("node {node}: {what} did not finish within {}", humantime::format_duration(*after))]
    Timeout {
        node: String,
        what: String,
        after: Duration,
    },
    /// This machine ran short (our cap on connections, file descriptors,
    /// ports): says nothing about the node.
    #[error("node {node}: not tried: {message} (a limit on this machine, not the node)")]
    Local { node: String, message: String },
}

impl SshError {
    /// Errors a booting machine gives before sshd is up, worth waiting out.
    /// A handshake that stalled past its own timeout is one: sshd may take
    /// the connection before it can answer (host keys made on the first
    /// boot, a machine short of CPU), and the next try may get through.
    fn is_transient(&self) -> bool {
        matches!(
            self,
            SshError::Connect { .. }
                | SshError::Protocol { .. }
                | SshError::Local { .. }
                | SshError::ClosedDuringLogin { .. }
                | SshError::Timeout { .. }
        )
    }

    /// Whether the failure was this machine's, not the node's.
    pub fn is_local(&self) -> bool {
        matches!(self, SshError::Local { .. })
    }
}

/// How long one try's handshake and login may take while waiting for a
/// node; a try that stalls is made again until the wait's deadline.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Channels one connection runs at once: under OpenSSH's `MaxSessions`
/// (10 by default, sshd_config(5)), since a manager's connection is shared
/// by the actions of a pass.
const CHANNELS_PER_CONNECTION: usize = 8;

/// How often a login is tried again on a node that closed the connection
/// while logging in. A booting machine whose sshd already answers refuses
/// every user but root while `/run/nologin` exists (pam_nologin(8), in
/// Debian's /etc/pam.d/sshd): systemd creates it early and
/// systemd-user-sessions removes it later, and sshd is not ordered after
/// that (systemd issue 8228 shows sshd listening before logins were
/// allowed). Cloud images log in as a user (`debian` on OpenStack's Debian
/// image); a create in CI met the window 0.3 s after its server went
/// ACTIVE. Each try costs the node a handshake and a PAM pass, so not
/// every [`SSH_POLL`].
const LOGIN_RETRY_POLL: Duration = Duration::from_millis(200);

/// How often a node that does not answer SSH yet is tried again while it
/// boots: a node's sshd is noticed about 12 ms after it listens on average
/// (at 100 ms, the 50 ms average was a sixth of a 1+2 create's own
/// overhead). An attempt at a closed port costs one refused SYN.
pub const SSH_POLL: Duration = Duration::from_millis(25);

struct HostKeyCheck {
    expected: Option<PublicKey>,
    presented: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                PublicKey::new(cert.public_key().clone(), "")
            }
        };
        let accept = match &self.expected {
            Some(expected) => expected.key_data() == key.key_data(),
            None => true,
        };
        *self.presented.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
        Ok(accept)
    }
}

/// An authenticated SSH connection to one node.
pub struct SshSession {
    handle: client::Handle<HostKeyCheck>,
    node: String,
    /// Who we logged in as; anyone but root runs scripts through sudo.
    user: String,
    /// The node's host key, as an OpenSSH public key line.
    host_key: String,
    channels: Semaphore,
    /// Held while the connection is open (see [`super::ssh_slots`]).
    _slot: OwnedSemaphorePermit,
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl SshSession {
    /// Connects once. `recorded_host_key` is the key from first contact, if any.
    pub async fn connect(
        target: &SshTarget,
        key: Arc<PrivateKey>,
        recorded_host_key: Option<&str>,
        timeout: Duration,
    ) -> Result<SshSession, SshError> {
        let expected = recorded_host_key
            .map(|line| {
                PublicKey::from_openssh(line).map_err(|e| SshError::BadRecordedKey {
                    node: target.node.clone(),
                    message: e.to_string(),
                })
            })
            .transpose()?;
        let presented = Arc::new(Mutex::new(None));
        let handler = HostKeyCheck {
            expected: expected.clone(),
            presented: presented.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(3600)),
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            nodelay: true,
            ..Default::default()
        });
        let slot = ssh_slots::take().await.ok_or_else(|| SshError::Local {
            node: target.node.clone(),
            message: format!(
                "all {} SSH connection slots stayed busy",
                ssh_slots::limit()
            ),
        })?;
        // Handshake and authentication under one deadline: a node that
        // accepts TCP and then stalls never holds the caller.
        let handshake = Self::handshake(target, key, config, handler, &expected, &presented);
        let handle = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| SshError::Timeout {
                node: target.node.clone(),
                what: "SSH handshake".into(),
                after: timeout,
            })??;
        ssh_slots::count_opened();
        let host_key = presented
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|k| k.to_openssh().ok())
            .unwrap_or_default();
        Ok(SshSession {
            handle,
            user: target.user.clone(),
            node: target.node.clone(),
            host_key,
            channels: Semaphore::new(CHANNELS_PER_CONNECTION),
            _slot: slot,
        })
    }

    async fn handshake(
        target: &SshTarget,
        key: Arc<PrivateKey>,
        config: Arc<client::Config>,
        handler: HostKeyCheck,
        expected: &Option<PublicKey>,
        presented: &Mutex<Option<PublicKey>>,
    ) -> Result<client::Handle<HostKeyCheck>, SshError> {
        let addr = (target.address.as_str(), target.port);
        let mut handle = match client::connect(config, addr, handler).await {
            Ok(h) => h,
            Err(russh::Error::IO(e)) if ssh_slots::is_local_shortage(&e) => {
                return Err(SshError::Local {
                    node: target.node.clone(),
                    message: format!("cannot open a socket: {e}"),
                })
            }
            Err(e) => {
                let seen = presented.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let (Some(expected), Some(seen)) = (expected, &seen) {
                    if expected.key_data() != seen.key_data() {
                        return Err(SshError::HostKeyChanged {
                            node: target.node.clone(),
                            recorded: fingerprint(expected),
                            presented: fingerprint(seen),
                        });
                    }
                }
                return Err(SshError::Connect {
                    node: target.node.clone(),
                    address: target.address.clone(),
                    message: e.to_string(),
                });
            }
        };
        let auth = handle
            .authenticate_publickey(target.user.clone(), PrivateKeyWithHashAlg::new(key, None))
            .await
            .map_err(|e| SshError::Protocol {
                node: target.node.clone(),
                what: "authentication",
                message: e.to_string(),
            })?;
        match auth {
            AuthResult::Success => {}
            // russh reports a connection that closed during the login as a
            // failure with no method left: sshd never sends that itself
            // while publickey may still continue (RFC 4252, 5.1).
            AuthResult::Failure {
                remaining_methods, ..
            } if remaining_methods.is_empty() || handle.is_closed() => {
                return Err(SshError::ClosedDuringLogin {
                    node: target.node.clone(),
                    user: target.user.clone(),
                    address: target.address.clone(),
                });
            }
            AuthResult::Failure { .. } => {
                return Err(SshError::AuthRejected {
                    node: target.node.clone(),
                    user: target.user.clone(),
                    address: target.address.clone(),
                });
            }
        }
        Ok(handle)
    }

    /// Connects, retrying every [`SSH_POLL`] while the machine boots, until
    /// `deadline` has passed, so an sshd that starts listening is noticed
    /// within that (an exponential backoff overshot by up to its 5 s cap:
    /// seen in create timelines, a manager reached 6 s after booting whose
    /// sshd listened after 3). An attempt at a closed port costs one
    /// refused SYN; a login the node cut off is tried every
    /// [`LOGIN_RETRY_POLL`]. A changed host key or a refused key ends the
    /// wait at once: waiting will not fix those. At the deadline the error
    /// says what the node last answered.
    pub async fn wait_for(
        target: &SshTarget,
        key: Arc<PrivateKey>,
        recorded_host_key: Option<&str>,
        deadline: Duration,
    ) -> Result<SshSession, SshError> {
        Self::wait_with(target, key, recorded_host_key, deadline, HANDSHAKE_TIMEOUT).await
    }

    /// [`wait_for`](Self::wait_for), each try's handshake bounded by `handshake`.
    async fn wait_with(
        target: &SshTarget,
        key: Arc<PrivateKey>,
        recorded_host_key: Option<&str>,
        deadline: Duration,
        handshake: Duration,
    ) -> Result<SshSession, SshError> {
        let attempt = || {
            let key = key.clone();
            async move { Self::connect(target, key, recorded_host_key, handshake).await }
        };
        // The node's last answer: logged when it changes, named at the deadline.
        let mut last_answer: Option<String> = None;
        let retrying = attempt
            .retry(
                ConstantBuilder::default()
                    .with_delay(SSH_POLL)
                    .without_max_times(),
            )
            .when(SshError::is_transient)
            .adjust(|e, delay| match e {
                SshError::ClosedDuringLogin { .. } => Some(LOGIN_RETRY_POLL),
                _ => delay,
            })
            .notify(|e, _| {
                // Once per kind of failure, not forty times a second.
                let text = e.to_string();
                if last_answer.as_deref() != Some(text.as_str()) {
                    debug!(node = %target.node, error = %text, "SSH not ready");
                    last_answer = Some(text);
                }
            });
        let finished = tokio::time::timeout(deadline, retrying).await;
        finished.map_err(|_| SshError::Timeout {
            node: target.node.clone(),
            what: match &last_answer {
                // The node's own name leads the last answer already.
                Some(last) => format!(
                    "waiting for SSH on {} (last: {})",
                    target.address,
                    last.strip_prefix(&format!("node {}: ", target.node))
                        .unwrap_or(last)
                ),
                None => format!("waiting for SSH on {}", target.address),
            },
            after: deadline,
        })?
    }

    pub fn host_key(&self) -> &str {
        &self.host_key
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Runs `command`, feeding `stdin` and passing output chunks to
    /// `on_output` as they arrive; when it answers `Break`, the channel is
    /// closed (the command's output pipe with it) and 255 returned. Returns
    /// the exit status.
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<&mut (dyn tokio::io::AsyncRead + Send + Unpin)>,
        mut on_output: impl FnMut(&[u8]) -> std::ops::ControlFlow<()> + Send,
    ) -> Result<u32, SshError> {
        let protocol = |what: &'static str| {
            let node = self.node.clone();
            move |e: russh::Error| SshError::Protocol {
                node,
                what,
                message: e.to_string(),
            }
        };
        let _channel_turn = self.channels.acquire().await.expect("never closed");
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(protocol("channel open"))?;
        channel
            .exec(true, command)
            .await
            .map_err(protocol("exec"))?;
        if let Some(input) = stdin {
            channel.data(input).await.map_err(protocol("stdin"))?;
        }
        channel.eof().await.map_err(protocol("stdin"))?;
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            let flow = match msg {
                ChannelMsg::Data { ref data } => on_output(data),
                ChannelMsg::ExtendedData { ref data, .. } => on_output(data),
                ChannelMsg::ExitStatus { exit_status } => {
                    status = Some(exit_status);
                    std::ops::ControlFlow::Continue(())
                }
                ChannelMsg::ExitSignal { .. } => {
                    status = status.or(Some(255));
                    std::ops::ControlFlow::Continue(())
                }
                _ => std::ops::ControlFlow::Continue(()),
            };
            if flow.is_break() {
                let _ = channel.close().await;
                return Ok(255);
            }
        }
        status.ok_or_else(|| SshError::Protocol {
            node: self.node.clone(),
            what: "exec",
            message: "the connection closed before the command reported an exit status".into(),
        })
    }

    /// Whether the session has ended (see [`Transport::is_closed`](super::Transport::is_closed)).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key() -> Arc<PrivateKey> {
        Arc::new(PrivateKey::from(Ed25519Keypair::from_seed(&[7u8; 32])))
    }

    /// A frozen machine (`docker pause`, a hung VM) accepts the TCP
    /// connection in the kernel but never speaks: the handshake deadline
    /// must end the wait.
    #[tokio::test]
    async fn a_peer_that_accepts_but_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let target = SshTarget {
            node: "frozen".into(),
            address: "127.0.0.1".into(),
            port,
            user: "root".into(),
        };
        let started = std::time::Instant::now();
        let err = SshSession::connect(&target, key(), None, Duration::from_millis(500))
            .await
            .err()
            .expect("must not connect");
        assert!(matches!(err, SshError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        hold.abort();
    }

    #[tokio::test]
    async fn waiting_for_a_closed_port_ends_at_the_deadline() {
        // Bind then drop: nothing listens on this port now.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let target = SshTarget {
            node: "down".into(),
            address: "127.0.0.1".into(),
            port,
            user: "root".into(),
        };
        let err = SshSession::wait_for(&target, key(), None, Duration::from_secs(2))
            .await
            .err()
            .expect("must not connect");
        assert!(matches!(err, SshError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("node down"), "{err}");
    }

    /// What the sshd stand-in does with a login it does not let in.
    #[derive(Clone, Copy)]
    enum Turned {
        /// Accepts the key, then closes the connection: OpenSSH when PAM's
        /// account stage refuses the user (pam_nologin(8) while booting).
        Closed,
        /// Answers USERAUTH_FAILURE: the key is not authorized.
        Refused,
    }

    /// An sshd stand-in on loopback that turns away the first `turned_away`
    /// logins as `how` and lets the later ones in (`usize::MAX`: none).
    /// Returns its port and the number of logins tried.
    async fn sshd_turning_away(turned_away: usize, how: Turned) -> (u16, Arc<AtomicUsize>) {
        struct Stand {
            turned_away: usize,
            how: Turned,
            tried: Arc<AtomicUsize>,
        }
        impl russh::server::Handler for Stand {
            type Error = russh::Error;
            async fn auth_publickey(
                &mut self,
                _user: &str,
                _key: russh::server::VerifiedPublicKey<'_>,
            ) -> Result<russh::server::Auth, Self::Error> {
                if self.tried.fetch_add(1, Ordering::SeqCst) >= self.turned_away {
                    return Ok(russh::server::Auth::Accept);
                }
                match self.how {
                    Turned::Closed => Err(russh::Error::Disconnect),
                    Turned::Refused => Ok(russh::server::Auth::reject()),
                }
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = Arc::new(russh::server::Config {
            keys: vec![PrivateKey::from(Ed25519Keypair::from_seed(&[9u8; 32]))],
            auth_rejection_time: Duration::ZERO,
            auth_rejection_time_initial: Some(Duration::ZERO),
            ..Default::default()
        });
        let tried = Arc::new(AtomicUsize::new(0));
        let counter = tried.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let handler = Stand {
                    turned_away,
                    how,
                    tried: counter.clone(),
                };
                let config = config.clone();
                tokio::spawn(async move {
                    if let Ok(session) = russh::server::run_stream(config, socket, handler).await {
                        let _ = session.await;
                    }
                });
            }
        });
        (port, tried)
    }

    fn booting(port: u16) -> SshTarget {
        SshTarget {
            node: "booting".into(),
            address: "127.0.0.1".into(),
            port,
            user: "debian".into(),
        }
    }

    #[tokio::test]
    async fn a_login_cut_off_while_the_machine_boots_is_tried_again() {
        let (port, tried) = sshd_turning_away(3, Turned::Closed).await;
        let session = SshSession::wait_for(&booting(port), key(), None, Duration::from_secs(30))
            .await
            .expect("let in once the machine allows logins");
        assert_eq!(tried.load(Ordering::SeqCst), 4);
        assert!(!session.host_key().is_empty());
        session.close().await;
    }

    #[tokio::test]
    async fn a_refused_key_ends_the_wait_at_once() {
        let (port, tried) = sshd_turning_away(usize::MAX, Turned::Refused).await;
        let err = SshSession::wait_for(&booting(port), key(), None, Duration::from_secs(30))
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, SshError::AuthRejected { .. }), "{err}");
        assert_eq!(tried.load(Ordering::SeqCst), 1);
        let text = err.to_string();
        assert!(
            text.contains("debian@127.0.0.1 refused the cluster key")
                && text.contains("node.ssh_user"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn logins_cut_off_until_the_deadline_say_so_and_are_not_hammered() {
        let (port, tried) = sshd_turning_away(usize::MAX, Turned::Closed).await;
        let err = SshSession::wait_for(&booting(port), key(), None, Duration::from_millis(1500))
            .await
            .err()
            .expect("cut off until the deadline");
        assert!(matches!(err, SshError::Timeout { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("node booting: waiting for SSH on 127.0.0.1 (last: 127.0.0.1 closed the connection while logging in debian")
                && text.contains("pam_nologin"),
            "{text}"
        );
        // Every LOGIN_RETRY_POLL (200 ms), not every SSH_POLL (25 ms).
        let tries = tried.load(Ordering::SeqCst);
        assert!((3..=8).contains(&tries), "{tries} logins in 1.5 s");
    }

    /// sshd that takes the first connections and says nothing (a machine
    /// still making its host keys, or short of CPU): each stalled try ends at
    /// its handshake timeout and the next one gets in.
    #[tokio::test]
    async fn a_handshake_that_stalls_is_tried_again_until_the_deadline() {
        let (port, tried) = sshd_turning_away(0, Turned::Closed).await;
        // A front that holds the first two connections silent, then passes
        // the others to the stand-in.
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_port = front.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = front.accept().await {
                if held.len() < 2 {
                    held.push(socket);
                    continue;
                }
                tokio::spawn(async move {
                    let mut sshd = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut socket, &mut sshd).await;
                });
            }
        });
        let session = SshSession::wait_with(
            &booting(front_port),
            key(),
            None,
            Duration::from_secs(30),
            Duration::from_millis(300),
        )
        .await
        .expect("in once sshd answers");
        assert_eq!(
            tried.load(Ordering::SeqCst),
            1,
            "one login, after two stalls"
        );
        session.close().await;
    }

    #[test]
    fn a_recorded_key_that_cannot_be_read_is_an_error() {
        let target = SshTarget {
            node: "n".into(),
            address: "127.0.0.1".into(),
            port: 1,
            user: "root".into(),
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let err = rt
            .block_on(SshSession::connect(
                &target,
                key(),
                Some("not a key"),
                Duration::from_secs(1),
            ))
            .err()
            .unwrap();
        assert!(matches!(err, SshError::BadRecordedKey { .. }), "{err}");
    }
}
