//! A cloud's own settings section (`ec2:`, `openstack:`), declared once in
//! its provider crate: cluster templates and specs hold it, and its
//! command-line flags are made from its [`SettingFlag`]s, so a setting is
//! added in one place.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A command-line flag that sets one field of a cloud's settings.
pub struct SettingFlag<S> {
    /// The flag is `--<long>`. Two clouds may share one (`--region`): it
    /// sets the field of whichever cloud the cluster is on.
    pub long: &'static str,
    /// Its value's name in the help (`NAME`, `ID`).
    pub value_name: &'static str,
    /// What it sets on this cloud, and the default when it is not given.
    pub help: &'static str,
    /// The field it sets.
    pub field: fn(&mut S) -> &mut Option<String>,
}

/// The settings section of one cloud.
pub trait CloudSettings:
    Clone + Default + PartialEq + std::fmt::Debug + Serialize + DeserializeOwned + 'static
{
    /// The cloud's name, which is its section's name.
    const CLOUD: &'static str;
    /// The flags that set its fields.
    const FLAGS: &'static [SettingFlag<Self>];

    /// Checks what needs no cloud call; the message names the field.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Puts the given flags (`--<long>` → value) on top of these settings;
    /// the flags of other clouds are left to the caller.
    fn apply_flags(&mut self, given: &[(&str, &str)]) {
        for flag in Self::FLAGS {
            if let Some((_, value)) = given.iter().find(|(long, _)| *long == flag.long) {
                *(flag.field)(self) = Some(value.to_string());
            }
        }
    }

    /// The first given flag that would change a field these settings hold,
    /// as "`--<long>` VALUE cannot change it (it is OLD)".
    fn changed_by(&self, given: &[(&str, &str)]) -> Option<String> {
        let mut current = self.clone();
        Self::FLAGS.iter().find_map(|flag| {
            let (_, value) = given.iter().find(|(long, _)| *long == flag.long)?;
            let old = (flag.field)(&mut current).clone();
            (old.as_deref() != Some(*value)).then(|| {
                format!(
                    "{} {}; --{} {value} cannot change it",
                    flag.long,
                    old.as_deref().unwrap_or("(the default)"),
                    flag.long
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sky {
        zone: Option<String>,
        lane: Option<String>,
    }

    impl CloudSettings for Sky {
        const CLOUD: &'static str = "sky";
        const FLAGS: &'static [SettingFlag<Self>] = &[
            SettingFlag {
                long: "zone",
                value_name: "NAME",
                help: "zone",
                field: |s| &mut s.zone,
            },
            SettingFlag {
                long: "lane",
                value_name: "ID",
                help: "lane",
                field: |s| &mut s.lane,
            },
        ];
    }

    #[test]
    fn flags_set_their_fields_and_others_are_left() {
        let mut s = Sky {
            zone: Some("a".into()),
            lane: Some("1".into()),
        };
        s.apply_flags(&[("zone", "b"), ("subnet", "x")]);
        assert_eq!(s.zone.as_deref(), Some("b"));
        assert_eq!(s.lane.as_deref(), Some("1"));
    }

    #[test]
    fn a_flag_that_would_change_a_field_is_named() {
        let s = Sky {
            zone: Some("a".into()),
            lane: None,
        };
        assert_eq!(s.changed_by(&[("zone", "a")]), None);
        assert_eq!(s.changed_by(&[("subnet", "x")]), None);
        assert_eq!(
            s.changed_by(&[("zone", "b")]).as_deref(),
            Some("zone a; --zone b cannot change it")
        );
        assert_eq!(
            s.changed_by(&[("lane", "2")]).as_deref(),
            Some("lane (the default); --lane 2 cannot change it")
        );
    }
}
