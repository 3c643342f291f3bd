//! Apache Mesos with ZooKeeper and Marathon, run as containers: its facts,
//! and its `mesos:` settings section.

use provision_provider::{PortRule, Protocol};
use serde::{Deserialize, Serialize};

use super::{Certificates, Coe, Profile, Settings};

/// The fixed port of Marathon's scheduler driver (libprocess's
/// LIBPROCESS_PORT): the leading master answers a framework's registration
/// by connecting to it, so it is opened between members. Unset, libprocess
/// takes any free port, which no firewall rule can name.
pub const MARATHON_LIBPROCESS_PORT: u16 = 15101;

pub const PROFILE: Profile = Profile {
    name: "mesos",
    aliases: &[],
    summary: "Apache Mesos with ZooKeeper and Marathon, run as containers",
    create_about: "Create an Apache Mesos cluster (ZooKeeper, masters, Marathon, agents), or finish one an earlier run left half-done",
    // ZooKeeper client, peer and election; master; agent; Marathon;
    // Marathon's scheduler driver; the agents' default task port range.
    member_ports: &[
        PortRule::new(Protocol::Tcp, 2181),
        PortRule::new(Protocol::Tcp, 2888),
        PortRule::new(Protocol::Tcp, 3888),
        PortRule::new(Protocol::Tcp, 5050),
        PortRule::new(Protocol::Tcp, 5051),
        PortRule::new(Protocol::Tcp, 8080),
        PortRule::new(Protocol::Tcp, MARATHON_LIBPROCESS_PORT),
        PortRule::range(Protocol::Tcp, 31000, 32000),
    ],
    // The master and Marathon (the URLs `provision env` prints).
    client_ports: &[
        PortRule::new(Protocol::Tcp, 5050),
        PortRule::new(Protocol::Tcp, 8080),
    ],
    minimum_machine: None,
    recovers_quorum: false,
    backs_up: true,
    // mesos-master stops for the copy of its replicated log.
    backs_up_online: false,
    // The replicated log: a restored replica alone never reaches quorum.
    seeds_joining_managers: true,
    // The masters' quorum and ZooKeeper list are in every node's flags.
    config_follows_managers: true,
    // Its containers and work directory go with a leaving node.
    needs_leave: true,
    manager_growth: master_growth,
    client_env_keys: &["MESOS_MASTER_URL", "MARATHON_URL"],
    client_hint: "curl -s \"$MESOS_MASTER_URL/master/slaves\"",
    certificates: Certificates::None,
};

/// Mesos masters grow as Mesos's operational guide says ("Changing the
/// master quorum"): one quorum step at a time (3 → 5 → 7), and out of a
/// single master only by wiping the masters' replicated log, which loses
/// maintenance schedules and quotas, so that takes `force`.
pub fn master_growth(from: u32, to: u32, force: bool) -> Result<(), String> {
    let majority = |n: u32| n / 2 + 1;
    if to <= from {
        return Ok(());
    }
    if majority(to) > majority(from) + 1 {
        return Err(format!(
            "Mesos masters grow one quorum step at a time (Mesos operational guide, \
             \"Increasing the quorum size\"): scale to {} masters first, then to {to}",
            2 * majority(from) + 1
        ));
    }
    if from == 1 && !force {
        return Err(
            "going from one Mesos master to several wipes the masters' replicated log \
             (Mesos operational guide: \"moving out of a single master setup requires wiping \
             the replicated log state\"): agents re-register, but maintenance schedules and \
             quotas are lost"
                .into(),
        );
    }
    Ok(())
}

/// The `mesos:` section: the images of the four containers a Mesos node
/// runs (host networking, restart always), pulled by the install script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MesosSettings {
    /// ZooKeeper 3.5 or later (dynamic reconfiguration adds and removes
    /// masters one at a time), on every master.
    #[serde(default = "default_zookeeper_image")]
    pub zookeeper_image: String,
    /// mesos-master, on every master.
    #[serde(default = "default_master_image")]
    pub master_image: String,
    /// mesos-agent (docker containerizer), on every worker.
    #[serde(default = "default_agent_image")]
    pub agent_image: String,
    /// Marathon, on every master (it elects its own leader through ZooKeeper).
    #[serde(default = "default_marathon_image")]
    pub marathon_image: String,
}

fn default_zookeeper_image() -> String {
    "zookeeper:3.9".into()
}

fn default_master_image() -> String {
    "mesosphere/mesos-master:1.7.1".into()
}

fn default_agent_image() -> String {
    "mesosphere/mesos-slave:1.7.1".into()
}

fn default_marathon_image() -> String {
    "mesosphere/marathon:v1.6.322".into()
}

impl Default for MesosSettings {
    fn default() -> Self {
        MesosSettings {
            zookeeper_image: default_zookeeper_image(),
            master_image: default_master_image(),
            agent_image: default_agent_image(),
            marathon_image: default_marathon_image(),
        }
    }
}

impl Settings for MesosSettings {
    const COE: Coe = Coe::Mesos;

    fn script_values(&self) -> serde_json::Value {
        let mut values = serde_json::to_value(self).expect("settings serialize");
        values["marathon_libprocess_port"] = MARATHON_LIBPROCESS_PORT.into();
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_masters_grow_a_quorum_step_at_a_time_and_out_of_one_with_force() {
        assert!(master_growth(3, 5, false).is_ok());
        assert!(master_growth(2, 3, false).is_ok());
        assert!(master_growth(5, 3, false).is_ok());
        let e = master_growth(3, 7, true).unwrap_err();
        assert!(e.contains("scale to 5 masters first"), "{e}");
        let e = master_growth(1, 3, false).unwrap_err();
        assert!(e.contains("wipes the masters' replicated log"), "{e}");
        assert!(master_growth(1, 3, true).is_ok());
        assert!(master_growth(1, 5, true).is_err());
    }
}
