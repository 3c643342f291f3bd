//! The daemon's cloud connections, made once and kept for its lifetime: a
//! pass no longer re-authenticates to Keystone or reloads the AWS
//! configuration for every cluster (osauth refreshes the token; the SDK
//! refreshes credentials). Clusters with the same cloud settings share one.

use std::sync::Arc;

use provision_provider::{CallLimit, PerCluster, Provider, Throttled};

use crate::session::connect_provider;
use crate::spec::ClusterSpec;

pub struct Providers {
    made: PerCluster<Arc<dyn Provider>>,
    /// Shared by every provider: the daemon's cap on cloud operations.
    calls: Arc<CallLimit>,
}

impl Providers {
    pub fn new(calls: Arc<CallLimit>) -> Providers {
        Providers {
            made: PerCluster::default(),
            calls,
        }
    }

    /// The provider for `spec`'s cloud settings, connected the first time
    /// (callers that race wait for the one connect under way).
    pub async fn for_spec(&self, spec: &ClusterSpec) -> anyhow::Result<Arc<dyn Provider>> {
        self.made
            .get_or_make(&settings_key(spec), || async {
                let provider = connect_provider(spec, None).await?;
                Ok(Arc::new(Throttled::new(provider, self.calls.clone())) as Arc<dyn Provider>)
            })
            .await
    }

    /// Drops the provider of `spec`'s settings after a cloud error, so the
    /// next pass connects afresh (credentials changed on disk, an endpoint
    /// moved).
    pub fn forget(&self, spec: &ClusterSpec) {
        self.made.forget(&settings_key(spec));
    }
}

/// What a provider is made from: the cloud and its settings, image and flavor.
fn settings_key(spec: &ClusterSpec) -> String {
    serde_json::json!([
        spec.cloud,
        spec.ec2,
        spec.openstack,
        spec.image,
        spec.flavor
    ])
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Cloud;

    #[test]
    fn clusters_with_the_same_cloud_settings_share_a_key() {
        let a = ClusterSpec::example("a", 1, 1);
        let b = ClusterSpec::example("b", 3, 5);
        assert_eq!(settings_key(&a), settings_key(&b));
        let mut c = ClusterSpec::example("c", 1, 1);
        c.image = Some("other/image:1".into());
        assert_ne!(settings_key(&a), settings_key(&c));
        let mut d = ClusterSpec::example("d", 1, 1);
        d.cloud = Cloud::OpenStack;
        assert_ne!(settings_key(&a), settings_key(&d));
    }
}
