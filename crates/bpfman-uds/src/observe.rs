//! Request observation for metrics: a tower layer over a gRPC server that
//! reports each request's path, status code and latency.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::codegen::{BoxFuture, http};

/// Told of every answered request: its path, gRPC status code and latency.
pub type Observer = Arc<dyn Fn(&str, i32, Duration) + Send + Sync>;

/// The tower layer that tells an [`Observer`] of every gRPC request.
#[derive(Clone)]
pub struct ObserveLayer {
    observer: Option<Observer>,
}

impl ObserveLayer {
    /// Observes into `observer` (a pass-through when `None`).
    pub fn new(observer: Option<Observer>) -> Self {
        ObserveLayer { observer }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            observer: self.observer.clone(),
        }
    }
}

/// See [`ObserveLayer`].
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    observer: Option<Observer>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Observe<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Some(observer) = self.observer.clone() else {
            return Box::pin(self.inner.call(req));
        };
        let path = req.uri().path().to_string();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            // Unary calls: an error is a trailers-only reply (grpc-status in
            // the headers); a reply without it is OK (status in trailers).
            let code = match &r {
                Ok(resp) => resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                Err(_) => 2,
            };
            observer(&path, code, started.elapsed());
            r
        })
    }
}
