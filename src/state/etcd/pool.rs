//! One client per etcd endpoint, and calls that move on to the next
//! endpoint when one does not answer, as etcd's own Go client fails over.
//!
//! Why not the etcd-client crate's balanced channel: with one member
//! killed, it kept sending calls to the dead address ("tcp connect error"
//! to that member, every call, measured here with a 3-member etcd), so a
//! single member down stopped the daemon. A member that refuses because it
//! has no leader (`require_leader`) is moved past the same way.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, Error};
use tokio::sync::Mutex;

use super::connect::connect_one;
use crate::state::EtcdTarget;

/// How long one try at one endpoint may take (a connection included).
pub const PER_TRY: Duration = Duration::from_secs(3);

pub struct Pool {
    target: EtcdTarget,
    /// Connected on first use, again after a failure.
    slots: Vec<Mutex<Option<Client>>>,
    /// The endpoint that answered last: tried first.
    current: AtomicUsize,
}

impl Pool {
    pub fn new(target: EtcdTarget) -> Pool {
        let slots = target.endpoints.iter().map(|_| Mutex::new(None)).collect();
        Pool {
            target,
            slots,
            current: AtomicUsize::new(0),
        }
    }

    /// The longest a [`Pool::call`] can take: one try at every endpoint.
    pub fn deadline(&self) -> Duration {
        PER_TRY * self.slots.len() as u32 + Duration::from_secs(1)
    }

    async fn client(&self, i: usize) -> Result<Client, Error> {
        let mut slot = self.slots[i].lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = connect_one(&self.target, &self.target.endpoints[i]).await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn forget(&self, i: usize) {
        *self.slots[i].lock().await = None;
    }

    /// Runs `call` on the endpoint that answered last, then on each other
    /// one while the endpoint tried is unreachable or has no leader. Any
    /// other error (a refused transaction, wrong credentials) is the answer.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let count = self.slots.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for k in 0..count {
            let i = (start + k) % count;
            let client = match tokio::time::timeout(PER_TRY, self.client(i)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) if is_unreachable(&e) => {
                    last = Some(e);
                    continue;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    last = Some(timed_out(&self.target.endpoints[i]));
                    continue;
                }
            };
            match tokio::time::timeout(PER_TRY, call(client)).await {
                Ok(Ok(value)) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(e)) if is_unreachable(&e) => {
                    self.forget(i).await;
                    last = Some(e);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    self.forget(i).await;
                    last = Some(timed_out(&self.target.endpoints[i]));
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidArgs("no etcd endpoint given".into())))
    }
}

fn timed_out(endpoint: &str) -> Error {
    Error::Internal(format!(
        "{endpoint} did not answer within {}s",
        PER_TRY.as_secs()
    ))
}

/// The endpoint could not be asked (down, unreachable, no leader, too
/// slow): another one may answer.
fn is_unreachable(e: &Error) -> bool {
    match e {
        Error::TransportError(_) | Error::IoError(_) => true,
        Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
        ),
        _ => false,
    }
}
