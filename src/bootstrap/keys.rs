//! The cluster's SSH key pair: one ed25519 key per cluster, stored 0600.

use std::path::Path;
use std::sync::Arc;

use rand::RngCore;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;

use crate::state::StatePaths;

/// The key machines of one cluster accept for root.
#[derive(Clone)]
pub struct ClusterKey {
    private: Arc<PrivateKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An existing cluster's key is gone: a new one would not be accepted by
    /// its machines (and EC2 would keep the old key pair), so none is made.
    #[error(
        "the SSH key of cluster {cluster} is missing ({path}): its machines accept only that key. \
         Restore the file from a backup of the state directory, or run `provision destroy {cluster} --yes` \
         and create the cluster again"
    )]
    Missing { cluster: String, path: String },

    #[error("cluster key {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("cluster key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl ClusterKey {
    /// Loads the key of an existing cluster; never makes one.
    pub fn load_for(paths: &StatePaths, cluster: &str) -> Result<ClusterKey, KeyError> {
        let path = paths.private_key(cluster);
        if !path.exists() {
            return Err(KeyError::Missing {
                cluster: cluster.to_string(),
                path: path.display().to_string(),
            });
        }
        Self::load(&path)
    }

    /// The key of a cluster being created, which is not in the state store
    /// yet: made now, or one a create that stopped before storing the
    /// cluster left (no machine can have been made with it).
    pub fn for_new_cluster(paths: &StatePaths, cluster: &str) -> Result<ClusterKey, KeyError> {
        let path = paths.private_key(cluster);
        if path.exists() {
            return Self::load(&path);
        }
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        key.set_comment(format!("provision-{cluster}"));
        let text = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| KeyError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        crate::state::write_private_file(&path, text.as_bytes()).map_err(|source| {
            KeyError::Io {
                path: path.display().to_string(),
                source,
            }
        })?;
        Ok(ClusterKey {
            private: Arc::new(key),
        })
    }

    pub fn load(path: &Path) -> Result<ClusterKey, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: shown.clone(),
            source,
        })?;
        let key = PrivateKey::from_openssh(text).map_err(|e| KeyError::Invalid {
            path: shown,
            message: e.to_string(),
        })?;
        Ok(ClusterKey {
            private: Arc::new(key),
        })
    }

    pub fn private(&self) -> Arc<PrivateKey> {
        self.private.clone()
    }

    /// `ssh-ed25519 AAAA… provision-web`, for authorized_keys.
    pub fn public_line(&self) -> String {
        self.private
            .public_key()
            .to_openssh()
            .expect("an ed25519 public key always encodes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_is_made_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::resolve(Some(dir.path().join("state.db"))).unwrap();
        assert!(matches!(
            ClusterKey::load_for(&paths, "web"),
            Err(KeyError::Missing { .. })
        ));
        let a = ClusterKey::for_new_cluster(&paths, "web").unwrap();
        let b = ClusterKey::load_for(&paths, "web").unwrap();
        assert_eq!(
            ClusterKey::for_new_cluster(&paths, "web")
                .unwrap()
                .public_line(),
            a.public_line()
        );
        assert_eq!(a.public_line(), b.public_line());
        assert!(a.public_line().starts_with("ssh-ed25519 "));
        let mode = std::fs::metadata(paths.private_key("web"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
