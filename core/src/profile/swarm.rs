//! Docker Swarm mode.

use provision_provider::{PortRule, Protocol};

use super::{any_growth, Certificates, Profile};

pub const PROFILE: Profile = Profile {
    name: "swarm",
    aliases: &[],
    summary: "Docker Swarm mode",
    create_about: "Create a Docker Swarm cluster, or finish one an earlier run left half-done",
    // Cluster management, gossip (tcp+udp), overlay VXLAN.
    member_ports: &[
        PortRule::new(Protocol::Tcp, 2377),
        PortRule::new(Protocol::Tcp, 7946),
        PortRule::new(Protocol::Udp, 7946),
        PortRule::new(Protocol::Udp, 4789),
    ],
    // The client goes through SSH (`DOCKER_HOST=ssh://…`).
    client_ports: &[],
    minimum_machine: None,
    // `docker swarm init --force-new-cluster` on a survivor.
    recovers_quorum: true,
    backs_up: true,
    // The raft directory is copied with the engine stopped.
    backs_up_online: false,
    seeds_joining_managers: false,
    config_follows_managers: false,
    needs_leave: false,
    manager_growth: any_growth,
    client_env_keys: &["DOCKER_HOST"],
    client_hint: "docker node ls",
    certificates: Certificates::RotateCa,
};
