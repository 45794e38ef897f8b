//! The rows the store hands out: a snapshot's jobs and workers, a lease granted to a worker,
//! how a report was taken, a stored checkpoint, and what a retry did. Plain data, no SQL.

use std::path::PathBuf;

use gridsweep_proto::job::JobSpec;
use gridsweep_proto::result::TrainResult;
use gridsweep_proto::v1::{FailureKind, JobState};

/// A job granted to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseInfo {
    /// The job.
    pub job_id: String,
    /// Grant number of this job.
    pub attempt: u32,
    /// Fencing token.
    pub token: u64,
    /// The job's spec, JSON.
    pub spec_json: String,
    /// Epoch of the latest stored checkpoint (0: none).
    pub checkpoint_epoch: u32,
}

/// The answer to a pull.
#[derive(Clone, Debug, PartialEq)]
pub enum Grant {
    /// A job.
    Lease(LeaseInfo),
    /// Nothing pending now, but jobs are still running.
    NothingYet,
    /// Every job has ended.
    Finished,
}

/// How a completion or failure report was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportOutcome {
    /// False when the attempt had already ended: nothing changed.
    pub accepted: bool,
    /// Why not, or what happened.
    pub reason: String,
    /// For failures: the job is pending again.
    pub will_retry: bool,
    /// For failures: this one put the worker in quarantine.
    pub quarantined: bool,
}

/// A checkpoint file kept for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The epoch it ends.
    pub epoch: u32,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// What [`Store::retry_failed`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryOutcome {
    /// The jobs put back in the queue.
    pub retried: Vec<String>,
    /// The jobs named that were not failed, with their state: left as they were.
    pub not_failed: Vec<(String, String)>,
}

impl ReportOutcome {
    /// The answer to a report for an attempt that has already ended: nothing changes.
    pub(super) fn already_ended(outcome: &str) -> Self {
        ReportOutcome {
            accepted: false,
            reason: format!("attempt already ended ({outcome}); nothing changed"),
            will_retry: false,
            quarantined: false,
        }
    }
}

/// One job in a status snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// The spec.
    pub spec: JobSpec,
    /// Where it stands.
    pub state: JobState,
    /// Worker holding it.
    pub worker: Option<String>,
    /// Epochs reported.
    pub epoch: u32,
    /// Latest test accuracy.
    pub test_acc: Option<f64>,
    /// Mean seconds per reported epoch.
    pub secs_per_epoch: Option<f64>,
    /// Seconds of reported epochs (training and evaluation) over all attempts.
    pub epoch_seconds: f64,
    /// Wall seconds workers have held the job, over all attempts (a running one up to now):
    /// epochs plus per-job overhead (data loading, checkpoints, the gradient analysis).
    pub busy_seconds: f64,
    /// For a running job: seconds since its current attempt last made progress (its last
    /// reported epoch, or its start).
    pub since_progress: Option<f64>,
    /// Grants so far.
    pub attempts: u32,
    /// Last error.
    pub error: Option<String>,
    /// Whose fault the last error was.
    pub error_kind: FailureKind,
    /// Failures that used an attempt (since the last retry).
    pub failures: u32,
    /// The attempts the job may use on failures of its own.
    pub max_attempts: u32,
    /// The result, once ended (completed or diverged).
    pub result: Option<TrainResult>,
    /// It ran out of memory on a worker with this many bytes of device memory: it needs more,
    /// and goes only to a worker that has more.
    pub memory_need: Option<u64>,
    /// For a program job: the total epochs its latest epoch line gave (`"epochs": N`, a positive
    /// integer), the job's total once known (`epochs_total`); none for a built-in job.
    pub epochs_reported: Option<u32>,
}

impl JobRow {
    /// A row of `spec` in `state` as the tests build one: no worker, progress, attempt or
    /// error yet, 3 attempts allowed; a test sets what it needs with `..JobRow::fixture(..)`.
    #[cfg(test)]
    pub(crate) fn fixture(id: &str, spec: JobSpec, state: JobState) -> JobRow {
        JobRow {
            id: id.into(),
            spec,
            state,
            worker: None,
            epoch: 0,
            test_acc: None,
            secs_per_epoch: None,
            epoch_seconds: 0.0,
            busy_seconds: 0.0,
            since_progress: None,
            attempts: 0,
            error: None,
            error_kind: FailureKind::Job,
            failures: 0,
            max_attempts: 3,
            result: None,
            memory_need: None,
            epochs_reported: None,
        }
    }

    /// The epochs the job trains in all, when known: a built-in job's `epochs`; for a program
    /// job, the total its latest epoch line gave, else its `epochs` setting when the sweep set
    /// it to a positive integer, else none (the program has not said yet).
    pub fn epochs_total(&self) -> Option<u32> {
        match &self.spec.program {
            None => Some(self.spec.train.epochs),
            Some(p) => self.epochs_reported.or_else(|| {
                let set = p.settings.get("epochs").and_then(serde_json::Value::as_u64);
                set.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0)
            }),
        }
    }

    /// Seconds to a running job's end at its mean epoch time so far; none before its first
    /// epoch, when it is not running, when its total is unknown, or when its epochs took no
    /// measured time (a program whose lines carry no `seconds`).
    pub fn eta_s(&self) -> Option<f64> {
        match (self.state, self.secs_per_epoch, self.epochs_total()) {
            (JobState::Running, Some(s), Some(total)) if s > 0.0 => {
                Some(s * f64::from(total.saturating_sub(self.epoch)))
            }
            _ => None,
        }
    }
}

/// One worker in a status snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRow {
    /// Id.
    pub id: String,
    /// Host/process.
    pub name: String,
    /// Device.
    pub device: String,
    /// Unix seconds last heard from.
    pub last_seen: f64,
    /// Quarantined.
    pub quarantined: bool,
    /// Its device memory in bytes, as it registered it (None: unknown).
    pub memory_bytes: Option<u64>,
    /// Its last failure that was not the job's (kind: message), and when (Unix seconds).
    pub problem: Option<(String, f64)>,
}

impl WorkerRow {
    /// A CPU worker row as the tests build one: seen at `last_seen`, no problem, memory unknown;
    /// a test sets what else it needs with `..WorkerRow::fixture(..)`.
    #[cfg(test)]
    pub(crate) fn fixture(id: &str, last_seen: f64, quarantined: bool) -> WorkerRow {
        WorkerRow {
            id: id.into(),
            name: "host".into(),
            device: "cpu".into(),
            last_seen,
            quarantined,
            problem: None,
            memory_bytes: None,
        }
    }
}
