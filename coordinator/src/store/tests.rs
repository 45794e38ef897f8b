//! The state machine of jobs, leases and attempts, on a real SQLite file.

use gridsweep_proto::job::{Arch, DataSpec, JobSpec, TrainConfig};

use super::*;

fn job(seed: u64, depth: u32) -> JobSpec {
    let mut train = TrainConfig::paper(Arch::Resnet, depth, seed);
    train.epochs = 2;
    JobSpec { train, analysis: None, data: DataSpec::Synthetic { train: 10, test: 5, seed: 0 }, repeat: 0 }
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

fn result(status: &str) -> String {
    format!(r#"{{"status": "{status}", "final_test_acc": 50.0}}"#)
}

#[test]
fn longest_first_then_fifo_and_the_end() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8), job(2, 26), job(3, 14)], 3).unwrap();
    let w = store.register_worker("w", "cpu").unwrap();
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
    let w = fifo.register_worker("w", "cpu").unwrap();
    let Grant::Lease(l) = fifo.grant(&w, 60.0, true).unwrap() else { panic!("expected a lease") };
    let first: JobSpec = serde_json::from_str(&l.spec_json).unwrap();
    assert_eq!(first.train.depth, 8, "file order with fifo");
}

#[test]
fn tokens_increase_and_stale_reports_are_rejected() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8)], 3).unwrap();
    let (a, b) = (store.register_worker("a", "cpu").unwrap(), store.register_worker("b", "cpu").unwrap());
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
    let late = store.complete(&a, &la.job_id, la.token, &result("completed")).unwrap();
    assert!(!late.accepted && late.reason.contains("already ended (released)"), "{late:?}");
    let ok = store.complete(&b, &lb.job_id, lb.token, &result("completed")).unwrap();
    assert!(ok.accepted);
    let dup = store.complete(&b, &lb.job_id, lb.token, &result("completed")).unwrap();
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
    let w = store.register_worker("w", "cpu").unwrap();
    // A lease with a TTL in the past expires at once.
    let Grant::Lease(l1) = store.grant(&w, -1.0, false).unwrap() else { panic!() };
    assert_eq!(store.expire_leases().unwrap(), [(l1.job_id.clone(), w.clone())]);
    assert!(store.expire_leases().unwrap().is_empty());
    let l2 = lease(&store, &w);
    assert_eq!(l2.attempt, 2);
    let f = store.fail(&w, &l2.job_id, l2.token, "CUDA out of memory").unwrap();
    assert!(f.accepted && f.will_retry, "first failure of 2 allowed: {f:?}");
    let l3 = lease(&store, &w);
    let f = store.fail(&w, &l3.job_id, l3.token, "CUDA out of memory again").unwrap();
    assert!(f.accepted && !f.will_retry, "second failure uses the budget up: {f:?}");
    let (jobs, _) = store.snapshot().unwrap();
    assert_eq!(jobs[0].state, "failed");
    assert_eq!(jobs[0].error.as_deref(), Some("CUDA out of memory again"), "the message is kept");
    assert_eq!(jobs[0].attempts, 3, "the expiry was an attempt, not a failure");
    assert_eq!(store.grant(&w, 60.0, false).unwrap(), Grant::Finished);
    let _ = l1;
}

#[test]
fn a_worker_failing_three_jobs_in_a_row_is_quarantined() {
    let (_d, store) = open();
    store.add_sweep("s", "s.yaml", &[job(1, 8), job(2, 8), job(3, 8), job(4, 8)], 3).unwrap();
    let bad = store.register_worker("bad", "cpu").unwrap();
    for _ in 0..3 {
        let l = lease(&store, &bad);
        store.fail(&bad, &l.job_id, l.token, "broken GPU").unwrap();
    }
    assert!(matches!(store.grant(&bad, 60.0, false).unwrap_err(), StoreError::Quarantined(_)));
    let (_, workers) = store.snapshot().unwrap();
    assert!(workers[0].quarantined);
    let good = store.register_worker("good", "cpu").unwrap();
    let l = lease(&store, &good);
    assert!(store.complete(&good, &l.job_id, l.token, &result("diverged")).unwrap().accepted);
}

#[test]
fn state_survives_reopening_and_a_rerun_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = [job(1, 8), job(2, 8)];
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.add_sweep("s", "s.yaml", &jobs, 3).unwrap(), (2, 0));
        let w = store.register_worker("w", "cpu").unwrap();
        let l = lease(&store, &w);
        store.heartbeat(&w, &l.job_id, l.token, &[(1, r#"{"test_acc": 12.5, "seconds": 2.0}"#.into())], 60.0).unwrap();
        store.complete(&w, &l.job_id, l.token, &result("completed")).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.add_sweep("s", "s.yaml", &jobs, 3).unwrap(), (0, 2));
    let (rows, _) = store.snapshot().unwrap();
    let done: Vec<_> = rows.iter().filter(|j| j.state == "completed").collect();
    assert_eq!(done.len(), 1);
    assert_eq!(store.epochs(&done[0].id).unwrap().len(), 1);
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
                let w = store.register_worker(&format!("w{k}"), "cpu").unwrap();
                let mut done = 0;
                loop {
                    match store.grant(&w, 60.0, false).unwrap() {
                        Grant::Lease(l) => {
                            assert!(store.complete(&w, &l.job_id, l.token, &result("completed")).unwrap().accepted);
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
    assert_eq!(rows.iter().filter(|j| j.state == "completed" && j.attempts == 1).count(), 400, "all durable");
}
