//! The clouds' settings sections (`ec2:`, `openstack:`), each declared in
//! its provider crate ([`CloudSettings`]): which one a spec has, and the
//! command-line flags that set them, made from the sections' own flags.

use provision_ec2_settings::Ec2Settings;
use provision_openstack_settings::OpenStackSettings;
use provision_provider::{CloudSettings, SettingFlag};

use super::{Cloud, ClusterSpec, SpecError};

/// A command-line flag of one or more clouds' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudFlag {
    pub long: &'static str,
    pub value_name: &'static str,
    /// Each cloud's part: "ec2: …; openstack: …".
    pub help: String,
    /// The clouds it sets a field of.
    pub clouds: Vec<&'static str>,
}

/// Every cloud's flags, a flag two clouds share (`--region`) once.
pub fn cloud_flags() -> Vec<CloudFlag> {
    let mut flags = Vec::new();
    add_flags::<Ec2Settings>(&mut flags);
    add_flags::<OpenStackSettings>(&mut flags);
    flags
}

fn add_flags<T: CloudSettings>(flags: &mut Vec<CloudFlag>) {
    for SettingFlag {
        long,
        value_name,
        help,
        ..
    } in T::FLAGS
    {
        let part = format!("{}: {help}", T::CLOUD);
        match flags.iter_mut().find(|f| f.long == *long) {
            Some(shared) => {
                shared.help = format!("{}; {part}", shared.help);
                shared.clouds.push(T::CLOUD);
            }
            None => flags.push(CloudFlag {
                long,
                value_name,
                help: part,
                clouds: vec![T::CLOUD],
            }),
        }
    }
}

/// The section a cluster on `cloud` has: the given one or its defaults
/// when it is `T`'s cloud, none otherwise.
pub fn section<T: CloudSettings>(cloud: Cloud, given: &Option<T>) -> Option<T> {
    (cloud.as_str() == T::CLOUD).then(|| given.clone().unwrap_or_default())
}

/// Checks the cloud section a spec has.
pub(super) fn validate(spec: &ClusterSpec) -> Result<(), SpecError> {
    fn check<T: CloudSettings>(section: &Option<T>) -> Result<(), SpecError> {
        match section {
            Some(s) => s.validate().map_err(|message| SpecError::Field {
                field: T::CLOUD.into(),
                message,
            }),
            None => Ok(()),
        }
    }
    check(&spec.ec2)?;
    check(&spec.openstack)
}

impl ClusterSpec {
    /// Puts the given cloud flags (`--<long>` → value) on top of the
    /// spec's cloud section. A flag of a cloud the spec is not on is
    /// refused, never silently ignored.
    pub fn apply_cloud_flags(&mut self, given: &[(&str, &str)]) -> Result<(), String> {
        let flags = cloud_flags();
        for (long, _) in given {
            let Some(flag) = flags.iter().find(|f| f.long == *long) else {
                return Err(format!("--{long} is no cloud's setting"));
            };
            if !flag.clouds.contains(&self.cloud.as_str()) {
                let (clouds, adds): (Vec<_>, Vec<_>) = flag
                    .clouds
                    .iter()
                    .map(|c| (c.to_string(), format!("--cloud {c}")))
                    .unzip();
                let s = if clouds.len() > 1 { "s" } else { "" };
                return Err(format!(
                    "--{long} is a setting of the {} cloud{s}: add {}",
                    clouds.join(" and "),
                    adds.join(" or ")
                ));
            }
        }
        if let Some(s) = self.ec2.as_mut() {
            s.apply_flags(given);
        }
        if let Some(s) = self.openstack.as_mut() {
            s.apply_flags(given);
        }
        Ok(())
    }

    /// The first given cloud flag that would change where or how this
    /// cluster's machines run, said as what it is and what the flag asks.
    pub fn changed_by_cloud_flags(&self, given: &[(&str, &str)]) -> Option<String> {
        let ec2 = self.ec2.as_ref().and_then(|s| s.changed_by(given));
        ec2.or_else(|| self.openstack.as_ref().and_then(|s| s.changed_by(given)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ClusterTemplate;

    fn spec_on(cloud: Cloud) -> ClusterSpec {
        ClusterTemplate::load("swarm")
            .unwrap()
            .1
            .to_spec("web", cloud)
    }

    #[test]
    fn a_shared_flag_is_listed_once_with_each_cloud_s_help() {
        let flags = cloud_flags();
        let region: Vec<_> = flags.iter().filter(|f| f.long == "region").collect();
        assert_eq!(region.len(), 1);
        assert_eq!(region[0].clouds, ["ec2", "openstack"]);
        assert!(
            region[0].help.starts_with("ec2: region"),
            "{}",
            region[0].help
        );
        assert!(region[0].help.contains("; openstack: region"));
        let subnet = flags.iter().find(|f| f.long == "subnet").unwrap();
        assert_eq!(subnet.clouds, ["ec2"]);
    }

    #[test]
    fn flags_set_the_section_of_the_spec_s_cloud() {
        let mut s = spec_on(Cloud::Ec2);
        s.apply_cloud_flags(&[("region", "eu-west-1"), ("subnet", "subnet-1")])
            .unwrap();
        let ec2 = s.ec2.as_ref().unwrap();
        assert_eq!(ec2.region.as_deref(), Some("eu-west-1"));
        assert_eq!(ec2.subnet.as_deref(), Some("subnet-1"));
        let mut s = spec_on(Cloud::OpenStack);
        s.apply_cloud_flags(&[("region", "RegionOne"), ("os-cloud", "dev")])
            .unwrap();
        let os = s.openstack.as_ref().unwrap();
        assert_eq!(
            (os.region.as_deref(), os.cloud.as_deref()),
            (Some("RegionOne"), Some("dev"))
        );
    }

    #[test]
    fn a_flag_of_another_cloud_is_refused_naming_it() {
        let mut s = spec_on(Cloud::Local);
        assert_eq!(
            s.apply_cloud_flags(&[("subnet", "subnet-1")]).unwrap_err(),
            "--subnet is a setting of the ec2 cloud: add --cloud ec2"
        );
        assert_eq!(
            s.apply_cloud_flags(&[("region", "r")]).unwrap_err(),
            "--region is a setting of the ec2 and openstack clouds: add --cloud ec2 or --cloud openstack"
        );
        let mut s = spec_on(Cloud::Ec2);
        assert_eq!(
            s.apply_cloud_flags(&[("network", "n")]).unwrap_err(),
            "--network is a setting of the openstack cloud: add --cloud openstack"
        );
        assert_eq!(s.ec2, Some(Ec2Settings::default()), "nothing applied");
    }

    #[test]
    fn a_flag_that_would_move_the_cluster_is_named() {
        let mut s = spec_on(Cloud::OpenStack);
        s.apply_cloud_flags(&[("network", "blue")]).unwrap();
        assert_eq!(s.changed_by_cloud_flags(&[("network", "blue")]), None);
        assert_eq!(
            s.changed_by_cloud_flags(&[("network", "green")]).as_deref(),
            Some("network blue; --network green cannot change it")
        );
        assert_eq!(
            s.changed_by_cloud_flags(&[("region", "r2")]).as_deref(),
            Some("region (the default); --region r2 cannot change it")
        );
    }
}
