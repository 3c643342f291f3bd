//! What most commands start with: the state store, and for the commands that
//! touch machines, a controller on the cluster's cloud.

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use provision_provider::Provider;
use provision_provider_local::{LocalOptions, LocalProvider};

use super::Global;
use crate::bootstrap::Scripts;
use crate::controller::Controller;
use crate::orchestrator;
use crate::progress::Reporter;
use crate::spec::{Cloud, ClusterSpec};
use crate::state::{ClusterRecord, SqliteStore, StatePaths, Store};

pub struct Session {
    pub paths: StatePaths,
    pub store: Arc<dyn Store>,
}

impl Session {
    pub fn open(global: &Global) -> Result<Session> {
        let paths =
            StatePaths::resolve(global.state.clone()).context("finding the state directory")?;
        let store = SqliteStore::open(paths.db()).context("opening the state store")?;
        Ok(Session {
            paths,
            store: Arc::new(store),
        })
    }

    /// The cluster's record, or an error saying how to see the known ones.
    pub fn cluster(&self, name: &str) -> Result<ClusterRecord> {
        self.store.cluster(name)?.ok_or_else(|| {
            anyhow!(
                "no cluster named {name:?} in {} (`provision list` shows them)",
                self.paths.db().display()
            )
        })
    }

    pub fn controller(
        &self,
        global: &Global,
        provider: Arc<dyn Provider>,
        spec: &ClusterSpec,
        reporter: Arc<dyn Reporter>,
    ) -> Controller {
        Controller {
            store: self.store.clone(),
            provider,
            orchestrator: Arc::from(orchestrator::for_coe(spec.coe)),
            scripts: Arc::new(Scripts::new(global.scripts_dir.as_deref())),
            paths: self.paths.clone(),
            reporter,
        }
    }
}

/// Connects to the spec's cloud; fails before anything is created when the
/// cloud cannot be used.
pub async fn connect_provider(
    spec: &ClusterSpec,
    image_suite: Option<&str>,
) -> Result<Arc<dyn Provider>> {
    match spec.cloud {
        Cloud::Local => {
            let mut options = LocalOptions::default();
            if let Some(image) = &spec.image {
                options.image = image.clone();
            }
            if let Some(suite) = image_suite {
                options.suite = suite.to_string();
            }
            let provider = LocalProvider::connect(options)
                .await
                .context("connecting to the local cloud")?;
            Ok(Arc::new(provider))
        }
    }
}
