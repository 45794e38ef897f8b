//! The gRPC service over the state store, and serving it: `serve(listener, shared, shutdown)`
//! serves the `Coordinator` rpcs, the health service and reflection until `shutdown` resolves
//! (so that `main` and the tests drive the same code), with the lease reaper running beside.
//! `shared` holds the state every handler shares, `service` the thin handlers, `status` the
//! status message, `streams` files in and out in pieces.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gridsweep_proto::v1::{self as pb, coordinator_server::CoordinatorServer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;

use crate::metrics::RecordRpcs;

mod service;
mod shared;
mod status;
mod streams;

pub use service::CoordinatorService;
pub use shared::Shared;

/// A health service name that answers SERVING for as long as the process serves, draining or
/// not: what a liveness probe asks (readiness asks the default service, which turns NOT_SERVING
/// while the coordinator drains).
pub const LIVENESS_SERVICE: &str = "liveness";

/// Expires overdue leases once a second, on the blocking pool, until aborted.
fn spawn_reaper(shared: Arc<Shared>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = shared.clone();
            let expired = crate::store::off_runtime("expiring leases", move || s.expire().map_err(tonic::Status::from));
            if let Err(e) = expired.await {
                tracing::error!("expiring leases: {}", e.message());
            }
        }
    })
}

/// Serves `shared` on `listener` until `shutdown` completes; expires leases in the background.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let reaper = spawn_reaper(shared.clone());
    let svc = CoordinatorServer::new(CoordinatorService { shared: shared.clone() })
        .max_decoding_message_size(8 << 20)
        .max_encoding_message_size(8 << 20);
    let require_token = gridsweep_proto::auth::RequireToken::new(shared.token.as_deref());
    let svc = InterceptedService::new(svc, require_token.clone());
    // Health answers without a token, so that probes need no secret; reflection (the schema)
    // needs one, like every other call.
    shared.health.set_serving::<CoordinatorServer<CoordinatorService>>().await;
    shared.health.set_service_status(LIVENESS_SERVICE, ServingStatus::Serving).await;
    let health = HealthServer::new(HealthService::from_health_reporter(shared.health.clone()));
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // The descriptor sets are compiled in: they cannot fail to decode in a tested build.
    let failed = |e: tonic_reflection::server::Error| tracing::error!("reflection service: {e}");
    let reflection_v1 =
        reflection().build_v1().map_err(failed).ok().map(|r| InterceptedService::new(r, require_token.clone()));
    let reflection_v1alpha =
        reflection().build_v1alpha().map_err(failed).ok().map(|r| InterceptedService::new(r, require_token));
    // Small gRPC frames on a connection without TCP_NODELAY wait ~40 ms for delayed ACKs.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    });
    let mut builder = tonic::transport::Server::builder().layer(RecordRpcs::new(shared.metrics.clone()));
    if let Some(tls) = shared.tls.clone() {
        builder = match builder.tls_config(tls) {
            Ok(b) => b,
            Err(e) => {
                reaper.abort();
                return Err(e);
            }
        };
    }
    let out = builder
        .add_service(svc)
        .add_service(health)
        .add_optional_service(reflection_v1)
        .add_optional_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    reaper.abort();
    out
}
