//! Bad input: a clear error naming what to fix, a non-zero exit, and
//! nothing created (no cluster record, no container).

use std::process::{Command, Output, Stdio};

use crate::common::*;

struct Attempt {
    dir: tempfile::TempDir,
}

impl Attempt {
    fn new() -> Attempt {
        Attempt {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(BIN);
        c.arg("--state").arg(self.dir.path().join("state.db"));
        c.args(args).stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// `swarm --template FILE` with `content` in FILE: the refusal's stderr.
    fn refused_template(&self, file: &str, content: &str) -> String {
        let t = self.dir.path().join(file);
        std::fs::write(&t, content).unwrap();
        self.refused(
            &["swarm", "--name", "x1", "--template", t.to_str().unwrap()],
            &[],
        )
    }

    /// Runs and returns stderr, asserting failure and that nothing was made.
    fn refused(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "{args:?} should fail; stderr:\n{err}"
        );
        // 2: clap refused the arguments; 1: provision refused the values.
        assert!(matches!(out.status.code(), Some(1) | Some(2)), "{err}");
        let list = self.run(&["list", "--output", "json"], &[]);
        assert_eq!(
            String::from_utf8_lossy(&list.stdout).trim(),
            "[]",
            "a cluster was recorded"
        );
        err
    }
}

#[test]
fn unknown_cloud_names_the_valid_ones() {
    let err = Attempt::new().refused(&["swarm", "--name", "x1", "--cloud", "gce"], &[]);
    assert!(
        err.contains("gce") && err.contains("--cloud") && err.contains("local"),
        "{err}"
    );
}

#[test]
fn unknown_coe_is_refused() {
    let err = Attempt::new().refused(&["nomad", "--name", "x1"], &[]);
    assert!(err.contains("nomad"), "{err}");
}

#[test]
fn unknown_coe_in_a_template_names_file_and_line() {
    let err = Attempt::new().refused_template("t.yaml", "managers: 1\ncoe: nomad\n");
    assert!(
        err.contains("t.yaml") && err.contains("line 2") && err.contains("nomad"),
        "{err}"
    );
}

#[test]
fn zero_managers_is_refused() {
    require_docker();
    let name = "x-zero";
    let err = Attempt::new().refused(&["swarm", "--name", name, "--managers", "0"], &[]);
    assert!(
        err.contains("managers") && err.contains("at least one"),
        "{err}"
    );
    assert!(containers(name).is_empty());
}

/// kubeadm would pin every kubelet to the first control-plane node: several
/// need a load balancer or DNS name, refused without one before anything exists.
#[test]
fn kubernetes_with_three_control_planes_needs_an_endpoint() {
    require_docker();
    let name = "x-k8s-ha";
    let err = Attempt::new().refused(&["kubernetes", "--name", name, "--managers", "3"], &[]);
    assert!(
        err.contains("kubernetes.control_plane_endpoint:") && err.contains("load balancer"),
        "{err}"
    );
    assert!(containers(name).is_empty());
    assert_eq!(leftovers(name), Vec::<String>::new());
}

/// Docker recommends at most seven managers: more than nine is refused
/// unless asked for with --force, before any cloud is contacted.
#[test]
fn more_than_nine_managers_need_force() {
    let err = Attempt::new().refused(&["swarm", "--name", "x-many", "--managers", "11"], &[]);
    assert!(
        err.contains("managers:") && err.contains("seven") && err.contains("--force"),
        "{err}"
    );
    let err = Attempt::new().refused(&["swarm", "--name", "x-many", "--workers", "5000"], &[]);
    assert!(err.contains("workers:") && err.contains("--force"), "{err}");
}

#[test]
fn a_daemon_interval_below_one_second_is_refused() {
    let err = Attempt::new().refused(&["daemon", "--interval", "0s"], &[]);
    assert!(
        err.contains("--interval") && err.contains("minimum of 1s"),
        "{err}"
    );
}

/// Colour codes only for a person at a terminal: logs sent to a file or a
/// pipe (journald, grep) are plain, and NO_COLOR turns colour off anywhere.
#[test]
fn logs_are_coloured_only_on_a_terminal_without_no_color() {
    let a = Attempt::new();
    let state = a.dir.path().join("state.db");
    let args = ["daemon", "--once", "--no-metrics"];
    let piped = a.run(&args, &[]);
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success() && !err.is_empty(), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in piped logs: {err:?}"
    );
    // The same command on a pseudo-terminal (util-linux `script`).
    let on_terminal = |no_color: Option<&str>| {
        let command = format!("{BIN} --state {} {}", state.display(), args.join(" "));
        let mut c = Command::new("script");
        c.args(["-qec", &command, "/dev/null"]).stdin(Stdio::null());
        c.env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let out = c.output().expect("script(1) from util-linux");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        on_terminal(None).contains('\u{1b}'),
        "no colour on a terminal"
    );
    let plain = on_terminal(Some("1"));
    assert!(!plain.is_empty() && !plain.contains('\u{1b}'), "{plain:?}");
}

#[test]
fn cluster_name_must_be_a_dns_label() {
    let err = Attempt::new().refused(&["swarm", "--name", "Web_1"], &[]);
    assert!(err.contains("Web_1") && err.contains("DNS label"), "{err}");
}

#[test]
fn template_yaml_error_shows_file_line_and_column() {
    let err = Attempt::new().refused_template("broken.yaml", "coe: swarm\nworkers: [1,\n");
    assert!(
        err.contains("broken.yaml, line ") && err.contains("column"),
        "{err}"
    );
}

#[test]
fn template_type_error_shows_the_field() {
    let err = Attempt::new().refused_template("typed.yaml", "coe: swarm\nworkers: many\n");
    assert!(
        err.contains("typed.yaml, line 2") && err.contains("invalid type"),
        "{err}"
    );
}

#[test]
fn docker_not_running_says_how_to_start_it() {
    let a = Attempt::new();
    let sock = format!("unix://{}/nothing.sock", a.dir.path().display());
    let err = a.refused(&["swarm", "--name", "x1"], &[("DOCKER_HOST", &sock)]);
    assert!(
        err.contains("Docker is not running") && err.contains("dockerd"),
        "{err}"
    );
}

#[test]
fn destroy_needs_confirmation() {
    let err = Attempt::new().refused(&["destroy", "web"], &[]);
    assert!(err.contains("--yes"), "{err}");
}

#[test]
fn completions_are_generated() {
    let out = Attempt::new().run(&["completions", "bash"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("provision"));
}

#[test]
fn a_flag_of_another_cloud_is_refused_not_ignored() {
    let a = Attempt::new();
    let err = a.refused(
        &[
            "swarm",
            "--name",
            "x1",
            "--cloud",
            "openstack",
            "--subnet",
            "subnet-1",
        ],
        &[],
    );
    assert!(
        err.contains("--subnet") && err.contains("--cloud ec2"),
        "{err}"
    );
    let err = a.refused(
        &[
            "swarm",
            "--name",
            "x1",
            "--cloud",
            "ec2",
            "--network",
            "private",
        ],
        &[],
    );
    assert!(
        err.contains("--network") && err.contains("--cloud openstack"),
        "{err}"
    );
    let err = a.refused(&["swarm", "--name", "x1", "--region", "RegionOne"], &[]);
    assert!(
        err.contains("--region") && err.contains("--cloud openstack"),
        "{err}"
    );
}
