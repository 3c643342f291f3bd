//! `provision ssh`: OpenSSH to a node with the cluster key and pinned host key.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::session;
use super::Global;
use crate::bootstrap::scripts::shell_quote;

pub fn run(global: &Global, name: &str, node: &str, command: &[String]) -> Result<()> {
    let session = session::open(global)?;
    let record = session.cluster(name)?;
    let nodes = session.store.nodes(name)?;
    let Some(n) = nodes.iter().find(|n| n.name == node) else {
        let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "cluster {name} has no node {node:?}; its nodes: {}",
            known.join(", ")
        );
    };
    if n.addresses.is_none() {
        bail!("node {node} has no address yet: run `provision swarm --name {name}` to finish it");
    }
    if n.host_key.is_none() {
        bail!("node {node}'s host key was never recorded, so it cannot be verified: run `provision swarm --name {name}` first");
    }
    session.write_client_files(&record, &nodes)?;
    let mut ssh = Command::new("ssh");
    ssh.arg("-F").arg(session.paths.ssh_config(name));
    if command.is_empty() {
        ssh.arg("-t");
    }
    ssh.arg(node);
    if !command.is_empty() {
        // ssh joins its arguments into one line for the remote shell: quote
        // each so an argument with spaces stays one argument.
        let line: Vec<String> = command.iter().map(|a| shell_quote(a)).collect();
        ssh.arg("--").arg(line.join(" "));
    }
    let err = ssh.exec();
    if err.kind() == std::io::ErrorKind::NotFound {
        bail!("the `ssh` client is not installed: apt-get install openssh-client");
    }
    Err(err).context("running ssh")
}
