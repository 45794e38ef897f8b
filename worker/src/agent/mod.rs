//! The worker as a sweep participant: register with a coordinator, pull jobs under leases, train
//! each on its own thread (never on the async runtime), report epochs through heartbeats that
//! also renew the lease, upload a checkpoint after every epoch, and deliver the result.
//!
//! This file holds the session loop (`run`) and its configuration and errors; `session`
//! connects and retries, `job` runs one leased job, `failure` classifies its failures, `prepare` gets a
//! job's spec, data and checkpoint ready, `transfer` moves checkpoints and data over the wire.
//!
//! Faults: an unreachable coordinator is retried with capped exponential backoff and jitter; a
//! stale lease (another worker now holds the job) drops the job; a failed or panicking job is
//! reported as a failure and the worker goes on; SIGTERM/SIGINT stops the running job, gives
//! its lease back and exits 0.
//!
//! Logging: every line about a job is inside a `job` span with the job's `job`, `attempt` and
//! `worker` (the id the coordinator assigned) fields, also on the training thread; the other
//! lines carry `worker` once registered. Leases, epochs and results are `info`, faults the worker
//! rides out `warn`, failed jobs and lost results `error`, heartbeats and transfers `debug`.

mod failure;
mod job;
mod prepare;
/// Running a `program:` job (its files live in `worker/src/program/`).
#[path = "../program/mod.rs"]
mod program;
mod session;
mod transfer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gridsweep_proto::client::{Client, ClientTls};
use gridsweep_proto::v1::{self as pb, pull_job_response::Outcome};
use tch::Device;
use tonic::{Code, Status};
use tracing::Instrument;

use job::{JobEnd, run_job};
use session::{backoff, connect};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The coordinator, `http://host:port`.
    pub coordinator: String,
    /// Training device.
    pub device: Device,
    /// A folder with CIFAR-10 (`cifar-10-batches-bin/`); fetched from the coordinator when absent.
    pub data_dir: Option<PathBuf>,
    /// Scratch space: job checkpoints, synthetic sets, fetched data.
    pub work_dir: PathBuf,
    /// Shown in the coordinator's status.
    pub name: String,
    /// The coordinator's shared token, when it requires one.
    pub token: Option<String>,
    /// TLS: the CA to trust (and the server name), for an `https://` coordinator.
    pub tls: Option<ClientTls>,
    /// How grid stages run, the memory layout and TF32 in this worker's jobs.
    pub speed: crate::speed::Speed,
}

/// Why the worker stopped other than by the sweep finishing.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The coordinator refused us for good (protocol version, quarantine).
    #[error("coordinator refused this worker: {0}")]
    Refused(String),
    /// Local I/O.
    #[error("{0}")]
    Local(String),
    /// The coordinator refused this worker's token (missing or wrong): retrying cannot help.
    #[error("coordinator {url} refused this worker's token: {message}; check --token-file or GRIDSWEEP_TOKEN")]
    Unauthenticated {
        /// The coordinator.
        url: String,
        /// Its answer.
        message: String,
    },
    /// A job hit a CUDA error that leaves this process's CUDA context unusable; the job was
    /// reported failed, and a fresh process (a restart by the supervisor) is needed.
    #[error(
        "the CUDA context is unusable after: {0}; exiting instead of failing every further job (restart this worker)"
    )]
    DeviceLost(String),
}

impl AgentError {
    /// The coordinator at `url` refused this worker's token with `status`.
    fn unauthenticated(url: &str, status: &Status) -> Self {
        AgentError::Unauthenticated { url: url.to_owned(), message: status.message().to_owned() }
    }
}

/// Pulls and runs jobs until the sweep finishes (Ok) or `stop` is set (Ok, after giving back
/// the running job).
pub async fn run(cfg: AgentConfig, stop: Arc<AtomicBool>) -> Result<(), AgentError> {
    let dir = cfg.work_dir.clone();
    tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir))
        .await
        .map_err(|e| AgentError::Local(format!("creating {}: {e}", cfg.work_dir.display())))?
        .map_err(|e| AgentError::Local(format!("{}: {e}", cfg.work_dir.display())))?;
    let Some((mut client, mut worker)) = connect(&cfg, &stop).await? else { return Ok(()) };
    tracing::info!(worker = %worker, name = %cfg.name, "registered with {}", cfg.coordinator);
    let mut failures = 0;
    // Consecutive failures that were not the jobs' (no data, device): back off between them
    // instead of failing the next job at once for the same reason.
    let mut setbacks = 0;
    while !stop.load(Ordering::SeqCst) {
        let pulled = client.pull_job(pb::PullJobRequest { worker_id: worker.clone(), wait_ms: 20_000 }).await;
        match pulled.map(|r| r.into_inner().outcome) {
            Ok(Some(Outcome::Lease(lease))) => {
                failures = 0;
                match run_leased(&cfg, &mut client, &worker, lease, &stop).await {
                    JobEnd::Done => setbacks = 0,
                    JobEnd::Setback => {
                        tokio::time::sleep(backoff(setbacks)).await;
                        setbacks += 1;
                    }
                    JobEnd::DeviceLost(e) => return Err(AgentError::DeviceLost(e)),
                }
            }
            Ok(Some(Outcome::SweepFinished(_))) => {
                tracing::info!(worker = %worker, "sweep finished");
                return Ok(());
            }
            Ok(_) => {}
            Err(s) if s.code() == Code::PermissionDenied => return Err(AgentError::Refused(s.message().to_owned())),
            Err(s) if s.code() == Code::Unauthenticated => {
                return Err(AgentError::unauthenticated(&cfg.coordinator, &s));
            }
            Err(s) if s.code() == Code::NotFound => {
                tracing::warn!(worker = %worker, "{}; registering again", s.message());
                let Some((c, w)) = connect(&cfg, &stop).await? else { return Ok(()) };
                tracing::info!(worker = %w, name = %cfg.name, "registered again with {}", cfg.coordinator);
                (client, worker) = (c, w);
            }
            Err(s) => {
                tracing::warn!(worker = %worker, "pull failed: {}; retrying", s.message());
                tokio::time::sleep(backoff(failures)).await;
                failures += 1;
            }
        }
    }
    Ok(())
}

/// Runs a leased job inside its own span.
async fn run_leased(
    cfg: &AgentConfig,
    client: &mut Client,
    worker: &str,
    lease: pb::Lease,
    stop: &AtomicBool,
) -> JobEnd {
    // A root span, so that its lines show the job's fields and no chain of spans; at the error
    // level, so that it is enabled whenever any of its lines is (a RUST_LOG of `warn` still gives
    // the warnings their job's fields).
    let span = tracing::error_span!(
        parent: None,
        "job",
        job = %lease.job_id,
        attempt = lease.attempt,
        worker = %worker,
    );
    run_job(cfg, client, worker, lease, stop).instrument(span).await
}
