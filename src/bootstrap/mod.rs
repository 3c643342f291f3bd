//! The bootstrap stage: reaching a machine over SSH and running templated,
//! idempotent shell scripts on it.
//!
//! - [`keys`]: the cluster's ed25519 key pair.
//! - [`ssh`]: russh sessions with host keys recorded on first contact and
//!   verified afterwards, and a bounded wait for a booting machine.
//! - [`transport`]: the [`Connector`] and [`Transport`] seams SSH sits behind.
//! - [`ssh_slots`]: the process-wide cap on open SSH connections.
//! - [`scripts`]: minijinja templates (built in, or from an override
//!   directory) where every value reaches the shell quoted.
//! - [`shell`]: runs a rendered script on a node, logging its output to the
//!   node's log file and reporting failures with the last lines of output.
//! - [`archive_output`]: a backup script's archive, decoded as it arrives.

pub mod archive_output;
pub mod client_files;
pub mod keys;
pub mod scripts;
pub mod shell;
pub mod ssh;
pub mod ssh_slots;
pub mod transport;

pub use archive_output::ArchiveInfo;
pub use keys::ClusterKey;
pub use scripts::{ScriptError, Scripts};
pub use shell::{NodeShell, Output, ShellError};
pub use ssh::{SshError, SshSession, SshTarget};
pub use transport::{Connector, SshConnector, Transport};
