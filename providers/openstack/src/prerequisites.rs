//! What a cluster's servers need before the first one exists: the keypair
//! (the cluster's public key), the security group and its rules, and the
//! managers' server group. Each is named `provision-<cluster id>`, found
//! by that name first (a re-run finishes, never duplicates), and reported
//! to the recorder the moment it exists.

use provision_provider::{
    Apply, Audience, ClusterRef, Firewall, PortRule, ProviderError, RangeRule, Recorder,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use crate::api::Request;
use crate::metadata::resource_name;
use crate::provider::OpenStackProvider;

#[derive(Debug, Clone)]
pub(crate) struct Prerequisites {
    pub keypair: String,
    pub security_group: String,
    /// The managers' server group, unless the policy is `none`.
    pub server_group_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub security_group_rules: Vec<SecurityGroupRule>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub(crate) struct SecurityGroupRule {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    pub direction: String,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port_range_min: Option<u16>,
    #[serde(default)]
    pub port_range_max: Option<u16>,
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    #[serde(default)]
    pub remote_group_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ServerGroup {
    id: String,
    name: String,
}

/// What this tool writes on the rules it makes, to tell them from anyone
/// else's (only its own are ever revoked).
const SSH_RULE: &str = "provision ssh";
const CLIENT_RULE: &str = "provision clients";
const MEMBER_RULE: &str = "provision cluster members";

/// The description a rule open to a range carries.
fn range_description(audience: Audience) -> &'static str {
    match audience {
        Audience::Ssh => SSH_RULE,
        Audience::Clients => CLIENT_RULE,
    }
}

/// The rules this tool made in the group that `firewall` no longer has.
pub(crate) fn unwanted_rules<'a>(
    group_id: &str,
    firewall: &Firewall,
    rules: &'a [SecurityGroupRule],
) -> Vec<&'a SecurityGroupRule> {
    let same = |r: &SecurityGroupRule, rule: &PortRule| {
        r.protocol.as_deref() == Some(rule.protocol.as_str())
            && r.port_range_min == rule.ports().map(|p| p.0)
            && r.port_range_max == rule.ports().map(|p| p.1)
    };
    let ranges = firewall.range_rules();
    let wanted_range = |r: &SecurityGroupRule, audience: Audience| {
        ranges.iter().any(|w| {
            w.audience == audience
                && same(r, &w.port)
                && r.remote_ip_prefix.as_deref() == Some(w.from)
        })
    };
    rules
        .iter()
        .filter(|r| r.direction == "ingress")
        .filter(|r| match r.description.as_deref() {
            Some(SSH_RULE) => !wanted_range(r, Audience::Ssh),
            Some(CLIENT_RULE) => !wanted_range(r, Audience::Clients),
            Some(MEMBER_RULE) => {
                !(r.remote_group_id.as_deref() == Some(group_id)
                    && firewall.members.iter().any(|m| same(r, m)))
            }
            _ => false,
        })
        .collect()
}

/// A rule in words, for events: `tcp 22 from 10.0.0.0/8`.
fn describe_rule(protocol: Option<&str>, min: Option<u16>, max: Option<u16>, from: &str) -> String {
    let ports = match (min, max) {
        (Some(a), Some(b)) if a == b => format!(" {a}"),
        (Some(a), Some(b)) => format!(" {a}-{b}"),
        _ => String::new(),
    };
    format!("{}{ports} from {from}", protocol.unwrap_or("any"))
}

/// The ingress rules the cluster needs that `existing` lacks: SSH and the
/// client ports from their ranges, each member port from the group itself.
pub(crate) fn missing_rules(
    group_id: &str,
    firewall: &Firewall,
    existing: &[SecurityGroupRule],
) -> Vec<Value> {
    let has = |protocol: &str, rule: &PortRule, from_cidr: Option<&str>| {
        existing.iter().any(|r| {
            r.direction == "ingress"
                && r.protocol.as_deref() == Some(protocol)
                && r.port_range_min == rule.ports().map(|p| p.0)
                && r.port_range_max == rule.ports().map(|p| p.1)
                && match from_cidr {
                    Some(cidr) => r.remote_ip_prefix.as_deref() == Some(cidr),
                    None => r.remote_group_id.as_deref() == Some(group_id),
                }
        })
    };
    let rule = |protocol: &str, r: &PortRule, remote: Value, description: &str| {
        let mut body = json!({
            "security_group_id": group_id,
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": protocol,
            // Null for a protocol without ports (ipip), as Neutron wants.
            "port_range_min": r.ports().map(|p| p.0),
            "port_range_max": r.ports().map(|p| p.1),
            "description": description,
        });
        let fields = body.as_object_mut().expect("an object");
        for (k, v) in remote.as_object().expect("an object") {
            fields.insert(k.clone(), v.clone());
        }
        json!({ "security_group_rule": body })
    };
    let mut missing = Vec::new();
    for RangeRule {
        audience,
        port,
        from,
    } in firewall.range_rules()
    {
        let protocol = port.protocol.as_str();
        if !has(protocol, &port, Some(from)) {
            let mut r = rule(
                protocol,
                &port,
                json!({ "remote_ip_prefix": from }),
                range_description(audience),
            );
            if from.contains(':') {
                r["security_group_rule"]["ethertype"] = json!("IPv6");
            }
            missing.push(r);
        }
    }
    for member in &firewall.members {
        let protocol = member.protocol.as_str();
        if !has(protocol, member, None) {
            missing.push(rule(
                protocol,
                member,
                json!({"remote_group_id": group_id}),
                MEMBER_RULE,
            ));
        }
    }
    missing
}

impl OpenStackProvider {
    pub(crate) async fn make_prerequisites(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<Prerequisites, ProviderError> {
        let keypair = self.ensure_keypair(cluster, recorder).await?;
        let security_group = self.ensure_security_group(cluster, recorder).await?;
        let server_group_id = self.ensure_server_group(cluster, recorder).await?;
        Ok(Prerequisites {
            keypair,
            security_group,
            server_group_id,
        })
    }

    async fn ensure_keypair(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<String, ProviderError> {
        let name = resource_name(&cluster.id);
        let cloud = &self.api.cloud;
        let wanted = cluster.ssh_public_key.trim();
        if let Some(kp) = self
            .api
            .find("GetKeypair", || cloud.get_keypair(&name))
            .await?
        {
            // Compare the key material only: Nova may drop the comment.
            let material = |k: &str| k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            if material(kp.public_key()) != material(wanted) {
                return Err(ProviderError::Conflict {
                    what: format!("keypair {name}"),
                    cluster: cluster.name.clone(),
                    hint: "it holds another public key; delete it (openstack keypair delete) and run again".into(),
                });
            }
            return Ok(name);
        }
        // Nova's keypair names are unique: one an earlier try made is found
        // by its name.
        let existing = || async {
            let found = self
                .api
                .compute(
                    "GetKeypair",
                    Method::GET,
                    &["os-keypairs", &name],
                    Request::absent_ok(),
                )
                .await?;
            Ok((!found.is_null()).then_some(found))
        };
        let body = json!({"keypair": {"name": name, "public_key": wanted}});
        self.api
            .compute_create(
                "CreateKeypair",
                &["os-keypairs"],
                Request::body(&body),
                existing,
            )
            .await?;
        recorder.created("keypair", &name);
        Ok(name)
    }

    pub(crate) async fn cluster_security_groups(
        &self,
        cluster: &ClusterRef,
    ) -> Result<Vec<SecurityGroup>, ProviderError> {
        let name = resource_name(&cluster.id);
        let answer = self
            .api
            .network(
                "ListSecurityGroups",
                Method::GET,
                &["security-groups"],
                Request::query(&[("name", &name)]),
            )
            .await?;
        parse(&answer, "security_groups")
    }

    async fn ensure_security_group(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<String, ProviderError> {
        let name = resource_name(&cluster.id);
        let (id, rules) = match self
            .cluster_security_groups(cluster)
            .await?
            .into_iter()
            .next()
        {
            Some(g) => (g.id, g.security_group_rules),
            None => {
                let body = json!({"security_group": {
                    "name": name,
                    "description": format!("provision cluster {} ({})", cluster.name, cluster.id),
                }});
                // Found by its name (the cluster id) if an earlier try made it.
                let existing = || async {
                    let answer = self
                        .api
                        .network(
                            "ListSecurityGroups",
                            Method::GET,
                            &["security-groups"],
                            Request::query(&[("name", &name)]),
                        )
                        .await?;
                    Ok(answer["security_groups"]
                        .as_array()
                        .and_then(|groups| groups.first())
                        .map(|g| json!({ "security_group": g })))
                };
                let answer = self
                    .api
                    .network_create(
                        "CreateSecurityGroup",
                        &["security-groups"],
                        Request::body(&body),
                        existing,
                    )
                    .await?;
                let group: SecurityGroup = parse(&answer, "security_group")?;
                recorder.created("security-group", &group.id);
                (group.id, group.security_group_rules)
            }
        };
        self.add_rules(&id, cluster, missing_rules(&id, &cluster.firewall, &rules))
            .await?;
        Ok(name)
    }

    /// See [`provision_provider::Provider::reconcile_firewall`].
    pub(crate) async fn reconcile_security_group(
        &self,
        cluster: &ClusterRef,
        apply: Apply,
    ) -> Result<Vec<String>, ProviderError> {
        let Some(group) = self
            .cluster_security_groups(cluster)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(Vec::new());
        };
        let missing = missing_rules(&group.id, &cluster.firewall, &group.security_group_rules);
        let unwanted = unwanted_rules(&group.id, &cluster.firewall, &group.security_group_rules);
        let mut changes: Vec<String> = missing
            .iter()
            .map(|r| {
                let r = &r["security_group_rule"];
                let from = r["remote_ip_prefix"]
                    .as_str()
                    .unwrap_or("the cluster's members");
                let rule = describe_rule(
                    r["protocol"].as_str(),
                    r["port_range_min"].as_u64().map(|p| p as u16),
                    r["port_range_max"].as_u64().map(|p| p as u16),
                    from,
                );
                apply.describe("firewall:", "added", "add", &rule)
            })
            .collect();
        changes.extend(unwanted.iter().map(|rule| {
            let from = rule
                .remote_ip_prefix
                .as_deref()
                .unwrap_or("the cluster's members");
            let what = describe_rule(
                rule.protocol.as_deref(),
                rule.port_range_min,
                rule.port_range_max,
                from,
            );
            apply.describe("firewall:", "revoked", "revoke", &what)
        }));
        if apply == Apply::DryRun {
            return Ok(changes);
        }
        self.add_rules(&group.id, cluster, missing).await?;
        for rule in unwanted {
            self.api
                .network(
                    "DeleteSecurityGroupRule",
                    Method::DELETE,
                    &["security-group-rules", &rule.id],
                    Request::absent_ok(),
                )
                .await?;
        }
        Ok(changes)
    }

    /// Creates `rules` (request bodies) in group `id`.
    async fn add_rules(
        &self,
        id: &str,
        cluster: &ClusterRef,
        rules: Vec<Value>,
    ) -> Result<(), ProviderError> {
        for rule in rules {
            // A rule an earlier try made is no longer missing from the group.
            let existing = || async {
                let answer = self
                    .api
                    .network(
                        "GetSecurityGroup",
                        Method::GET,
                        &["security-groups", id],
                        Request::default(),
                    )
                    .await?;
                let group: SecurityGroup = parse(&answer, "security_group")?;
                let still_missing =
                    missing_rules(id, &cluster.firewall, &group.security_group_rules);
                Ok((!still_missing.contains(&rule)).then(|| rule.clone()))
            };
            self.api
                .network_create(
                    "CreateSecurityGroupRule",
                    &["security-group-rules"],
                    Request::body(&rule),
                    existing,
                )
                .await?;
        }
        Ok(())
    }

    async fn cluster_server_groups(
        &self,
        cluster: &ClusterRef,
    ) -> Result<Vec<String>, ProviderError> {
        let name = resource_name(&cluster.id);
        let answer = self
            .api
            .compute(
                "ListServerGroups",
                Method::GET,
                &["os-server-groups"],
                Request::default(),
            )
            .await?;
        let groups: Vec<ServerGroup> = parse(&answer, "server_groups")?;
        Ok(groups
            .into_iter()
            .filter(|g| g.name == name)
            .map(|g| g.id)
            .collect())
    }

    async fn ensure_server_group(
        &self,
        cluster: &ClusterRef,
        recorder: &dyn Recorder,
    ) -> Result<Option<String>, ProviderError> {
        let Some(policy) = self.options.settings.server_group_policy.nova_name() else {
            return Ok(None);
        };
        if let Some(id) = self
            .cluster_server_groups(cluster)
            .await?
            .into_iter()
            .next()
        {
            return Ok(Some(id));
        }
        let body =
            json!({"server_group": {"name": resource_name(&cluster.id), "policies": [policy]}});
        // 2.15 is the first microversion with the soft policies.
        let request = Request {
            microversion: Some((2, 15)),
            ..Request::body(&body)
        };
        let existing = || async {
            Ok(self
                .cluster_server_groups(cluster)
                .await?
                .into_iter()
                .next()
                .map(|id| json!({"server_group": {"id": id, "name": resource_name(&cluster.id)}})))
        };
        let answer = self
            .api
            .compute_create(
                "CreateServerGroup",
                &["os-server-groups"],
                request,
                existing,
            )
            .await?;
        let group: ServerGroup = parse(&answer, "server_group")?;
        recorder.created("server-group", &group.id);
        Ok(Some(group.id))
    }

    /// Deletes the server groups, security groups and keypair named for the
    /// cluster. Runs after the servers are gone (Neutron refuses to delete
    /// a group a port still uses; that 409 is retried meanwhile).
    pub(crate) async fn delete_prerequisites(
        &self,
        cluster: &ClusterRef,
    ) -> Result<(), ProviderError> {
        for id in self.cluster_server_groups(cluster).await? {
            self.api
                .compute(
                    "DeleteServerGroup",
                    Method::DELETE,
                    &["os-server-groups", &id],
                    Request::absent_ok(),
                )
                .await?;
            info!(id, "server group deleted");
        }
        for group in self.cluster_security_groups(cluster).await? {
            self.api
                .network(
                    "DeleteSecurityGroup",
                    Method::DELETE,
                    &["security-groups", &group.id],
                    Request::absent_ok(),
                )
                .await?;
            info!(id = group.id, "security group deleted");
        }
        let name = resource_name(&cluster.id);
        self.api
            .compute(
                "DeleteKeypair",
                Method::DELETE,
                &["os-keypairs", &name],
                Request::absent_ok(),
            )
            .await?;
        info!(name, "keypair deleted (or already gone)");
        Ok(())
    }
}

/// Reads `key` of a JSON answer as `T`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    answer: &Value,
    key: &str,
) -> Result<T, ProviderError> {
    let value = answer.get(key).cloned().unwrap_or(Value::Null);
    serde_json::from_value(value).map_err(|e| ProviderError::Call {
        cloud: crate::errors::CLOUD,
        call: key.into(),
        message: format!("unexpected answer: {e}"),
        retryable: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use provision_provider::Protocol;

    fn firewall() -> Firewall {
        Firewall {
            ssh_from: "10.0.0.0/8".into(),
            members: vec![
                PortRule::new(Protocol::Tcp, 2377),
                PortRule::range(Protocol::Udp, 7946, 7946),
            ],
            ..Firewall::default()
        }
    }

    #[test]
    fn a_new_group_gets_ssh_and_member_rules() {
        let rules = missing_rules("sg1", &firewall(), &[]);
        assert_eq!(rules.len(), 3);
        let ssh = &rules[0]["security_group_rule"];
        assert_eq!(ssh["remote_ip_prefix"], "10.0.0.0/8");
        assert_eq!(ssh["port_range_min"], 22);
        let member = &rules[1]["security_group_rule"];
        assert_eq!(member["remote_group_id"], "sg1");
        assert_eq!(member["port_range_max"], 2377);
        assert!(member.get("remote_ip_prefix").is_none());
        assert_eq!(rules[2]["security_group_rule"]["protocol"], "udp");
    }

    #[test]
    fn ipip_is_a_protocol_rule_without_ports() {
        let f = Firewall {
            ssh_from: "10.0.0.0/8".into(),
            members: vec![PortRule::protocol(Protocol::Ipip)],
            ..Firewall::default()
        };
        let rules = missing_rules("sg1", &f, &[]);
        let ipip = &rules[1]["security_group_rule"];
        assert_eq!(ipip["protocol"], "ipip");
        assert!(ipip["port_range_min"].is_null() && ipip["port_range_max"].is_null());
        let existing = [SecurityGroupRule {
            direction: "ingress".into(),
            protocol: Some("ipip".into()),
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: Some("sg1".into()),
            ..Default::default()
        }];
        assert_eq!(missing_rules("sg1", &f, &existing).len(), 1, "only SSH");
    }

    #[test]
    fn rules_present_are_not_made_again() {
        let existing = vec![
            SecurityGroupRule {
                direction: "ingress".into(),
                protocol: Some("tcp".into()),
                port_range_min: Some(22),
                port_range_max: Some(22),
                remote_ip_prefix: Some("10.0.0.0/8".into()),
                remote_group_id: None,
                ..Default::default()
            },
            SecurityGroupRule {
                direction: "ingress".into(),
                protocol: Some("tcp".into()),
                port_range_min: Some(2377),
                port_range_max: Some(2377),
                remote_ip_prefix: None,
                remote_group_id: Some("sg1".into()),
                ..Default::default()
            },
            // Neutron's default egress rule does not count.
            SecurityGroupRule {
                direction: "egress".into(),
                protocol: None,
                port_range_min: None,
                port_range_max: None,
                remote_ip_prefix: None,
                remote_group_id: None,
                ..Default::default()
            },
        ];
        let rules = missing_rules("sg1", &firewall(), &existing);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["security_group_rule"]["port_range_min"], 7946);
    }

    #[test]
    fn only_own_rules_the_firewall_no_longer_has_are_unwanted() {
        let rule = |id: &str,
                    description: Option<&str>,
                    port: u16,
                    cidr: Option<&str>,
                    group: Option<&str>| {
            SecurityGroupRule {
                id: id.into(),
                description: description.map(str::to_string),
                direction: "ingress".into(),
                protocol: Some("tcp".into()),
                port_range_min: Some(port),
                port_range_max: Some(port),
                remote_ip_prefix: cidr.map(str::to_string),
                remote_group_id: group.map(str::to_string),
            }
        };
        let rules = vec![
            // The old SSH range: ours, no longer wanted.
            rule("old-ssh", Some(SSH_RULE), 22, Some("0.0.0.0/0"), None),
            // The current one.
            rule("ssh", Some(SSH_RULE), 22, Some("10.0.0.0/8"), None),
            // A member port the template dropped.
            rule("dropped", Some(MEMBER_RULE), 9999, None, Some("sg1")),
            rule("swarm", Some(MEMBER_RULE), 2377, None, Some("sg1")),
            // An admin's own rule, whatever it allows.
            rule(
                "admin",
                Some("monitoring"),
                9100,
                Some("192.168.0.0/16"),
                None,
            ),
            rule("admin2", None, 22, Some("0.0.0.0/0"), None),
        ];
        let unwanted: Vec<&str> = unwanted_rules("sg1", &firewall(), &rules)
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(unwanted, ["old-ssh", "dropped"]);
    }

    #[test]
    fn client_ports_are_opened_from_their_range_and_a_changed_range_revokes_the_old() {
        let mut f = firewall();
        f.clients = vec![PortRule::new(Protocol::Tcp, 6443)];
        let rules = missing_rules("sg1", &f, &[]);
        let client = &rules[1]["security_group_rule"];
        assert_eq!(
            (
                &client["port_range_min"],
                &client["remote_ip_prefix"],
                &client["description"]
            ),
            (&json!(6443), &json!("10.0.0.0/8"), &json!(CLIENT_RULE)),
            "from ssh_from's range when clients_from is absent"
        );
        let made = |id: &str, cidr: &str| SecurityGroupRule {
            id: id.into(),
            description: Some(CLIENT_RULE.into()),
            direction: "ingress".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(6443),
            port_range_max: Some(6443),
            remote_ip_prefix: Some(cidr.into()),
            remote_group_id: None,
        };
        let existing = [made("old", "10.0.0.0/8")];
        f.clients_from = Some("192.0.2.0/24".into());
        let unwanted: Vec<&str> = unwanted_rules("sg1", &f, &existing)
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(unwanted, ["old"]);
        let missing = missing_rules("sg1", &f, &existing);
        assert!(missing
            .iter()
            .any(
                |r| r["security_group_rule"]["remote_ip_prefix"] == "192.0.2.0/24"
                    && r["security_group_rule"]["port_range_min"] == 6443
            ));
        let kept = [made("new", "192.0.2.0/24")];
        assert!(unwanted_rules("sg1", &f, &kept).is_empty());
    }

    #[test]
    fn ssh_from_the_world_in_ipv6() {
        let f = Firewall {
            ssh_from: "::/0".into(),
            members: vec![],
            ..Firewall::default()
        };
        let rules = missing_rules("sg", &f, &[]);
        assert_eq!(rules[0]["security_group_rule"]["ethertype"], "IPv6");
    }
}
