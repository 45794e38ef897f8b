//! The worker as a sweep participant: register with a coordinator, pull jobs under leases, train
//! each on its own thread (never on the async runtime), report epochs through heartbeats that
//! also renew the lease, upload a checkpoint after every epoch, and deliver the result.
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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::client::{Client, ClientTls};
use gridsweep_proto::job::{DataSpec, JobSpec};
use gridsweep_proto::pieces::{Receiving, for_each_piece};
use gridsweep_proto::v1::{self as pb, FailureKind, pull_job_response::Outcome};
use tch::Device;
use tokio::sync::mpsc;
use tonic::{Code, Status};
use tracing::Instrument;

use crate::train::{self, EpochMetrics, Options, Status as RunStatus, TrainResult};
use crate::{checkpoint, data};

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

/// Capped exponential backoff with jitter: ~0.5 s, 1 s, 2 s, ... up to 15 s.
fn backoff(attempt: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << attempt.min(5)).min(15_000);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(base / 2 + u64::from(nanos) % (base / 2 + 1))
}

/// Connects, checks the protocol version and registers; retries until it works or `stop`.
async fn connect(cfg: &AgentConfig, stop: &AtomicBool) -> Result<Option<(Client, String)>, AgentError> {
    let device = match cfg.device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => format!("cpu, {} threads", tch::get_num_threads()),
    };
    // So that a job that ran out of memory elsewhere comes here only if this device has more.
    let memory = crate::devices::device_memory_bytes(cfg.device).unwrap_or(0);
    let mut attempt = 0;
    while !stop.load(Ordering::SeqCst) {
        match gridsweep_proto::client::connect(&cfg.coordinator, cfg.tls.as_ref(), cfg.token.as_deref()).await {
            Ok(mut client) => {
                let req = pb::RegisterWorkerRequest {
                    protocol_version: PROTOCOL_VERSION,
                    name: cfg.name.clone(),
                    device: device.clone(),
                    device_memory_bytes: memory,
                };
                match client.register_worker(req).await {
                    Ok(r) => return Ok(Some((client, r.into_inner().worker_id))),
                    Err(s) if s.code() == Code::FailedPrecondition => {
                        return Err(AgentError::Refused(s.message().to_owned()));
                    }
                    Err(s) if s.code() == Code::Unauthenticated => {
                        let (url, message) = (cfg.coordinator.clone(), s.message().to_owned());
                        return Err(AgentError::Unauthenticated { url, message });
                    }
                    Err(s) => tracing::warn!("registering with {}: {}; retrying", cfg.coordinator, s.message()),
                }
            }
            Err(e) if e.is_permanent() => return Err(AgentError::Refused(e.to_string())),
            Err(e) => tracing::warn!("{e}; retrying"),
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
    Ok(None)
}

/// Pulls and runs jobs until the sweep finishes (Ok) or `stop` is set (Ok, after giving back
/// the running job).
pub async fn run(cfg: AgentConfig, stop: Arc<AtomicBool>) -> Result<(), AgentError> {
    std::fs::create_dir_all(&cfg.work_dir)
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
                // A root span, so that its lines show the job's fields and no chain of spans; at
                // the error level, so that it is enabled whenever any of its lines is (a
                // RUST_LOG of `warn` still gives the warnings their job's fields).
                let span = tracing::error_span!(
                    parent: None,
                    "job",
                    job = %lease.job_id,
                    attempt = lease.attempt,
                    worker = %worker,
                );
                match run_job(&cfg, &mut client, &worker, lease, &stop).instrument(span).await {
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
                let (url, message) = (cfg.coordinator.clone(), s.message().to_owned());
                return Err(AgentError::Unauthenticated { url, message });
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

/// What the training thread sends back.
enum Event {
    Epoch(EpochMetrics),
    Done(Box<Result<TrainResult, Failure>>),
}

/// A job that could not run or finish, and whose fault that is.
#[derive(Debug)]
struct Failure {
    /// Only `Job` uses one of the job's attempts at the coordinator.
    kind: FailureKind,
    /// What went wrong.
    message: String,
}

impl Failure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into() }
    }

    /// A training error on `device`, classified: out of memory and a broken CUDA context are
    /// the device's. An out-of-memory message names the device and its memory: the job needs
    /// more than that, and the coordinator sends it next to a worker that has more.
    fn of_training(message: String, device: Device) -> Self {
        let lower = message.to_lowercase();
        if lower.contains("out of memory") || lower.contains("can't allocate memory") {
            let memory = crate::devices::device_memory_bytes(device).map_or_else(
                || "unknown memory".to_owned(),
                |b| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
            );
            let on = match device {
                Device::Cuda(i) => format!("cuda:{i}"),
                _ => "cpu".to_owned(),
            };
            let message = format!("out of memory on {on} ({memory}); the job needs more: {message}");
            return Failure { kind: FailureKind::OutOfMemory, message };
        }
        let kind = if is_sticky_cuda_error(&message) { FailureKind::DeviceLost } else { FailureKind::Job };
        Failure { kind, message }
    }
}

/// How a leased job ended for this worker.
#[derive(Debug, PartialEq, Eq)]
enum JobEnd {
    /// Reported (a result, a release, a failure of the job's own) or dropped as stale.
    Done,
    /// Reported as a failure that was not the job's: wait a little before the next pull.
    Setback,
    /// Reported failed with this CUDA error, after which this process's CUDA context is unusable.
    DeviceLost(String),
}

/// Runs one leased job to its end, reporting every outcome to the coordinator (or dropping it
/// when the lease turned stale). Runs inside the job's span, which the training thread enters
/// too.
async fn run_job(cfg: &AgentConfig, client: &mut Client, worker: &str, lease: pb::Lease, stop: &AtomicBool) -> JobEnd {
    let job = lease.job_id.clone();
    let token = lease.fencing_token;
    match lease.checkpoint_epoch {
        0 => tracing::info!("leased; starting at epoch 1"),
        e => tracing::info!("leased; resuming after epoch {e}"),
    }
    let prepared = prepare(cfg, client, worker, &lease).await;
    let (spec, data_dir, job_dir) = match prepared {
        Ok(p) => p,
        Err(f) => return report_failure(client, worker, &job, token, f).await,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let opts = Options {
        device: cfg.device,
        checkpoint_dir: Some(job_dir.clone()),
        resume: true,
        grad_analysis: spec.analysis.clone(),
        deterministic: spec.train.deterministic,
        stop_after: None,
        cancel: Some(cancel.clone()),
        speed: cfg.speed,
    };
    let train_cfg = spec.train.clone();
    let span = tracing::Span::current();
    let thread = std::thread::Builder::new().name(format!("train-{job}")).spawn(move || {
        let _span = span.enter();
        let epoch_tx = tx.clone();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let data = data::load(&data_dir, opts.device)
                .map_err(|e| Failure::new(FailureKind::Worker, format!("loading the data: {e}")))?;
            train::train(&train_cfg, &data, &opts, &mut |m| {
                let _ = epoch_tx.send(Event::Epoch(m.clone()));
            })
            .map_err(|e| Failure::of_training(e.to_string(), opts.device))
        }))
        .unwrap_or_else(|p| {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()));
            Err(Failure::new(
                FailureKind::Job,
                format!("training panicked: {}", msg.unwrap_or_else(|| "unknown panic".to_owned())),
            ))
        });
        let _ = tx.send(Event::Done(Box::new(outcome)));
    });
    if let Err(e) = thread {
        let f = Failure::new(FailureKind::Worker, format!("cannot start training thread: {e}"));
        return report_failure(client, worker, &job, token, f).await;
    }
    let renew = Duration::from_millis((lease.ttl_ms / 3).max(500));
    let mut last_beat = tokio::time::Instant::now();
    let mut stale = false;
    let mut cancelled_by = None;
    let result = loop {
        let event = tokio::select! {
            e = rx.recv() => Some(e.unwrap_or_else(|| {
                let f = Failure::new(FailureKind::Worker, "training thread ended without a result");
                Event::Done(Box::new(Err(f)))
            })),
            () = tokio::time::sleep(Duration::from_millis(250)) => None,
        };
        if stop.load(Ordering::SeqCst) && cancelled_by.is_none() {
            cancelled_by = Some("worker is shutting down");
            cancel.store(true, Ordering::SeqCst);
        }
        let mut epochs = Vec::new();
        match event {
            Some(Event::Done(r)) => break *r,
            Some(Event::Epoch(m)) => {
                tracing::info!("{}", train::progress_line(&m, spec.train.epochs));
                // A diverged epoch leaves no checkpoint (nothing to resume from).
                if !stale && m.train_loss.is_some() {
                    upload_checkpoint(client, worker, &job, token, m.epoch, &job_dir).await;
                }
                epochs.push(pb::EpochReport {
                    epoch: m.epoch,
                    metrics_json: serde_json::to_string(&m).unwrap_or_default(),
                });
            }
            None => {}
        }
        if stale || (epochs.is_empty() && last_beat.elapsed() < renew) {
            continue;
        }
        last_beat = tokio::time::Instant::now();
        let hb =
            pb::HeartbeatRequest { worker_id: worker.to_owned(), job_id: job.clone(), fencing_token: token, epochs };
        match client.heartbeat(hb).await {
            Ok(r) if !r.get_ref().proceed => {
                if cancelled_by.is_none() {
                    tracing::info!("cancelled: {}", r.get_ref().reason);
                    cancelled_by = Some("cancelled by the coordinator");
                    cancel.store(true, Ordering::SeqCst);
                }
            }
            Ok(_) => tracing::debug!("heartbeat: lease renewed"),
            Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound) => {
                tracing::warn!("{}; dropping the job", s.message());
                stale = true;
                cancel.store(true, Ordering::SeqCst);
            }
            Err(s) => tracing::warn!("heartbeat failed: {}; training on", s.message()),
        }
    };
    if stale {
        return JobEnd::Done;
    }
    match result {
        Ok(r) if matches!(r.status, RunStatus::Completed | RunStatus::Diverged) => {
            let json = serde_json::to_string(&r).unwrap_or_default();
            let req = pb::CompleteJobRequest {
                worker_id: worker.to_owned(),
                job_id: job.clone(),
                fencing_token: token,
                result_json: json,
            };
            match retry(|| {
                let mut c = client.clone();
                let req = req.clone();
                async move { c.complete_job(req).await }
            })
            .await
            {
                Ok(resp) if resp.get_ref().accepted => tracing::info!(
                    "{:?} (accepted: true), final test accuracy {}",
                    r.status,
                    r.final_test_acc.map_or_else(|| "-".to_owned(), |a| format!("{a:.2}%"))
                ),
                Ok(resp) => tracing::warn!("{:?} (accepted: false): {}", r.status, resp.get_ref().reason),
                // The coordinator refused the result itself: the job's fault, which uses an
                // attempt, rather than a lease left to expire and a rerun that ends the same.
                Err(s) if s.code() == Code::InvalidArgument => {
                    let f = Failure::new(FailureKind::Job, format!("result refused: {}", s.message()));
                    return report_failure(client, worker, &job, token, f).await;
                }
                Err(s) => tracing::error!("result not delivered: {}", s.message()),
            }
        }
        Ok(_) => {
            let req = pb::ReleaseJobRequest { worker_id: worker.to_owned(), job_id: job.clone(), fencing_token: token };
            let _ = client.release_job(req).await;
            tracing::info!("stopped ({}), lease released", cancelled_by.unwrap_or("stopped"));
        }
        Err(f) => return report_failure(client, worker, &job, token, f).await,
    }
    JobEnd::Done
}

/// Whether a job's error is one after which libtorch's CUDA context stays broken (an illegal
/// memory access, a device-side assert, a launch failure: every later CUDA call fails too),
/// rather than one a next job can recover from (out of memory, bad data).
pub fn is_sticky_cuda_error(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("cuda error") && !m.contains("out of memory")
}

/// Retries a call on transient errors (coordinator down or unreachable) with backoff, for about
/// three minutes: a finished result is worth waiting for.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(s) if is_transient(&s) && attempt < 16 => {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Errors that say nothing about the request, only that the coordinator was not reached.
fn is_transient(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled)
}

/// Reports a failure with its kind; says how the job ended for this worker.
async fn report_failure(client: &mut Client, worker: &str, job: &str, token: u64, f: Failure) -> JobEnd {
    tracing::error!("failed ({}): {}", f.kind.name(), f.message);
    let req = pb::FailJobRequest {
        worker_id: worker.to_owned(),
        job_id: job.to_owned(),
        fencing_token: token,
        error: f.message.clone(),
        kind: f.kind.into(),
    };
    let _ = retry(|| {
        let mut c = client.clone();
        let req = req.clone();
        async move { c.fail_job(req).await }
    })
    .await;
    match f.kind {
        FailureKind::Job => JobEnd::Done,
        // Only a sticky CUDA error is classified so (`Failure::of_training`).
        FailureKind::DeviceLost => JobEnd::DeviceLost(f.message),
        _ => JobEnd::Setback,
    }
}

/// The job's spec, its data folder and its checkpoint folder (with the coordinator's latest
/// checkpoint in it, when there is one).
async fn prepare(
    cfg: &AgentConfig,
    client: &mut Client,
    worker: &str,
    lease: &pb::Lease,
) -> Result<(JobSpec, PathBuf, PathBuf), Failure> {
    let job_err = |e: String| Failure::new(FailureKind::Job, format!("job spec: {e}"));
    let spec: JobSpec = serde_json::from_str(&lease.spec_json).map_err(|e| job_err(e.to_string()))?;
    spec.validate().map_err(|e| job_err(e.to_string()))?;
    let local = |e: String| Failure::new(FailureKind::Worker, e);
    let transfer = |e: String| Failure::new(FailureKind::Transfer, e);
    // Loading a set and hashing ~180 MB of CIFAR-10 block: they run on the blocking pool.
    let verified = |dir: PathBuf| async move {
        tokio::task::spawn_blocking(move || data::fetch::verify(&dir).is_ok()).await.unwrap_or(false)
    };
    let data_dir = match &spec.data {
        DataSpec::Synthetic { train, test, seed } => {
            let dest = cfg.work_dir.join(format!("synthetic-{train}-{test}-{seed}"));
            let (dir, (train, test, seed)) = (dest.clone(), (*train, *test, *seed));
            let made = tokio::task::spawn_blocking(move || match data::load(&dir, Device::Cpu) {
                Ok(_) => Ok(false),
                Err(_) => data::synth::write(&dir, train, test, seed).map(|_| true).map_err(|e| e.to_string()),
            })
            .await
            .map_err(|e| local(e.to_string()))?
            .map_err(local)?;
            if made {
                tracing::debug!("synthetic set written to {}", dest.display());
            }
            dest
        }
        DataSpec::Cifar10 => match &cfg.data_dir {
            Some(d) if verified(data::resolve_dir(d)).await => d.clone(),
            _ => {
                let dest = cfg.work_dir.join("cifar10");
                if !verified(dest.join(data::SET_DIR)).await {
                    fetch_data(client, worker, &dest.join(data::SET_DIR)).await.map_err(transfer)?;
                }
                dest
            }
        },
    };
    let job_dir = cfg.work_dir.join("jobs").join(&lease.job_id);
    std::fs::create_dir_all(&job_dir).map_err(|e| local(format!("{}: {e}", job_dir.display())))?;
    let checkpoint = job_dir.join(checkpoint::FILE);
    let _ = std::fs::remove_file(&checkpoint);
    if lease.checkpoint_epoch > 0 {
        download_checkpoint(client, worker, lease, &checkpoint).await.map_err(transfer)?;
        tracing::debug!("checkpoint of epoch {} downloaded", lease.checkpoint_epoch);
    }
    Ok((spec, data_dir, job_dir))
}

async fn download_checkpoint(client: &mut Client, worker: &str, lease: &pb::Lease, dest: &Path) -> Result<(), String> {
    let req = pb::DownloadCheckpointRequest {
        worker_id: worker.to_owned(),
        job_id: lease.job_id.clone(),
        fencing_token: lease.fencing_token,
    };
    let mut stream = client
        .download_checkpoint(req)
        .await
        .map_err(|s| format!("checkpoint download: {}", s.message()))?
        .into_inner();
    // Into a temporary file piece by piece (a depth-1538 checkpoint is ~200 MB), hashed on the way.
    let tmp = dest.with_extension("download");
    let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut file = Receiving::create(&tmp).map_err(io)?;
    let mut claimed = String::new();
    while let Some(chunk) = stream.message().await.map_err(|s| format!("checkpoint download: {}", s.message()))? {
        file.write(&chunk.data).map_err(io)?;
        if !chunk.sha256.is_empty() {
            claimed = chunk.sha256;
        }
    }
    let (actual, _) = file.finish().map_err(io)?;
    if actual != claimed {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("checkpoint of job {}: sha256 {actual}, coordinator said {claimed}", lease.job_id));
    }
    std::fs::rename(&tmp, dest).map_err(|e| format!("{}: {e}", dest.display()))
}

/// Sends the job's checkpoint file, read piece by piece on a blocking thread.
async fn upload_checkpoint(client: &mut Client, worker: &str, job: &str, token: u64, epoch: u32, job_dir: &Path) {
    let path = job_dir.join(checkpoint::FILE);
    let (tx, rx) = mpsc::channel(4);
    let (job_id, worker_id) = (job.to_owned(), worker.to_owned());
    let reader = tokio::task::spawn_blocking(move || {
        for_each_piece(&path, |data, sha| {
            let chunk = pb::CheckpointChunk {
                job_id: job_id.clone(),
                fencing_token: token,
                epoch,
                data,
                sha256: sha.unwrap_or_default(),
                worker_id: worker_id.clone(),
            };
            tx.blocking_send(chunk).is_ok()
        })
        .map_err(|e| format!("reading {}: {e}", path.display()))
    });
    // A read error ends the stream without the sha256, so the coordinator discards the upload.
    let sent = client.upload_checkpoint(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
    if let Ok(Err(e)) = reader.await {
        tracing::warn!("checkpoint upload for epoch {epoch}: {e}");
    } else if let Err(s) = sent {
        tracing::warn!("checkpoint upload for epoch {epoch} failed: {}", s.message());
    } else {
        tracing::debug!("checkpoint of epoch {epoch} uploaded");
    }
}

async fn fetch_data(client: &mut Client, worker: &str, dest: &Path) -> Result<(), String> {
    tracing::info!("fetching CIFAR-10 from the coordinator into {}", dest.display());
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut stream = client
        .fetch_data(pb::FetchDataRequest { worker_id: worker.to_owned() })
        .await
        .map_err(|s| format!("fetching data from the coordinator: {}", s.message()))?
        .into_inner();
    // Each file into `NAME.part`, hashed on the way, renamed into place once its sha256 checks.
    let mut current: Option<(String, PathBuf, Receiving)> = None;
    while let Some(chunk) = stream.message().await.map_err(|s| format!("fetching data: {}", s.message()))? {
        let (_, part, file) = match &mut current {
            Some(c) => c,
            None => {
                let name = chunk.file.clone();
                if name.contains(['/', '\\']) || name.starts_with('.') {
                    return Err(format!("coordinator sent a bad file name {name:?}"));
                }
                let part = dest.join(format!("{name}.part"));
                let file = Receiving::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
                current.insert((name, part, file))
            }
        };
        file.write(&chunk.data).map_err(|e| format!("{}: {e}", part.display()))?;
        if !chunk.sha256.is_empty() {
            let Some((name, part, file)) = current.take() else { continue };
            let (sha, _) = file.finish().map_err(|e| format!("{}: {e}", part.display()))?;
            if sha != chunk.sha256 {
                let _ = std::fs::remove_file(&part);
                return Err(format!("{name}: checksum mismatch in transfer"));
            }
            let path = dest.join(&name);
            std::fs::rename(&part, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let dir = dest.to_owned();
    tokio::task::spawn_blocking(move || data::fetch::verify(&dir).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::is_sticky_cuda_error;

    #[test]
    fn sticky_cuda_errors_are_told_from_recoverable_ones() {
        assert!(is_sticky_cuda_error("libtorch: CUDA error: an illegal memory access was encountered"));
        assert!(is_sticky_cuda_error("libtorch: CUDA error: device-side assert triggered"));
        assert!(!is_sticky_cuda_error("libtorch: CUDA out of memory. Tried to allocate 2.00 GiB"));
        assert!(!is_sticky_cuda_error("libtorch: CUDA error: out of memory"));
        assert!(!is_sticky_cuda_error("data: data/cifar-10-batches-bin/data_batch_1: wrong size"));
    }
}
