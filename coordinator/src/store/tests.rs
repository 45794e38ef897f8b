//! The state machine of jobs, leases and attempts, on a real SQLite file.

use gridsweep_proto::job::{Arch, DataSpec, JobSpec, TrainConfig};

use gridsweep_proto::result::{RunStatus, TrainResult};
use gridsweep_proto::v1::{FailureKind, JobState};
use rusqlite::Connection;

use super::*;

fn job(seed: u64, depth: u32) -> JobSpec {
    let mut train = TrainConfig::paper(Arch::Resnet, depth, seed);
    train.epochs = 2;
    JobSpec {
        train,
        analysis: None,
        data: DataSpec::Synthetic { train: 10, test: 5, seed: 0 },
        repeat: 0,
        program: None,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn lease(store: &Store, worker: &str) -> LeaseInfo {
    match store.grant(worker, 60.0, false).unwrap() {
        Grant::Lease(l) => l,
        other => panic!("expected a lease, got {other:?}"),
    }
}

/// A well-formed result for the job of lease `l`.
fn result(l: &LeaseInfo, status: RunStatus) -> String {
    let spec: JobSpec = serde_json::from_str(&l.spec_json).unwrap();
    serde_json::to_string(&TrainResult::simulated(spec.train, status, &[40.0, 50.0])).unwrap()
}

#[test]
fn longest_first_then_fifo_and_the_end() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8), job(2, 26), job(3, 14)], 3).unwrap();
    let w = store.register_worker("w", "cpu", None).unwrap();
    let order: Vec<u32> = (0..3)
        .map(|_| lease(&store, &w))
        .map(|l| {
            let spec: JobSpec = serde_json::from_str(&l.spec_json).unwrap();
            spec.train.depth
        })
        .collect();
    assert_eq!(order, [26, 14, 8], "longest expected first");
    assert_eq!(store.grant(&w, 60.0, false).unwrap(), Grant::NothingYet, "jobs still running");

    let (_d2, fifo) = open();
    fifo.add_sweep("s", "s.yaml", &[job(1, 8), job(2, 26)], 3).unwrap();
    let w = fifo.register_worker("w", "cpu", None).unwrap();
    let Grant::Lease(l) = fifo.grant(&w, 60.0, true).unwrap() else { panic!("expected a lease") };
    let first: JobSpec = serde_json::from_str(&l.spec_json).unwrap();
    assert_eq!(first.train.depth, 8, "file order with fifo");
}

#[test]
fn tokens_increase_and_stale_reports_are_rejected() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8)], 3).unwrap();
    let (a, b) = (store.register_worker("a", "cpu", None).unwrap(), store.register_worker("b", "cpu", None).unwrap());
    let la = lease(&store, &a);
    assert!(store.release(&a, &la.job_id, la.token).unwrap());
    let lb = lease(&store, &b);
    assert!(lb.token > la.token, "fencing tokens grow");
    assert_eq!(lb.attempt, 2);
    let err = store.heartbeat(&a, &la.job_id, la.token, &[], 60.0).unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    let err = store.heartbeat(&a, &lb.job_id, lb.token, &[], 60.0).unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "another worker's token: {err}");
    // A late completion from a's ended attempt changes nothing.
    let late = store.complete(&a, &la.job_id, la.token, &result(&la, RunStatus::Completed)).unwrap();
    assert!(!late.accepted && late.reason.contains("already ended (released)"), "{late:?}");
    let ok = store.complete(&b, &lb.job_id, lb.token, &result(&lb, RunStatus::Completed)).unwrap();
    assert!(ok.accepted);
    let dup = store.complete(&b, &lb.job_id, lb.token, &result(&lb, RunStatus::Completed)).unwrap();
    assert!(!dup.accepted, "a duplicated completion is answered as such");
    assert_eq!(store.grant(&b, 60.0, false).unwrap(), Grant::Finished);
    let err = store.heartbeat(&b, "nope", 1, &[], 60.0).unwrap_err();
    assert!(matches!(err, StoreError::UnknownJob(_)), "{err}");
    assert!(matches!(store.grant("ghost", 60.0, false).unwrap_err(), StoreError::UnknownWorker(_)));
}

#[test]
fn expiry_requeues_without_using_an_attempt_and_failures_do() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8)], 2).unwrap();
    let w = store.register_worker("w", "cpu", None).unwrap();
    // A lease with a TTL in the past expires at once.
    let Grant::Lease(l1) = store.grant(&w, -1.0, false).unwrap() else { panic!() };
    assert_eq!(store.expire_leases().unwrap(), [(l1.job_id.clone(), w.clone())]);
    assert!(store.expire_leases().unwrap().is_empty());
    let l2 = lease(&store, &w);
    assert_eq!(l2.attempt, 2);
    let f = store.fail(&w, &l2.job_id, l2.token, "NaN in the data loader", FailureKind::Job).unwrap();
    assert!(f.accepted && f.will_retry, "first failure of 2 allowed: {f:?}");
    let l3 = lease(&store, &w);
    let f = store.fail(&w, &l3.job_id, l3.token, "NaN in the data loader again", FailureKind::Job).unwrap();
    assert!(f.accepted && !f.will_retry, "second failure uses the budget up: {f:?}");
    let (jobs, _) = store.snapshot().unwrap();
    assert_eq!(jobs[0].state, JobState::Failed);
    assert_eq!(jobs[0].error.as_deref(), Some("NaN in the data loader again"), "the message is kept");
    assert_eq!(jobs[0].attempts, 3, "the expiry was an attempt, not a failure");
    assert_eq!(store.grant(&w, 60.0, false).unwrap(), Grant::Finished);
    let _ = l1;
}

#[test]
fn a_worker_failing_three_jobs_in_a_row_is_quarantined() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8), job(2, 8), job(3, 8), job(4, 8)], 3).unwrap();
    let bad = store.register_worker("bad", "cpu", None).unwrap();
    for _ in 0..3 {
        let l = lease(&store, &bad);
        store.fail(&bad, &l.job_id, l.token, "broken GPU", FailureKind::Job).unwrap();
    }
    assert!(matches!(store.grant(&bad, 60.0, false).unwrap_err(), StoreError::Quarantined(_)));
    let (_, workers) = store.snapshot().unwrap();
    assert!(workers[0].quarantined);
    let good = store.register_worker("good", "cpu", None).unwrap();
    let l = lease(&store, &good);
    assert!(store.complete(&good, &l.job_id, l.token, &result(&l, RunStatus::Diverged)).unwrap().accepted);
}

#[test]
fn state_survives_reopening_and_a_rerun_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = [job(1, 8), job(2, 8)];
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.add_sweep("s", "s.yaml", &jobs, 3).unwrap(), (2, 0));
        let w = store.register_worker("w", "cpu", None).unwrap();
        let l = lease(&store, &w);
        let m = TrainResult::simulated(job(1, 8).train, RunStatus::Completed, &[12.5]).epochs[0].clone();
        store.heartbeat(&w, &l.job_id, l.token, &[(1, serde_json::to_string(&m).unwrap())], 60.0).unwrap();
        store.complete(&w, &l.job_id, l.token, &result(&l, RunStatus::Completed)).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.add_sweep("s", "s.yaml", &jobs, 3).unwrap(), (0, 2));
    let (rows, _) = store.snapshot().unwrap();
    let done: Vec<_> = rows.iter().filter(|j| j.state == JobState::Completed).collect();
    assert_eq!(done.len(), 1);
    let log = store.epoch_log().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].job.as_str(), log[0].metrics.test_acc), (done[0].id.as_str(), 12.5));
    assert!(log[0].worker.is_some() && log[0].reported_at.is_some());
    // A changed sweep: the old jobs stay stored but inactive.
    assert_eq!(store.add_sweep("s", "s.yaml", &[job(9, 8)], 3).unwrap(), (1, 0));
    assert_eq!(store.snapshot().unwrap().0.len(), 1);
}

#[test]
fn concurrent_transitions_are_group_committed_and_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<JobSpec> = (0..400).map(|k| job(k, 8)).collect();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    store.add_sweep("s", "s.yaml", &jobs, 3).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|k| {
            let store = store.clone();
            std::thread::spawn(move || {
                let w = store.register_worker(&format!("w{k}"), "cpu", None).unwrap();
                let mut done = 0;
                loop {
                    match store.grant(&w, 60.0, false).unwrap() {
                        Grant::Lease(l) => {
                            assert!(
                                store
                                    .complete(&w, &l.job_id, l.token, &result(&l, RunStatus::Completed))
                                    .unwrap()
                                    .accepted
                            );
                            done += 1;
                        }
                        Grant::NothingYet => std::thread::yield_now(),
                        Grant::Finished => return done,
                    }
                }
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 400, "every job completed exactly once");
    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    let (rows, workers) = reopened.snapshot().unwrap();
    assert_eq!(workers.len(), 8);
    assert_eq!(rows.iter().filter(|j| j.state == JobState::Completed && j.attempts == 1).count(), 400, "all durable");
}

#[test]
fn failures_that_are_not_the_jobs_use_no_attempt_and_no_quarantine() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8)], 1).unwrap();
    let w = store.register_worker("w", "cpu", None).unwrap();
    // Device-lost twice only: the third time a job loses a device is charged to it (below).
    for (kind, times) in [
        (FailureKind::Transfer, 4),
        (FailureKind::DeviceLost, 2),
        (FailureKind::OutOfMemory, 4),
        (FailureKind::Worker, 4),
    ] {
        for _ in 0..times {
            let l = lease(&store, &w);
            let f = store.fail(&w, &l.job_id, l.token, "no data set to share", kind).unwrap();
            assert!(f.accepted && f.will_retry, "{kind:?}: {f:?}");
        }
    }
    let (jobs, workers) = store.snapshot().unwrap();
    assert_eq!((jobs[0].state, jobs[0].failures, jobs[0].attempts), (JobState::Pending, 0, 14));
    assert_eq!(jobs[0].error_kind, FailureKind::Worker);
    assert!(!workers[0].quarantined, "14 failures that were not the jobs' do not quarantine");
    assert!(workers[0].problem.as_ref().is_some_and(|(p, _)| p == "worker: no data set to share"));
    // The one attempt the job has goes on its own failure; a success clears the worker's problem.
    let l = lease(&store, &w);
    assert!(!store.fail(&w, &l.job_id, l.token, "bad spec", FailureKind::Job).unwrap().will_retry);
    let (jobs, _) = store.snapshot().unwrap();
    assert_eq!((jobs[0].state, jobs[0].error_kind), (JobState::Failed, FailureKind::Job));
}

#[test]
fn a_job_that_keeps_losing_devices_uses_its_attempts_from_the_third_loss_on() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8)], 2).unwrap();
    // Each loss ends its worker's process; the next attempt is another worker's.
    let fail = |n: usize| {
        let w = store.register_worker(&format!("w{n}"), "cuda:0", None).unwrap();
        let l = lease(&store, &w);
        store.fail(
            &w,
            &l.job_id,
            l.token,
            "libtorch: CUDA error: device-side assert triggered",
            FailureKind::DeviceLost,
        )
    };
    for n in 1..DEVICE_LOST_CHARGED_FROM as usize {
        assert!(fail(n).unwrap().will_retry);
        let (jobs, _) = store.snapshot().unwrap();
        assert_eq!(
            (jobs[0].state, jobs[0].failures, jobs[0].error_kind),
            (JobState::Pending, 0, FailureKind::DeviceLost)
        );
    }
    let third = fail(3).unwrap();
    assert_eq!(third.reason, "failure 1 of 2; will retry");
    let (jobs, _) = store.snapshot().unwrap();
    assert_eq!((jobs[0].state, jobs[0].failures, jobs[0].error_kind), (JobState::Pending, 1, FailureKind::Job));
    assert!(jobs[0].error.as_deref().unwrap().contains("lost a device 3 times"), "{:?}", jobs[0].error);
    let fourth = fail(4).unwrap();
    assert!(!fourth.will_retry, "{fourth:?}");
    let (jobs, workers) = store.snapshot().unwrap();
    assert_eq!((jobs[0].state, jobs[0].failures), (JobState::Failed, 2));
    assert!(workers.iter().all(|w| !w.quarantined), "a device the job breaks quarantines no worker");
}

#[test]
fn retry_gives_failed_jobs_a_fresh_budget_and_keeps_their_history() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8), job(2, 8), job(3, 8)], 1).unwrap();
    let w = store.register_worker("w", "cpu", None).unwrap();
    let mut failed = Vec::new();
    for _ in 0..2 {
        let l = lease(&store, &w);
        store.fail(&w, &l.job_id, l.token, "boom", FailureKind::Job).unwrap();
        failed.push(l.job_id);
    }
    let l = lease(&store, &w);
    store.complete(&w, &l.job_id, l.token, &result(&l, RunStatus::Completed)).unwrap();
    assert_eq!(store.grant(&w, 60.0, false).unwrap(), Grant::Finished, "two failed, one completed");

    let unknown = store.retry_failed(&["nope".to_owned()]).unwrap_err();
    assert!(matches!(unknown, StoreError::UnknownJob(ref id) if id == "nope"), "{unknown}");
    let named = store.retry_failed(&[l.job_id.clone(), failed[0].clone()]).unwrap();
    assert_eq!(named.retried, [failed[0].clone()]);
    assert_eq!(named.not_failed, [(l.job_id.clone(), "completed".to_owned())]);
    let rest = store.retry_failed(&[]).unwrap();
    assert_eq!(rest.retried, [failed[1].clone()], "no ids: every failed job");

    let (jobs, _) = store.snapshot().unwrap();
    for id in &failed {
        let j = jobs.iter().find(|j| &j.id == id).unwrap();
        assert_eq!((j.state, j.failures, j.attempts), (JobState::Pending, 0, 1));
        assert_eq!(j.error.as_deref(), Some("boom"), "the last error stays shown");
    }
    let fresh = store.register_worker("fresh", "cpu", None).unwrap();
    let again = lease(&store, &fresh);
    assert_eq!(again.attempt, 2, "attempt numbers go on after the earlier ones");
}

#[test]
fn an_older_database_gains_the_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE attempts (job TEXT NOT NULL, attempt INTEGER NOT NULL, token INTEGER NOT NULL UNIQUE,
             worker TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, outcome TEXT, error TEXT,
             PRIMARY KEY (job, attempt));",
        )
        .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    store.add_sweep("s", "s.yaml", &[job(1, 8)], 1).unwrap();
    let w = store.register_worker("w", "cpu", None).unwrap();
    let l = lease(&store, &w);
    store.fail(&w, &l.job_id, l.token, "no data", FailureKind::Transfer).unwrap();
}

/// A job that ran out of memory goes next only to a worker with more memory (or one whose
/// memory is unknown), keeps its attempts, and the need is the largest memory it failed on.
#[test]
fn out_of_memory_routes_the_job_to_a_worker_with_more() {
    let (_d, store) = open();
    let gb = 1u64 << 30;
    store.add_sweep("s", "s.yaml", &[job(1, 26), job(2, 8)], 3).unwrap();
    let small = store.register_worker("small", "cuda:0", Some(24 * gb)).unwrap();
    let same = store.register_worker("same", "cuda:0", Some(24 * gb)).unwrap();
    let large = store.register_worker("large", "cuda:0", Some(80 * gb)).unwrap();
    let unknown = store.register_worker("unknown", "cuda:0", None).unwrap();
    let big = lease(&store, &small);
    let spec: JobSpec = serde_json::from_str(&big.spec_json).unwrap();
    assert_eq!(spec.train.depth, 26);
    let f = store.fail(&small, &big.job_id, big.token, "CUDA out of memory", FailureKind::OutOfMemory).unwrap();
    assert!(f.will_retry);
    let (jobs, workers) = store.snapshot().unwrap();
    let row = jobs.iter().find(|j| j.id == big.job_id).unwrap();
    assert_eq!((row.memory_need, row.attempts, row.failures), (Some(24 * gb), 1, 0));
    assert_eq!(workers.iter().find(|w| w.id == large).unwrap().memory_bytes, Some(80 * gb));
    // A worker of the same size gets the other job, then nothing.
    let other = lease(&store, &same);
    assert_ne!(other.job_id, big.job_id);
    assert_eq!(store.grant(&same, 60.0, false).unwrap(), Grant::NothingYet, "24 GiB cannot hold it");
    assert_eq!(store.grant(&small, 60.0, false).unwrap(), Grant::NothingYet);
    // A larger worker takes it; a failure there raises the need.
    let again = lease(&store, &large);
    assert_eq!(again.job_id, big.job_id);
    store.fail(&large, &again.job_id, again.token, "CUDA out of memory", FailureKind::OutOfMemory).unwrap();
    let (jobs, _) = store.snapshot().unwrap();
    assert_eq!(jobs.iter().find(|j| j.id == big.job_id).unwrap().memory_need, Some(80 * gb));
    assert_eq!(store.grant(&large, 60.0, false).unwrap(), Grant::NothingYet);
    // A worker that did not say its memory may try.
    assert_eq!(lease(&store, &unknown).job_id, big.job_id);
}
