//! The cluster-wide resources instances need: resolved inputs (subnet,
//! image, instance type) and the tagged key pair, security group and
//! placement group.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    Image, IpPermission, IpRange, KeyPairInfo, PlacementGroup, PlacementStrategy, ResourceType,
    SecurityGroup, UserIdGroupPair,
};
use provision_provider::{
    Apply, Audience, ClusterRef, Firewall, PortRule, ProviderError, RangeRule, Recorder,
};
use tracing::info;

use crate::errors::{call_error, has_code};
use crate::provider::Ec2Provider;
use crate::tags::{cluster_filter, cluster_tags, filter, resource_name};

/// Canonical's account: owner of the default image name.
const CANONICAL: &str = "099720109477";
/// Newest Ubuntu LTS server image, when none is given.
pub const DEFAULT_IMAGE_NAME: &str = "ubuntu/images/hvm-ssd*/ubuntu-*-amd64-server-*";

/// The AMI's root volume, as its block device mapping describes it: a
/// mapping for it must name its snapshot or a size (EC2 refuses one with
/// neither: "MissingParameter").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootDevice {
    pub name: String,
    pub snapshot: Option<String>,
    pub size_gb: Option<i32>,
}

/// Ids every RunInstances needs, found or made once per process.
#[derive(Debug, Clone)]
pub struct Prerequisites {
    pub subnet_id: String,
    pub image_id: String,
    pub root_device: Option<RootDevice>,
    pub key_name: String,
    pub group_id: String,
    pub placement_group: Option<String>,
}

/// The subnet and its VPC.
#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
}

/// Pools' own images and zones' subnets, looked up once each.
#[derive(Debug, Default)]
pub struct Resolved {
    pub images: std::collections::HashMap<String, (String, Option<RootDevice>)>,
    pub subnets: std::collections::HashMap<String, String>,
}

/// What the settings name, resolved to ids: the same for every cluster of
/// this provider, so looked up once (by preflight, or the first create).
#[derive(Debug, Clone)]
pub struct Inputs {
    pub subnet: Subnet,
    pub image_id: String,
    pub root_device: Option<RootDevice>,
}

impl Ec2Provider {
    /// The configured subnet, or the default VPC's first default subnet.
    async fn resolve_subnet(&self) -> Result<Subnet, ProviderError> {
        let mut call = self.client.describe_subnets();
        call = match &self.options.settings.subnet {
            Some(id) => call.subnet_ids(id),
            None => call.filters(filter("default-for-az", "true")),
        };
        self.count("DescribeSubnets");
        let out = call
            .send()
            .await
            .map_err(|e| call_error("DescribeSubnets", e))?;
        let mut subnets: Vec<_> = out.subnets().to_vec();
        subnets.sort_by(|a, b| a.availability_zone().cmp(&b.availability_zone()));
        let subnet = subnets.into_iter().next().ok_or_else(|| match &self.options.settings.subnet {
            Some(id) => ProviderError::Invalid {
                field: "ec2.subnet".into(),
                message: format!("no subnet {id} in this region: give a subnet id from `aws ec2 describe-subnets`"),
            },
            None => ProviderError::Invalid {
                field: "ec2.subnet".into(),
                message: "this region has no default VPC: give a subnet with --subnet".into(),
            },
        })?;
        Ok(Subnet {
            id: subnet.subnet_id().unwrap_or_default().to_string(),
            vpc_id: subnet.vpc_id().unwrap_or_default().to_string(),
        })
    }

    /// The subnet of the cluster's VPC in `zone` (its default subnet when
    /// it has one there), looked up once per zone: EC2 places an instance
    /// in its subnet's zone.
    pub(crate) async fn zone_subnet(&self, zone: &str) -> Result<String, ProviderError> {
        if let Some(id) = self
            .resolved
            .lock()
            .expect("not poisoned")
            .subnets
            .get(zone)
        {
            return Ok(id.clone());
        }
        let vpc = self.inputs().await?.subnet.vpc_id;
        self.count("DescribeSubnets");
        let out = self
            .client
            .describe_subnets()
            .filters(filter("vpc-id", &vpc))
            .filters(filter("availability-zone", zone))
            .send()
            .await
            .map_err(|e| call_error("DescribeSubnets", e))?;
        let mut subnets: Vec<_> = out.subnets().to_vec();
        subnets.sort_by_key(|s| {
            (
                !s.default_for_az().unwrap_or(false),
                s.subnet_id().map(str::to_string),
            )
        });
        let Some(id) = subnets.first().and_then(|s| s.subnet_id()) else {
            return Err(ProviderError::Invalid {
                field: "zones".into(),
                message: format!(
                    "VPC {vpc} has no subnet in zone {zone}: make one there (aws ec2 create-subnet \
                     --vpc-id {vpc} --availability-zone {zone} --cidr-block …) or remove the zone"
                ),
            });
        };
        let id = id.to_string();
        let mut resolved = self.resolved.lock().expect("not poisoned");
        resolved.subnets.insert(zone.to_string(), id.clone());
        Ok(id)
    }

    /// The image `wanted` (the cluster's when `None`): its id and root
    /// device, looked up once per name.
    pub(crate) async fn image(
        &self,
        wanted: Option<&str>,
    ) -> Result<(String, Option<RootDevice>), ProviderError> {
        let given = wanted.or(self.options.image.as_deref());
        let key = given.unwrap_or(DEFAULT_IMAGE_NAME).to_string();
        if let Some(known) = self.resolved.lock().expect("not poisoned").images.get(&key) {
            return Ok(known.clone());
        }
        let found = self.resolve_image(given).await?;
        let mut resolved = self.resolved.lock().expect("not poisoned");
        resolved.images.insert(key, found.clone());
        Ok(found)
    }

    /// The image by id, or the newest image of that name (wildcards allowed)
    /// and owner. Returns its id and root device name.
    async fn resolve_image(
        &self,
        given: Option<&str>,
    ) -> Result<(String, Option<RootDevice>), ProviderError> {
        let mut call = self.client.describe_images();
        let by_id = given.is_some_and(|i| i.starts_with("ami-"));
        call = if by_id {
            call.image_ids(given.unwrap_or_default())
        } else {
            let owner = match (&self.options.settings.ami_owner, given) {
                (Some(owner), _) => owner.clone(),
                (None, None) => CANONICAL.to_string(),
                (None, Some(_)) => "self".to_string(),
            };
            call.owners(owner)
                .filters(filter("name", given.unwrap_or(DEFAULT_IMAGE_NAME)))
                .filters(filter("state", "available"))
        };
        self.count("DescribeImages");
        let out = call
            .send()
            .await
            .map_err(|e| call_error("DescribeImages", e))?;
        let newest: Option<&Image> = out
            .images()
            .iter()
            .max_by(|a, b| (a.creation_date(), a.name()).cmp(&(b.creation_date(), b.name())));
        let image =
            newest.ok_or_else(|| ProviderError::Invalid {
                field: "image".into(),
                message: match given {
                    Some(i) if by_id => format!(
                        "EC2 has no image {i} in this region: give an AMI id of this region"
                    ),
                    Some(name) => {
                        format!(
                    "no image named {name:?} owned by {}: check the name, or set ec2.ami_owner",
                    self.options.settings.ami_owner.as_deref().unwrap_or("this account (self)")
                )
                    }
                    None => format!(
                        "no Ubuntu image named {DEFAULT_IMAGE_NAME:?} in this region: give --image"
                    ),
                },
            })?;
        Ok((
            image.image_id().unwrap_or_default().to_string(),
            root_device(image),
        ))
    }

    /// The instance type's default vCPUs and memory (MiB); fails with the
    /// field named when it does not exist.
    pub(crate) async fn instance_type_size(&self, name: &str) -> Result<(u32, u64), ProviderError> {
        self.count("DescribeInstanceTypes");
        let out = self
            .client
            .describe_instance_types()
            .instance_types(name.into())
            .send()
            .await
            .map_err(|e| call_error("DescribeInstanceTypes", e))?;
        let Some(info) = out.instance_types().first() else {
            return Err(ProviderError::Invalid {
                field: "flavor".into(),
                message: format!("EC2 has no instance type {name}"),
            });
        };
        let vcpus = info
            .v_cpu_info()
            .and_then(|v| v.default_v_cpus())
            .unwrap_or(0);
        let memory = info
            .memory_info()
            .and_then(|m| m.size_in_mib())
            .unwrap_or(0);
        Ok((vcpus.max(0) as u32, memory.max(0) as u64))
    }

    /// The subnet and image, resolved on first use and kept.
    pub(crate) async fn inputs(&self) -> Result<Inputs, ProviderError> {
        if let Some(inputs) = self.inputs.lock().expect("not poisoned").clone() {
            return Ok(inputs);
        }
        let subnet = self.resolve_subnet().await?;
        let (image_id, root_device) = self.image(None).await?;
        let inputs = Inputs {
            subnet,
            image_id,
            root_device,
        };
        *self.inputs.lock().expect("not poisoned") = Some(inputs.clone());
        Ok(inputs)
    }

    /// Finds or makes the key pair, security group and (when asked) the
    /// placement group, each tagged and reported to `recorder` at once.
    pub(crate) async fn make_prerequisites(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<Prerequisites, ProviderError> {
        let Inputs {
            subnet,
            image_id,
            root_device,
        } = self.inputs().await?;
        let key_name = self.ensure_key_pair(cluster, recorder).await?;
        let group_id = self
            .ensure_security_group(cluster, &subnet.vpc_id, recorder)
            .await?;
        let placement_group = if self.options.settings.spread_managers {
            Some(self.ensure_placement_group(cluster, recorder).await?)
        } else {
            None
        };
        Ok(Prerequisites {
            subnet_id: subnet.id,
            image_id,
            root_device,
            key_name,
            group_id,
            placement_group,
        })
    }

    async fn ensure_key_pair(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<String, ProviderError> {
        if let Some(name) = self
            .cluster_key_pairs(cluster)
            .await?
            .iter()
            .find_map(|k| k.key_name())
        {
            return Ok(name.to_string());
        }
        let name = resource_name(cluster);
        self.count("ImportKeyPair");
        let result = self
            .client
            .import_key_pair()
            .key_name(&name)
            .public_key_material(cluster.ssh_public_key.as_bytes().to_vec().into())
            .tag_specifications(cluster_tags(cluster, ResourceType::KeyPair))
            .send()
            .await;
        match result {
            Ok(out) => {
                let id = out.key_pair_id().unwrap_or(&name).to_string();
                info!(key_pair = %name, "imported key pair");
                recorder.created("key-pair", &id);
                Ok(name)
            }
            Err(e) if has_code(&e, &["InvalidKeyPair.Duplicate"]) => {
                Err(ProviderError::Conflict {
                    what: format!("EC2 key pair {name}"),
                    cluster: cluster.name.clone(),
                    hint: "it has no provision:cluster tag of this cluster: delete it, or choose another cluster name".into(),
                })
            }
            Err(e) => Err(call_error("ImportKeyPair", e)),
        }
    }

    async fn ensure_security_group(
        &self,
        cluster: &ClusterRef,
        vpc_id: &str,
        recorder: &dyn Recorder,
    ) -> Result<String, ProviderError> {
        let groups = self.cluster_security_groups(cluster).await?;
        let (group_id, existing) = match groups.first() {
            Some(g) => (
                g.group_id().unwrap_or_default().to_string(),
                Some(g.clone()),
            ),
            None => {
                let name = resource_name(cluster);
                self.count("CreateSecurityGroup");
                let created = self
                    .client
                    .create_security_group()
                    .group_name(&name)
                    .description(description(cluster))
                    .vpc_id(vpc_id)
                    .tag_specifications(cluster_tags(cluster, ResourceType::SecurityGroup))
                    .send()
                    .await
                    .map_err(|e| match has_code(&e, &["InvalidGroup.Duplicate"]) {
                        true => ProviderError::Conflict {
                            what: format!("EC2 security group {name}"),
                            cluster: cluster.name.clone(),
                            hint: "it has no provision:cluster tag of this cluster: delete it, or choose another cluster name".into(),
                        },
                        false => call_error("CreateSecurityGroup", e),
                    })?;
                let id = created.group_id().unwrap_or_default().to_string();
                info!(security_group = %id, "created security group");
                recorder.created("security-group", &id);
                (id, None)
            }
        };
        self.authorize(
            &group_id,
            missing_rules(&group_id, &cluster.firewall, existing.as_ref()),
        )
        .await?;
        Ok(group_id)
    }

    async fn authorize(
        &self,
        group_id: &str,
        rules: Vec<IpPermission>,
    ) -> Result<(), ProviderError> {
        if rules.is_empty() {
            return Ok(());
        }
        self.count("AuthorizeSecurityGroupIngress");
        let result = self
            .client
            .authorize_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(rules))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A crashed run authorized them a moment before.
            Err(e) if has_code(&e, &["InvalidPermission.Duplicate"]) => Ok(()),
            Err(e) => Err(call_error("AuthorizeSecurityGroupIngress", e)),
        }
    }

    /// See [`provision_provider::Provider::reconcile_firewall`].
    pub(crate) async fn reconcile_security_group(
        &self,
        cluster: &ClusterRef,
        apply: Apply,
    ) -> Result<Vec<String>, ProviderError> {
        let groups = self.cluster_security_groups(cluster).await?;
        let Some(group) = groups.first() else {
            return Ok(Vec::new());
        };
        let group_id = group.group_id().unwrap_or_default();
        let missing = missing_rules(group_id, &cluster.firewall, Some(group));
        let unwanted = unwanted_rules(group_id, &cluster.firewall, group);
        let mut changes: Vec<String> = missing
            .iter()
            .map(|p| apply.describe("firewall:", "added", "add", &describe_permission(p)))
            .collect();
        changes.extend(
            unwanted
                .iter()
                .map(|p| apply.describe("firewall:", "revoked", "revoke", &describe_permission(p))),
        );
        if apply == Apply::DryRun {
            return Ok(changes);
        }
        self.authorize(group_id, missing).await?;
        if !unwanted.is_empty() {
            self.count("RevokeSecurityGroupIngress");
            match self
                .client
                .revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(unwanted))
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if has_code(&e, &["InvalidPermission.NotFound"]) => {}
                Err(e) => return Err(call_error("RevokeSecurityGroupIngress", e)),
            }
        }
        Ok(changes)
    }

    async fn ensure_placement_group(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<String, ProviderError> {
        if let Some(name) = self
            .cluster_placement_groups(cluster)
            .await?
            .iter()
            .find_map(|g| g.group_name())
        {
            return Ok(name.to_string());
        }
        let name = resource_name(cluster);
        self.count("CreatePlacementGroup");
        let out = self
            .client
            .create_placement_group()
            .group_name(&name)
            .strategy(PlacementStrategy::Spread)
            .tag_specifications(cluster_tags(cluster, ResourceType::PlacementGroup))
            .send()
            .await
            .map_err(|e| call_error("CreatePlacementGroup", e))?;
        let id = out
            .placement_group()
            .and_then(|g| g.group_id())
            .unwrap_or(&name)
            .to_string();
        recorder.created("placement-group", &id);
        Ok(name)
    }

    /// Deletes the cluster's security group, placement group and key pair:
    /// only those carrying its tag. Instances must be gone first.
    pub(crate) async fn delete_prerequisites(
        &self,
        cluster: &ClusterRef,
    ) -> Result<(), ProviderError> {
        for group in self.cluster_security_groups(cluster).await? {
            if let Some(id) = group.group_id() {
                self.delete_security_group(id).await?;
            }
        }
        if self.options.settings.spread_managers {
            let groups = self.cluster_placement_groups(cluster).await?;
            for name in groups.iter().filter_map(|g| g.group_name()) {
                self.count("DeletePlacementGroup");
                match self
                    .client
                    .delete_placement_group()
                    .group_name(name)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) if has_code(&e, &["InvalidPlacementGroup.Unknown"]) => {}
                    Err(e) => return Err(call_error("DeletePlacementGroup", e)),
                }
            }
        }
        for key in self.cluster_key_pairs(cluster).await? {
            self.count("DeleteKeyPair");
            // By name: EC2 takes either, moto only the name.
            let mut call = self.client.delete_key_pair();
            call = match key.key_name() {
                Some(name) => call.key_name(name),
                None => call.set_key_pair_id(key.key_pair_id().map(str::to_string)),
            };
            match call.send().await {
                Ok(_) => {}
                Err(e) if has_code(&e, &["InvalidKeyPair.NotFound"]) => {}
                Err(e) => return Err(call_error("DeleteKeyPair", e)),
            }
        }
        Ok(())
    }

    /// The cluster's key pairs, found by its tag.
    async fn cluster_key_pairs(
        &self,
        cluster: &ClusterRef,
    ) -> Result<Vec<KeyPairInfo>, ProviderError> {
        self.count("DescribeKeyPairs");
        let out = self
            .client
            .describe_key_pairs()
            .filters(cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| call_error("DescribeKeyPairs", e))?;
        Ok(out.key_pairs().to_vec())
    }

    /// The cluster's security groups, found by its tag.
    async fn cluster_security_groups(
        &self,
        cluster: &ClusterRef,
    ) -> Result<Vec<SecurityGroup>, ProviderError> {
        self.count("DescribeSecurityGroups");
        let out = self
            .client
            .describe_security_groups()
            .filters(cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| call_error("DescribeSecurityGroups", e))?;
        Ok(out.security_groups().to_vec())
    }

    /// The cluster's placement groups, found by its tag.
    async fn cluster_placement_groups(
        &self,
        cluster: &ClusterRef,
    ) -> Result<Vec<PlacementGroup>, ProviderError> {
        self.count("DescribePlacementGroups");
        let out = self
            .client
            .describe_placement_groups()
            .filters(cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| call_error("DescribePlacementGroups", e))?;
        Ok(out.placement_groups().to_vec())
    }

    /// Network interfaces of terminated instances linger for a while;
    /// the group cannot go before they do.
    async fn delete_security_group(&self, id: &str) -> Result<(), ProviderError> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            self.count("DeleteSecurityGroup");
            match self
                .client
                .delete_security_group()
                .group_id(id)
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if has_code(&e, &["InvalidGroup.NotFound"]) => return Ok(()),
                Err(e) if has_code(&e, &["DependencyViolation"]) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(e) => return Err(call_error("DeleteSecurityGroup", e)),
            }
        }
    }
}

/// The image's root device, with its snapshot and size when it maps them.
fn root_device(image: &Image) -> Option<RootDevice> {
    let name = image.root_device_name()?;
    let ebs = image
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(name))
        .and_then(|m| m.ebs());
    Some(RootDevice {
        name: name.to_string(),
        snapshot: ebs.and_then(|e| e.snapshot_id()).map(str::to_string),
        size_gb: ebs.and_then(|e| e.volume_size()),
    })
}

/// Free text EC2 stores with the group. No spaces: moto's server re-encodes
/// form bodies with `+` for a space before it checks the signature, so a
/// value with a space fails authentication there.
fn description(cluster: &ClusterRef) -> String {
    format!("provision-cluster-{}-{}", cluster.name, cluster.id)
}

/// What this tool writes on the rules it makes, to tell them from anyone
/// else's (only its own are ever revoked).
const SSH_RULE: &str = "provision-ssh";
const CLIENT_RULE: &str = "provision-clients";
const MEMBER_RULE: &str = "provision-members";

/// The description a rule open to a range carries.
fn range_description(audience: Audience) -> &'static str {
    match audience {
        Audience::Ssh => SSH_RULE,
        Audience::Clients => CLIENT_RULE,
    }
}

/// EC2's protocol word for a rule: tcp and udp by name, any other protocol
/// by its number, without ports ("traffic on all ports is allowed",
/// AuthorizeSecurityGroupIngress).
fn ec2_protocol(rule: &PortRule) -> (String, Option<(i32, i32)>) {
    let ports = rule
        .ports()
        .map(|(from, to)| (i32::from(from), i32::from(to)));
    let protocol = match ports {
        Some(_) => rule.protocol.as_str().to_string(),
        None => rule.protocol.number().to_string(),
    };
    (protocol, ports)
}

/// The rules this tool made in `group` that `firewall` no longer has, each
/// as the permission that revokes exactly it.
pub fn unwanted_rules(
    group_id: &str,
    firewall: &Firewall,
    group: &SecurityGroup,
) -> Vec<IpPermission> {
    let ranges = firewall.range_rules();
    let mut unwanted = Vec::new();
    for p in group.ip_permissions() {
        let protocol = p.ip_protocol().unwrap_or_default();
        let ports = p.from_port().zip(p.to_port());
        let same = |rule: &PortRule| {
            let (want_protocol, want_ports) = ec2_protocol(rule);
            want_protocol == protocol && (want_ports.is_none() || want_ports == ports)
        };
        let base = || {
            IpPermission::builder()
                .ip_protocol(protocol)
                .set_from_port(p.from_port())
                .set_to_port(p.to_port())
        };
        for range in p.ip_ranges() {
            let Some(audience) = [Audience::Ssh, Audience::Clients]
                .into_iter()
                .find(|a| range.description() == Some(range_description(*a)))
            else {
                continue;
            };
            let wanted = ranges.iter().any(|w| {
                w.audience == audience && same(&w.port) && range.cidr_ip() == Some(w.from)
            });
            if !wanted {
                unwanted.push(base().ip_ranges(range.clone()).build());
            }
        }
        for pair in p.user_id_group_pairs() {
            let wanted = pair.group_id() == Some(group_id) && firewall.members.iter().any(same);
            if pair.description() == Some(MEMBER_RULE) && !wanted {
                // As described (with its description): a revoke names
                // the rule as it is.
                unwanted.push(base().user_id_group_pairs(pair.clone()).build());
            }
        }
    }
    unwanted
}

/// A rule in words, for events: `tcp 22 from 10.0.0.0/8`.
fn describe_permission(p: &IpPermission) -> String {
    let ports = match (p.from_port(), p.to_port()) {
        (Some(a), Some(b)) if a == b => format!(" {a}"),
        (Some(a), Some(b)) => format!(" {a}-{b}"),
        _ => String::new(),
    };
    let from: Vec<&str> = p
        .ip_ranges()
        .iter()
        .filter_map(|r| r.cidr_ip())
        .chain(
            p.user_id_group_pairs()
                .iter()
                .map(|_| "the cluster's members"),
        )
        .collect();
    format!(
        "{}{ports} from {}",
        p.ip_protocol().unwrap_or_default(),
        from.join(", ")
    )
}

/// The ingress rules of `firewall` that `existing` lacks: SSH and the
/// client ports from their ranges, member ports from the group itself.
pub fn missing_rules(
    group_id: &str,
    firewall: &Firewall,
    existing: Option<&SecurityGroup>,
) -> Vec<IpPermission> {
    let has = |protocol: &str, ports: Option<(i32, i32)>, check: &dyn Fn(&IpPermission) -> bool| {
        existing.is_some_and(|g| {
            g.ip_permissions().iter().any(|p| {
                p.ip_protocol() == Some(protocol)
                    && ports.is_none_or(|(from, to)| {
                        p.from_port() == Some(from) && p.to_port() == Some(to)
                    })
                    && check(p)
            })
        })
    };
    let mut missing = Vec::new();
    for RangeRule {
        audience,
        port,
        from,
    } in firewall.range_rules()
    {
        let (protocol, ports) = ec2_protocol(&port);
        let from_range = |p: &IpPermission| p.ip_ranges().iter().any(|r| r.cidr_ip() == Some(from));
        if has(&protocol, ports, &from_range) {
            continue;
        }
        missing.push(
            IpPermission::builder()
                .ip_protocol(protocol)
                .set_from_port(ports.map(|p| p.0))
                .set_to_port(ports.map(|p| p.1))
                .ip_ranges(
                    IpRange::builder()
                        .cidr_ip(from)
                        .description(range_description(audience))
                        .build(),
                )
                .build(),
        );
    }
    let from_members = |p: &IpPermission| {
        p.user_id_group_pairs()
            .iter()
            .any(|g| g.group_id() == Some(group_id))
    };
    for rule in &firewall.members {
        let (protocol, ports) = ec2_protocol(rule);
        if has(&protocol, ports, &from_members) {
            continue;
        }
        missing.push(
            IpPermission::builder()
                .ip_protocol(protocol)
                .set_from_port(ports.map(|p| p.0))
                .set_to_port(ports.map(|p| p.1))
                .user_id_group_pairs(
                    UserIdGroupPair::builder()
                        .group_id(group_id)
                        .description(MEMBER_RULE)
                        .build(),
                )
                .build(),
        );
    }
    missing
}

#[cfg(test)]
mod tests {
    use provision_provider::{PortRule, Protocol};

    use super::*;

    fn firewall() -> Firewall {
        Firewall {
            ssh_from: "10.0.0.0/8".into(),
            members: vec![
                PortRule::new(Protocol::Tcp, 2377),
                PortRule::new(Protocol::Udp, 4789),
            ],
            ..Firewall::default()
        }
    }

    #[test]
    fn a_new_group_gets_ssh_from_the_range_and_member_ports_from_itself() {
        let rules = missing_rules("sg-1", &firewall(), None);
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].ip_ranges()[0].cidr_ip(), Some("10.0.0.0/8"));
        assert!(rules[0].user_id_group_pairs().is_empty());
        for rule in &rules[1..] {
            assert_eq!(rule.user_id_group_pairs()[0].group_id(), Some("sg-1"));
            assert!(
                rule.ip_ranges().is_empty(),
                "member ports are never open to a range"
            );
        }
        assert_eq!(rules[2].ip_protocol(), Some("udp"));
        assert_eq!(
            (rules[2].from_port(), rules[2].to_port()),
            (Some(4789), Some(4789))
        );
    }

    #[test]
    fn client_ports_are_opened_from_their_range_and_a_changed_range_revokes_the_old() {
        let mut f = firewall();
        f.clients = vec![PortRule::new(Protocol::Tcp, 6443)];
        let rules = missing_rules("sg-1", &f, None);
        let client = rules
            .iter()
            .find(|r| r.from_port() == Some(6443))
            .expect("a 6443 rule");
        assert_eq!(client.ip_ranges()[0].cidr_ip(), Some("10.0.0.0/8"));
        assert_eq!(client.ip_ranges()[0].description(), Some(CLIENT_RULE));
        let group = SecurityGroup::builder()
            .ip_permissions(client.clone())
            .build();
        f.clients_from = Some("192.0.2.0/24".into());
        let unwanted = unwanted_rules("sg-1", &f, &group);
        assert_eq!(unwanted.len(), 1);
        assert_eq!(unwanted[0].ip_ranges()[0].cidr_ip(), Some("10.0.0.0/8"));
        let missing = missing_rules("sg-1", &f, Some(&group));
        assert!(missing
            .iter()
            .any(|r| r.from_port() == Some(6443)
                && r.ip_ranges()[0].cidr_ip() == Some("192.0.2.0/24")));
    }

    #[test]
    fn ipip_is_protocol_4_without_ports() {
        let f = Firewall {
            ssh_from: "10.0.0.0/8".into(),
            members: vec![PortRule::protocol(Protocol::Ipip)],
            ..Firewall::default()
        };
        let rules = missing_rules("sg-1", &f, None);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].ip_protocol(), Some("4"));
        assert_eq!((rules[1].from_port(), rules[1].to_port()), (None, None));
        let group = SecurityGroup::builder()
            .set_ip_permissions(Some(rules))
            .build();
        assert!(missing_rules("sg-1", &f, Some(&group)).is_empty());
    }

    #[test]
    fn rules_already_there_are_not_asked_for_again() {
        let all = missing_rules("sg-1", &firewall(), None);
        let group = SecurityGroup::builder()
            .group_id("sg-1")
            .set_ip_permissions(Some(all[..2].to_vec()))
            .build();
        let rest = missing_rules("sg-1", &firewall(), Some(&group));
        assert_eq!(rest, all[2..].to_vec());
        let group = SecurityGroup::builder()
            .group_id("sg-1")
            .set_ip_permissions(Some(all))
            .build();
        assert!(missing_rules("sg-1", &firewall(), Some(&group)).is_empty());
    }

    #[test]
    fn a_port_open_to_the_world_does_not_count_as_a_member_rule() {
        let open = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(2377)
            .to_port(2377)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        let group = SecurityGroup::builder()
            .group_id("sg-1")
            .ip_permissions(open)
            .build();
        let rules = missing_rules("sg-1", &firewall(), Some(&group));
        assert!(rules.iter().any(|r| r.from_port() == Some(2377)));
    }
}
