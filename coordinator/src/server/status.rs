//! The sweep's status message (`GetStatus`, `WatchStatus`, the `run` command's progress): every
//! active job and worker of a store snapshot, with the sweep's ETA and what stalls it.

use std::sync::Arc;

use gridsweep_proto::v1 as pb;
use tonic::Status;

use super::shared::Shared;
use crate::stall;
use crate::store::{JobRow, StoreError, WorkerRow, now};

impl Shared {
    /// The sweep's status message.
    pub fn status(&self) -> Result<pb::SweepStatus, StoreError> {
        let (jobs, workers) = self.store.snapshot()?;
        Ok(self.status_of(jobs, workers))
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
    pub fn status_of(&self, jobs: Vec<JobRow>, workers: Vec<WorkerRow>) -> pb::SweepStatus {
        let t = now();
        let finished = jobs.iter().all(|j| !j.state.is_open());
        let ttl = self.lease_ttl.as_secs_f64();
        let stalled = stall::explain(&jobs, &workers, t, ttl);
        let live = workers.iter().filter(|w| stall::is_live(w, t, ttl)).count();
        let eta_s = if finished { None } else { crate::eta::sweep_eta(&jobs, live) };
        pb::SweepStatus {
            sweep_name: self.sweep_name.clone(),
            finished,
            stalled,
            eta_s,
            attach: self.attach.get().cloned().unwrap_or_default(),
            jobs: jobs.into_iter().map(job_status).collect(),
            workers: workers
                .into_iter()
                .map(|w| {
                    let problem = stall::recent_problem(&w, t, ttl).unwrap_or_default();
                    let state = stall::worker_state(&w, t, ttl).to_owned();
                    pb::WorkerStatus {
                        worker_id: w.id,
                        name: w.name,
                        device: w.device,
                        last_seen_s: (t - w.last_seen).max(0.0),
                        quarantined: w.quarantined,
                        problem,
                        device_memory_bytes: w.memory_bytes.unwrap_or(0),
                        state,
                    }
                })
                .collect(),
        }
    }
}

/// One job's line in the status message.
fn job_status(j: JobRow) -> pb::JobStatus {
    let eta_s = j.eta_s();
    let train = &j.spec.train;
    // A program job that names no model shows as `program`, depth 0.
    let model = j.spec.program.as_ref().is_none_or(|p| p.names_model());
    pb::JobStatus {
        job_id: j.id,
        arch: if model { train.arch.name() } else { "program" }.to_owned(),
        depth: if model { train.depth } else { 0 },
        seed: train.seed,
        state: j.state.into(),
        worker_id: j.worker.unwrap_or_default(),
        epoch: j.epoch,
        epochs_total: train.epochs,
        test_acc: j.test_acc,
        eta_s,
        attempts: j.attempts,
        error: j.error.unwrap_or_default(),
        error_kind: j.error_kind.into(),
        failures: j.failures,
        max_attempts: j.max_attempts,
    }
}
