//! `provision env`: shell code that points the COE's client at the cluster
//! (`eval "$(provision env web)"`), and `--unset` to undo it.
//!
//! Swarm's client reaches a manager over SSH (`DOCKER_HOST=ssh://…`): the
//! exports put the cluster's `ssh` wrapper first on PATH, which carries the
//! cluster's key and recorded host keys, so nothing in `~/.ssh/config`
//! needs an edit. Kubernetes gets `KUBECONFIG`, Mesos its master and
//! Marathon URLs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use provision_provider::Role;

use super::session;
use super::Global;
use crate::bootstrap::client_files::write_ssh_wrapper;
use crate::bootstrap::scripts::shell_quote;
use crate::orchestrator;
use crate::state::{NodePhase, StatePaths};

pub fn run(global: &Global, name: Option<&str>, unset: bool) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if unset {
        let paths =
            StatePaths::for_location(&global.location()?).context("finding the state directory")?;
        print!("{}", unset_lines(&paths, &path));
        return Ok(());
    }
    let name = name.ok_or_else(|| anyhow!("give the cluster's name (or --unset)"))?;
    let session = session::open(global)?;
    let record = session.cluster(name)?;
    let nodes = session.store.nodes(name)?;
    session.write_client_files(&record, &nodes)?;
    let Some(manager) = nodes
        .iter()
        .filter(|n| n.role == Role::Manager && n.addresses.is_some())
        .min_by_key(|n| (n.phase != NodePhase::Ready, n.index))
    else {
        bail!("cluster {name} has no manager with an address yet: run `provision {} --name {name}` to finish it", record.spec.coe);
    };
    let cluster_dir = session.paths.cluster_dir(name);
    // The user's clients reach the cluster where provision does.
    let address = manager
        .addresses
        .as_ref()
        .map(|a| a.ssh.as_str())
        .unwrap_or_default();
    let env = orchestrator::for_spec(&record.spec).client_env(&manager.name, address, &cluster_dir);
    let mut lines = Vec::new();
    if env.iter().any(|(_, value)| value.starts_with("ssh://")) {
        let real_ssh = real_ssh(&session.paths, &path).ok_or_else(|| {
            anyhow!("no `ssh` on PATH: the docker CLI reaches the cluster with OpenSSH's client (apt-get install openssh-client)")
        })?;
        write_ssh_wrapper(&session.paths, name, &real_ssh)
            .context("writing the cluster's ssh wrapper")?;
        lines.push(format!(
            "# Cluster {name}: docker reaches manager {} over SSH with the cluster's key and recorded host keys.",
            manager.name
        ));
        let bin = session.paths.client_bin(name);
        lines.push(export("PATH", &path_with(&session.paths, &path, &bin)));
    }
    for (key, value) in &env {
        lines.push(export(key, value));
    }
    lines.push(format!(
        "# Run: eval \"$(provision{} env {name})\"; undo: eval \"$(provision{} env --unset)\"",
        state_flag(global),
        state_flag(global)
    ));
    println!("{}", lines.join("\n"));
    Ok(())
}

fn export(key: &str, value: &str) -> String {
    format!("export {key}={}", shell_quote(value))
}

fn state_flag(global: &Global) -> String {
    global
        .state
        .as_ref()
        .map(|p| format!(" --state {}", shell_quote(p)))
        .unwrap_or_default()
}

/// `PATH` without any cluster's client directory.
fn entries_without_clients(paths: &StatePaths, path: &OsString) -> Vec<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !paths.is_client_bin(dir))
        .collect()
}

fn joined(entries: Vec<PathBuf>) -> String {
    std::env::join_paths(entries)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `PATH` with `bin` first and no other cluster's client directory (an
/// `env` for another cluster in the same shell replaces it).
fn path_with(paths: &StatePaths, path: &OsString, bin: &Path) -> String {
    let mut entries = vec![bin.to_path_buf()];
    entries.extend(entries_without_clients(paths, path));
    joined(entries)
}

/// The `ssh` the wrapper runs: the first on PATH that is not a wrapper.
fn real_ssh(paths: &StatePaths, path: &OsString) -> Option<PathBuf> {
    entries_without_clients(paths, path)
        .into_iter()
        .map(|dir| dir.join("ssh"))
        .find(|candidate| candidate.is_file())
}

/// Shell code that undoes every `env`: the variables unset, the cluster
/// client directories taken off PATH.
fn unset_lines(paths: &StatePaths, path: &OsString) -> String {
    let mut out = format!("unset {}\n", crate::profile::client_env_keys().join(" "));
    let kept = entries_without_clients(paths, path);
    if kept.len() != std::env::split_paths(path).count() {
        out.push_str(&export("PATH", &joined(kept)));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ClusterSpec, Coe};

    fn paths() -> StatePaths {
        StatePaths::resolve(Some("/s/state.db".into())).unwrap()
    }

    #[test]
    fn the_path_gets_one_client_directory_first_and_unset_takes_it_off() {
        let p = paths();
        let path = OsString::from("/s/clusters/old/bin:/usr/bin:/bin");
        let with = path_with(&p, &path, &p.client_bin("web"));
        assert_eq!(with, "/s/clusters/web/bin:/usr/bin:/bin");
        assert_eq!(
            unset_lines(&p, &OsString::from(&with)),
            "unset DOCKER_HOST KUBECONFIG MESOS_MASTER_URL MARATHON_URL\nexport PATH=/usr/bin:/bin\n"
        );
        // Nothing to take off: PATH is left alone.
        assert_eq!(
            unset_lines(&p, &OsString::from("/usr/bin")),
            "unset DOCKER_HOST KUBECONFIG MESOS_MASTER_URL MARATHON_URL\n"
        );
        // A directory of the same name elsewhere is not ours.
        assert!(!p.is_client_bin(Path::new("/other/clusters/web/bin")));
    }

    /// `env --unset` unsets what the profiles declare: each orchestrator's
    /// client environment is what its profile says it is.
    #[test]
    fn each_client_environment_is_the_one_its_profile_declares() {
        for &coe in <Coe as clap::ValueEnum>::value_variants() {
            let mut spec = ClusterSpec::example("web", 1, 1);
            spec.coe = coe;
            let env = orchestrator::for_spec(&spec).client_env("m", "10.0.0.2", Path::new("/d"));
            let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, coe.profile().client_env_keys, "{coe}");
        }
    }
}
