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

/// Mesos masters grow as Mesos's operational guide says ("Changing the
/// master quorum"): one quorum step at a time (3 → 5 → 7), and out of a
/// single master only by wiping the masters' replicated log, which loses
/// maintenance schedules and quotas, so that takes `force`.
pub fn check_mesos_master_growth(from: u32, to: u32, force: bool) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_masters_grow_a_quorum_step_at_a_time_and_out_of_one_with_force() {
        assert!(check_mesos_master_growth(3, 5, false).is_ok());
        assert!(check_mesos_master_growth(2, 3, false).is_ok());
        assert!(check_mesos_master_growth(5, 3, false).is_ok());
        let e = check_mesos_master_growth(3, 7, true).unwrap_err();
        assert!(e.contains("scale to 5 masters first"), "{e}");
        let e = check_mesos_master_growth(1, 3, false).unwrap_err();
        assert!(e.contains("wipes the masters' replicated log"), "{e}");
        assert!(check_mesos_master_growth(1, 3, true).is_ok());
        assert!(check_mesos_master_growth(1, 5, true).is_err());
    }

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
