//! The command line: argument definitions and one module per command.

mod backup;
mod create;
mod destroy;
mod dry_run;
mod env;
mod heal;
mod list;
mod output;
mod restore;
mod rollout;
mod scale;
pub(crate) mod session;
mod ssh;
mod state;
mod status;
mod templates;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::spec::Cloud;

/// Build, heal and scale container-orchestration clusters.
#[derive(Debug, Parser)]
#[command(name = "provision", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Where the state lives: a SQLite file (default:
    /// $XDG_DATA_HOME/provision/state.db), or etcd shared by a team and
    /// several daemons: etcd://host:2379[,host:2379…]/prefix.
    #[arg(
        long,
        global = true,
        env = "PROVISION_STATE",
        value_name = "PATH|etcd://…"
    )]
    pub state: Option<String>,
    /// etcd: the CA certificate that signed the members' (turns on TLS), as etcdctl's --cacert.
    #[arg(
        long,
        global = true,
        env = "PROVISION_ETCD_CACERT",
        value_name = "FILE"
    )]
    pub etcd_cacert: Option<PathBuf>,
    /// etcd: a client certificate, as etcdctl's --cert.
    #[arg(long, global = true, env = "PROVISION_ETCD_CERT", value_name = "FILE")]
    pub etcd_cert: Option<PathBuf>,
    /// etcd: the client certificate's key, as etcdctl's --key.
    #[arg(long, global = true, env = "PROVISION_ETCD_KEY", value_name = "FILE")]
    pub etcd_key: Option<PathBuf>,
    /// Directory whose script templates replace the built-in ones (same layout, `.j2` suffix).
    #[arg(long, global = true, env = "PROVISION_SCRIPTS_DIR", value_name = "DIR")]
    pub scripts_dir: Option<PathBuf>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Global {
    /// Where `--state` points, with the etcd options; the etcd user and
    /// password come from PROVISION_ETCD_USER (`user` or `user:password`)
    /// and PROVISION_ETCD_PASSWORD, never from a flag (a flag shows in `ps`).
    pub fn location(&self) -> anyhow::Result<crate::state::StateLocation> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let options = crate::state::location::EtcdOptions {
            cacert: self.etcd_cacert.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
            user: var("PROVISION_ETCD_USER"),
            password: var("PROVISION_ETCD_PASSWORD").map(crate::secret::Secret::new),
        };
        Ok(crate::state::StateLocation::parse(
            self.state.as_deref(),
            &options,
        )?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One create command per orchestrator (`swarm`, `kubernetes`, …),
    /// named and described by its profile.
    #[command(flatten)]
    Create(create::Create),
    /// List clusters.
    List {
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show a cluster and its nodes, observed now.
    Status {
        name: String,
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Also show the cluster's recent events.
        #[arg(long)]
        events: bool,
    },
    /// Print shell code that points the COE's client at the cluster:
    /// `eval "$(provision env web)"`; `--unset` undoes it.
    Env {
        #[arg(required_unless_present = "unset")]
        name: Option<String>,
        /// Print the shell code that undoes `env` (unsets the variables,
        /// takes the cluster's directory off PATH).
        #[arg(long, conflicts_with = "name")]
        unset: bool,
    },
    /// Open a shell on a node, or run CMD there.
    Ssh {
        name: String,
        node: String,
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Delete the cluster's machines and every resource carrying its id.
    Destroy {
        name: String,
        /// Confirm: the cluster and its data are deleted.
        #[arg(long)]
        yes: bool,
        /// Print what would be deleted and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Change node counts, then reconcile (scale-in drains first; managers one at a time).
    Scale {
        name: String,
        #[arg(long)]
        managers: Option<u32>,
        /// Workers of the default pool, or of `--pool`.
        #[arg(long)]
        workers: Option<u32>,
        /// The worker pool `--workers` counts (the template's `pools:`).
        #[arg(long, conflicts_with = "managers", requires = "workers")]
        pool: Option<String>,
        /// Allow a change that could lose manager quorum, or counts above
        /// the maximums (9 managers, 500 workers).
        #[arg(long)]
        force: bool,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Store the new counts and return: a running daemon carries them
        /// out (with etcd, within seconds, through its watch).
        #[arg(long, conflicts_with = "dry_run")]
        no_wait: bool,
    },
    /// Add or remove particular nodes.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// A change of the nodes' machines (the cluster command's --image,
    /// --flavor or --template): where it stands, pause, resume, undo.
    Rollout {
        name: String,
        #[arg(value_enum)]
        action: rollout::RolloutAction,
        /// Store it and return: a running daemon carries it out.
        #[arg(long)]
        no_wait: bool,
    },
    /// Replace unhealthy nodes and finish what is unfinished: one reconcile run.
    Heal {
        /// The cluster (or --all).
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        all: bool,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Reconcile every cluster on an interval: heal failures, apply scale requests.
    Daemon {
        /// Time between passes (a 10 % jitter is added); at least 1s.
        #[arg(long, default_value = "30s", value_parser = parse_interval)]
        interval: std::time::Duration,
        /// Run one pass of every cluster and exit (non-zero if a cluster failed); with etcd state, of this daemon's share when other daemons run.
        #[arg(long)]
        once: bool,
        /// Clusters reconciled at once; each cluster has its own timer, so
        /// one busy cluster never delays another.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
        workers: u32,
        /// SSH connections open at once, all clusters together (each is a
        /// file descriptor; keep it under the process's limit).
        #[arg(long, default_value_t = crate::bootstrap::ssh_slots::DEFAULT_LIMIT as u32, value_parser = clap::value_parser!(u32).range(1..=65536))]
        max_ssh: u32,
        /// Cloud operations in flight at once, all clusters together.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
        max_cloud_calls: u32,
        /// Serve Prometheus metrics here (`/metrics`).
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_addr: std::net::SocketAddr,
        /// Serve no metrics.
        #[arg(long)]
        no_metrics: bool,
        /// With etcd state: how long this daemon's claim on its clusters
        /// outlives it (a killed daemon's clusters are taken over after
        /// this); renewed every third of it.
        #[arg(long, default_value = "10s", value_parser = parse_lease_ttl)]
        lease_ttl: std::time::Duration,
        /// On SIGTERM or SIGINT, how long passes in flight may take to stop
        /// at their next step (the script running on a node ends first)
        /// before they are dropped; a second signal drops them at once.
        #[arg(long, default_value = "60s", value_parser = parse_drain)]
        drain_timeout: std::time::Duration,
    },
    /// Back up a cluster's orchestrator state (Swarm: the managers' raft
    /// state, taken on a follower while the others keep quorum); `backup
    /// list NAME` shows the backups taken.
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        list: Option<BackupCommand>,
        /// The cluster.
        #[arg(required = true)]
        name: Option<String>,
        /// Directory, or s3://BUCKET/PREFIX, for the archive and its
        /// manifest (default: beside the state, backups/NAME/; `destroy`
        /// leaves it).
        #[arg(long, value_name = "DIR|S3-URL")]
        to: Option<String>,
        /// Take it with fewer than 3 Ready managers (the managers accept no
        /// change for the seconds the copy takes).
        #[arg(long)]
        force: bool,
    },
    /// Re-form a cluster none of whose managers is left from a backup: a
    /// new manager gets the backed-up state (Swarm: the swarm directory,
    /// then `swarm init --force-new-cluster`), the other managers join it,
    /// and the workers rejoin. A cluster with a surviving manager is
    /// re-formed from it by `heal` and the daemon instead.
    Restore {
        /// The cluster.
        name: String,
        /// A backup's archive or manifest (a file, or s3://BUCKET/KEY), or a
        /// location holding backups, whose newest of this cluster is used
        /// (default: beside the state, backups/NAME/).
        #[arg(long, value_name = "BACKUP|DIR|S3-URL")]
        from: Option<String>,
        /// Restore although a manager's machine is still there and does not
        /// answer (it is deleted: say so only when it is dead, not cut off).
        #[arg(long)]
        force: bool,
        /// Restore a backup of another cluster of this name (an earlier one,
        /// or another state store's), by that cluster's id; without it only
        /// this cluster's own backups are used.
        #[arg(long, value_name = "ID")]
        cluster_id: Option<String>,
        /// Restore a backup taken before provision recorded archives' sizes
        /// and SHA-256, which cannot be checked.
        #[arg(long)]
        unverified: bool,
        /// Print what the restore would do and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Move clusters between state stores (SQLite ↔ etcd).
    #[command(subcommand)]
    State(StateCommand),
    /// Cluster templates and bootstrap script templates.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Cluster name: a DNS label, part of every node's hostname. Default: the orchestrator's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Where the machines come from.
    #[arg(long, value_enum, default_value_t = Cloud::Local)]
    pub cloud: Cloud,
    /// Manager count (odd: 1, 3, 5). Default: the template's.
    #[arg(long)]
    pub managers: Option<u32>,
    /// Worker count. Default: the template's.
    #[arg(long)]
    pub workers: Option<u32>,
    /// Cluster template: a built-in name or a YAML file. Default: the orchestrator's built-in one.
    #[arg(long)]
    pub template: Option<String>,
    /// Machine image (local: the node image, built when missing; ec2: an AMI id, or a name with the template's ec2.ami_owner; openstack: a Glance image name or id).
    #[arg(long)]
    pub image: Option<String>,
    /// Flavor / instance type (ec2: e.g. t3.small; openstack: a flavor name or id). Default: the template's, else the cloud's.
    #[arg(long)]
    pub flavor: Option<String>,
    /// The Docker engine's package version every node installs (apt's, or a pattern like '20.10.*'). On an existing cluster it is rolled out.
    #[arg(long, value_name = "VERSION")]
    pub engine_version: Option<String>,
    /// Kubernetes minor version, like 1.31 (kubernetes only). On an existing cluster it is rolled out, one minor at a time.
    #[arg(long, value_name = "MINOR")]
    pub kubernetes_version: Option<String>,
    /// CIDR that may reach the nodes' SSH port (default: the template's, else 0.0.0.0/0).
    #[arg(long, value_name = "CIDR")]
    pub ssh_from: Option<String>,
    /// CIDR that may reach the orchestrator's client ports: Kubernetes'
    /// API server (6443), the Mesos master (5050) and Marathon (8080)
    /// (default: the template's, else --ssh-from's range). Swarm's client
    /// goes through SSH.
    #[arg(long, value_name = "CIDR")]
    pub clients_from: Option<String>,
    /// Debian suite the local node image is built from.
    #[arg(long, default_value = "bookworm")]
    pub image_suite: String,
    /// Allow counts above the maximums (9 managers, 500 workers), and a
    /// manager count that could lose quorum on a re-run.
    #[arg(long)]
    pub force: bool,
    /// Print the plan (nodes to create and join, firewall changes) and change
    /// nothing: no state written, no cloud resource created, no key made.
    #[arg(long)]
    pub dry_run: bool,
    /// The clouds' own flags given (`--region`, `--subnet`, …: made from
    /// each cloud's settings, see `spec::cloud_flags`), as flag and value.
    #[arg(skip)]
    pub cloud_flags: Vec<(String, String)>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// The backups of a cluster, oldest first.
    List {
        name: String,
        /// Where they are (default: beside the state, backups/NAME/).
        #[arg(long, value_name = "DIR|S3-URL")]
        from: Option<String>,
    },
    /// Read a backup as a restore would, check its size, SHA-256 and seal
    /// against its manifest, and list what it holds; changes nothing.
    Verify {
        name: String,
        /// A backup's archive or manifest, or a location whose newest backup
        /// of the cluster is checked (default: beside the state).
        #[arg(long, value_name = "BACKUP|DIR|S3-URL")]
        from: Option<String>,
        /// A backup of another cluster of this name, by that cluster's id.
        #[arg(long, value_name = "ID")]
        cluster_id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Write every cluster (records, events, resources, SSH key,
    /// kubeconfig, join state, backup key) of --state as JSON: to FILE, or
    /// with --stdout to standard output. The output holds private keys:
    /// keep it as private as the store.
    Export {
        /// The file to write (mode 0600).
        #[arg(long, value_name = "FILE", required_unless_present = "stdout")]
        to: Option<PathBuf>,
        /// Print it on standard output instead (keys included: for a pipe
        /// into `state import -`, not a terminal or a file of the umask's mode).
        #[arg(long, conflicts_with = "to")]
        stdout: bool,
    },
    /// Read what `state export` wrote into --state; a cluster already
    /// there is refused unless --replace.
    Import {
        /// The export (`-` for stdin).
        file: PathBuf,
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Add nodes of a role.
    Add {
        name: String,
        #[arg(long, value_parser = parse_role, default_value = "worker")]
        role: provision_provider::Role,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// The worker pool to add to (the template's `pools:`).
        #[arg(long)]
        pool: Option<String>,
        /// Allow counts above the maximums (9 managers, 500 workers).
        #[arg(long)]
        force: bool,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Drain and remove particular nodes.
    Remove {
        name: String,
        #[arg(required = true)]
        nodes: Vec<String>,
        /// Allow a removal that could lose manager quorum.
        #[arg(long)]
        force: bool,
        /// Print the plan (drain, remove, delete) and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The daemon's interval: a duration of at least a second (`0s` would
/// reconcile every cluster in a busy loop).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e}: write e.g. 30s or 5m"))?;
    if d < crate::spec::MIN_DURATION {
        return Err(format!(
            "{text} is below the minimum of 1s (the daemon would reconcile in a busy loop)"
        ));
    }
    Ok(d)
}

/// The daemon's lease: whole seconds (etcd counts in seconds), 3 s to 10 min.
fn parse_lease_ttl(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e}: write e.g. 10s"))?;
    if d.subsec_nanos() != 0 || d.as_secs() < 3 || d.as_secs() > 600 {
        return Err(format!("{text}: give whole seconds from 3s to 10m"));
    }
    Ok(d)
}

/// The daemon's drain time on SIGTERM: 0s (drop at once) to 1 h.
fn parse_drain(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e}: write e.g. 60s"))?;
    if d > std::time::Duration::from_secs(3600) {
        return Err(format!("{text}: give at most 1h"));
    }
    Ok(d)
}

fn parse_role(s: &str) -> Result<provision_provider::Role, String> {
    provision_provider::Role::parse(s)
        .ok_or_else(|| format!("unknown role {s:?}: use manager or worker"))
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// List cluster templates and script templates.
    List,
    /// Print a template's source.
    Show { name: String },
    /// Render a script template for a node of an existing cluster.
    Render {
        name: String,
        #[arg(long)]
        node: String,
        /// The node's cluster (found from the node name when omitted).
        #[arg(long)]
        cluster: Option<String>,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Create(create::Create { coe, args }) => create::run(&global, coe, args).await,
        Command::List { output } => list::run(&global, output),
        Command::Status {
            name,
            output,
            events,
        } => status::run(&global, &name, output, events).await,
        Command::Env { name, unset } => env::run(&global, name.as_deref(), unset),
        Command::Ssh {
            name,
            node,
            command,
        } => ssh::run(&global, &name, &node, &command),
        Command::Destroy { name, yes, dry_run } => destroy::run(&global, &name, yes, dry_run).await,
        Command::Scale {
            name,
            managers,
            workers,
            pool,
            force,
            dry_run,
            no_wait,
        } => {
            let change = scale::Change::Counts {
                managers,
                workers,
                pool,
            };
            let flags = scale::Flags {
                force,
                dry_run,
                no_wait,
            };
            scale::run(&global, &name, change, flags).await
        }
        Command::Rollout {
            name,
            action,
            no_wait,
        } => rollout::run(&global, &name, action, no_wait).await,
        Command::Nodes(NodesCommand::Add {
            name,
            role,
            count,
            pool,
            force,
            dry_run,
        }) => {
            let change = scale::Change::Add { role, count, pool };
            let flags = scale::Flags {
                force,
                dry_run,
                no_wait: false,
            };
            scale::run(&global, &name, change, flags).await
        }
        Command::Nodes(NodesCommand::Remove {
            name,
            nodes,
            force,
            dry_run,
        }) => {
            let change = scale::Change::Remove { nodes };
            let flags = scale::Flags {
                force,
                dry_run,
                no_wait: false,
            };
            scale::run(&global, &name, change, flags).await
        }
        Command::Heal { name, all, dry_run } => {
            heal::run(&global, name.as_deref(), all, dry_run).await
        }
        Command::Daemon {
            interval,
            once,
            metrics_addr,
            no_metrics,
            workers,
            max_ssh,
            max_cloud_calls,
            lease_ttl,
            drain_timeout,
        } => {
            let options = crate::daemon::DaemonOptions {
                interval,
                once,
                metrics_addr: (!no_metrics).then_some(metrics_addr),
                workers: workers as usize,
                ssh_connections: max_ssh as usize,
                cloud_operations: max_cloud_calls as usize,
                lease_ttl,
                drain: drain_timeout,
            };
            crate::daemon::run(session::open(&global)?, options).await
        }
        Command::Backup {
            list: Some(BackupCommand::List { name, from }),
            ..
        } => backup::list(&global, &name, from.as_deref()).await,
        Command::Backup {
            list:
                Some(BackupCommand::Verify {
                    name,
                    from,
                    cluster_id,
                }),
            ..
        } => backup::verify(&global, &name, from.as_deref(), cluster_id.as_deref()).await,
        Command::Backup {
            list: None,
            name,
            to,
            force,
        } => {
            let name = name.expect("clap requires it");
            backup::take(&global, &name, to.as_deref(), force).await
        }
        Command::Restore {
            name,
            from,
            force,
            cluster_id,
            unverified,
            dry_run,
        } => {
            let flags = restore::Flags {
                force,
                cluster_id,
                unverified,
                dry_run,
            };
            restore::run(&global, &name, from.as_deref(), &flags).await
        }
        Command::State(StateCommand::Export { to, stdout: _ }) => {
            state::export(&global, to.as_deref())
        }
        Command::State(StateCommand::Import { file, replace }) => {
            state::import(&global, &file, replace)
        }
        Command::Templates(cmd) => templates::run(&global, cmd),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "provision",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}
