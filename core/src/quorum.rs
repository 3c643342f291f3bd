//! Whether a change of managers keeps the cluster able to decide (Raft,
//! etcd and ZooKeeper all need a majority of their members).

use provision_provider::Role;

use crate::state::{Health, NodeRecord};

/// Checks that after the change the managers that stay, and are healthy
/// now, are a majority of the new manager count. `leaving` are nodes asked
/// to go by name.
pub fn check_manager_change(
    records: &[NodeRecord],
    target: u32,
    leaving: &[String],
) -> Result<(), String> {
    if target == 0 {
        return Err("a cluster needs at least one manager".into());
    }
    let managers: Vec<&NodeRecord> = records
        .iter()
        .filter(|r| r.role == Role::Manager && !r.retiring)
        .collect();
    if target as usize >= managers.len() {
        return Ok(());
    }
    let staying_healthy = managers
        .iter()
        .filter(|r| !leaving.contains(&r.name) && r.health == Health::Healthy)
        .count()
        .min(target as usize);
    let needed = target as usize / 2 + 1;
    if staying_healthy < needed {
        return Err(format!(
            "going to {target} manager(s) needs {needed} healthy manager(s) to stay, but only {staying_healthy} would: \
             the cluster would lose quorum"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managers(health: &[Health]) -> Vec<NodeRecord> {
        health
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut r = NodeRecord::new(
                    "web",
                    &format!("web-manager-{}", i + 1),
                    Role::Manager,
                    i as u32 + 1,
                );
                r.health = *h;
                r
            })
            .collect()
    }

    #[test]
    fn zero_managers_is_never_allowed() {
        assert!(check_manager_change(&managers(&[Health::Healthy]), 0, &[]).is_err());
    }

    #[test]
    fn growing_is_always_fine() {
        assert!(check_manager_change(&managers(&[Health::Unhealthy]), 3, &[]).is_ok());
    }

    #[test]
    fn shrinking_keeps_a_healthy_majority() {
        let h = Health::Healthy;
        let u = Health::Unhealthy;
        assert!(check_manager_change(&managers(&[h, h, h]), 1, &[]).is_ok());
        // Removing the two healthy ones by name leaves an unhealthy one alone.
        let err = check_manager_change(
            &managers(&[h, h, u]),
            1,
            &["web-manager-1".into(), "web-manager-2".into()],
        )
        .unwrap_err();
        assert!(err.contains("lose quorum"), "{err}");
        // 5 → 3 with two unhealthy staying: only 1 healthy of the 3 needed 2.
        let err = check_manager_change(
            &managers(&[u, u, h, h, h]),
            3,
            &["web-manager-4".into(), "web-manager-5".into()],
        )
        .unwrap_err();
        assert!(err.contains("needs 2 healthy"), "{err}");
    }
}
