//! Telling a sweep that waits from a sweep that cannot go on: jobs are pending, none is
//! running, and every worker is quarantined, gone, or failing for reasons that are not the jobs'
//! (no data to fetch, a lost device); or a job ran out of memory and no live worker has more.
//! `status` and `run` show the explanation instead of waiting silently. Who is live is decided by
//! the one liveness rule in `view::worker` (`is_live`).

use super::worker::{is_gone, is_live, recent_problem};
use crate::store::{JobRow, WorkerRow};
use gridsweep_proto::v1::JobState;

/// `bytes` for people: `24.0 GiB`.
pub(crate) fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// The pending jobs that ran out of memory and that no live worker has more memory for (a live
/// worker of unknown memory may hold anything): one line each, naming the need.
pub fn memory_blocked(jobs: &[JobRow], workers: &[WorkerRow], now: f64, lease_ttl_s: f64) -> Vec<String> {
    let live: Vec<&WorkerRow> = workers.iter().filter(|w| is_live(w, now, lease_ttl_s)).collect();
    if live.iter().any(|w| w.memory_bytes.is_none()) {
        return Vec::new();
    }
    let most = live.iter().filter_map(|w| w.memory_bytes).max();
    jobs.iter()
        .filter(|j| j.state == JobState::Pending)
        .filter_map(|j| {
            let need = j.memory_need?;
            if most.is_some_and(|m| m > need) {
                return None;
            }
            let t = &j.spec.train;
            let largest =
                most.map_or_else(|| "no live worker".to_owned(), |m| format!("the largest live worker has {}", gib(m)));
            Some(format!(
                "job {} ({}-{} batch {}) ran out of memory on a worker with {} and needs more; {largest}: attach \
                 a worker with more memory, or lower its batch size",
                j.id,
                t.arch,
                t.depth,
                t.batch_size,
                gib(need)
            ))
        })
        .collect()
}

/// Why no pending job can be taken, or an empty string when the sweep can go on (or is done).
/// Jobs that no live worker has the memory for are named even while others run.
pub fn explain(jobs: &[JobRow], workers: &[WorkerRow], now: f64, lease_ttl_s: f64) -> String {
    explain_with(&memory_blocked(jobs, workers, now, lease_ttl_s), jobs, workers, now, lease_ttl_s)
}

/// As [`explain`], with the memory lines (`memory_blocked`'s) already worked out.
pub fn explain_with(blocked: &[String], jobs: &[JobRow], workers: &[WorkerRow], now: f64, lease_ttl_s: f64) -> String {
    let rest = explain_workers(jobs, workers, now, lease_ttl_s, blocked.len());
    let mut parts = blocked.to_vec();
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts.join("; ")
}

/// Why the pending jobs other than the `blocked` ones wait, from the workers' side.
fn explain_workers(jobs: &[JobRow], workers: &[WorkerRow], now: f64, lease_ttl_s: f64, blocked: usize) -> String {
    let pending = jobs.iter().filter(|j| j.state == JobState::Pending).count().saturating_sub(blocked);
    if pending == 0 || jobs.iter().any(|j| j.state == JobState::Running) {
        return String::new();
    }
    let (mut quarantined, mut gone, mut failing) = (Vec::new(), Vec::new(), Vec::new());
    for w in workers {
        if w.quarantined {
            quarantined.push(w.id.clone());
        } else if is_gone(w, now, lease_ttl_s) {
            gone.push(w.id.clone());
        } else if let Some(p) = recent_problem(w, now, lease_ttl_s) {
            failing.push(format!("{} ({p})", w.id));
        } else {
            // A live worker without a problem will take the next job.
            return String::new();
        }
    }
    let mut parts = Vec::new();
    if !quarantined.is_empty() {
        parts.push(format!("quarantined after failing jobs: {}", quarantined.join(", ")));
    }
    if !gone.is_empty() {
        parts.push(format!("not heard from: {}", gone.join(", ")));
    }
    if !failing.is_empty() {
        parts.push(format!("failing for reasons that are not the jobs': {}", failing.join("; ")));
    }
    if parts.is_empty() {
        format!("{pending} jobs pending and no worker connected")
    } else {
        format!("{pending} jobs pending and no worker can take them: {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsweep_proto::job::{Arch, DataSpec, JobSpec, TrainConfig};

    fn job(state: JobState) -> JobRow {
        let spec = JobSpec {
            train: TrainConfig::paper(Arch::Vgg, 8, 1),
            analysis: None,
            data: DataSpec::Cifar10,
            repeat: 0,
            program: None,
        };
        JobRow::fixture("j", spec, state)
    }

    fn worker(id: &str, last_seen: f64, quarantined: bool, problem: Option<(&str, f64)>) -> WorkerRow {
        WorkerRow {
            problem: problem.map(|(p, at)| (p.to_owned(), at)),
            ..WorkerRow::fixture(id, last_seen, quarantined)
        }
    }

    #[test]
    fn a_sweep_with_a_healthy_worker_or_a_running_job_is_not_stalled() {
        let now = 1000.0;
        let pending = [job(JobState::Pending)];
        assert_eq!(explain(&pending, &[worker("w1", now - 1.0, false, None)], now, 120.0), "");
        let running = [job(JobState::Pending), job(JobState::Running)];
        assert_eq!(explain(&running, &[worker("w1", now, true, None)], now, 120.0), "");
        assert_eq!(explain(&[job(JobState::Completed)], &[], now, 120.0), "");
    }

    #[test]
    fn quarantined_gone_and_failing_workers_are_named() {
        let now = 10_000.0;
        let jobs = [job(JobState::Pending), job(JobState::Pending), job(JobState::Failed)];
        let workers = [
            worker("w1", now, true, None),
            worker("w2", now - 500.0, false, None),
            worker("w3", now - 2.0, false, Some(("transfer: no data set to share", now - 5.0))),
        ];
        let msg = explain(&jobs, &workers, now, 120.0);
        assert!(msg.starts_with("2 jobs pending and no worker can take them"), "{msg}");
        assert!(msg.contains("quarantined after failing jobs: w1"), "{msg}");
        assert!(msg.contains("not heard from: w2"), "{msg}");
        assert!(msg.contains("w3 (transfer: no data set to share)"), "{msg}");
        // An old problem no longer counts: w3 would take the next job.
        let old = [worker("w3", now - 2.0, false, Some(("transfer: x", now - 900.0)))];
        assert_eq!(explain(&jobs, &old, now, 120.0), "");
        assert!(explain(&jobs, &[], now, 120.0).contains("no worker connected"));
    }

    #[test]
    fn a_job_no_live_worker_has_the_memory_for_is_named() {
        let now = 1000.0;
        let gb = 1u64 << 30;
        let mut big = job(JobState::Pending);
        big.memory_need = Some(24 * gb);
        let small = WorkerRow { memory_bytes: Some(24 * gb), ..worker("w1", now, false, None) };
        let running = job(JobState::Running);
        let e = explain(&[big.clone(), running.clone()], std::slice::from_ref(&small), now, 30.0);
        assert!(e.starts_with("job j (vgg-8 batch 128) ran out of memory on a worker with 24.0 GiB"), "{e}");
        assert!(e.contains("the largest live worker has 24.0 GiB"), "{e}");
        // A larger live worker, or one of unknown memory, may take it: nothing to say.
        let large = WorkerRow { memory_bytes: Some(80 * gb), ..worker("w2", now, false, None) };
        assert_eq!(explain(&[big.clone(), running.clone()], &[small.clone(), large], now, 30.0), "");
        let unknown = worker("w3", now, false, None);
        assert_eq!(explain(&[big.clone(), running], &[small.clone(), unknown], now, 30.0), "");
        // The blocked job alone, nothing running, the small worker live: only the memory line.
        let e = explain(std::slice::from_ref(&big), &[small], now, 30.0);
        assert!(e.starts_with("job j") && !e.contains("jobs pending"), "{e}");
    }
}
