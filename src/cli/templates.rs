//! `provision templates`: cluster templates and bootstrap script templates.

use anyhow::{anyhow, bail, Result};
use minijinja::Value;
use provision_provider::Role;

use super::session;
use super::{Global, TemplatesCommand};
use crate::bootstrap::scripts::script_context;
use crate::bootstrap::Scripts;
use crate::orchestrator::DRAIN_WAIT_SECONDS;
use crate::spec::builtin_templates;

pub fn run(global: &Global, cmd: TemplatesCommand) -> Result<()> {
    let scripts = Scripts::new(global.scripts_dir.as_deref());
    match cmd {
        TemplatesCommand::List => {
            println!("Cluster templates (provision swarm --template NAME|FILE):");
            for (name, _) in builtin_templates() {
                println!("  {name}");
            }
            println!("\nScript templates (override with --scripts-dir DIR, as DIR/NAME.j2):");
            for name in scripts.names() {
                let (_, origin) = scripts.source(&name)?;
                println!("  {name:28} {origin}");
            }
        }
        TemplatesCommand::Show { name } => {
            if let Some((_, text)) = builtin_templates().iter().find(|(n, _)| *n == name) {
                print!("{text}");
            } else {
                print!("{}", scripts.source(&name)?.0);
            }
        }
        TemplatesCommand::Render {
            name,
            node,
            cluster,
        } => {
            let session = session::open(global)?;
            let clusters = match cluster {
                Some(c) => vec![session.cluster(&c)?],
                None => session.store.clusters()?,
            };
            let mut found = None;
            for c in clusters {
                let nodes = session.store.nodes(&c.spec.name)?;
                if let Some(n) = nodes.iter().find(|n| n.name == node) {
                    found = Some((c.clone(), n.clone(), nodes));
                    break;
                }
            }
            let (c, n, nodes) = found.ok_or_else(|| {
                anyhow!(
                    "no cluster has a node named {node:?} (`provision status NAME` lists nodes)"
                )
            })?;
            let addresses = n
                .addresses
                .clone()
                .ok_or_else(|| anyhow!("node {node} has no address yet"))?;
            let address = addresses.private.clone();
            // Members reach each other on their private addresses.
            let manager = nodes
                .iter()
                .filter(|m| m.role == Role::Manager)
                .min_by_key(|m| m.index)
                .and_then(|m| m.addresses.as_ref().map(|a| a.private.clone()));
            let mut context = script_context(&c, &n, &addresses);
            // Values some scripts take besides the node's own.
            if let Some(k8s) = &c.spec.kubernetes {
                let endpoint = k8s.control_plane_endpoint.clone().or(manager.clone());
                context.insert("endpoint".into(), Value::from(endpoint));
                context.insert("cni_manifest".into(), Value::from(k8s.cni.manifest()));
            }
            context.insert(
                "member_control_plane".into(),
                Value::from(n.role == Role::Manager),
            );
            if let Some(m) = manager {
                context.insert("manager_address".into(), Value::from(m.clone()));
                // Mesos: the master a node joins through.
                context.insert("via".into(), Value::from(m));
            }
            // Mesos removal scripts, for this node as the member.
            context.insert("member_host".into(), Value::from(address.clone()));
            context.insert("member_master".into(), Value::from(n.role == Role::Manager));
            context.insert("agent_id".into(), Value::from("AGENT_ID"));
            context.insert("schedule".into(), Value::from(r#"{"windows":[]}"#));
            context.insert(
                "member_id".into(),
                Value::from(n.member_id.clone().unwrap_or_else(|| "MEMBER_ID".into())),
            );
            context.insert("member_name".into(), Value::from(n.name.clone()));
            // swarm/labels.sh, for this node as the member.
            let labels = crate::bootstrap::scripts::member_labels(&c, &n);
            context.insert("labels".into(), Value::from_serialize(&labels));
            context.insert("wait_seconds".into(), Value::from(DRAIN_WAIT_SECONDS));
            if !scripts.names().contains(&name) {
                bail!("{name} is not a script template (`provision templates list`)");
            }
            print!("{}", scripts.render(&name, &Value::from(context))?);
        }
    }
    Ok(())
}
