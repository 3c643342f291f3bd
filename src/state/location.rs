//! Where the state lives, from `--state` / `PROVISION_STATE`: a path (the
//! embedded SQLite file) or `etcd://host:2379[,host:2379…]/prefix` (shared
//! by a team and by several daemons), with etcdctl's TLS options and a
//! user and password from the environment.

use std::path::PathBuf;

use crate::secret::Secret;

#[derive(Debug, Clone)]
pub enum StateLocation {
    /// A SQLite file; `None` is the XDG default.
    Sqlite(Option<PathBuf>),
    Etcd(EtcdTarget),
}

/// An etcd cluster and the key prefix everything is kept under.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdTarget {
    /// `http://host:port` (or `https://` with TLS), as the client dials them.
    pub endpoints: Vec<String>,
    /// Starts with `/`, no trailing `/`: `/provision`.
    pub prefix: String,
    pub tls: Option<EtcdTls>,
    pub user: Option<(String, Secret)>,
}

/// As etcdctl's `--cacert`, `--cert`, `--key`.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdTls {
    pub cacert: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The TLS files and credentials given beside `--state`.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `user` or `user:password` (as etcdctl's `--user`).
    pub user: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
#[error("--state {value:?}: {message}")]
pub struct LocationError {
    value: String,
    message: String,
}

const DEFAULT_PREFIX: &str = "/provision";

impl StateLocation {
    pub fn parse(value: Option<&str>, etcd: &EtcdOptions) -> Result<StateLocation, LocationError> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(StateLocation::Sqlite(None));
        };
        let fail = |message: String| LocationError {
            value: value.to_string(),
            message,
        };
        let Some(rest) = value.strip_prefix("etcd://") else {
            if value.contains("://") {
                return Err(fail(
                    "give a file path (SQLite) or etcd://host:2379[,host:2379…]/prefix".into(),
                ));
            }
            return Ok(StateLocation::Sqlite(Some(PathBuf::from(value))));
        };
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            DEFAULT_PREFIX.to_string()
        } else {
            if !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
                || prefix.contains("//")
            {
                return Err(fail(format!(
                    "the key prefix {prefix:?} may hold only letters, digits, '.', '_', '-' and single '/'"
                )));
            }
            format!("/{prefix}")
        };
        let scheme = if etcd.cacert.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(fail(format!(
                    "endpoint {host:?} needs a port (etcd's client port is 2379)"
                )));
            };
            if name.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(fail(format!("endpoint {host:?} is not host:port")));
            }
            endpoints.push(format!("{scheme}://{host}"));
        }
        if etcd.cacert.is_none() && (etcd.cert.is_some() || etcd.key.is_some()) {
            return Err(fail(
                "--etcd-cert and --etcd-key need --etcd-cacert (the CA that signed etcd's certificate)"
                    .into(),
            ));
        }
        if etcd.cert.is_some() != etcd.key.is_some() {
            return Err(fail("give --etcd-cert and --etcd-key together".into()));
        }
        let tls = etcd.cacert.as_ref().map(|cacert| EtcdTls {
            cacert: cacert.clone(),
            cert: etcd.cert.clone(),
            key: etcd.key.clone(),
        });
        let user = match (&etcd.user, &etcd.password) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(fail(
                    "PROVISION_ETCD_PASSWORD is set without PROVISION_ETCD_USER".into(),
                ))
            }
            (Some(user), password) => match (user.split_once(':'), password) {
                (Some((name, inline)), None) => {
                    Some((name.to_string(), Secret::new(inline)))
                }
                (None, Some(password)) => Some((user.clone(), password.clone())),
                (Some(_), Some(_)) => {
                    return Err(fail(
                        "give the password in PROVISION_ETCD_USER (user:password) or in PROVISION_ETCD_PASSWORD, not both".into(),
                    ))
                }
                (None, None) => {
                    return Err(fail(format!(
                        "etcd user {user:?} has no password: set PROVISION_ETCD_PASSWORD"
                    )))
                }
            },
        };
        Ok(StateLocation::Etcd(EtcdTarget {
            endpoints,
            prefix,
            tls,
            user,
        }))
    }
}

impl EtcdTarget {
    /// `etcd://a:2379,b:2379/prefix`, as the user wrote it (no credentials).
    pub fn shown(&self) -> String {
        let hosts: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.split_once("://").map_or(e.as_str(), |(_, h)| h))
            .collect();
        format!("etcd://{}{}", hosts.join(","), self.prefix)
    }

    /// A name for this machine's cache of the target's files (logs, the
    /// ssh_config OpenSSH reads): the prefix, and a hash of the endpoints
    /// so two etcd clusters with one prefix do not share it.
    pub fn cache_name(&self) -> String {
        let mut endpoints = self.endpoints.clone();
        endpoints.sort();
        // FNV-1a: stable across builds, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in endpoints.join(",").bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!(
            "{}-{:08x}",
            self.prefix.trim_start_matches('/').replace('/', "_"),
            hash as u32
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etcd(value: &str, options: &EtcdOptions) -> Result<EtcdTarget, LocationError> {
        match StateLocation::parse(Some(value), options)? {
            StateLocation::Etcd(t) => Ok(t),
            other => panic!("not etcd: {other:?}"),
        }
    }

    #[test]
    fn a_path_is_sqlite_and_nothing_is_the_default() {
        let none = EtcdOptions::default();
        assert!(matches!(
            StateLocation::parse(None, &none).unwrap(),
            StateLocation::Sqlite(None)
        ));
        match StateLocation::parse(Some("/tmp/s.db"), &none).unwrap() {
            StateLocation::Sqlite(Some(p)) => assert_eq!(p, PathBuf::from("/tmp/s.db")),
            other => panic!("{other:?}"),
        }
        let err = StateLocation::parse(Some("redis://x:1"), &none).unwrap_err();
        assert!(err.to_string().contains("etcd://host:2379"), "{err}");
    }

    #[test]
    fn etcd_urls_give_endpoints_and_a_prefix() {
        let none = EtcdOptions::default();
        let t = etcd("etcd://127.0.0.1:2379,127.0.0.1:22379/teams/web", &none).unwrap();
        assert_eq!(
            t.endpoints,
            ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]
        );
        assert_eq!(t.prefix, "/teams/web");
        assert_eq!(t.shown(), "etcd://127.0.0.1:2379,127.0.0.1:22379/teams/web");
        assert_eq!(etcd("etcd://h:2379", &none).unwrap().prefix, "/provision");
        assert_eq!(etcd("etcd://h:2379/", &none).unwrap().prefix, "/provision");
        for bad in [
            "etcd://h/p",
            "etcd://h:0/p",
            "etcd://:2379/p",
            "etcd://h:2379/a b",
            "etcd://h:2379/a//b",
        ] {
            assert!(etcd(bad, &none).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_makes_https_and_needs_a_ca() {
        let tls = EtcdOptions {
            cacert: Some("/ca.pem".into()),
            cert: Some("/c.pem".into()),
            key: Some("/k.pem".into()),
            ..EtcdOptions::default()
        };
        let t = etcd("etcd://h:2379/p", &tls).unwrap();
        assert_eq!(t.endpoints, ["https://h:2379"]);
        assert_eq!(t.tls.unwrap().cert, Some(PathBuf::from("/c.pem")));
        let no_ca = EtcdOptions {
            cacert: None,
            ..tls.clone()
        };
        assert!(etcd("etcd://h:2379/p", &no_ca).is_err());
        let no_key = EtcdOptions { key: None, ..tls };
        assert!(etcd("etcd://h:2379/p", &no_key).is_err());
    }

    #[test]
    fn credentials_come_as_user_colon_password_or_apart() {
        let inline = EtcdOptions {
            user: Some("ops:s3cret".into()),
            ..EtcdOptions::default()
        };
        let (user, password) = etcd("etcd://h:2379", &inline).unwrap().user.unwrap();
        assert_eq!((user.as_str(), password.expose()), ("ops", "s3cret"));
        let apart = EtcdOptions {
            user: Some("ops".into()),
            password: Some(Secret::new("pw")),
            ..EtcdOptions::default()
        };
        assert_eq!(
            etcd("etcd://h:2379", &apart)
                .unwrap()
                .user
                .unwrap()
                .1
                .expose(),
            "pw"
        );
        let missing = EtcdOptions {
            user: Some("ops".into()),
            ..EtcdOptions::default()
        };
        let err = etcd("etcd://h:2379", &missing).unwrap_err().to_string();
        assert!(err.contains("PROVISION_ETCD_PASSWORD"), "{err}");
        // The password never shows in what is printed of the target.
        let t = etcd("etcd://h:2379", &inline).unwrap();
        assert!(!format!("{t:?} {}", t.shown()).contains("s3cret"));
    }

    #[test]
    fn cache_names_differ_by_endpoints_not_by_their_order() {
        let none = EtcdOptions::default();
        let a = etcd("etcd://a:1,b:2/p", &none).unwrap().cache_name();
        let b = etcd("etcd://b:2,a:1/p", &none).unwrap().cache_name();
        let c = etcd("etcd://c:3/p", &none).unwrap().cache_name();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("p-"), "{a}");
    }
}
