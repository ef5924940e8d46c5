//! The tower layer over a gRPC server that gates and observes each request:
//! an optional [`Gate`] decides from the peer's credentials and the method
//! path whether the request is served (authorisation), and an optional
//! [`Observer`] is told each request's path, status code and latency
//! (metrics). One layer, so that the refusals a gate makes are observed too.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::Status;
use tonic::codegen::{BoxFuture, http};
use tonic::transport::server::UdsConnectInfo;

use crate::{PeerCred, UdsPeer};

/// Told of every answered request: its path, gRPC status code and latency.
pub type Observer = Arc<dyn Fn(&str, i32, Duration) + Send + Sync>;

/// Decides whether a request is served: the peer's credentials (`None` when
/// the connection carries none) and the method path in, `Err(status)` to
/// answer with that status instead of calling the service.
pub type Gate = Arc<dyn Fn(Option<&PeerCred>, &str) -> Result<(), Status> + Send + Sync>;

/// The tower layer that applies a [`Gate`] and tells an [`Observer`] of every
/// gRPC request; a pass-through when it has neither.
#[derive(Clone, Default)]
pub struct ObserveLayer {
    observer: Option<Observer>,
    gate: Option<Gate>,
}

impl ObserveLayer {
    /// Observes into `observer` (no observation when `None`).
    pub fn new(observer: Option<Observer>) -> Self {
        ObserveLayer {
            observer,
            gate: None,
        }
    }

    /// Also asks `gate` before each request is served.
    pub fn gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`ObserveLayer`].
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

/// The status code of a unary reply: an error is a trailers-only reply
/// (grpc-status in the headers); a reply without it is OK (status in trailers).
fn status_code<R, E>(r: &Result<http::Response<R>, E>) -> i32 {
    match r {
        Ok(resp) => resp
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        Err(_) => 2,
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Observe<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if self.layer.observer.is_none() && self.layer.gate.is_none() {
            return Box::pin(self.inner.call(req));
        }
        let path = req.uri().path().to_string();
        let started = Instant::now();
        let refused = self.layer.gate.as_ref().and_then(|gate| {
            let peer = req
                .extensions()
                .get::<UdsPeer<UdsConnectInfo>>()
                .and_then(|p| p.cred.as_ref());
            gate(peer, &path).err()
        });
        let observer = self.layer.observer.clone();
        let fut = match refused {
            Some(status) => Err(status),
            None => Ok(self.inner.call(req)),
        };
        Box::pin(async move {
            let r = match fut {
                Ok(fut) => fut.await,
                Err(status) => Ok(status.into_http::<R>()),
            };
            if let Some(observer) = observer {
                observer(&path, status_code(&r), started.elapsed());
            }
            r
        })
    }
}
