//! A tower layer around the gRPC server that counts each request by method and status code and
//! times it to its response headers. The code comes from the `grpc-status` header of an error
//! answered without a body (how tonic answers a handler's `Err`); a response that streams a body
//! carries its code in trailers, which is `OK` unless the stream itself fails later.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::Code;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::Metrics;

/// Services whose methods are labelled by name; any other path is `other` (a scanner's random
/// paths must not grow the label set without bound).
const KNOWN_SERVICES: [&str; 4] = [
    "gridsweep.v1.Coordinator/",
    "grpc.health.v1.Health/",
    "grpc.reflection.v1.ServerReflection/",
    "grpc.reflection.v1alpha.ServerReflection/",
];

/// Layer that records every request in `Metrics`.
#[derive(Clone, Debug)]
pub struct RecordRpcs {
    /// Where to record.
    metrics: Arc<Metrics>,
}

impl RecordRpcs {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        RecordRpcs { metrics }
    }
}

impl<S> Layer<S> for RecordRpcs {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded { inner, metrics: self.metrics.clone() }
    }
}

/// The service `RecordRpcs` wraps.
#[derive(Clone, Debug)]
pub struct Recorded<S> {
    /// The wrapped service.
    inner: S,
    /// Where to record.
    metrics: Arc<Metrics>,
}

/// The method label of a request path (`/gridsweep.v1.Coordinator/PullJob`).
fn method_label(path: &str) -> String {
    let path = path.trim_start_matches('/');
    match KNOWN_SERVICES.iter().any(|s| path.starts_with(s)) && path.len() < 100 {
        true => path.to_owned(),
        false => "other".to_owned(),
    }
}

/// The name of a `grpc-status` value, `OK` when absent.
fn code_name(status: Option<&http::HeaderValue>) -> String {
    let code = status.and_then(|v| v.to_str().ok()).and_then(|s| s.parse::<i32>().ok()).map_or(Code::Ok, Code::from);
    format!("{code:?}")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
            sep.into_iter().chain(std::iter::once(c.to_ascii_uppercase()))
        })
        .collect()
}

impl<S, B, R> Service<http::Request<B>> for Recorded<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let out = answer.await;
            let code = match &out {
                Ok(response) => code_name(response.headers().get("grpc-status")),
                Err(_) => "TRANSPORT_ERROR".to_owned(),
            };
            metrics.rpc(&method, &code, started.elapsed());
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        assert_eq!(code_name(None), "OK");
        let v = |s: &'static str| http::HeaderValue::from_static(s);
        assert_eq!(code_name(Some(&v("5"))), "NOT_FOUND");
        assert_eq!(code_name(Some(&v("16"))), "UNAUTHENTICATED");
        assert_eq!(code_name(Some(&v("9"))), "FAILED_PRECONDITION");
    }

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(method_label("/gridsweep.v1.Coordinator/PullJob"), "gridsweep.v1.Coordinator/PullJob");
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "grpc.health.v1.Health/Check");
        assert_eq!(method_label("/wp-admin/x"), "other");
    }
}
