//! The read model: [`SweepView`], one typed picture of a sweep built once per store snapshot
//! (its jobs, its workers with their [`WorkerState`], the jobs by state, the ETA, what stalls
//! it and which jobs no live worker has the memory for), and [`Source`], what every read surface
//! reads it from. The gRPC status (`to_status`), `coordinator status` and `--json` (through the
//! status message: [`Counts`], [`WorkerState::of_status`]), `run`'s progress, the dashboard's
//! JSON and `/metrics` (its [`Counts`] and [`WorkerCounts`]) all render from these types, so no
//! surface re-derives a state from raw rows or text.
//!
//! `counts` holds the jobs by state, `worker` the worker states and the liveness rule, `stall`
//! what stalls a sweep (also `crate::stall`), `source` the store handle and settings the
//! surfaces share.

mod counts;
mod source;
pub mod stall;
#[cfg(test)]
mod tests;
mod worker;

use gridsweep_proto::v1 as pb;

pub use counts::Counts;
pub use source::{IntoSource, Source};
pub use worker::{GONE_AFTER_S, WorkerCounts, WorkerState, WorkerView, is_gone, is_live, recent_problem};

use crate::store::{JobRow, WorkerRow};

/// A sweep as of one store snapshot.
#[derive(Clone, Debug)]
pub struct SweepView {
    /// The sweep's name.
    pub sweep_name: String,
    /// Every active job, in scheduling order.
    pub jobs: Vec<JobRow>,
    /// Every worker, oldest first, with its state.
    pub workers: Vec<WorkerView>,
    /// The jobs by state.
    pub counts: Counts,
    /// The workers by state.
    pub worker_counts: WorkerCounts,
    /// Seconds to the end with the live workers (none once finished, or before any epoch).
    pub eta_s: Option<f64>,
    /// The pending jobs no live worker has the memory for, one line each.
    pub memory_blocked: Vec<String>,
    /// Why no pending job can be taken (the memory lines first), or empty.
    pub stalled: String,
}

impl SweepView {
    /// The view of a snapshot (`jobs`, `workers`) taken at `now` (Unix seconds), with live and
    /// quiet workers told apart by a lease TTL of `lease_ttl_s`.
    pub fn build(sweep_name: &str, jobs: Vec<JobRow>, workers: Vec<WorkerRow>, now: f64, lease_ttl_s: f64) -> Self {
        let counts = Counts::of_states(jobs.iter().map(|j| j.state));
        let memory_blocked = stall::memory_blocked(&jobs, &workers, now, lease_ttl_s);
        let stalled = stall::explain_with(&memory_blocked, &jobs, &workers, now, lease_ttl_s);
        let workers: Vec<WorkerView> = workers.into_iter().map(|w| WorkerView::of(w, now, lease_ttl_s)).collect();
        let worker_counts = WorkerCounts::of(workers.iter().map(|w| w.state));
        let eta_s = if counts.finished() { None } else { crate::eta::sweep_eta(&jobs, worker_counts.live) };
        SweepView {
            sweep_name: sweep_name.to_owned(),
            jobs,
            workers,
            counts,
            worker_counts,
            eta_s,
            memory_blocked,
            stalled,
        }
    }

    /// Every job has ended.
    pub fn finished(&self) -> bool {
        self.counts.finished()
    }

    /// Epochs reported over every job (each counted up to its own total, when known).
    pub fn epochs_done(&self) -> u64 {
        self.jobs.iter().map(|j| u64::from(j.epochs_total().map_or(j.epoch, |t| j.epoch.min(t)))).sum()
    }

    /// Epochs the sweep trains in all, as far as known: a program job whose total is not known
    /// yet counts the epochs it has reported.
    pub fn epochs_total(&self) -> u64 {
        self.jobs.iter().map(|j| u64::from(j.epochs_total().unwrap_or(j.epoch))).sum()
    }

    /// The status message (`GetStatus`, `WatchStatus`, `run`'s progress), with `attach` (the
    /// command that attaches a worker; empty when there is none).
    pub fn to_status(&self, attach: &str) -> pb::SweepStatus {
        pb::SweepStatus {
            sweep_name: self.sweep_name.clone(),
            finished: self.finished(),
            stalled: self.stalled.clone(),
            eta_s: self.eta_s,
            attach: attach.to_owned(),
            jobs: self.jobs.iter().map(job_status).collect(),
            workers: self.workers.iter().map(WorkerView::to_status).collect(),
        }
    }
}

/// The model a job's line names: its architecture and depth, or `program` and depth 0 for a
/// program job whose settings name no model.
pub fn model_of(j: &JobRow) -> (&'static str, u32) {
    let train = &j.spec.train;
    match &j.spec.program {
        Some(p) if !p.names_model() => ("program", 0),
        _ => (train.arch.name(), train.depth),
    }
}

/// The seed a job's line shows: a built-in job's, a program job's own `seed` setting when it is
/// a non-negative integer, else none (its recipe's placeholder seed was never given to it).
pub fn seed_of(j: &JobRow) -> Option<u64> {
    match &j.spec.program {
        Some(p) => p.settings.get("seed").and_then(serde_json::Value::as_u64),
        None => Some(j.spec.train.seed),
    }
}

/// One job's line in the status message.
pub fn job_status(j: &JobRow) -> pb::JobStatus {
    let (arch, depth) = model_of(j);
    pb::JobStatus {
        job_id: j.id.clone(),
        arch: arch.to_owned(),
        depth,
        seed: seed_of(j),
        state: j.state.into(),
        worker_id: j.worker.clone().unwrap_or_default(),
        epoch: j.epoch,
        epochs_total: j.epochs_total(),
        test_acc: j.test_acc,
        eta_s: j.eta_s(),
        attempts: j.attempts,
        error: j.error.clone().unwrap_or_default(),
        error_kind: j.error_kind.into(),
        failures: j.failures,
        max_attempts: j.max_attempts,
    }
}
