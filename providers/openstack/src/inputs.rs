//! The flavor, image and networks a cluster's servers use, looked up once:
//! by name or id, each failure naming the setting and what the cloud has.

use provision_provider::ProviderError;

use reqwest::Method;
use serde::Deserialize;

use crate::api::Request;
use crate::errors::not_found;
use crate::prerequisites::parse;
use crate::provider::OpenStackProvider;

/// A flavor as `GET /flavors/detail` lists it (compute API 2.1).
#[derive(Debug, Deserialize)]
struct FlavorView {
    id: String,
    name: String,
    vcpus: u32,
    /// MiB.
    ram: u64,
}

/// A zone as `GET /os-availability-zone` lists it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZoneView {
    zone_name: String,
    zone_state: ZoneState,
}

#[derive(Debug, Deserialize)]
struct ZoneState {
    available: bool,
}

/// Flavor when none is given (most clouds have it: 1 vCPU, 2 GiB).
pub const DEFAULT_FLAVOR: &str = "m1.small";
/// Image when none is given; its login user is `debian`.
pub const DEFAULT_IMAGE: &str = "debian-12";

/// A flavor's id, and its name, vCPUs and RAM (MiB).
pub(crate) type Flavor = (String, (String, u32, u64));

/// Flavors and images looked up so far, by the name or id asked for.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub flavors: std::collections::HashMap<String, Flavor>,
    pub images: std::collections::HashMap<String, String>,
}

/// Cloud ids of what the servers are made from.
#[derive(Debug, Clone)]
pub(crate) struct Inputs {
    pub flavor_id: String,
    /// The flavor's name, vCPUs and RAM (MiB), for the size check.
    pub flavor: (String, u32, u64),
    pub image_id: String,
    pub network_id: String,
    /// Network name, the key of the server's addresses in Nova's answers.
    pub network_name: String,
    pub floating_network_id: Option<String>,
}

impl OpenStackProvider {
    /// Resolves the inputs on the first call; later calls reuse them.
    pub(crate) async fn inputs(&self) -> Result<Inputs, ProviderError> {
        if let Some(inputs) = self.inputs.lock().expect("not poisoned").clone() {
            return Ok(inputs);
        }
        if let Some(zone) = &self.options.settings.availability_zone {
            self.check_zones(std::slice::from_ref(zone), "openstack.availability_zone")
                .await?;
        }
        let (flavor_id, flavor) = self.flavor(None).await?;
        let resolved = Inputs {
            flavor_id,
            flavor,
            image_id: self.image_id(None).await?,
            floating_network_id: self.floating_network_id().await?,
            ..self.network().await?
        };
        *self.inputs.lock().expect("not poisoned") = Some(resolved.clone());
        Ok(resolved)
    }

    /// The flavor's id, name, vCPUs and RAM: `wanted`, or the cluster's
    /// when `None`. Looked up once per name; one request (`GET
    /// /flavors/detail`) whatever is given, id or name: the `openstack`
    /// crate's lookup by name takes three, and each is one more chance for
    /// a flaky cloud to fail the attempt.
    pub(crate) async fn flavor(&self, wanted: Option<&str>) -> Result<Flavor, ProviderError> {
        let wanted = wanted
            .or(self.options.flavor.as_deref())
            .unwrap_or(DEFAULT_FLAVOR);
        if let Some(known) = self
            .resolved
            .lock()
            .expect("not poisoned")
            .flavors
            .get(wanted)
        {
            return Ok(known.clone());
        }
        let answer = self
            .api
            .compute(
                "ListFlavors",
                Method::GET,
                &["flavors", "detail"],
                Request::default(),
            )
            .await?;
        let flavors: Vec<FlavorView> = parse(&answer, "flavors")?;
        match flavors
            .iter()
            .find(|f| f.id == wanted)
            .or_else(|| flavors.iter().find(|f| f.name == wanted))
        {
            Some(f) => {
                let found = (f.id.clone(), (f.name.clone(), f.vcpus, f.ram));
                let mut resolved = self.resolved.lock().expect("not poisoned");
                resolved.flavors.insert(wanted.to_string(), found.clone());
                Ok(found)
            }
            None => {
                let names: Vec<String> = flavors.iter().map(|f| f.name.clone()).collect();
                Err(not_found("flavor", "flavor", wanted, &names))
            }
        }
    }

    /// Each of `wanted` (the template's `field`) is a zone the cloud offers
    /// now: Nova would refuse a server in another only at its create,
    /// after the keypair and groups exist ("The requested availability
    /// zone is not available").
    pub(crate) async fn check_zones(
        &self,
        wanted: &[String],
        field: &str,
    ) -> Result<(), ProviderError> {
        if wanted.is_empty() {
            return Ok(());
        }
        let available: Vec<String> = self
            .zones()
            .await?
            .into_iter()
            .filter(|(_, up)| *up)
            .map(|(zone, _)| zone)
            .collect();
        match wanted.iter().find(|z| !available.contains(z)) {
            None => Ok(()),
            Some(missing) => Err(not_found(field, "available zone", missing, &available)),
        }
    }

    /// The cloud's zones and whether each is available (`GET
    /// /os-availability-zone`: a zone whose compute services are all down
    /// is listed unavailable).
    pub(crate) async fn zones(&self) -> Result<Vec<(String, bool)>, ProviderError> {
        let answer = self
            .api
            .compute(
                "ListAvailabilityZones",
                Method::GET,
                &["os-availability-zone"],
                Request::default(),
            )
            .await?;
        let zones: Vec<ZoneView> = parse(&answer, "availabilityZoneInfo")?;
        Ok(zones
            .into_iter()
            .map(|z| (z.zone_name, z.zone_state.available))
            .collect())
    }

    /// The image's id: `wanted`, or the cluster's when `None`; looked up
    /// once per name.
    pub(crate) async fn image_id(&self, wanted: Option<&str>) -> Result<String, ProviderError> {
        let wanted = wanted
            .or(self.options.image.as_deref())
            .unwrap_or(DEFAULT_IMAGE);
        if let Some(id) = self
            .resolved
            .lock()
            .expect("not poisoned")
            .images
            .get(wanted)
        {
            return Ok(id.clone());
        }
        let cloud = &self.api.cloud;
        match self
            .api
            .find("GetImage", || cloud.get_image(wanted))
            .await?
        {
            Some(image) => {
                let id = image.id().clone();
                let mut resolved = self.resolved.lock().expect("not poisoned");
                resolved.images.insert(wanted.to_string(), id.clone());
                Ok(id)
            }
            None => {
                let all = self.api.call("ListImages", || cloud.list_images()).await?;
                let names: Vec<String> = all.iter().map(|i| i.name().clone()).collect();
                Err(not_found("image", "image", wanted, &names))
            }
        }
    }

    async fn network(&self) -> Result<Inputs, ProviderError> {
        let cloud = &self.api.cloud;
        let all = self
            .api
            .call("ListNetworks", || cloud.list_networks())
            .await?;
        let label =
            |n: &openstack::network::Network| n.name().clone().unwrap_or_else(|| n.id().clone());
        let chosen = match &self.options.settings.network {
            Some(wanted) => {
                let hits: Vec<_> = all
                    .iter()
                    .filter(|n| n.id() == wanted || n.name().as_deref() == Some(wanted.as_str()))
                    .collect();
                match hits[..] {
                    [one] => one,
                    [] => {
                        let names: Vec<String> = all.iter().map(label).collect();
                        return Err(not_found("openstack.network", "network", wanted, &names));
                    }
                    _ => {
                        return Err(ProviderError::Invalid {
                            field: "openstack.network".into(),
                            message: format!("several networks are named {wanted}: give its id"),
                        })
                    }
                }
            }
            None => {
                let own: Vec<_> = all.iter().filter(|n| n.external() != Some(true)).collect();
                match own[..] {
                    [one] => one,
                    _ => {
                        return Err(ProviderError::Invalid {
                            field: "openstack.network".into(),
                            message: format!(
                                "not set, and the project has {} networks that are not external ({}): name one",
                                own.len(),
                                own.iter().map(|n| label(n)).collect::<Vec<_>>().join(", ")
                            ),
                        })
                    }
                }
            }
        };
        Ok(Inputs {
            flavor_id: String::new(),
            flavor: (String::new(), 0, 0),
            image_id: String::new(),
            network_id: chosen.id().clone(),
            network_name: label(chosen),
            floating_network_id: None,
        })
    }

    async fn floating_network_id(&self) -> Result<Option<String>, ProviderError> {
        let Some(pool) = &self.options.settings.floating_ip_pool else {
            return Ok(None);
        };
        let cloud = &self.api.cloud;
        match self
            .api
            .find("GetNetwork", || cloud.get_network(pool))
            .await?
        {
            Some(n) if n.external() == Some(true) => Ok(Some(n.id().clone())),
            Some(_) => Err(ProviderError::Invalid {
                field: "openstack.floating_ip_pool".into(),
                message: format!(
                    "network {pool} is not external: floating IPs come from an external network"
                ),
            }),
            None => Err(not_found(
                "openstack.floating_ip_pool",
                "network",
                pool,
                &[],
            )),
        }
    }
}
