//! Where the credentials come from, as OpenStack users keep them: a cloud
//! of clouds.yaml (merged with secure.yaml) named by `--os-cloud`, the
//! template or `OS_CLOUD`; else the `OS_*` variables. The search path is
//! openstacksdk's: `OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`,
//! `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One cloud's connection settings, from either source.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct CloudConfig {
    #[serde(default)]
    pub auth: AuthConfig,
    /// `password` (also `v3password`) or `v3applicationcredential`; chosen
    /// from the fields given when absent.
    #[serde(default)]
    pub auth_type: Option<String>,
    #[serde(default)]
    pub region_name: Option<String>,
    /// `public` (default), `internal` or `admin`.
    #[serde(default)]
    pub interface: Option<String>,
    /// CA bundle (PEM) that signs the cloud's certificates.
    #[serde(default)]
    pub cacert: Option<String>,
    /// `false` skips certificate checks (openstacksdk's `verify`).
    #[serde(default)]
    pub verify: Option<bool>,
    /// The older spelling of `verify: false`.
    #[serde(default)]
    pub insecure: Option<bool>,
}

/// The `auth:` block. Secrets in it never reach a log or an error.
#[derive(Clone, Default, Deserialize, PartialEq)]
pub struct AuthConfig {
    pub auth_url: Option<String>,
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub password: Option<String>,
    pub user_domain_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub project_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
    /// Default for both user and project domain.
    pub domain_name: Option<String>,
    pub domain_id: Option<String>,
    pub application_credential_id: Option<String>,
    pub application_credential_name: Option<String>,
    pub application_credential_secret: Option<String>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("project_name", &self.project_name)
            .field("project_id", &self.project_id)
            .field("application_credential_id", &self.application_credential_id)
            .finish_non_exhaustive()
    }
}

/// How the driver authenticates, decided from the config.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMethod {
    Password,
    ApplicationCredential,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{0}")]
    Missing(String),
    #[error("{path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
struct CloudsFile {
    #[serde(default)]
    clouds: BTreeMap<String, serde_yaml_ng::Value>,
}

/// Files searched for clouds.yaml, in order (the first that exists wins).
pub fn search_path(env: &dyn Fn(&str) -> Option<String>, file: &str) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if file == "clouds.yaml" {
        if let Some(p) = env("OS_CLIENT_CONFIG_FILE") {
            paths.push(PathBuf::from(p));
        }
    }
    paths.push(PathBuf::from(file));
    let config_home = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")));
    if let Some(home) = config_home {
        paths.push(home.join("openstack").join(file));
    }
    paths.push(Path::new("/etc/openstack").join(file));
    paths
}

/// The named cloud, or the `OS_*` variables when no name is given.
pub fn load(
    cloud: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(CloudConfig, String), ConfigError> {
    let name = cloud
        .map(str::to_string)
        .or_else(|| env("OS_CLOUD").filter(|c| !c.is_empty()));
    match name {
        Some(name) => from_clouds_yaml(&name, env).map(|c| (c, format!("cloud {name}"))),
        None if env("OS_AUTH_URL").is_some() => Ok((from_env(env), "the OS_* variables".into())),
        None => Err(ConfigError::Missing(format!(
            "no OpenStack cloud named: give --os-cloud NAME (a cloud of clouds.yaml, searched in \
             {}), set OS_CLOUD, or source an openrc file (OS_AUTH_URL, OS_USERNAME…)",
            list(&search_path(env, "clouds.yaml"))
        ))),
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn from_clouds_yaml(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CloudConfig, ConfigError> {
    let paths = search_path(env, "clouds.yaml");
    let Some(path) = paths.iter().find(|p| p.is_file()) else {
        return Err(ConfigError::Missing(format!(
            "cloud {name}: no clouds.yaml found (searched {})",
            list(&paths)
        )));
    };
    let mut clouds = read_clouds(path)?;
    let Some(mut cloud) = clouds.remove(name) else {
        let known: Vec<_> = clouds.keys().cloned().collect();
        return Err(ConfigError::Missing(format!(
            "cloud {name} is not in {} (it has: {})",
            path.display(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    };
    // secure.yaml holds the secrets of the same clouds, kept apart.
    if let Some(secure) = search_path(env, "secure.yaml").iter().find(|p| p.is_file()) {
        if let Some(extra) = read_clouds(secure)?.remove(name) {
            merge(&mut cloud, extra);
        }
    }
    serde_yaml_ng::from_value(cloud).map_err(|e| ConfigError::Invalid {
        field: format!("{}: clouds.{name}", path.display()),
        message: e.to_string(),
    })
}

fn read_clouds(path: &Path) -> Result<BTreeMap<String, serde_yaml_ng::Value>, ConfigError> {
    let unreadable = |message: String| ConfigError::Unreadable {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let file: CloudsFile = serde_yaml_ng::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    Ok(file.clouds)
}

/// secure.yaml's values win, maps merged key by key.
fn merge(base: &mut serde_yaml_ng::Value, extra: serde_yaml_ng::Value) {
    match (base, extra) {
        (serde_yaml_ng::Value::Mapping(b), serde_yaml_ng::Value::Mapping(e)) => {
            for (k, v) in e {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn from_env(env: &dyn Fn(&str) -> Option<String>) -> CloudConfig {
    let v = |k: &str| env(k).filter(|s| !s.is_empty());
    CloudConfig {
        auth: AuthConfig {
            auth_url: v("OS_AUTH_URL"),
            username: v("OS_USERNAME"),
            user_id: v("OS_USER_ID"),
            password: v("OS_PASSWORD"),
            user_domain_name: v("OS_USER_DOMAIN_NAME"),
            user_domain_id: v("OS_USER_DOMAIN_ID"),
            project_name: v("OS_PROJECT_NAME").or_else(|| v("OS_TENANT_NAME")),
            project_id: v("OS_PROJECT_ID").or_else(|| v("OS_TENANT_ID")),
            project_domain_name: v("OS_PROJECT_DOMAIN_NAME"),
            project_domain_id: v("OS_PROJECT_DOMAIN_ID"),
            domain_name: v("OS_DOMAIN_NAME"),
            domain_id: v("OS_DOMAIN_ID"),
            application_credential_id: v("OS_APPLICATION_CREDENTIAL_ID"),
            application_credential_name: v("OS_APPLICATION_CREDENTIAL_NAME"),
            application_credential_secret: v("OS_APPLICATION_CREDENTIAL_SECRET"),
        },
        auth_type: v("OS_AUTH_TYPE"),
        region_name: v("OS_REGION_NAME"),
        interface: v("OS_INTERFACE"),
        cacert: v("OS_CACERT"),
        verify: None,
        insecure: v("OS_INSECURE").map(|s| matches!(s.as_str(), "1" | "true" | "True" | "yes")),
    }
}

impl CloudConfig {
    /// Which auth the fields ask for; names the missing field when none fits.
    pub fn auth_method(&self, source: &str) -> Result<AuthMethod, ConfigError> {
        let missing = |field: &str, what: &str| ConfigError::Invalid {
            field: format!("{source}: auth.{field}"),
            message: format!("missing; {what}"),
        };
        let a = &self.auth;
        if a.auth_url.is_none() {
            return Err(missing(
                "auth_url",
                "the Keystone URL, like https://keystone.example.com:5000/v3",
            ));
        }
        let method = match self.auth_type.as_deref() {
            Some("password" | "v3password") => AuthMethod::Password,
            Some("v3applicationcredential" | "applicationcredential") => {
                AuthMethod::ApplicationCredential
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    field: format!("{source}: auth_type"),
                    message: format!(
                        "{other} is not supported; use password or v3applicationcredential"
                    ),
                })
            }
            None if a.application_credential_secret.is_some() => AuthMethod::ApplicationCredential,
            None => AuthMethod::Password,
        };
        match method {
            AuthMethod::Password => {
                if a.username.is_none() {
                    return Err(if a.user_id.is_some() {
                        ConfigError::Invalid {
                            field: format!("{source}: auth.user_id"),
                            message: "password auth by user id is not supported; give \
                                      auth.username and auth.user_domain_name"
                                .into(),
                        }
                    } else {
                        missing("username", "the user to log in as")
                    });
                }
                if a.password.is_none() {
                    return Err(missing("password", "put it in secure.yaml or OS_PASSWORD"));
                }
                if a.project_id.is_none() && a.project_name.is_none() {
                    return Err(missing(
                        "project_name",
                        "servers belong to a project: give auth.project_name or auth.project_id",
                    ));
                }
            }
            AuthMethod::ApplicationCredential => {
                if a.application_credential_secret.is_none() {
                    return Err(missing(
                        "application_credential_secret",
                        "the credential's secret",
                    ));
                }
                if a.application_credential_id.is_none()
                    && (a.application_credential_name.is_none() || a.user_id.is_none())
                {
                    return Err(missing(
                        "application_credential_id",
                        "give the credential's id (or its name with auth.user_id)",
                    ));
                }
            }
        }
        Ok(method)
    }

    /// Skip TLS certificate checks.
    pub fn insecure(&self) -> bool {
        self.verify == Some(false) || self.insecure == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const CLOUDS: &str = "clouds:\n  mine:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: demo\n      project_name: demo\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: internal\n    verify: false\n  other: {}\n";

    #[test]
    fn named_cloud_merges_secure_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let clouds = write(dir.path(), "clouds.yaml", CLOUDS);
        std::fs::create_dir_all(dir.path().join("openstack")).unwrap();
        write(
            &dir.path().join("openstack"),
            "secure.yaml",
            "clouds:\n  mine:\n    auth:\n      password: s3cret\n",
        );
        let env = env_of(&[
            ("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap()),
            ("XDG_CONFIG_HOME", dir.path().to_str().unwrap()),
        ]);
        let (c, source) = load(Some("mine"), &env).unwrap();
        assert_eq!(source, "cloud mine");
        assert_eq!(c.auth.password.as_deref(), Some("s3cret"));
        assert_eq!(c.auth.username.as_deref(), Some("demo"));
        assert_eq!(c.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(c.interface.as_deref(), Some("internal"));
        assert!(c.insecure());
        assert_eq!(c.auth_method(&source).unwrap(), AuthMethod::Password);
    }

    #[test]
    fn os_cloud_names_the_cloud_and_unknown_names_list_the_known() {
        let dir = tempfile::tempdir().unwrap();
        let clouds = write(dir.path(), "clouds.yaml", CLOUDS);
        let env = env_of(&[
            ("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap()),
            ("OS_CLOUD", "nope"),
        ]);
        let err = load(None, &env).unwrap_err().to_string();
        assert!(err.contains("cloud nope is not in"), "{err}");
        assert!(err.contains("mine, other"), "{err}");
    }

    #[test]
    fn env_variables_when_no_cloud_is_named() {
        let env = env_of(&[
            ("OS_AUTH_URL", "http://k:5000/v3"),
            ("OS_APPLICATION_CREDENTIAL_ID", "abc"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "shh"),
            ("OS_CACERT", "/etc/ca.pem"),
        ]);
        let (c, source) = load(None, &env).unwrap();
        assert_eq!(
            c.auth_method(&source).unwrap(),
            AuthMethod::ApplicationCredential
        );
        assert_eq!(c.cacert.as_deref(), Some("/etc/ca.pem"));
        assert!(!c.insecure());
    }

    #[test]
    fn nothing_configured_says_what_to_do() {
        let err = load(None, &env_of(&[("HOME", "/nonexistent")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--os-cloud"), "{text}");
        assert!(
            text.contains("/nonexistent/.config/openstack/clouds.yaml"),
            "{text}"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let mut c = CloudConfig::default();
        assert!(c
            .auth_method("cloud x")
            .unwrap_err()
            .to_string()
            .contains("auth.auth_url"));
        c.auth.auth_url = Some("http://k/v3".into());
        c.auth.username = Some("u".into());
        let e = c.auth_method("cloud x").unwrap_err().to_string();
        assert!(e.contains("auth.password"), "{e}");
        c.auth.password = Some("p".into());
        let e = c.auth_method("cloud x").unwrap_err().to_string();
        assert!(e.contains("auth.project_name"), "{e}");
        c.auth_type = Some("v3token".into());
        assert!(c
            .auth_method("cloud x")
            .unwrap_err()
            .to_string()
            .contains("auth_type"));
    }

    #[test]
    fn the_example_clouds_yaml_loads() {
        // The crate's directory as cargo gives it to this run: the one built
        // in may be gone (a shared target dir reuses a test binary built from
        // another checkout).
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let example = format!("{dir}/../../examples/clouds.yaml");
        let env = env_of(&[
            ("OS_CLIENT_CONFIG_FILE", &example),
            ("HOME", "/nonexistent"),
        ]);
        let (c, source) = load(Some("mycloud"), &env).unwrap();
        assert_eq!(c.auth_method(&source).unwrap(), AuthMethod::Password);
        assert_eq!(
            c.cacert.as_deref(),
            Some("/etc/ssl/certs/my-openstack-ca.pem")
        );
        let (c, source) = load(Some("mycloud-appcred"), &env).unwrap();
        assert_eq!(
            c.auth_method(&source).unwrap(),
            AuthMethod::ApplicationCredential
        );
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let mut c = CloudConfig::default();
        c.auth.password = Some("hunter2".into());
        c.auth.application_credential_secret = Some("appsecret".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("appsecret"));
    }
}
