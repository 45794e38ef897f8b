//! The `Coordinator` rpcs. Each handler is thin: it checks its input, makes its store calls
//! through the store handle (on the blocking pool), and wakes long-polling pullers and status
//! watchers when the state changed. Most make one store transition; `UploadCheckpoint` makes a
//! read first (refusing an uploader that does not hold the job before taking its bytes) and its
//! transition after the file is in place, and `GetStatus`/`WatchStatus` only read.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::v1::coordinator_server::Coordinator;
use gridsweep_proto::v1::{self as pb, pull_job_response::Outcome};
use tonic::{Request, Response, Status, Streaming};

use super::shared::{Shared, blocking};
use super::streams::{Received, RpcStream, async_stream, receive_checkpoint, stream_data_set, stream_file};
use crate::pace;
use crate::store::off_runtime;
use crate::store::{Grant, StoredCheckpoint};

/// The result type of every rpc handler.
type RpcResult<T> = Result<Response<T>, Status>;

/// The longest a pull may wait.
const MAX_WAIT: Duration = Duration::from_secs(30);

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
        let id =
            blocking(&self.shared, "registering a worker", move |store| store.register_worker(&name, &device, memory))
                .await?;
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
            match blocking(shared, "granting a job", move |store| store.grant(&worker, ttl, fifo)).await? {
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
        let reported = epochs.len();
        blocking(&self.shared, "recording a heartbeat", move |store| {
            store.heartbeat(&worker, &job, token, &epochs, ttl)
        })
        .await?;
        if reported > 0 {
            self.shared.metrics.epochs_reported(reported);
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
        blocking(&self.shared, "reading a checkpoint", move |store| store.checkpoint_for(&w, &j, token)).await?;
        let dir = self.shared.store.checkpoint_dir().to_owned();
        let part = dir.join(format!("{job}.{token}.part"));
        let io = |e: std::io::Error| Status::internal(format!("{}: {e}", part.display()));
        let Received { claimed, actual, bytes } = receive_checkpoint(first, &mut stream, &part).await?;
        let path = dir.join(format!("{job}.gsck"));
        if claimed != actual {
            let discarded = part.clone();
            let _ = off_runtime("removing a checkpoint", move || std::fs::remove_file(&discarded)).await;
            return Err(Status::data_loss(format!(
                "checkpoint of job {job}: sha256 {actual}, sender claimed {claimed:?}; discarded"
            )));
        }
        let (from, to) = (part.clone(), path.clone());
        off_runtime("keeping a checkpoint", move || std::fs::rename(&from, &to)).await.map_err(io)?;
        let ck = StoredCheckpoint { epoch, sha256: actual, path, bytes };
        let (w, j) = (worker.clone(), job.clone());
        blocking(&self.shared, "storing a checkpoint", move |store| store.store_checkpoint(&w, &j, token, &ck)).await?;
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
        let (path, sha, epoch) =
            blocking(&self.shared, "reading a checkpoint", move |store| store.checkpoint_for(&worker, &job, token))
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
        Ok(Response::new(stream_data_set(dir)))
    }

    async fn complete_job(&self, request: Request<pb::CompleteJobRequest>) -> RpcResult<pb::CompleteJobResponse> {
        let r = request.into_inner();
        let (worker, job, token, result) = (r.worker_id.clone(), r.job_id.clone(), r.fencing_token, r.result_json);
        let out =
            blocking(&self.shared, "completing a job", move |store| store.complete(&worker, &job, token, &result))
                .await?;
        if out.accepted {
            tracing::info!(job = %r.job_id, worker = %r.worker_id, outcome = %out.reason, "job ended");
            self.shared.freed();
        }
        Ok(Response::new(pb::CompleteJobResponse { accepted: out.accepted, reason: out.reason }))
    }

    async fn fail_job(&self, request: Request<pb::FailJobRequest>) -> RpcResult<pb::FailJobResponse> {
        let r = request.into_inner();
        let kind = pb::FailureKind::try_from(r.kind)
            .map_err(|_| Status::invalid_argument(format!("unknown failure kind {}", r.kind)))?;
        let (worker, job, token, error) = (r.worker_id.clone(), r.job_id.clone(), r.fencing_token, r.error.clone());
        let out =
            blocking(&self.shared, "recording a failure", move |store| store.fail(&worker, &job, token, &error, kind))
                .await?;
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
            self.shared.freed();
        }
        Ok(Response::new(pb::FailJobResponse { accepted: out.accepted, will_retry: out.will_retry }))
    }

    async fn release_job(&self, request: Request<pb::ReleaseJobRequest>) -> RpcResult<pb::ReleaseJobResponse> {
        let r = request.into_inner();
        let (worker, job, token) = (r.worker_id.clone(), r.job_id.clone(), r.fencing_token);
        let accepted =
            blocking(&self.shared, "releasing a job", move |store| store.release(&worker, &job, token)).await?;
        if accepted {
            tracing::info!(job = %r.job_id, worker = %r.worker_id, "job released");
            self.shared.freed();
        }
        Ok(Response::new(pb::ReleaseJobResponse { accepted }))
    }

    async fn append_log(&self, request: Request<pb::AppendLogRequest>) -> RpcResult<pb::AppendLogResponse> {
        let r = request.into_inner();
        blocking(&self.shared, "storing a program log", move |store| {
            store.append_program_log(&r.worker_id, &r.job_id, r.fencing_token, &r.text)
        })
        .await?;
        Ok(Response::new(pb::AppendLogResponse {}))
    }

    async fn get_status(&self, _request: Request<pb::GetStatusRequest>) -> RpcResult<pb::SweepStatus> {
        Ok(Response::new(self.shared.status_off_runtime().await?))
    }

    async fn retry_jobs(&self, request: Request<pb::RetryJobsRequest>) -> RpcResult<pb::RetryJobsResponse> {
        let ids = request.into_inner().job_ids;
        let out = blocking(&self.shared, "retrying failed jobs", move |store| store.retry_failed(&ids)).await?;
        if !out.retried.is_empty() {
            tracing::info!(jobs = ?out.retried, "failed jobs put back in the queue");
            self.shared.metrics.retried("command", out.retried.len());
            self.shared.freed();
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
                let started = Instant::now();
                let status = shared.status_off_runtime().await;
                let took = started.elapsed();
                let finished = status.as_ref().map(|s| s.finished).unwrap_or(true);
                if tx.send(status).await.is_err() || finished {
                    return;
                }
                // Each watcher's status reads every job: paced, so that watchers of a large
                // sweep cost a bounded share of the coordinator's time.
                tokio::time::sleep(pace::wait_after(took, WATCH_FLOOR, WATCH_FACTOR)).await;
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// The least time between two messages of a `WatchStatus` stream.
const WATCH_FLOOR: Duration = Duration::from_millis(250);
/// And at least this many times what the last status took.
const WATCH_FACTOR: u32 = 4;

/// Refuses a peer that speaks another protocol version.
fn check_version(client: u32) -> Result<(), Status> {
    if client != PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "protocol version mismatch: client speaks {client}, this coordinator speaks {PROTOCOL_VERSION}; \
             run a worker and coordinator built from the same release"
        )));
    }
    Ok(())
}
