//! Connecting to etcd as etcdctl would: every endpoint, TLS with a CA and
//! an optional client certificate, a user and password.

use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Error, Identity, TlsOptions};

use super::pool::PER_TRY;
use crate::state::EtcdTarget;

/// Beyond this a silent connection counts as broken (HTTP/2 pings).
const KEEP_ALIVE: Duration = Duration::from_secs(3);

/// A client of one endpoint (the pool moves between them).
pub async fn connect_one(target: &EtcdTarget, endpoint: &str) -> Result<Client, Error> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(PER_TRY)
        .with_timeout(PER_TRY)
        .with_keep_alive(KEEP_ALIVE, KEEP_ALIVE)
        .with_keep_alive_while_idle(true)
        // A member cut off from its leader refuses, rather than answer
        // from a stale copy: a daemon never acts on state that old.
        .with_require_leader(true);
    if let Some((user, password)) = &target.user {
        // An auth token dies with an etcd restart (or after its TTL unused):
        // get a new one rather than fail every call from then on.
        options = options
            .with_user(user.clone(), password.expose().to_string())
            .with_auto_token_refresh(true);
    }
    if let Some(tls) = &target.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                Error::IoError(std::io::Error::new(
                    e.kind(),
                    format!("reading {}: {e}", path.display()),
                ))
            })
        };
        let mut config =
            TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.cacert)?));
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(config);
    }
    Client::connect([endpoint], Some(options)).await
}
