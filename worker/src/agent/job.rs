//! One leased job from start to report: prepare it, train it on its own thread, turn each epoch
//! into a heartbeat (which renews the lease and may cancel the job) and a checkpoint upload,
//! and report how it ended: a result, a released lease, or a failure classified by whose fault
//! it is (`Failure`). A lease found stale drops the job without a report.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gridsweep_proto::client::Client;
use gridsweep_proto::v1::{self as pb, FailureKind};
use tch::Device;
use tokio::sync::mpsc;
use tonic::Code;

use super::AgentConfig;
use super::prepare::{PrepareError, Prepared, prepare};
use super::session::retry;
use super::transfer::upload_checkpoint;
use crate::data;
use crate::recipe::TrainConfig;
use crate::train::{self, EpochMetrics, Options, Status as RunStatus, TrainResult};

/// What the training thread sends back.
enum Event {
    /// An epoch ended (its checkpoint, unless it diverged, is written).
    Epoch(EpochMetrics),
    /// Training ended: the result, or why there is none.
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

impl From<PrepareError> for Failure {
    /// A bad spec is the job's fault; a failed transfer the link's; the rest this worker's.
    fn from(e: PrepareError) -> Self {
        let kind = match e {
            PrepareError::SpecJson(_) | PrepareError::SpecInvalid(_) => FailureKind::Job,
            PrepareError::Transfer(_) => FailureKind::Transfer,
            PrepareError::Synthetic(_) | PrepareError::Io { .. } | PrepareError::Blocking(_) => FailureKind::Worker,
        };
        Failure::new(kind, e.to_string())
    }
}

/// Whether a job's error is one after which libtorch's CUDA context stays broken (an illegal
/// memory access, a device-side assert, a launch failure: every later CUDA call fails too),
/// rather than one a next job can recover from (out of memory, bad data).
pub fn is_sticky_cuda_error(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("cuda error") && !m.contains("out of memory")
}

/// How a leased job ended for this worker.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum JobEnd {
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
pub(super) async fn run_job(
    cfg: &AgentConfig,
    client: &mut Client,
    worker: &str,
    lease: pb::Lease,
    stop: &AtomicBool,
) -> JobEnd {
    match lease.checkpoint_epoch {
        0 => tracing::info!("leased; starting at epoch 1"),
        e => tracing::info!("leased; resuming after epoch {e}"),
    }
    let prepared = prepare(cfg, client, worker, &lease).await;
    let mut held = Held { client, worker, job: lease.job_id.clone(), token: lease.fencing_token };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return held.fail(e.into()).await,
    };
    let training = match Training::start(cfg, &held.job, &prepared) {
        Ok(t) => t,
        Err(f) => return held.fail(f).await,
    };
    let renew = Duration::from_millis((lease.ttl_ms / 3).max(500));
    let watched = held.watch(training, &prepared, renew, stop).await;
    if watched.stale {
        return JobEnd::Done;
    }
    match watched.result {
        Ok(r) if matches!(r.status, RunStatus::Completed | RunStatus::Diverged) => held.complete(&r).await,
        Ok(_) => {
            held.release().await;
            tracing::info!("stopped ({}), lease released", watched.cancelled_by.unwrap_or("stopped"));
            JobEnd::Done
        }
        Err(f) => held.fail(f).await,
    }
}

/// A job's training thread, seen from the agent.
struct Training {
    /// Epochs as they end, then the outcome.
    events: mpsc::UnboundedReceiver<Event>,
    /// Set to stop training at the next step (its result then says `stopped`).
    cancel: Arc<AtomicBool>,
}

impl Training {
    /// Starts training `prepared` on a thread of its own, inside the current (the job's) span.
    fn start(cfg: &AgentConfig, job: &str, prepared: &Prepared) -> Result<Self, Failure> {
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::unbounded_channel();
        let opts = Options {
            device: cfg.device,
            checkpoint_dir: Some(prepared.job_dir.clone()),
            resume: true,
            grad_analysis: prepared.spec.analysis.clone(),
            deterministic: prepared.spec.train.deterministic,
            stop_after: None,
            cancel: Some(cancel.clone()),
            speed: cfg.speed,
        };
        let (train_cfg, data_dir) = (prepared.spec.train.clone(), prepared.data_dir.clone());
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name(format!("train-{job}"))
            .spawn(move || {
                let _span = span.enter();
                let outcome = train_guarded(&train_cfg, &data_dir, &opts, &tx);
                let _ = tx.send(Event::Done(Box::new(outcome)));
            })
            .map_err(|e| Failure::new(FailureKind::Worker, format!("cannot start training thread: {e}")))?;
        Ok(Training { events, cancel })
    }

    /// Asks the training thread to stop.
    fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// The next event, or `None` after a quarter second without one.
    async fn next(&mut self) -> Option<Event> {
        tokio::select! {
            e = self.events.recv() => Some(e.unwrap_or_else(|| {
                let f = Failure::new(FailureKind::Worker, "training thread ended without a result");
                Event::Done(Box::new(Err(f)))
            })),
            () = tokio::time::sleep(Duration::from_millis(250)) => None,
        }
    }
}

/// Loads the data and trains, on the training thread, sending each epoch's metrics on `tx`; a
/// panic is the job's failure.
fn train_guarded(
    cfg: &TrainConfig,
    data_dir: &Path,
    opts: &Options,
    tx: &mpsc::UnboundedSender<Event>,
) -> Result<TrainResult, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let data = data::cache::load(data_dir, opts.device)
            .map_err(|e| Failure::new(FailureKind::Worker, format!("loading the data: {e}")))?;
        train::train(cfg, &data, opts, &mut |m| {
            let _ = tx.send(Event::Epoch(m.clone()));
        })
        .map_err(|e| Failure::of_training(e.to_string(), opts.device))
    }))
    .unwrap_or_else(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()));
        Err(Failure::new(
            FailureKind::Job,
            format!("training panicked: {}", msg.unwrap_or_else(|| "unknown panic".to_owned())),
        ))
    })
}

/// How watching a training thread ended.
struct Watched {
    /// What the thread sent at its end.
    result: Result<TrainResult, Failure>,
    /// The lease went to another worker: nothing more is reported.
    stale: bool,
    /// Why training was cancelled, if it was.
    cancelled_by: Option<&'static str>,
}

/// What a heartbeat's answer asks of the job.
enum Beat {
    /// Train on (the lease is renewed, or the coordinator was not reached this time).
    TrainOn,
    /// The coordinator cancelled the job, for this reason.
    Cancel(String),
    /// The lease is no longer this worker's.
    Stale,
}

/// The job this worker holds, and what every report about it names.
struct Held<'a> {
    /// The coordinator.
    client: &'a mut Client,
    /// This worker's id.
    worker: &'a str,
    /// The job's id.
    job: String,
    /// The lease's fencing token.
    token: u64,
}

impl Held<'_> {
    /// Follows the training thread to its end: logs and uploads each epoch, heartbeats (with
    /// the new epochs, or every `renew` to keep the lease), and cancels training on `stop`, on
    /// the coordinator's word, or when the lease turned stale.
    async fn watch(
        &mut self,
        mut training: Training,
        prepared: &Prepared,
        renew: Duration,
        stop: &AtomicBool,
    ) -> Watched {
        let mut last_beat = tokio::time::Instant::now();
        let (mut stale, mut cancelled_by) = (false, None);
        loop {
            let event = training.next().await;
            if stop.load(Ordering::SeqCst) && cancelled_by.is_none() {
                cancelled_by = Some("worker is shutting down");
                training.cancel();
            }
            let mut epochs = Vec::new();
            match event {
                Some(Event::Done(r)) => return Watched { result: *r, stale, cancelled_by },
                Some(Event::Epoch(m)) => {
                    tracing::info!("{}", train::progress_line(&m, prepared.spec.train.epochs));
                    // A diverged epoch leaves no checkpoint (nothing to resume from).
                    if !stale && m.train_loss.is_some() {
                        upload_checkpoint(self.client, self.worker, &self.job, self.token, m.epoch, &prepared.job_dir)
                            .await;
                    }
                    let metrics_json = serde_json::to_string(&m).unwrap_or_default();
                    epochs.push(pb::EpochReport { epoch: m.epoch, metrics_json });
                }
                None => {}
            }
            if stale || (epochs.is_empty() && last_beat.elapsed() < renew) {
                continue;
            }
            last_beat = tokio::time::Instant::now();
            match self.heartbeat(epochs).await {
                Beat::TrainOn => {}
                Beat::Cancel(reason) if cancelled_by.is_none() => {
                    tracing::info!("cancelled: {reason}");
                    cancelled_by = Some("cancelled by the coordinator");
                    training.cancel();
                }
                Beat::Cancel(_) => {}
                Beat::Stale => {
                    stale = true;
                    training.cancel();
                }
            }
        }
    }

    /// Sends a heartbeat with `epochs`, renewing the lease.
    async fn heartbeat(&mut self, epochs: Vec<pb::EpochReport>) -> Beat {
        let hb = pb::HeartbeatRequest {
            worker_id: self.worker.to_owned(),
            job_id: self.job.clone(),
            fencing_token: self.token,
            epochs,
        };
        match self.client.heartbeat(hb).await {
            Ok(r) if !r.get_ref().proceed => Beat::Cancel(r.into_inner().reason),
            Ok(_) => {
                tracing::debug!("heartbeat: lease renewed");
                Beat::TrainOn
            }
            Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound) => {
                tracing::warn!("{}; dropping the job", s.message());
                Beat::Stale
            }
            Err(s) => {
                tracing::warn!("heartbeat failed: {}; training on", s.message());
                Beat::TrainOn
            }
        }
    }

    /// Delivers a completed or diverged run's result (retried while the coordinator is not
    /// reached); a result the coordinator refuses is reported as the job's failure.
    async fn complete(&mut self, r: &TrainResult) -> JobEnd {
        let req = pb::CompleteJobRequest {
            worker_id: self.worker.to_owned(),
            job_id: self.job.clone(),
            fencing_token: self.token,
            result_json: serde_json::to_string(r).unwrap_or_default(),
        };
        let client = &*self.client;
        let delivered = retry(|| {
            let mut c = client.clone();
            let req = req.clone();
            async move { c.complete_job(req).await }
        })
        .await;
        match delivered {
            Ok(resp) if resp.get_ref().accepted => tracing::info!(
                "{:?} (accepted: true), final test accuracy {}",
                r.status,
                r.final_test_acc.map_or_else(|| "-".to_owned(), |a| format!("{a:.2}%"))
            ),
            Ok(resp) => tracing::warn!("{:?} (accepted: false): {}", r.status, resp.get_ref().reason),
            // The coordinator refused the result itself: the job's fault, which uses an
            // attempt, rather than a lease left to expire and a rerun that ends the same.
            Err(s) if s.code() == Code::InvalidArgument => {
                return self.fail(Failure::new(FailureKind::Job, format!("result refused: {}", s.message()))).await;
            }
            Err(s) => tracing::error!("result not delivered: {}", s.message()),
        }
        JobEnd::Done
    }

    /// Gives the lease back (a stopped run: the job resumes elsewhere from its checkpoint).
    async fn release(&mut self) {
        let req = pb::ReleaseJobRequest {
            worker_id: self.worker.to_owned(),
            job_id: self.job.clone(),
            fencing_token: self.token,
        };
        let _ = self.client.release_job(req).await;
    }

    /// Reports a failure with its kind; says how the job ended for this worker.
    async fn fail(&mut self, f: Failure) -> JobEnd {
        tracing::error!("failed ({}): {}", f.kind.name(), f.message);
        let req = pb::FailJobRequest {
            worker_id: self.worker.to_owned(),
            job_id: self.job.clone(),
            fencing_token: self.token,
            error: f.message.clone(),
            kind: f.kind.into(),
        };
        let client = &*self.client;
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
