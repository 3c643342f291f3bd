//! A cloud whose machines are entries in a map.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use provision_provider::{
    Addresses, ClusterRef, Machine, MachineSpec, MachineState, Provider, ProviderError, Recorder,
};

#[derive(Default)]
pub struct Cloud {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    machines: BTreeMap<String, Machine>,
    next: u32,
    calls: BTreeMap<&'static str, u32>,
    /// Listings a new machine stays pending without an address for.
    pending_listings: u32,
    /// Machines still pending: their address, and listings left.
    booting: BTreeMap<String, (Addresses, u32)>,
}

impl Cloud {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The machine of `node` stops, as after `docker kill` or a host failure.
    pub fn stop(&self, node: &str) {
        for m in self.state().machines.values_mut() {
            if m.node == node {
                m.state = MachineState::Stopped;
            }
        }
    }

    /// The machine of `node` is gone, as after `docker rm -f` or a
    /// terminated instance.
    pub fn vanish(&self, node: &str) {
        self.state().machines.retain(|_, m| m.node != node);
    }

    /// Whether `node` has a running machine at `address`.
    pub fn running_at(&self, node: &str, address: &str) -> bool {
        self.state().machines.values().any(|m| {
            m.node == node
                && m.state == MachineState::Running
                && m.addresses.as_ref().is_some_and(|a| a.ssh == address)
        })
    }

    /// Machines that exist now, by node.
    pub fn nodes(&self) -> Vec<String> {
        self.state()
            .machines
            .values()
            .map(|m| m.node.clone())
            .collect()
    }

    /// New machines are pending, with no address, for the next `listings`
    /// listings each, as a cloud's server is in BUILD before its port has
    /// an address.
    pub fn address_after_listings(&self, listings: u32) {
        self.state().pending_listings = listings;
    }

    /// Calls made of `operation` so far.
    pub fn calls(&self, operation: &str) -> u32 {
        self.state().calls.get(operation).copied().unwrap_or(0)
    }

    fn count(&self, operation: &'static str) {
        *self.state().calls.entry(operation).or_default() += 1;
    }
}

#[async_trait]
impl Provider for Cloud {
    fn cloud(&self) -> &'static str {
        "in-memory"
    }

    async fn ensure_prerequisites(
        &self,
        _: &ClusterRef,
        _: &dyn Recorder,
    ) -> Result<(), ProviderError> {
        self.count("ensure_prerequisites");
        Ok(())
    }

    async fn create_machine(
        &self,
        _: &ClusterRef,
        spec: &MachineSpec,
    ) -> Result<Machine, ProviderError> {
        self.count("create_machine");
        let mut state = self.state();
        // A node's machine that runs or still boots is the one a repeated
        // create gets, as the clouds' drivers look theirs up by name.
        if let Some(m) = state.machines.values().find(|m| {
            m.node == spec.node && matches!(m.state, MachineState::Running | MachineState::Pending)
        }) {
            return Ok(m.clone());
        }
        // A chosen address is given unless a machine holds it, as a cloud
        // refuses a fixed IP in use.
        if let Some(wanted) = &spec.private_address {
            let taken = state
                .machines
                .values()
                .any(|m| m.addresses.as_ref().is_some_and(|a| &a.private == wanted));
            if taken {
                return Err(ProviderError::Invalid {
                    field: format!("{}'s private address", spec.node),
                    message: format!("{wanted} is in use"),
                });
            }
        }
        state.next += 1;
        let n = state.next;
        let address = spec
            .private_address
            .clone()
            .unwrap_or_else(|| format!("10.0.0.{n}"));
        let mut machine = Machine {
            id: format!("m-{n}"),
            node: spec.node.clone(),
            role: spec.role,
            state: MachineState::Running,
            addresses: Some(Addresses::private_only(&address)),
            zone: spec.zone.clone(),
        };
        if state.pending_listings > 0 {
            let addresses = machine.addresses.take().expect("just set");
            machine.state = MachineState::Pending;
            let listings = state.pending_listings;
            state
                .booting
                .insert(machine.id.clone(), (addresses, listings));
        }
        state.machines.insert(machine.id.clone(), machine.clone());
        Ok(machine)
    }

    async fn list_machines(&self, _: &ClusterRef) -> Result<Vec<Machine>, ProviderError> {
        self.count("list_machines");
        let mut state = self.state();
        let State {
            machines, booting, ..
        } = &mut *state;
        booting.retain(|id, (addresses, left)| {
            *left -= 1;
            if *left > 0 {
                return true;
            }
            if let Some(m) = machines.get_mut(id) {
                m.state = MachineState::Running;
                m.addresses = Some(addresses.clone());
            }
            false
        });
        Ok(machines.values().cloned().collect())
    }

    async fn delete_machine(&self, _: &ClusterRef, machine_id: &str) -> Result<(), ProviderError> {
        self.count("delete_machine");
        self.state().machines.remove(machine_id);
        Ok(())
    }

    async fn destroy_cluster(&self, _: &ClusterRef) -> Result<(), ProviderError> {
        self.count("destroy_cluster");
        self.state().machines.clear();
        Ok(())
    }
}
