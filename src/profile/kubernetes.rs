//! Kubernetes with kubeadm (stacked etcd).

use provision_provider::{PortRule, Protocol};

use super::{any_growth, MinimumMachine, Profile};

pub const PROFILE: Profile = Profile {
    name: "kubernetes",
    // API server, etcd, kubelet, controller-manager, scheduler, NodePorts,
    // flannel VXLAN, calico BGP and VXLAN.
    member_ports: &[
        PortRule::new(Protocol::Tcp, 6443),
        PortRule::range(Protocol::Tcp, 2379, 2380),
        PortRule::new(Protocol::Tcp, 10250),
        PortRule::new(Protocol::Tcp, 10257),
        PortRule::new(Protocol::Tcp, 10259),
        PortRule::range(Protocol::Tcp, 30000, 32767),
        PortRule::new(Protocol::Udp, 8472),
        PortRule::new(Protocol::Tcp, 179),
        PortRule::new(Protocol::Udp, 4789),
    ],
    // The kubeconfig's API server.
    client_ports: &[PortRule::new(Protocol::Tcp, 6443)],
    // kubeadm's preflight refuses a control-plane node with fewer ("[ERROR
    // NumCPU]: the number of available CPUs 1 is less than the required 2",
    // "[ERROR Mem]: … less than the minimum 1700 MB"); every node of a
    // cluster gets the same flavor.
    minimum_machine: Some(MinimumMachine {
        vcpus: 2,
        memory_mib: 1700,
        needed_by: "Kubernetes control-plane nodes (kubeadm's NumCPU and Mem preflight checks)",
    }),
    recovers_quorum: false,
    backs_up: true,
    // An etcd snapshot, taken while etcd serves.
    backs_up_online: true,
    seeds_joining_managers: false,
    config_follows_managers: false,
    // `kubeadm reset` on a node that leaves.
    needs_leave: true,
    manager_growth: any_growth,
    client_env_keys: &["KUBECONFIG"],
    client_hint: "kubectl get nodes",
};
