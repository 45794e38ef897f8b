//! The state every handler shares (`Shared`: the store, the sweep's settings, the wake-ups, the
//! health statuses), what a store error answers as a gRPC status, and the two ways a handler
//! leaves the async runtime for blocking work: `blocking` for a store call, `off_runtime` for
//! file I/O.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gridsweep_proto::v1::coordinator_server::SERVICE_NAME;
use tokio::sync::{Notify, watch};
use tonic::Status;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

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

/// State shared by every handler.
#[derive(Debug)]
pub struct Shared {
    /// The durable state.
    pub store: Store,
    /// The sweep being served.
    pub sweep_name: String,
    /// Lease time-to-live.
    pub lease_ttl: Duration,
    /// Hand out jobs in sweep order instead of longest-expected-first.
    pub fifo: bool,
    /// Where the coordinator's copy of the data set is (for FetchData).
    pub data_dir: Option<PathBuf>,
    /// Wakes long-polling pulls when a job may have become available.
    pub job_available: Notify,
    /// Bumped on every state change, for status watchers and the progress display.
    pub changed: watch::Sender<u64>,
    /// Set when shutting down: heartbeats answer "stop", pulls get nothing.
    pub stopping: AtomicBool,
    /// The shared token every call must carry, when set.
    pub token: Option<String>,
    /// Serve TLS with this identity, when set.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The standard gRPC health service's statuses: SERVING until the coordinator drains.
    pub health: HealthReporter,
    /// The command that attaches a worker from another machine, once `run` has bound its
    /// address (the status and the dashboard show it); unset for a stored sweep's dashboard.
    pub attach: OnceLock<String>,
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
        let metrics = Arc::new(Metrics::new());
        store.record_commits(metrics.store_commits());
        Shared {
            store,
            sweep_name,
            lease_ttl,
            fifo,
            data_dir,
            job_available: Notify::new(),
            changed: watch::channel(0).0,
            stopping: AtomicBool::new(false),
            token,
            tls,
            metrics,
            health: HealthReporter::new(),
            attach: OnceLock::new(),
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

    /// Records a state change.
    pub fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
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

/// Runs a store transition on the blocking pool, so that a commit waiting for its fsync does
/// not hold up the async runtime's threads (the store serialises transitions itself).
pub(super) async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    let shared = shared.clone();
    match tokio::task::spawn_blocking(move || f(&shared.store)).await {
        Ok(r) => r.map_err(Status::from),
        Err(e) => Err(Status::internal(format!("store task failed: {e}"))),
    }
}

/// Runs file I/O (or hashing) on the blocking pool.
pub(super) async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(std::io::Error::other(format!("I/O task failed: {e}"))))
}
