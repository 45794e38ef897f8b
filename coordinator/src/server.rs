//! The gRPC service over the state store. Handlers are thin: each checks its input, performs one
//! store transition, and wakes long-polling pullers and status watchers when the state changed.
//! `serve(listener, shared, shutdown)` serves until `shutdown` resolves, so that `main` and the
//! tests drive the same code.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::pieces::{Receiving, for_each_piece};
use gridsweep_proto::v1::coordinator_server::{Coordinator, CoordinatorServer};
use gridsweep_proto::v1::{self as pb, pull_job_response::Outcome};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::metrics::{Metrics, RecordRpcs};
use crate::stall;
use crate::store::{Grant, JobRow, Store, StoreError, StoredCheckpoint, WorkerRow, now};

/// The result type of every rpc handler.
type RpcResult<T> = Result<Response<T>, Status>;
/// A server-streaming response.
type RpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
/// A health service name that answers SERVING for as long as the process serves, draining or
/// not: what a liveness probe asks (readiness asks the default service, which turns NOT_SERVING
/// while the coordinator drains).
pub const LIVENESS_SERVICE: &str = "liveness";

/// The longest a pull may wait.
const MAX_WAIT: Duration = Duration::from_secs(30);

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
        self.health.set_not_serving::<CoordinatorServer<CoordinatorService>>().await;
    }

    /// Records a state change.
    pub fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Expires overdue leases; wakes pullers when some expired.
    pub fn expire(&self) -> Result<usize, StoreError> {
        let expired = self.store.expire_leases()?;
        for (job, worker) in &expired {
            tracing::warn!(job = %job, worker = %worker, "lease expired (no heartbeat); job pending again");
        }
        self.metrics.leases_expired(expired.len());
        if !expired.is_empty() {
            self.job_available.notify_waiters();
            self.bump();
        }
        Ok(expired.len())
    }

    /// The sweep's status message.
    pub fn status(&self) -> Result<pb::SweepStatus, StoreError> {
        let (jobs, workers) = self.store.snapshot()?;
        Ok(self.status_of(&jobs, &workers))
    }

    /// The status message, read on the blocking pool (for async callers).
    pub async fn status_off_runtime(self: &Arc<Self>) -> Result<pb::SweepStatus, Status> {
        let shared = self.clone();
        match tokio::task::spawn_blocking(move || shared.status()).await {
            Ok(r) => r.map_err(Status::from),
            Err(e) => Err(Status::internal(format!("status task failed: {e}"))),
        }
    }

    /// The status message of a snapshot of the store.
    pub fn status_of(&self, jobs: &[JobRow], workers: &[WorkerRow]) -> pb::SweepStatus {
        let t = now();
        let finished = jobs.iter().all(|j| !j.state.is_open());
        let ttl = self.lease_ttl.as_secs_f64();
        let stalled = stall::explain(jobs, workers, t, ttl);
        let live = workers.iter().filter(|w| stall::is_live(w, t, ttl)).count();
        let eta_s = if finished { None } else { crate::eta::sweep_eta(jobs, live) };
        pb::SweepStatus {
            sweep_name: self.sweep_name.clone(),
            finished,
            stalled,
            eta_s,
            jobs: jobs
                .iter()
                .map(|j| pb::JobStatus {
                    job_id: j.id.clone(),
                    arch: j.spec.train.arch.name().to_owned(),
                    depth: j.spec.train.depth,
                    seed: j.spec.train.seed,
                    state: j.state.into(),
                    worker_id: j.worker.clone().unwrap_or_default(),
                    epoch: j.epoch,
                    epochs_total: j.spec.train.epochs,
                    test_acc: j.test_acc,
                    eta_s: j.eta_s(),
                    attempts: j.attempts,
                    error: j.error.clone().unwrap_or_default(),
                    error_kind: j.error_kind.into(),
                    failures: j.failures,
                    max_attempts: j.max_attempts,
                })
                .collect(),
            workers: workers
                .iter()
                .map(|w| {
                    let problem = stall::recent_problem(w, t, ttl).unwrap_or_default();
                    pb::WorkerStatus {
                        worker_id: w.id.clone(),
                        name: w.name.clone(),
                        device: w.device.clone(),
                        last_seen_s: (t - w.last_seen).max(0.0),
                        quarantined: w.quarantined,
                        problem,
                        device_memory_bytes: w.memory_bytes.unwrap_or(0),
                    }
                })
                .collect(),
        }
    }
}

/// Runs a store transition on the blocking pool, so that a commit waiting for its fsync does
/// not hold up the async runtime's threads (the store serialises transitions itself).
async fn blocking<T: Send + 'static>(
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
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(std::io::Error::other(format!("I/O task failed: {e}"))))
}

/// The coordinator's gRPC service.
#[derive(Clone, Debug)]
pub struct CoordinatorService {
    /// Everything the handlers share.
    pub shared: Arc<Shared>,
}

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn get_server_info(&self, request: Request<pb::GetServerInfoRequest>) -> RpcResult<pb::ServerInfo> {
        check_version(request.get_ref().client_protocol_version)?;
        Ok(Response::new(pb::ServerInfo {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            sweep_name: self.shared.sweep_name.clone(),
        }))
    }

    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> RpcResult<pb::RegisterWorkerResponse> {
        let r = request.into_inner();
        check_version(r.protocol_version)?;
        let (name, device) = (r.name.clone(), r.device.clone());
        let memory = (r.device_memory_bytes > 0).then_some(r.device_memory_bytes);
        let id = blocking(&self.shared, move |store| store.register_worker(&name, &device, memory)).await?;
        tracing::info!(worker = %id, name = %r.name, device = %r.device, memory_bytes = r.device_memory_bytes, "worker registered");
        self.shared.bump();
        Ok(Response::new(pb::RegisterWorkerResponse { worker_id: id }))
    }

    async fn pull_job(&self, request: Request<pb::PullJobRequest>) -> RpcResult<pb::PullJobResponse> {
        let r = request.into_inner();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(r.wait_ms)).min(MAX_WAIT);
        let shared = &self.shared;
        loop {
            let wake = shared.job_available.notified();
            if shared.stopping.load(Ordering::SeqCst) {
                return Ok(Response::new(pb::PullJobResponse { outcome: Some(Outcome::NoJobYet(true)) }));
            }
            let (worker, ttl, fifo) = (r.worker_id.clone(), shared.lease_ttl.as_secs_f64(), shared.fifo);
            match blocking(shared, move |store| store.grant(&worker, ttl, fifo)).await? {
                Grant::Lease(l) => {
                    tracing::info!(job = %l.job_id, worker = %r.worker_id, attempt = l.attempt, "job leased");
                    shared.bump();
                    return Ok(Response::new(pb::PullJobResponse {
                        outcome: Some(Outcome::Lease(pb::Lease {
                            job_id: l.job_id,
                            attempt: l.attempt,
                            fencing_token: l.token,
                            ttl_ms: shared.lease_ttl.as_millis() as u64,
                            spec_json: l.spec_json,
                            checkpoint_epoch: l.checkpoint_epoch,
                        })),
                    }));
                }
                Grant::Finished => {
                    return Ok(Response::new(pb::PullJobResponse { outcome: Some(Outcome::SweepFinished(true)) }));
                }
                Grant::NothingYet => {}
            }
            // Wake on a freed job (completions, failures, releases, and the reaper's expiries
            // notify), or re-check once a second.
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Response::new(pb::PullJobResponse { outcome: Some(Outcome::NoJobYet(true)) }));
            }
            let _ = tokio::time::timeout((deadline - now).min(Duration::from_secs(1)), wake).await;
        }
    }

    async fn heartbeat(&self, request: Request<pb::HeartbeatRequest>) -> RpcResult<pb::HeartbeatResponse> {
        let r = request.into_inner();
        let epochs: Vec<(u32, String)> = r.epochs.into_iter().map(|e| (e.epoch, e.metrics_json)).collect();
        let (worker, job, token, ttl) =
            (r.worker_id.clone(), r.job_id.clone(), r.fencing_token, self.shared.lease_ttl.as_secs_f64());
        let reported = epochs.clone();
        blocking(&self.shared, move |store| store.heartbeat(&worker, &job, token, &reported, ttl)).await?;
        if !epochs.is_empty() {
            self.shared.metrics.epochs_reported(epochs.len());
            self.shared.bump();
        }
        let stopping = self.shared.stopping.load(Ordering::SeqCst);
        Ok(Response::new(pb::HeartbeatResponse {
            proceed: !stopping,
            reason: if stopping { "coordinator is shutting down".to_owned() } else { String::new() },
            ttl_ms: self.shared.lease_ttl.as_millis() as u64,
        }))
    }

    async fn upload_checkpoint(
        &self,
        request: Request<Streaming<pb::CheckpointChunk>>,
    ) -> RpcResult<pb::UploadCheckpointResponse> {
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| Status::invalid_argument("empty checkpoint upload"))?;
        let (job, token, epoch, worker) =
            (first.job_id.clone(), first.fencing_token, first.epoch, first.worker_id.clone());
        if job.is_empty() || job.contains(['/', '\\', '.']) {
            return Err(Status::invalid_argument(format!("bad job id {job:?}")));
        }
        // Refuse early when the uploader does not hold the job.
        let (w, j) = (worker.clone(), job.clone());
        blocking(&self.shared, move |store| store.checkpoint_for(&w, &j, token)).await?;
        let dir = self.shared.store.checkpoint_dir().to_owned();
        let part = dir.join(format!("{job}.{token}.part"));
        let io = |e: std::io::Error| Status::internal(format!("{}: {e}", part.display()));
        let created = part.clone();
        let mut file = off_runtime(move || Receiving::create(&created)).await.map_err(io)?;
        let mut claimed = String::new();
        let mut chunk = Some(first);
        while let Some(c) = chunk {
            // Writing and hashing happen on the blocking pool; the file comes back for the next piece.
            file = off_runtime(move || file.write(&c.data).map(|()| file)).await.map_err(io)?;
            if !c.sha256.is_empty() {
                claimed = c.sha256;
            }
            chunk = stream.message().await?;
        }
        let (actual, bytes) = off_runtime(move || file.finish()).await.map_err(io)?;
        let path = dir.join(format!("{job}.gsck"));
        if claimed != actual {
            let discarded = part.clone();
            let _ = off_runtime(move || std::fs::remove_file(&discarded)).await;
            return Err(Status::data_loss(format!(
                "checkpoint of job {job}: sha256 {actual}, sender claimed {claimed:?}; discarded"
            )));
        }
        let (from, to) = (part.clone(), path.clone());
        off_runtime(move || std::fs::rename(&from, &to)).await.map_err(io)?;
        let ck = StoredCheckpoint { epoch, sha256: actual, path, bytes };
        let (w, j) = (worker.clone(), job.clone());
        blocking(&self.shared, move |store| store.store_checkpoint(&w, &j, token, &ck)).await?;
        tracing::debug!(job = %job, epoch, bytes, "checkpoint stored");
        Ok(Response::new(pb::UploadCheckpointResponse { bytes }))
    }

    type DownloadCheckpointStream = RpcStream<pb::CheckpointChunk>;

    async fn download_checkpoint(
        &self,
        request: Request<pb::DownloadCheckpointRequest>,
    ) -> RpcResult<Self::DownloadCheckpointStream> {
        let r = request.into_inner();
        let (worker, job, token) = (r.worker_id.clone(), r.job_id.clone(), r.fencing_token);
        let (path, sha, epoch) = blocking(&self.shared, move |store| store.checkpoint_for(&worker, &job, token))
            .await?
            .ok_or_else(|| Status::not_found(format!("job {} has no checkpoint", r.job_id)))?;
        let job = r.job_id.clone();
        Ok(Response::new(stream_file(path, move |data, last| pb::CheckpointChunk {
            job_id: job.clone(),
            fencing_token: r.fencing_token,
            epoch,
            data,
            sha256: if last { sha.clone() } else { String::new() },
            worker_id: String::new(),
        })))
    }

    type FetchDataStream = RpcStream<pb::DataChunk>;

    async fn fetch_data(&self, request: Request<pb::FetchDataRequest>) -> RpcResult<Self::FetchDataStream> {
        let dir = self
            .shared
            .data_dir
            .clone()
            .ok_or_else(|| Status::failed_precondition("this coordinator has no data set to share (--data)"))?;
        tracing::info!(worker = %request.get_ref().worker_id, data = %dir.display(), "streaming the data set to a worker");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            for (name, _) in gridsweep_proto::cifar::MD5 {
                let path = dir.join(name);
                let mut open = true;
                let read = for_each_piece(&path, |data, sha| {
                    let msg = pb::DataChunk { file: name.to_owned(), data, sha256: sha.unwrap_or_default() };
                    open = tx.blocking_send(Ok(msg)).is_ok();
                    open
                });
                if let Err(e) = read {
                    let _ = tx.blocking_send(Err(Status::not_found(format!("{}: {e}", path.display()))));
                    return;
                }
                if !open {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn complete_job(&self, request: Request<pb::CompleteJobRequest>) -> RpcResult<pb::CompleteJobResponse> {
        let r = request.into_inner();
        let (worker, job, token, result) = (r.worker_id.clone(), r.job_id.clone(), r.fencing_token, r.result_json);
        let out = blocking(&self.shared, move |store| store.complete(&worker, &job, token, &result)).await?;
        if out.accepted {
            tracing::info!(job = %r.job_id, worker = %r.worker_id, outcome = %out.reason, "job ended");
            self.shared.job_available.notify_waiters();
            self.shared.bump();
        }
        Ok(Response::new(pb::CompleteJobResponse { accepted: out.accepted, reason: out.reason }))
    }

    async fn fail_job(&self, request: Request<pb::FailJobRequest>) -> RpcResult<pb::FailJobResponse> {
        let r = request.into_inner();
        let kind = pb::FailureKind::try_from(r.kind)
            .map_err(|_| Status::invalid_argument(format!("unknown failure kind {}", r.kind)))?;
        let (worker, job, token, error) = (r.worker_id.clone(), r.job_id.clone(), r.fencing_token, r.error.clone());
        let out = blocking(&self.shared, move |store| store.fail(&worker, &job, token, &error, kind)).await?;
        if out.accepted {
            tracing::warn!(job = %r.job_id, worker = %r.worker_id, kind = kind.name(), error = %r.error, "{}", out.reason);
            let metrics = &self.shared.metrics;
            metrics.failed(kind.name());
            if out.will_retry {
                metrics.retried("failure", 1);
            }
            if out.quarantined {
                tracing::warn!(worker = %r.worker_id, "worker quarantined after consecutive failed jobs");
                metrics.quarantined();
            }
            self.shared.job_available.notify_waiters();
            self.shared.bump();
        }
        Ok(Response::new(pb::FailJobResponse { accepted: out.accepted, will_retry: out.will_retry }))
    }

    async fn release_job(&self, request: Request<pb::ReleaseJobRequest>) -> RpcResult<pb::ReleaseJobResponse> {
        let r = request.into_inner();
        let (worker, job, token) = (r.worker_id.clone(), r.job_id.clone(), r.fencing_token);
        let accepted = blocking(&self.shared, move |store| store.release(&worker, &job, token)).await?;
        if accepted {
            tracing::info!(job = %r.job_id, worker = %r.worker_id, "job released");
            self.shared.job_available.notify_waiters();
            self.shared.bump();
        }
        Ok(Response::new(pb::ReleaseJobResponse { accepted }))
    }

    async fn get_status(&self, _request: Request<pb::GetStatusRequest>) -> RpcResult<pb::SweepStatus> {
        Ok(Response::new(self.shared.status_off_runtime().await?))
    }

    async fn retry_jobs(&self, request: Request<pb::RetryJobsRequest>) -> RpcResult<pb::RetryJobsResponse> {
        let ids = request.into_inner().job_ids;
        let out = blocking(&self.shared, move |store| store.retry_failed(&ids)).await?;
        if !out.retried.is_empty() {
            tracing::info!(jobs = ?out.retried, "failed jobs put back in the queue");
            self.shared.metrics.retried("command", out.retried.len());
            self.shared.job_available.notify_waiters();
            self.shared.bump();
        }
        Ok(Response::new(pb::RetryJobsResponse {
            retried: out.retried,
            not_failed: out.not_failed.into_iter().map(|(id, state)| format!("{id} ({state})")).collect(),
        }))
    }

    type WatchStatusStream = RpcStream<pb::SweepStatus>;

    async fn watch_status(&self, _request: Request<pb::GetStatusRequest>) -> RpcResult<Self::WatchStatusStream> {
        let shared = self.shared.clone();
        let mut changes = shared.changed.subscribe();
        let stream = async_stream(move |tx| async move {
            loop {
                let status = shared.status_off_runtime().await;
                let finished = status.as_ref().map(|s| s.finished).unwrap_or(true);
                if tx.send(status).await.is_err() || finished {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A response stream fed by a task that sends into a channel.
fn async_stream<T: Send + 'static, F, Fut>(f: F) -> RpcStream<T>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(ReceiverStream::new(rx))
}

/// Streams a file in chunks built by `make(data, is_last)`.
fn stream_file<T: Send + 'static>(path: PathBuf, make: impl Fn(Vec<u8>, bool) -> T + Send + 'static) -> RpcStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let read = for_each_piece(&path, |data, sha| tx.blocking_send(Ok(make(data, sha.is_some()))).is_ok());
        if let Err(e) = read {
            let _ = tx.blocking_send(Err(Status::internal(format!("{}: {e}", path.display()))));
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

fn check_version(client: u32) -> Result<(), Status> {
    if client != PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "protocol version mismatch: client speaks {client}, this coordinator speaks {PROTOCOL_VERSION}; \
             run a worker and coordinator built from the same release"
        )));
    }
    Ok(())
}

/// Serves `shared` on `listener` until `shutdown` completes; expires leases in the background.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let reaper = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || s.expire()).await {
                    Ok(Err(e)) => tracing::error!("expiring leases: {e}"),
                    Err(e) => tracing::error!("expiring leases: {e}"),
                    Ok(Ok(_)) => {}
                }
            }
        })
    };
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
