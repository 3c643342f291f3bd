//! Every call to the cloud goes through here: counted, logged without
//! secrets, retried with backoff and jitter when the cloud says "later"
//! (409, 429, 5xx, a dropped connection), and turned into a
//! [`ProviderError`] that says what to do when it does not.
//!
//! Calls the `openstack` crate covers (flavors, images, networks, keypairs,
//! floating IPs) go through [`Api::call`]; the rest — servers with security
//! groups and scheduler hints, security groups, server groups, and reading
//! a server's fault, none of which the crate models — are JSON requests on
//! the same authenticated osauth session through [`Api::compute`] and
//! [`Api::network`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use osauth::services::{ServiceType, COMPUTE, NETWORK};
use osauth::{ApiVersion, ErrorKind, ServiceRequestBuilder, Session};
use provision_provider::ProviderError;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tracing::{debug, warn};

use crate::errors;

/// How long one call may take, pages included: a cloud that pages without
/// end, or answers nothing, fails the call instead of hanging it.
const CALL_DEADLINE: Duration = Duration::from_secs(120);

/// One request's attempts: the first and up to six retries, 0.5 s to 8 s
/// apart with full jitter, about a minute in all.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(8))
        .with_max_times(6)
        .with_jitter()
}

pub(crate) struct Api {
    pub(crate) session: Session,
    pub(crate) cloud: openstack::Cloud,
    calls: AtomicU64,
}

impl Api {
    pub(crate) fn new(session: Session) -> Api {
        let cloud = openstack::Cloud::from(session.clone());
        Api {
            session,
            cloud,
            calls: AtomicU64::new(0),
        }
    }

    /// Requests sent so far, retries included.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Runs `f` (one call of the `openstack` crate) until it succeeds, fails
    /// for good, or the retries run out.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        name: &'static str,
        mut f: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, osauth::Error>>,
    {
        let attempt = || {
            let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            debug!(call = name, n, "openstack api call");
            let call = f();
            async move {
                tokio::time::timeout(CALL_DEADLINE, call)
                    .await
                    .unwrap_or_else(|_| {
                        Err(osauth::Error::new(
                            ErrorKind::OperationTimedOut,
                            format!("no answer within {} s", CALL_DEADLINE.as_secs()),
                        ))
                    })
            }
        };
        attempt
            .retry(backoff())
            .sleep(tokio::time::sleep)
            .when(is_retryable)
            .notify(
                |e, wait| warn!(call = name, error = %e, ?wait, "openstack call failed, retrying"),
            )
            .await
            .map_err(|e| errors::call_error(name, e))
    }

    /// Like [`Api::call`], with "not found" as `None` instead of an error.
    pub(crate) async fn find<T, F, Fut>(
        &self,
        name: &'static str,
        mut f: F,
    ) -> Result<Option<T>, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, osauth::Error>>,
    {
        self.call(name, || {
            let fut = f();
            async move {
                match fut.await {
                    Err(e) if e.kind() == ErrorKind::ResourceNotFound => Ok(None),
                    other => other.map(Some),
                }
            }
        })
        .await
    }

    /// A Nova request; `microversion` when the body needs one.
    pub(crate) async fn compute(
        &self,
        name: &'static str,
        method: Method,
        path: &[&str],
        request: Request<'_>,
    ) -> Result<Value, ProviderError> {
        self.json(name, request, || {
            self.compute_request(method.clone(), path, request)
        })
        .await
    }

    /// A Nova request builder, with `request`'s microversion when it has one.
    fn compute_request(
        &self,
        method: Method,
        path: &[&str],
        request: Request<'_>,
    ) -> ServiceRequestBuilder<osauth::services::ComputeService> {
        let b = self.session.request(COMPUTE, method, path);
        match request.microversion {
            Some((major, minor)) => b.api_version(ApiVersion(major, minor)),
            None => b,
        }
    }

    /// A Neutron request.
    pub(crate) async fn network(
        &self,
        name: &'static str,
        method: Method,
        path: &[&str],
        request: Request<'_>,
    ) -> Result<Value, ProviderError> {
        self.json(name, request, || {
            self.session.request(NETWORK, method.clone(), path)
        })
        .await
    }

    /// A Nova POST that makes something; see [`Api::create`].
    pub(crate) async fn compute_create<E, EFut>(
        &self,
        name: &'static str,
        path: &[&str],
        request: Request<'_>,
        existing: E,
    ) -> Result<Value, ProviderError>
    where
        E: Fn() -> EFut,
        EFut: Future<Output = Result<Option<Value>, ProviderError>>,
    {
        self.create(
            name,
            request,
            || self.compute_request(Method::POST, path, request),
            existing,
        )
        .await
    }

    /// A Neutron POST that makes something; see [`Api::create`].
    pub(crate) async fn network_create<E, EFut>(
        &self,
        name: &'static str,
        path: &[&str],
        request: Request<'_>,
        existing: E,
    ) -> Result<Value, ProviderError>
    where
        E: Fn() -> EFut,
        EFut: Future<Output = Result<Option<Value>, ProviderError>>,
    {
        self.create(
            name,
            request,
            || self.session.request(NETWORK, Method::POST, path),
            existing,
        )
        .await
    }

    /// A request that makes something, retried like any other, except that
    /// after an answer that leaves open whether the cloud made it (a 5xx,
    /// no answer in time, a dropped connection) `existing` is asked before
    /// the next try, and once more after the last: Nova may have accepted a
    /// server and then answered 504, and a second POST would make a second
    /// server. `existing` answers in the shape of the create's answer.
    async fn create<S, F, E, EFut>(
        &self,
        name: &'static str,
        request: Request<'_>,
        start: F,
        existing: E,
    ) -> Result<Value, ProviderError>
    where
        S: ServiceType + Send,
        F: Fn() -> ServiceRequestBuilder<S>,
        E: Fn() -> EFut,
        EFut: Future<Output = Result<Option<Value>, ProviderError>>,
    {
        let uncertain = AtomicBool::new(false);
        let look = || async {
            existing().await.map_err(|e| {
                osauth::Error::new(
                    ErrorKind::ProtocolError,
                    format!("looking for what an earlier try of {name} made: {e}"),
                )
            })
        };
        let result = self
            .call(name, || async {
                if uncertain.load(Ordering::Relaxed) {
                    if let Some(made) = look().await? {
                        warn!(
                            call = name,
                            "an earlier try was carried out: not sent again"
                        );
                        return Ok(made);
                    }
                }
                let sent = send(request.apply(start()), false).await;
                if sent.as_ref().is_err_and(may_have_acted) {
                    uncertain.store(true, Ordering::Relaxed);
                }
                sent
            })
            .await;
        match result {
            Err(e) if uncertain.load(Ordering::Relaxed) => match existing().await? {
                Some(made) => Ok(made),
                None => Err(e),
            },
            other => other,
        }
    }

    /// A JSON request on the builder `start` makes, with `request`'s query and body.
    async fn json<S, F>(
        &self,
        name: &'static str,
        request: Request<'_>,
        start: F,
    ) -> Result<Value, ProviderError>
    where
        S: ServiceType + Send,
        F: Fn() -> ServiceRequestBuilder<S>,
    {
        self.call(name, || send(request.apply(start()), request.absent_ok))
            .await
    }
}

/// Body, query and Nova microversion of a JSON request.
#[derive(Default, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub body: Option<&'a Value>,
    pub query: &'a [(&'a str, &'a str)],
    pub microversion: Option<(u16, u16)>,
    /// 404 is an answer (`null`), not an error: deleting what is gone.
    pub absent_ok: bool,
}

impl<'a> Request<'a> {
    pub(crate) fn body(body: &'a Value) -> Self {
        Request {
            body: Some(body),
            ..Default::default()
        }
    }

    pub(crate) fn query(query: &'a [(&'a str, &'a str)]) -> Self {
        Request {
            query,
            ..Default::default()
        }
    }

    pub(crate) fn absent_ok() -> Self {
        Request {
            absent_ok: true,
            ..Default::default()
        }
    }

    fn apply<S: ServiceType + Send>(
        &self,
        mut b: ServiceRequestBuilder<S>,
    ) -> ServiceRequestBuilder<S> {
        if !self.query.is_empty() {
            b = b.query(self.query);
        }
        if let Some(body) = self.body {
            b = b.json(body);
        }
        b
    }
}

/// Sends and reads the JSON answer (`null` for an empty one). An error
/// answer keeps its status and the message OpenStack put in the body.
async fn send<S: ServiceType + Send>(
    b: ServiceRequestBuilder<S>,
    absent_ok: bool,
) -> Result<Value, osauth::Error> {
    let response = b.send_unchecked().await?;
    let status = response.status();
    if absent_ok && status == StatusCode::NOT_FOUND {
        return Ok(Value::Null);
    }
    let text = response.text().await.map_err(osauth::Error::from)?;
    if status.is_client_error() || status.is_server_error() {
        return Err(
            osauth::Error::new(ErrorKind::from(status), errors::message_of(&text))
                .with_status(status),
        );
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        osauth::Error::new(
            ErrorKind::InvalidResponse,
            format!("answer with status {status} is not JSON: {e}"),
        )
    })
}

/// The HTTP status an error carries. osauth 0.5 keeps it private and shows
/// it only in its Debug form, so it is read from there.
pub(crate) fn status_of(err: &osauth::Error) -> Option<StatusCode> {
    let shown = format!("{err:?}");
    let at = shown.find("status: Some(")? + "status: Some(".len();
    let code: String = shown[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    StatusCode::from_u16(code.parse().ok()?).ok()
}

/// An answer after which the cloud may have done what was asked: a 5xx
/// (a gateway's 504 after Nova accepted the request), no answer in time, a
/// dropped connection. 4xx refusals (409, 429 included) did nothing.
pub(crate) fn may_have_acted(err: &osauth::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::InternalServerError | ErrorKind::ProtocolError | ErrorKind::OperationTimedOut
    )
}

/// 409 (a resource busy in a state change), 429 (rate limited), 5xx and
/// connection failures: the same call can work a moment later.
pub(crate) fn is_retryable(err: &osauth::Error) -> bool {
    match err.kind() {
        ErrorKind::InternalServerError | ErrorKind::ProtocolError => true,
        ErrorKind::Conflict => !errors::is_quota(err),
        _ => status_of(err) == Some(StatusCode::TOO_MANY_REQUESTS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, status: u16, message: &str) -> osauth::Error {
        osauth::Error::new(kind, message).with_status(StatusCode::from_u16(status).unwrap())
    }

    #[test]
    fn status_is_read_back() {
        let e = err(ErrorKind::InvalidInput, 429, "Rate limit exceeded");
        assert_eq!(status_of(&e), Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(
            status_of(&osauth::Error::new(ErrorKind::InvalidInput, "x")),
            None
        );
    }

    #[test]
    fn what_is_retried() {
        assert!(is_retryable(&err(
            ErrorKind::InvalidInput,
            429,
            "slow down"
        )));
        assert!(is_retryable(&err(
            ErrorKind::InternalServerError,
            503,
            "down"
        )));
        assert!(is_retryable(&err(
            ErrorKind::Conflict,
            409,
            "Security group in use"
        )));
        assert!(!is_retryable(&err(
            ErrorKind::Conflict,
            409,
            "Quota exceeded for resources: ['floatingip']."
        )));
        assert!(!is_retryable(&err(
            ErrorKind::ResourceNotFound,
            404,
            "gone"
        )));
        assert!(!is_retryable(&err(
            ErrorKind::AuthenticationFailed,
            401,
            "no"
        )));
        assert!(!is_retryable(&err(ErrorKind::InvalidInput, 400, "bad")));
    }
}
