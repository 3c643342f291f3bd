//! What `--dry-run` prints: the plan of the next reconcile pass, made by the
//! same planner from an observation that wrote nothing.

use crate::controller::DryRun;

/// Prints the plan for cluster `name`, then that nothing was changed.
pub fn print(name: &str, dry: &DryRun) {
    for line in lines(name, dry) {
        println!("{line}");
    }
}

fn lines(name: &str, dry: &DryRun) -> Vec<String> {
    let plan = &dry.plan;
    let mut out = Vec::new();
    if plan.is_empty() && dry.firewall.is_empty() {
        out.push(format!("{name}: nothing to do"));
    } else {
        out.push(format!("{name}: the next run would"));
    }
    if !dry.prerequisites.is_empty() {
        out.push(format!(
            "  - make sure the cloud has the cluster's {} (each made when missing)",
            dry.prerequisites.join(", ")
        ));
    }
    out.extend(dry.firewall.iter().map(|change| format!("  - {change}")));
    out.extend(
        plan.describe()
            .into_iter()
            .map(|line| format!("  - {line}")),
    );
    out.extend(plan.notes.iter().map(|note| format!("  note: {note}")));
    out.push("Dry run: nothing was changed.".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::plan::NodeSteps;
    use crate::controller::{Action, Plan};

    #[test]
    fn a_plan_is_listed_action_by_action_with_its_notes() {
        let dry = DryRun {
            firewall: vec!["firewall: would add tcp 22 from 10.0.0.0/8".into()],
            prerequisites: &["key-pair", "security-group"],
            plan: Plan {
                nodes: vec![NodeSteps {
                    node: "web-worker-1".into(),
                    steps: vec![Action::Bootstrap {
                        node: "web-worker-1".into(),
                    }],
                }],
                notes: vec![crate::state::Reason::ManagersLeaveOneAtATime],
                ..Plan::default()
            },
        };
        assert_eq!(
            lines("web", &dry),
            vec![
                "web: the next run would",
                "  - make sure the cloud has the cluster's key-pair, security-group (each made when missing)",
                "  - firewall: would add tcp 22 from 10.0.0.0/8",
                "  - bootstrap web-worker-1 (SSH, install)",
                "  note: managers leave one at a time: the next one goes in a later pass",
                "Dry run: nothing was changed.",
            ]
        );
    }

    #[test]
    fn an_empty_plan_says_nothing_to_do() {
        assert_eq!(
            lines("web", &DryRun::default()),
            vec!["web: nothing to do", "Dry run: nothing was changed."]
        );
    }
}
