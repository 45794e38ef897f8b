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
use tokio::sync::mpsc;
use tonic::Code;

use super::AgentConfig;
use super::failure::Failure;
use super::prepare::{Prepared, prepare};
use super::session::retry;
use super::transfer::upload_checkpoint;
use crate::data::{self, DataError};
use crate::recipe::TrainConfig;
use crate::train::{self, EpochMetrics, Options, Status as RunStatus, TorchFault, TrainResult};

/// What the training thread sends back.
enum Event {
    /// An epoch ended (its checkpoint, unless it diverged, is written).
    Epoch(EpochMetrics),
    /// Training ended: the result, or why there is none.
    Done(Box<Result<TrainResult, Failure>>),
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
    if prepared.spec.program.is_some() {
        return super::program::run(cfg, &mut held, &prepared, &lease, stop).await;
    }
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
        // `JobSpec::validate` (in `prepare`) refuses a built-in job without a data set.
        let data_dir = prepared.data_dir.clone().ok_or_else(|| {
            Failure::new(FailureKind::Job, "the built-in trainer needs a data set and this job names none")
        })?;
        let train_cfg = prepared.spec.train.clone();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name(format!("train-{job}"))
            .spawn(move || {
                let _span = span.enter();
                let outcome = train_guarded(&train_cfg, &data_dir, &opts, &tx);
                // The job's tensors are dropped now: give the memory they cached back, so that
                // this process keeps no reserve from the next job or a neighbouring slot.
                if matches!(&outcome, Err(f) if f.kind == FailureKind::OutOfMemory) {
                    let emptied = crate::memory::empty_cache(opts.device);
                    tracing::debug!(emptied, "out of memory: the CUDA caching allocator's cache emptied");
                }
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

/// Loads the data and trains, on the training thread, sending each epoch's metrics on `tx`. A
/// panic (tch's infallible calls panic with libtorch's errors) is caught here and typed like a
/// returned error (`TorchFault::from_panic`), so that both are classified the same way.
fn train_guarded(
    cfg: &TrainConfig,
    data_dir: &Path,
    opts: &Options,
    tx: &mpsc::UnboundedSender<Event>,
) -> Result<TrainResult, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let data = data::cache::load(data_dir, opts.device).map_err(|e| match e {
            // Moving the set to the device can run out of its memory as training can.
            DataError::Torch { source, .. } => Failure::of_fault(source.into(), opts.device),
            e => Failure::new(FailureKind::Worker, format!("loading the data: {e}")),
        })?;
        train::train(cfg, &data, opts, &mut |m| {
            let _ = tx.send(Event::Epoch(m.clone()));
        })
        .map_err(|e| Failure::of_training(e, opts.device))
    }))
    .unwrap_or_else(|panic| Err(Failure::of_fault(TorchFault::from_panic(panic.as_ref()), opts.device)))
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
pub(super) enum Beat {
    /// Train on (the lease is renewed, or the coordinator was not reached this time).
    TrainOn,
    /// The coordinator cancelled the job, for this reason.
    Cancel(String),
    /// The lease is no longer this worker's.
    Stale,
}

/// The job this worker holds, and what every report about it names.
pub(super) struct Held<'a> {
    /// The coordinator.
    pub(super) client: &'a mut Client,
    /// This worker's id.
    pub(super) worker: &'a str,
    /// The job's id.
    pub(super) job: String,
    /// The lease's fencing token.
    pub(super) token: u64,
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
    pub(super) async fn heartbeat(&mut self, epochs: Vec<pb::EpochReport>) -> Beat {
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
        let acc = r.final_test_acc.map_or_else(|| "-".to_owned(), |a| format!("{a:.2}%"));
        let summary = format!("{:?}", r.status);
        let json = serde_json::to_string(r).unwrap_or_default();
        self.deliver(json, &summary, &format!("final test accuracy {acc}")).await
    }

    /// Delivers a result document (`summary` and `detail` go to the log line), as `complete`.
    pub(super) async fn deliver(&mut self, result_json: String, summary: &str, detail: &str) -> JobEnd {
        let req = pb::CompleteJobRequest {
            worker_id: self.worker.to_owned(),
            job_id: self.job.clone(),
            fencing_token: self.token,
            result_json,
        };
        let client = &*self.client;
        let delivered = retry(|| {
            let mut c = client.clone();
            let req = req.clone();
            async move { c.complete_job(req).await }
        })
        .await;
        match delivered {
            Ok(resp) if resp.get_ref().accepted => tracing::info!("{summary} (accepted: true), {detail}"),
            Ok(resp) => tracing::warn!("{summary} (accepted: false): {}", resp.get_ref().reason),
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
    pub(super) async fn release(&mut self) {
        let req = pb::ReleaseJobRequest {
            worker_id: self.worker.to_owned(),
            job_id: self.job.clone(),
            fencing_token: self.token,
        };
        let _ = self.client.release_job(req).await;
    }

    /// Reports a failure with its kind; says how the job ended for this worker.
    pub(super) async fn fail(&mut self, f: Failure) -> JobEnd {
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
            // Only a broken CUDA context is classified so (`Failure::of_fault`).
            FailureKind::DeviceLost => JobEnd::DeviceLost(f.message),
            _ => JobEnd::Setback,
        }
    }
}
