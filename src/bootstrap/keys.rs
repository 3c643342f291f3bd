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
    #[error("cluster key {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("cluster key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl ClusterKey {
    /// Loads the cluster's key, making it on first use.
    pub fn load_or_create(paths: &StatePaths, cluster: &str) -> Result<ClusterKey, KeyError> {
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
        let a = ClusterKey::load_or_create(&paths, "web").unwrap();
        let b = ClusterKey::load_or_create(&paths, "web").unwrap();
        assert_eq!(a.public_line(), b.public_line());
        assert!(a.public_line().starts_with("ssh-ed25519 "));
        let mode = std::fs::metadata(paths.private_key("web"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
