//! The state every handler shares (`Shared`: the sweep's read side `view::Source`, the wake-ups,
//! the token and TLS, the health statuses), what a store error or a failed blocking task answers
//! as a gRPC status, and `blocking`, a store transition through the store handle answered as a
//! status.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gridsweep_proto::v1::coordinator_server::SERVICE_NAME;
use tokio::sync::Notify;
use tonic::Status;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::store::{Store, StoreError, StoreHandle, TaskFailed};
use crate::view::{IntoSource, Source};

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        match e {
            StoreError::UnknownWorker(_) | StoreError::UnknownJob(_) | StoreError::NotAState(_) => {
                Status::not_found(e.to_string())
            }
            StoreError::StaleLease { .. } => Status::failed_precondition(e.to_string()),
            StoreError::Quarantined(_) => Status::permission_denied(e.to_string()),
            StoreError::BadReport { .. } => Status::invalid_argument(e.to_string()),
            StoreError::Corrupt(_) => Status::data_loss(e.to_string()),
            StoreError::Sqlite { .. } | StoreError::Io { .. } | StoreError::Commit { .. } => {
                Status::internal(e.to_string())
            }
        }
    }
}

/// State shared by every handler: the sweep's read side (`Source`: the store, the name, the
/// lease TTL, the change counter, draining, the attach line, the metrics), which the dashboard
/// and `run`'s progress read too, and what only the gRPC server needs.
#[derive(Debug)]
pub struct Shared {
    /// The read side, shared with the dashboard (reached through `Deref`: `shared.store`).
    pub source: Arc<Source>,
    /// Hand out jobs in sweep order instead of longest-expected-first.
    pub fifo: bool,
    /// Where the coordinator's copy of the data set is (for FetchData).
    pub data_dir: Option<PathBuf>,
    /// Wakes long-polling pulls when a job may have become available.
    pub job_available: Notify,
    /// The shared token every call must carry, when set.
    pub token: Option<String>,
    /// Serve TLS with this identity, when set.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// The standard gRPC health service's statuses: SERVING until the coordinator drains.
    pub health: HealthReporter,
}

impl Deref for Shared {
    type Target = Source;

    fn deref(&self) -> &Source {
        &self.source
    }
}

impl IntoSource for Arc<Shared> {
    fn into_source(self) -> Arc<Source> {
        self.source.clone()
    }
}

impl Shared {
    /// Shared state over `store`; every call must carry `token` when it is set.
    pub fn new(
        store: Store,
        sweep_name: String,
        lease_ttl: Duration,
        fifo: bool,
        data_dir: Option<PathBuf>,
        token: Option<String>,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> Self {
        Shared {
            source: Arc::new(Source::new(StoreHandle::new(store), sweep_name, lease_ttl)),
            fifo,
            data_dir,
            job_available: Notify::new(),
            token,
            tls,
            health: HealthReporter::new(),
        }
    }

    /// Starts draining an interrupted sweep: heartbeats answer "stop", pulls get nothing, and
    /// the health service answers NOT_SERVING (so a load balancer or probe stops sending new work
    /// here).
    pub async fn drain(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.not_serving().await;
    }

    /// Turns the health service NOT_SERVING, for a coordinator on its way out; pulls still answer
    /// (a finished sweep's workers are told it is finished and exit).
    pub async fn not_serving(&self) {
        self.health.set_service_status("", ServingStatus::NotServing).await;
        self.health.set_service_status(SERVICE_NAME, ServingStatus::NotServing).await;
    }

    /// Wakes long-polling pulls (a job may have become available) and records a state change.
    pub(super) fn freed(&self) {
        self.job_available.notify_waiters();
        self.bump();
    }

    /// Expires overdue leases; wakes pullers when some expired.
    pub fn expire(&self) -> Result<usize, StoreError> {
        let expired = self.store.expire_leases()?;
        for (job, worker) in &expired {
            tracing::warn!(job = %job, worker = %worker, "lease expired (no heartbeat); job pending again");
        }
        self.metrics.leases_expired(expired.len());
        if !expired.is_empty() {
            self.freed();
        }
        Ok(expired.len())
    }
}

/// Runs a store transition through the store handle (on the blocking pool, so that a commit
/// waiting for its fsync does not hold up the runtime's threads), answering its error as a gRPC
/// status; `what` names it if the task fails.
pub(super) async fn blocking<T: Send + 'static>(
    shared: &Shared,
    what: &'static str,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    shared.store.call(what, move |s| f(s).map_err(Status::from)).await
}

impl From<TaskFailed> for Status {
    fn from(e: TaskFailed) -> Status {
        Status::internal(e.to_string())
    }
}
