//! The cluster's SSH key pair: one ed25519 key per cluster, stored 0600.

use std::path::Path;
use std::sync::Arc;

use rand::RngCore;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;

use crate::state::{Store, StoreError, KEY_FILE};

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
         Restore the file from a backup of the state (or `provision state import` an export), or run `provision destroy {cluster} --yes` \
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
    #[error("cluster key: {0}")]
    Store(#[from] StoreError),
}

impl ClusterKey {
    /// Loads the key of an existing cluster from the store; never makes one.
    pub fn load_for(store: &dyn Store, cluster: &str) -> Result<ClusterKey, KeyError> {
        let path = store.file_location(cluster, KEY_FILE);
        match store.file(cluster, KEY_FILE)? {
            Some(bytes) => Self::parse(&path, &bytes),
            None => Err(KeyError::Missing {
                cluster: cluster.to_string(),
                path,
            }),
        }
    }

    /// The key of a cluster being created, which is not in the state store
    /// yet: made now, or one a create that stopped before storing the
    /// cluster left (no machine can have been made with it).
    pub fn for_new_cluster(store: &dyn Store, cluster: &str) -> Result<ClusterKey, KeyError> {
        let path = store.file_location(cluster, KEY_FILE);
        if let Some(bytes) = store.file(cluster, KEY_FILE)? {
            return Self::parse(&path, &bytes);
        }
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        key.set_comment(format!("provision-{cluster}"));
        let text = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| KeyError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
        store.put_file(cluster, KEY_FILE, text.as_bytes())?;
        Ok(ClusterKey {
            private: Arc::new(key),
        })
    }

    pub fn load(path: &Path) -> Result<ClusterKey, KeyError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&shown, &bytes)
    }

    fn parse(path: &str, bytes: &[u8]) -> Result<ClusterKey, KeyError> {
        let invalid = |message: String| KeyError::Invalid {
            path: path.to_string(),
            message,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| invalid(e.to_string()))?;
        let key = PrivateKey::from_openssh(text).map_err(|e| invalid(e.to_string()))?;
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
        let paths = crate::state::StatePaths::resolve(Some(dir.path().join("state.db"))).unwrap();
        let store = crate::state::SqliteStore::open(paths.db()).unwrap();
        assert!(matches!(
            ClusterKey::load_for(&store, "web"),
            Err(KeyError::Missing { .. })
        ));
        let a = ClusterKey::for_new_cluster(&store, "web").unwrap();
        let b = ClusterKey::load_for(&store, "web").unwrap();
        assert_eq!(
            ClusterKey::for_new_cluster(&store, "web")
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
