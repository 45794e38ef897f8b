//! The read model: one snapshot viewed with typed states, the status message it renders (the
//! worker state as the enum and, for older clients, the string), and the one liveness rule.

use gridsweep_proto::job::{Arch, DataSpec, JobSpec, TrainConfig};
use gridsweep_proto::v1::{self as pb, JobState};

use super::*;

fn job(id: &str, state: JobState) -> JobRow {
    let spec = JobSpec {
        train: TrainConfig::paper(Arch::Resnet, 8, 1),
        analysis: None,
        data: DataSpec::Cifar10,
        repeat: 0,
        program: None,
    };
    JobRow { worker: (state == JobState::Running).then(|| "w1".to_owned()), ..JobRow::fixture(id, spec, state) }
}

fn worker(id: &str, last_seen: f64, quarantined: bool) -> WorkerRow {
    WorkerRow {
        id: id.into(),
        name: "host".into(),
        device: "cpu".into(),
        last_seen,
        quarantined,
        memory_bytes: None,
        problem: None,
    }
}

#[test]
fn a_snapshot_is_viewed_once_with_typed_states() {
    let now = 10_000.0;
    let jobs = vec![
        job("a", JobState::Completed),
        job("b", JobState::Running),
        job("c", JobState::Pending),
        job("d", JobState::Failed),
    ];
    let workers = vec![worker("w1", now - 1.0, false), worker("w2", now - 500.0, false), worker("w3", now, true)];
    let view = SweepView::build("s", jobs, workers, now, 30.0);
    assert_eq!(view.counts, Counts { pending: 1, running: 1, completed: 1, diverged: 0, failed: 1 });
    assert_eq!(view.worker_counts, WorkerCounts { live: 1, quiet: 1, quarantined: 1 });
    assert!(!view.finished() && view.stalled.is_empty() && view.memory_blocked.is_empty());
    let status = view.to_status("attach me");
    assert_eq!((status.jobs.len(), status.attach.as_str(), status.finished), (4, "attach me", false));
    let states: Vec<(pb::WorkerState, &str)> =
        status.workers.iter().map(|w| (w.worker_state(), w.state.as_str())).collect();
    assert_eq!(
        states,
        [
            (pb::WorkerState::Live, "live"),
            (pb::WorkerState::Quiet, "quiet"),
            (pb::WorkerState::Quarantined, "quarantined")
        ]
    );
    assert_eq!(Counts::of(&status), view.counts, "the message counts back to the same tally");
    assert_eq!(status.workers[1].last_seen_s, 500.0);
}

#[test]
fn a_status_gives_its_worker_state_by_enum_or_by_name_from_an_older_coordinator() {
    let mut w = pb::WorkerStatus { state: "quiet".into(), ..Default::default() };
    assert_eq!(WorkerState::of_status(&w), Some(WorkerState::Quiet), "an older coordinator's string");
    w.set_worker_state(pb::WorkerState::Live);
    assert_eq!(WorkerState::of_status(&w), Some(WorkerState::Live), "the enum wins");
    let older = pb::WorkerStatus::default();
    assert_eq!(WorkerState::of_status(&older), None, "a coordinator that says neither");
}

#[test]
fn one_liveness_rule_45_seconds_or_the_lease_ttl() {
    let now = 1000.0;
    assert!(is_live(&worker("w", now - 45.0, false), now, 30.0));
    assert!(!is_live(&worker("w", now - 46.0, false), now, 30.0));
    assert!(is_live(&worker("w", now - 100.0, false), now, 120.0), "a longer TTL");
    assert!(!is_live(&worker("w", now, true), now, 120.0), "quarantined");
    assert_eq!(WorkerState::of(&worker("w", now - 46.0, false), now, 30.0), WorkerState::Quiet);
}
