//! Files that let OpenSSH (and the docker CLI through it) reach the nodes
//! with the cluster key and the host keys recorded on first contact.

use std::fmt::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::bootstrap::scripts::shell_quote;
use crate::state::{
    create_private_dir, write_private_file, NodeRecord, StatePaths, Store, StoreError, KEY_FILE,
};

/// Copies the cluster's files the store keeps (its key, a kubeconfig) into
/// the cluster's local directory, where OpenSSH and the COE's clients read
/// them. With SQLite they are there already: a copy is written only where
/// it differs, so with etcd a user's local copy follows the shared one.
pub fn copy_cluster_files(
    store: &dyn Store,
    paths: &StatePaths,
    cluster: &str,
) -> Result<(), StoreError> {
    // What clients read; not the join state, which only the controller does.
    for name in [KEY_FILE, crate::state::CLIENT_CONFIG_FILE] {
        let Some(bytes) = store.file(cluster, name)? else {
            continue;
        };
        let path = paths.cluster_dir(cluster).join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            write_private_file(&path, &bytes).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Writes the cluster's `ssh_config` and `known_hosts` from its node records.
pub fn write_client_files(
    paths: &StatePaths,
    cluster: &str,
    user: &str,
    nodes: &[NodeRecord],
) -> std::io::Result<()> {
    let key = paths.private_key(cluster);
    let known = paths.known_hosts(cluster);
    let mut config =
        format!("# Written by provision for cluster {cluster}; rewritten on every change.\n");
    let mut hosts = String::new();
    for n in nodes {
        let Some(address) = n.addresses.as_ref().map(|a| &a.ssh) else {
            continue;
        };
        let _ = write!(
            config,
            "\nHost {name}\n  HostName {address}\n  User {user}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {known}\n  HostKeyAlias {name}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
            name = n.name,
            key = key.display(),
            known = known.display(),
        );
        if let Some(host_key) = &n.host_key {
            let _ = writeln!(hosts, "{} {}", n.name, host_key.trim());
        }
    }
    write_private_file(&paths.ssh_config(cluster), config.as_bytes())?;
    write_private_file(&known, hosts.as_bytes())
}

/// Writes the cluster's `ssh` wrapper into [`StatePaths::client_bin`]: it
/// runs `real_ssh` with a configuration that reads the cluster's
/// `ssh_config` first (its nodes by name, its key, the host keys recorded on
/// first contact, `StrictHostKeyChecking yes`), then the user's and the
/// system's as ssh always would, so any other host works as before. The
/// docker CLI runs `ssh` from PATH for an `ssh://` DOCKER_HOST; with this
/// directory first on PATH it needs no edit of `~/.ssh/config`.
pub fn write_ssh_wrapper(
    paths: &StatePaths,
    cluster: &str,
    real_ssh: &Path,
) -> std::io::Result<()> {
    let bin = paths.client_bin(cluster);
    create_private_dir(&bin)?;
    let config = bin.join("ssh_config");
    let text = format!(
        "# Written by provision for cluster {cluster}: read by its ssh wrapper.\n\
         Include \"{cluster_config}\"\n\
         # Any other host: as the user's and the system's configuration say.\n\
         Match all\n\
         Include ~/.ssh/config\n\
         Include /etc/ssh/ssh_config\n",
        cluster_config = paths.ssh_config(cluster).display(),
    );
    write_private_file(&config, text.as_bytes())?;
    let wrapper = format!(
        "#!/bin/sh\n\
         # Written by provision for cluster {cluster}: `provision env {cluster}` puts this\n\
         # directory first on PATH, so the docker CLI reaches the nodes with the cluster's\n\
         # key and recorded host keys. `provision env --unset` takes it off again.\n\
         exec {ssh} -F {config} \"$@\"\n",
        ssh = shell_quote(&real_ssh.display().to_string()),
        config = shell_quote(&config.display().to_string()),
    );
    let path = bin.join("ssh");
    write_private_file(&path, wrapper.as_bytes())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;
    use provision_provider::{Addresses, Role};

    #[test]
    fn config_pins_key_and_host_key() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::resolve(Some(dir.path().join("state.db"))).unwrap();
        let mut n = NodeRecord::new("web", "web-manager-1", Role::Manager, 1);
        n.addresses = Some(Addresses {
            private: "10.1.0.2".into(),
            public: Some("198.51.100.2".into()),
            ssh: "198.51.100.2".into(),
        });
        n.host_key = Some("ssh-ed25519 AAAAC3Nza".into());
        write_client_files(&paths, "web", "root", &[n]).unwrap();
        let config = std::fs::read_to_string(paths.ssh_config("web")).unwrap();
        assert!(config.contains("Host web-manager-1\n  HostName 198.51.100.2"));
        assert!(config.contains("StrictHostKeyChecking yes"));
        let known = std::fs::read_to_string(paths.known_hosts("web")).unwrap();
        assert_eq!(known, "web-manager-1 ssh-ed25519 AAAAC3Nza\n");
    }
}
