//! Bootstrap script templates.
//!
//! Scripts are minijinja templates shipped inside the binary
//! (`scripts/bootstrap/`), or read from an override directory with the same
//! layout (`--scripts-dir`, `PROVISION_SCRIPTS_DIR`). Every value printed
//! into a script is shell-quoted by the environment's formatter, and `| sh`
//! says so explicitly; there is no way to print a value unquoted. Secrets
//! never pass through templates: scripts read them from standard input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::value::Value;
use minijinja::{Environment, UndefinedBehavior};
use provision_provider::Addresses;

use crate::state::{ClusterRecord, NodeRecord};

/// Names and sources of the built-in script templates: every
/// `scripts/bootstrap/**/*.j2`, named by its path there without `.j2`
/// (the table is made by `build.rs`).
pub const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_scripts.rs"));

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("script template {name} not found: `provision templates list` shows the known ones")]
    NotFound { name: String },
    #[error("script template {name} ({origin}): {message}")]
    Template {
        name: String,
        origin: String,
        message: String,
    },
}

/// The script templates in use: built-ins, each replaceable by a file of the
/// same name under the override directory.
pub struct Scripts {
    env: Environment<'static>,
    override_dir: Option<PathBuf>,
}

/// The `cluster` and `node` values every script sees, for `node` at
/// `addresses`. Scripts get the addresses by purpose, so a public (NAT)
/// address can never be mistaken for one the node can bind to:
/// `node.private_address` for everything inside the cluster,
/// `node.ssh_address` for what reaches the node from outside, and
/// `node.public_address` (empty when it has none).
pub fn script_context(
    cluster: &ClusterRecord,
    node: &NodeRecord,
    addresses: &Addresses,
) -> BTreeMap<String, Value> {
    BTreeMap::from([
        (
            "cluster".to_string(),
            Value::from_serialize({
                let mut values = cluster.spec.settings_for_scripts();
                values.insert("name".into(), cluster.spec.name.clone().into());
                values.insert("id".into(), cluster.id.clone().into());
                values.insert("coe".into(), cluster.spec.coe.as_str().into());
                values.insert("managers".into(), cluster.spec.managers.into());
                values.insert(
                    "engine_version".into(),
                    cluster
                        .spec
                        .engine_version
                        .clone()
                        .unwrap_or_default()
                        .into(),
                );
                values
            }),
        ),
        (
            "node".to_string(),
            Value::from_serialize(serde_json::json!({
                "name": node.name,
                "role": node.role.as_str(),
                "index": node.index,
                "private_address": addresses.private,
                "public_address": addresses.public.clone().unwrap_or_default(),
                "ssh_address": addresses.ssh,
                "pool": node.group_label(),
                "zone": node.zone.clone().unwrap_or_default(),
                "labels": node_labels(cluster, node),
                "taints": node_taints(cluster, node),
            })),
        ),
    ])
}

/// The node's labels as `key=value` words: its pool's, and
/// `provision.pool` (its group); its zone is `node.zone`, each
/// orchestrator naming it its own way.
fn node_labels(cluster: &ClusterRecord, node: &NodeRecord) -> Vec<String> {
    match cluster.spec.group(node.role, node.pool.as_deref()) {
        Some(g) => g
            .node_labels()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        None => vec![format!("provision.pool={}", node.group_label())],
    }
}

/// The labels a member is given through a manager (Swarm's node
/// labels): the node's, and `provision.zone` when it has a zone.
pub fn member_labels(cluster: &ClusterRecord, node: &NodeRecord) -> Vec<String> {
    let mut labels = node_labels(cluster, node);
    if let Some(zone) = &node.zone {
        labels.push(format!("provision.zone={zone}"));
    }
    labels
}

/// The node's Kubernetes taints: `{key, value, effect}` each.
fn node_taints(cluster: &ClusterRecord, node: &NodeRecord) -> Vec<serde_json::Value> {
    cluster
        .spec
        .group(node.role, node.pool.as_deref())
        .map(|g| g.node_taints())
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value, effect)| serde_json::json!({"key": key, "value": value, "effect": effect}))
        .collect()
}

/// POSIX shell quoting: the value as one word, whatever it holds.
pub fn shell_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b))
    {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn value_text(value: &Value) -> String {
    if value.is_none() || value.is_undefined() {
        String::new()
    } else if let Some(s) = value.as_str() {
        s.to_string()
    } else {
        value.to_string()
    }
}

impl Scripts {
    pub fn new(override_dir: Option<&Path>) -> Scripts {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        // `sh`: quote for the shell and mark safe, so the formatter below
        // does not quote twice.
        env.add_filter("sh", |value: Value| {
            Value::from_safe_string(shell_quote(&value_text(&value)))
        });
        // `yaml`: a double-quoted YAML string, for a value inside a
        // heredoc's YAML (`yes` stays a string). Inside an unquoted
        // heredoc the shell still expands `$`, backquotes and
        // backslashes: a value holding one is refused, not written.
        env.add_filter("yaml", |value: Value| {
            let text = value_text(&value);
            if text
                .chars()
                .any(|c| matches!(c, '$' | '`' | '\\' | '"') || c.is_control())
            {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("{text:?} holds a character a heredoc's YAML cannot carry as it is"),
                ));
            }
            Ok(Value::from_safe_string(format!("\"{text}\"")))
        });
        env.set_formatter(|out, _state, value| {
            if value.is_safe() {
                out.write_str(&value_text(value))?;
            } else {
                out.write_str(&shell_quote(&value_text(value)))?;
            }
            Ok(())
        });
        // `{% include "docker/install.sh" %}` finds the same sources as
        // render: the override directory first, then the built-in ones.
        let dir = override_dir.map(Path::to_path_buf);
        env.set_loader(move |name| match source_of(dir.as_deref(), name) {
            Ok((text, _)) => Ok(Some(text)),
            Err(ScriptError::NotFound { .. }) => Ok(None),
            Err(e) => Err(minijinja::Error::new(
                minijinja::ErrorKind::TemplateNotFound,
                e.to_string(),
            )),
        });
        Scripts {
            env,
            override_dir: override_dir.map(Path::to_path_buf),
        }
    }

    /// Every known script name, built-in first, then extra override files.
    /// The built-in scripts, without the partials (a file name starting
    /// with `_`: a piece other scripts include, never run alone).
    pub fn names(&self) -> Vec<String> {
        BUILTIN
            .iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| !n.rsplit('/').next().unwrap_or(n).starts_with('_'))
            .collect()
    }

    /// The template source and where it came from.
    pub fn source(&self, name: &str) -> Result<(String, String), ScriptError> {
        source_of(self.override_dir.as_deref(), name)
    }

    /// Renders `name` with `context` (any serialisable value).
    pub fn render(&self, name: &str, context: &Value) -> Result<String, ScriptError> {
        let (source, origin) = self.source(name)?;
        let fail = |e: minijinja::Error| ScriptError::Template {
            name: name.to_string(),
            origin: origin.clone(),
            message: match e.line() {
                Some(line) => format!("line {line}: {e}"),
                None => e.to_string(),
            },
        };
        let template = self.env.template_from_str(&source).map_err(fail)?;
        template.render(context).map_err(fail)
    }
}

/// A script's template source and where it came from: the override
/// directory when it has the file, else the built-in one.
fn source_of(override_dir: Option<&Path>, name: &str) -> Result<(String, String), ScriptError> {
    if let Some(dir) = override_dir {
        let path = dir.join(format!("{name}.j2"));
        if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| ScriptError::Template {
                name: name.to_string(),
                origin: path.display().to_string(),
                message: e.to_string(),
            })?;
            return Ok((text, path.display().to_string()));
        }
    }
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| (text.to_string(), "built-in".to_string()))
        .ok_or_else(|| ScriptError::NotFound {
            name: name.to_string(),
        })
}

/// Runs `shellcheck` on a rendered script; `Err` holds its findings. Used by
/// the tests of the built-in scripts and of the example overrides.
#[doc(hidden)]
pub fn shellcheck(text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("shellcheck")
        .args(["--shell=bash", "--severity=style", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run shellcheck ({e}): apt-get install shellcheck"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn quoting_makes_one_word() {
        assert_eq!(shell_quote("10.0.0.2"), "10.0.0.2");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn every_value_is_quoted_with_or_without_the_filter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/x.sh.j2"), "a={{ v }} b={{ v | sh }}\n").unwrap();
        let scripts = Scripts::new(Some(dir.path()));
        let out = scripts
            .render("t/x.sh", &context! { v => "x; reboot" })
            .unwrap();
        assert_eq!(out, "a='x; reboot' b='x; reboot'\n");
    }

    #[test]
    fn undefined_values_are_errors_not_empty_strings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/x.sh.j2"), "echo {{ missing }}\n").unwrap();
        let scripts = Scripts::new(Some(dir.path()));
        let err = scripts
            .render("t/x.sh", &context! {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("t/x.sh"), "{err}");
    }

    #[test]
    fn override_dir_replaces_a_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("swarm")).unwrap();
        std::fs::write(dir.path().join("swarm/probe.sh.j2"), "echo custom\n").unwrap();
        let scripts = Scripts::new(Some(dir.path()));
        let (text, origin) = scripts.source("swarm/probe.sh").unwrap();
        assert_eq!(text, "echo custom\n");
        assert!(origin.ends_with("probe.sh.j2"));
        assert_eq!(scripts.source("swarm/init.sh").unwrap().1, "built-in");
    }

    /// The context every script sees, plus the extra values some take.
    fn sample_context() -> Value {
        context_for("worker", false)
    }

    fn context_for(role: &str, control_plane: bool) -> Value {
        context_for_api(role, control_plane, "kubeadm.k8s.io/v1beta4")
    }

    fn context_for_api(role: &str, control_plane: bool, kubeadm_api: &str) -> Value {
        context! {
            cluster => context! {
                name => "web", id => "0123abcd", coe => "swarm", managers => 3,
                engine_version => "20.10.*",
                kubernetes => context! {
                    version => "1.31", pod_cidr => "10.244.0.0/16", cni => "flannel",
                    kubeadm_api_version => kubeadm_api,
                },
                mesos => context! {
                    zookeeper_image => "zookeeper:3.9", master_image => "mesosphere/mesos-master:1.7.1",
                    agent_image => "mesosphere/mesos-slave:1.7.1", marathon_image => "mesosphere/marathon:v1.6.322",
                    marathon_libprocess_port => 15101,
                },
            },
            node => context! {
                name => "web-worker-1", role => role, index => 1,
                private_address => "10.0.0.3", public_address => PUBLIC, ssh_address => PUBLIC,
                pool => "gpu", zone => "az-1",
                labels => vec!["tier=web", "provision.pool=gpu"],
                taints => vec![context! { key => "gpu", value => "yes", effect => "NoSchedule" }],
            },
            labels => vec!["tier=web", "provision.pool=gpu", "provision.zone=az-1"],
            manager_address => "10.0.0.2",
            endpoint => "10.0.0.2",
            cni_manifest => "https://github.com/flannel-io/flannel/releases/download/v0.26.1/kube-flannel.yml",
            member_id => "abc123",
            member_name => "web-worker-1",
            member_control_plane => control_plane,
            restoring => control_plane,
            joining => control_plane,
            wait_seconds => 120,
            via => "10.0.0.2",
            member_host => "10.0.0.7",
            member_master => control_plane,
            agent_id => "a1b2-S0",
            schedule => r#"{"windows":[]}"#,
        }
    }

    #[test]
    fn every_builtin_script_renders_and_passes_shellcheck() {
        let scripts = Scripts::new(None);
        let contexts = [context_for("worker", false), context_for("manager", true)];
        for (name, ctx) in scripts
            .names()
            .into_iter()
            .flat_map(|n| contexts.iter().map(move |c| (n.clone(), c)))
        {
            let text = scripts.render(&name, ctx).unwrap();
            assert!(text.starts_with("#!/usr/bin/env bash\n"), "{name}");
            assert!(
                text.contains("set -euo pipefail") || text.contains("set -uo pipefail"),
                "{name}"
            );
            if let Err(findings) = shellcheck(&text) {
                panic!("{name} fails shellcheck:\n{findings}\n--- rendered:\n{text}");
            }
        }
    }

    /// A pool's labels and taints reach the kubelet as it registers, in
    /// the form each kubeadm API version takes; Swarm's through a manager.
    #[test]
    fn labels_and_taints_are_written_as_each_kubeadm_api_version_takes_them() {
        let scripts = Scripts::new(None);
        let join = scripts
            .render("kubernetes/join.sh", &context_for("worker", false))
            .unwrap();
        assert!(
            join.contains(
                "  kubeletExtraArgs:\n    - name: node-labels\n      value: \
                 \"tier=web,provision.pool=gpu,topology.kubernetes.io/zone=az-1\"\n  taints:\n    \
                 - key: \"gpu\"\n      value: \"yes\"\n      effect: \"NoSchedule\"\n"
            ),
            "{join}"
        );
        let older = context_for_api("worker", false, "kubeadm.k8s.io/v1beta3");
        let join = scripts.render("kubernetes/join.sh", &older).unwrap();
        assert!(
            join.contains(
                "  kubeletExtraArgs:\n    node-labels: \
                 \"tier=web,provision.pool=gpu,topology.kubernetes.io/zone=az-1\"\n"
            ),
            "{join}"
        );
        let swarm = scripts
            .render("swarm/labels.sh", &context_for("manager", true))
            .unwrap();
        assert!(
            swarm.contains(
                "docker node update --label-add tier=web --label-add provision.pool=gpu \
                 --label-add provision.zone=az-1 abc123 2>&1 >/dev/null"
            ),
            "{swarm}"
        );
    }

    /// A value put into a comment line runs as code once it holds a
    /// newline (a worker's hostname, which Swarm reports as the node set
    /// it): no built-in script puts any value into a comment.
    #[test]
    fn no_builtin_script_puts_a_value_into_a_comment() {
        for (name, text) in BUILTIN {
            for (n, line) in text.lines().enumerate() {
                let comment = line.trim_start().starts_with('#') && !line.starts_with("#!");
                assert!(
                    !(comment && (line.contains("{{") || line.contains("{%"))),
                    "{name}:{}: {line}",
                    n + 1
                );
            }
        }
    }

    const PUBLIC: &str = "198.51.100.23";

    /// A public address is NAT, on no interface of the node: no script may
    /// bind to, listen on or advertise it. Kubernetes only names it in the
    /// API server's certificate, for clients outside. A restore's etcd
    /// member is at the private address.
    #[test]
    fn no_script_binds_or_advertises_the_public_address() {
        let scripts = Scripts::new(None);
        for role in [("worker", false), ("manager", true)] {
            let ctx = context_for(role.0, role.1);
            for name in scripts.names() {
                let text = scripts.render(&name, &ctx).unwrap();
                let uses: Vec<&str> = text.lines().filter(|l| l.contains(PUBLIC)).collect();
                // restore.sh includes init.sh.
                let allowed = matches!(
                    name.as_str(),
                    "kubernetes/init.sh" | "kubernetes/restore.sh"
                ) && uses == ["  - 198.51.100.23"];
                assert!(
                    uses.is_empty() || allowed,
                    "{name} uses the public address: {uses:?}"
                );
            }
        }
        let init = scripts
            .render("kubernetes/init.sh", &context_for("manager", true))
            .unwrap();
        assert!(init.contains("advertiseAddress: 10.0.0.3"), "{init}");
        let restore = scripts
            .render("kubernetes/restore.sh", &context_for("manager", true))
            .unwrap();
        assert!(
            restore.contains("--initial-advertise-peer-urls https://10.0.0.3:2380")
                && restore.contains("--ignore-preflight-errors=DirAvailable--var-lib-etcd"),
            "{restore}"
        );
        assert!(
            init.contains("certSANs:\n  - 198.51.100.23\nnetworking:"),
            "{init}"
        );
        let swarm = scripts
            .render("swarm/init.sh", &context_for("manager", true))
            .unwrap();
        assert!(swarm.contains("--advertise-addr 10.0.0.3 --listen-addr 10.0.0.3:2377"));
    }

    /// Runs mesos/agent.sh with `stat` reporting `fs_type` for
    /// /sys/fs/cgroup, a master that lists the agent at once and a docker
    /// with no containers; the `docker run` lines it made.
    fn agent_runs_on(fs_type: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("docker.calls");
        let text = Scripts::new(None)
            .render("mesos/agent.sh", &sample_context())
            .unwrap();
        let docker = format!(
            "case \"$1 $2\" in\n\
             'container inspect') case \"$*\" in *State.Status*) echo 'running false 0 0';; *RestartCount*) echo 0;; *) exit 1;; esac;;\n\
             'run -d') echo \"$*\" >>{};;\n\
             esac",
            calls.display()
        );
        let curl = "case \"$*\" in\n\
             */master/state*) echo '{\"flags\": {\"zk\": \"zk://10.0.0.2:2181/mesos\"}}';;\n\
             */master/slaves*) echo '{\"slaves\": [{\"hostname\": \"10.0.0.3\"}]}';;\n\
             esac";
        let out = run_with_fakes(
            dir.path(),
            &[
                ("stat", format!("echo {fs_type}")),
                ("docker", docker),
                ("curl", curl.to_string()),
            ],
            &text,
        );
        assert!(out.status.success(), "{}", output_text(&out));
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn output_text(out: &std::process::Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// On a cgroup v2 host Mesos 1.7's default, the Linux launcher, cannot
    /// start (src/slave/flags.cpp, linux_launcher.cpp): the agent runs with
    /// the posix launcher and isolators there, and with Mesos's own choice
    /// on cgroup v1. Either way executors get Marathon's 5 minutes to
    /// register (an image pull counts).
    #[test]
    fn the_mesos_agent_runs_with_the_posix_launcher_on_cgroup_v2() {
        let v2 = agent_runs_on("cgroup2fs");
        assert_eq!(v2.len(), 1, "{v2:?}");
        assert!(
            v2[0].contains("--launcher=posix --isolation=posix/cpu,posix/mem"),
            "{v2:?}"
        );
        let v1 = agent_runs_on("tmpfs");
        assert_eq!(v1.len(), 1, "{v1:?}");
        assert!(!v1[0].contains("--launcher"), "{v1:?}");
        for run in v1.iter().chain(&v2) {
            assert!(
                run.contains("--executor_registration_timeout=5mins"),
                "{run}"
            );
            // A new agent gets its pool's attributes (no agent ran before).
            assert!(
                run.contains("--attributes=tier:web;provision.pool:gpu;zone:az-1"),
                "{run}"
            );
        }
    }

    /// A Mesos step waits for what it started to answer; a container that
    /// restarts meanwhile fails the step at once, with its last log lines.
    #[test]
    fn a_restarting_container_fails_the_wait_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let checks = Scripts::new(None)
            .render("mesos/checks.sh", &sample_context())
            .unwrap();
        // docker: the container restarts (RestartCount 3, restarting), and
        // its log says why.
        let docker = "case \"$1 $2\" in\n\
             'container inspect') case \"$*\" in *State.Status*) echo 'restarting true 3 1';; *) echo 0;; esac;;\n\
             'logs --tail') echo 'nc: bind: Address already in use';;\n\
             esac";
        let started = std::time::Instant::now();
        let out = run_with_fakes(
            dir.path(),
            &[("docker", docker.to_string())],
            &format!(
                "{checks}\nset -e\nwait_for 'Marathon answering' 30 marathon false\necho unreachable\n"
            ),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("unreachable"));
        assert!(
            err.contains("Marathon answering: restarting")
                && err.contains("Address already in use"),
            "{err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "did not fail at once"
        );
    }

    /// apt-get refused for a lock another package manager holds (first
    /// boot, unattended-upgrades) is waited for and retried; any other
    /// failure fails at once with apt's own words.
    #[test]
    fn apt_waits_for_a_held_lock_and_fails_at_once_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let packages = Scripts::new(None)
            .render("common/packages.sh", &sample_context())
            .unwrap();
        let tries = dir.path().join("tries");
        let apt = format!(
            "echo x >>{t}\n\
             if [ \"$(wc -l <{t})\" -lt 3 ]; then\n\
               echo 'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (unattended-upgr)' >&2; exit 100\n\
             fi\n\
             case \"$*\" in *nosuchpackage*) echo 'E: Unable to locate package nosuchpackage' >&2; exit 100;; esac",
            t = tries.display()
        );
        let out = run_with_fakes(
            dir.path(),
            &[("apt-get", apt.clone())],
            &format!("{packages}\napt_get install -y docker.io && echo installed\n"),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            text.matches("held by another package manager").count(),
            2,
            "{text}"
        );
        assert!(text.contains("installed"), "{text}");
        // The lock is free now: an unknown package fails on the first try.
        let out = run_with_fakes(
            dir.path(),
            &[("apt-get", apt)],
            &format!("{packages}\napt_get install -y nosuchpackage\n"),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(100), "{err}");
        assert!(
            err.contains("Unable to locate package nosuchpackage"),
            "{err}"
        );
    }

    /// The swarm probe and member list read the engine's API through curl
    /// where the node has it, and through the docker CLI where it has not:
    /// the same JSON either way, which the parsers read.
    #[test]
    fn swarm_queries_read_the_engine_through_curl_or_the_cli() {
        use crate::orchestrator::swarm::{parse_members, parse_probe};
        let scripts = Scripts::new(None);
        let probe = scripts.render("swarm/probe.sh", &sample_context()).unwrap();
        let members = scripts
            .render("swarm/members.sh", &sample_context())
            .unwrap();
        let info = r#"{"ID":"e","Swarm":{"NodeID":"n1","LocalNodeState":"active","ControlAvailable":true}}"#;
        let nodes = r#"[{"ID":"n1","Description":{"Hostname":"web-manager-1"},"Spec":{"Availability":"active"},"Status":{"State":"ready"},"ManagerStatus":{"Leader":true}}]"#;
        // curl as the engine's socket answers: the body, then -w's status.
        let curl = format!(
            r#"case "$*" in
  *--unix-socket\ /var/run/docker.sock*http://docker/info) printf '%s\n200' '{info}' ;;
  *--unix-socket\ /var/run/docker.sock*http://docker/nodes) printf '%s\n200' '{nodes}' ;;
  *) echo "curl: unexpected $*" >&2; exit 2 ;;
esac"#
        );
        let docker_cli = format!(
            r#"case "$*" in
  "info --format {{{{json .}}}}") echo '{info}' ;;
  "node ls -q") echo n1 ;;
  "node inspect n1") echo '{nodes}' ;;
  *) echo "docker: unexpected $*" >&2; exit 2 ;;
esac"#
        );
        let untouched = "echo \"docker: not to be run: $*\" >&2; exit 2".to_string();
        let stdout = |out: &std::process::Output| {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for (way, fakes, system_path) in [
            (
                "curl",
                vec![("curl", curl.clone()), ("docker", untouched)],
                true,
            ),
            ("the CLI", vec![("docker", docker_cli)], false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let out = run_with_path(dir.path(), &fakes, &probe, system_path);
            let p = parse_probe(&stdout(&out)).unwrap();
            assert!(p.joined && p.control, "{way}: {p:?}");
            assert_eq!(p.member_id.as_deref(), Some("n1"), "{way}");
            let out = run_with_path(dir.path(), &fakes, &members, system_path);
            let m = parse_members(&stdout(&out)).unwrap();
            assert_eq!(m.len(), 1, "{way}");
            assert_eq!((m[0].id.as_str(), m[0].ready), ("n1", true), "{way}");
        }
        // An engine that is not a manager answers 503: the listing fails,
        // saying so.
        let dir = tempfile::tempdir().unwrap();
        let not_manager =
            r#"printf '%s\n503' '{"message":"This node is not a swarm manager."}'"#.to_string();
        let out = run_with_path(
            dir.path(),
            &[("curl", not_manager), ("docker", "exit 0".into())],
            &members,
            true,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("GET /nodes answered 503") && err.contains("not a swarm manager"),
            "{err}"
        );
        // An engine that does not answer: the probe says it is stopped.
        let out = run_with_path(
            dir.path(),
            &[("curl", "exit 7".into()), ("docker", "exit 0".into())],
            &probe,
            true,
        );
        let p = parse_probe(&stdout(&out)).unwrap();
        assert!(!p.engine_running && !p.joined);
    }

    /// A join hands the token to the engine's API on curl's standard input:
    /// it is in no process's arguments on the node (any user there can read
    /// those). A token not of Swarm's form is refused before anything runs.
    #[test]
    fn a_join_gives_the_token_to_the_engine_on_standard_input_only() {
        use crate::orchestrator::swarm::parse_probe;
        let join = Scripts::new(None)
            .render("swarm/join.sh", &sample_context())
            .unwrap();
        let token =
            "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx";
        let inactive = r#"{"ID":"e","Swarm":{"NodeID":"","LocalNodeState":"inactive","ControlAvailable":false}}"#;
        let joined = r#"{"ID":"e","Swarm":{"NodeID":"n7","LocalNodeState":"active","ControlAvailable":false}}"#;
        // Every fake's arguments go to argv.log in `d`, the join's body to
        // body.json.
        let fakes_in = |d: &Path| {
            let d = d.display();
            let curl = format!(
                r#"echo "curl $*" >> {d}/argv.log
case "$*" in
  *-X\ GET*http://docker/info) if [ -e {d}/joined ]; then printf '%s\n200' '{joined}'; else printf '%s\n200' '{inactive}'; fi ;;
  *-X\ POST*--data-binary\ @-*http://docker/swarm/join) cat > {d}/body.json; touch {d}/joined; printf '\n200' ;;
  *) echo "curl: unexpected $*" >&2; exit 2 ;;
esac"#
            );
            let docker = format!(
                r#"echo "docker $*" >> {d}/argv.log; echo "docker: not to be run" >&2; exit 2"#
            );
            [("curl", curl), ("docker", docker)]
        };
        let dir = tempfile::tempdir().unwrap();
        let fakes = fakes_in(dir.path());
        let out = run_fed(dir.path(), &fakes, &join, true, &format!("{token}\n"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("body.json")).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": "10.0.0.3",
                               "RemoteAddrs": ["10.0.0.2:2377"], "JoinToken": token})
        );
        let argv = std::fs::read_to_string(dir.path().join("argv.log")).unwrap();
        assert!(argv.contains("http://docker/swarm/join"), "{argv}");
        assert!(
            !argv.contains("SWMTKN"),
            "the token was an argument: {argv}"
        );
        let report = parse_probe(&stdout).unwrap();
        assert!(report.joined && !report.control);
        assert_eq!(report.member_id.as_deref(), Some("n7"));

        // A manager that printed something else: refused, nothing run.
        let dir = tempfile::tempdir().unwrap();
        let out = run_fed(
            dir.path(),
            &fakes_in(dir.path()),
            &join,
            true,
            "SWMTKN-1-3pu6h-1awxw\",\"RemoteAddrs\":[\"203.0.113.9\n",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("not a swarm join token"),
            "{err}"
        );
        assert!(!dir.path().join("argv.log").exists());
        assert!(!err.contains("3pu6h"), "{err}");
    }

    /// Runs `script` with bash, the `fakes` (name, shell body) first on PATH.
    fn run_with_fakes(dir: &Path, fakes: &[(&str, String)], script: &str) -> std::process::Output {
        run_with_path(dir, fakes, script, true)
    }

    /// [`run_with_fakes`], with the system's PATH after the fakes or, if not
    /// `system_path`, the fakes alone (a node without some command).
    fn run_with_path(
        dir: &Path,
        fakes: &[(&str, String)],
        script: &str,
        system_path: bool,
    ) -> std::process::Output {
        run_fed(dir, fakes, script, system_path, "")
    }

    /// [`run_with_path`] with `stdin` on the script's standard input.
    fn run_fed(
        dir: &Path,
        fakes: &[(&str, String)],
        script: &str,
        system_path: bool,
        stdin: &str,
    ) -> std::process::Output {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, body) in fakes {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let file = dir.join("script.sh");
        std::fs::write(&file, script).unwrap();
        let path = if system_path {
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            )
        } else {
            bin.display().to_string()
        };
        let mut child = std::process::Command::new("/bin/bash")
            .arg(&file)
            .env("PATH", path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        // A script that reads nothing may close its end first.
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        child.wait_with_output().unwrap()
    }

    #[test]
    fn join_script_takes_the_token_from_stdin_only() {
        let text = Scripts::new(None)
            .render("swarm/join.sh", &sample_context())
            .unwrap();
        assert!(text.contains("IFS= read -r token"));
        assert!(text.contains("--token \"$token\""));
        assert!(text.contains("10.0.0.2:2377"));
    }

    #[test]
    fn unknown_script_is_named() {
        let err = Scripts::new(None)
            .render("nope.sh", &context! {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.sh"));
    }
}
