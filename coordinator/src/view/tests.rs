//! The read model: one snapshot viewed with typed states, the status message it renders (the
//! worker state as the enum and, for older clients, the string), and the one liveness rule.

use gridsweep_proto::job::{Arch, DataSpec, Goal, JobSpec, Metric, ProgramSpec, TrainConfig};
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

#[test]
fn a_snapshot_is_viewed_once_with_typed_states() {
    let now = 10_000.0;
    let jobs = vec![
        job("a", JobState::Completed),
        job("b", JobState::Running),
        job("c", JobState::Pending),
        job("d", JobState::Failed),
    ];
    let workers = vec![
        WorkerRow::fixture("w1", now - 1.0, false),
        WorkerRow::fixture("w2", now - 500.0, false),
        WorkerRow::fixture("w3", now, true),
    ];
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
    assert!(is_live(&WorkerRow::fixture("w", now - 45.0, false), now, 30.0));
    assert!(!is_live(&WorkerRow::fixture("w", now - 46.0, false), now, 30.0));
    assert!(is_live(&WorkerRow::fixture("w", now - 100.0, false), now, 120.0), "a longer TTL");
    assert!(!is_live(&WorkerRow::fixture("w", now, true), now, 120.0), "quarantined");
    assert_eq!(WorkerState::of(&WorkerRow::fixture("w", now - 46.0, false), now, 30.0), WorkerState::Quiet);
}

#[test]
fn a_program_job_shows_its_own_seed_setting_or_none() {
    let program_job = |settings: serde_json::Value| {
        let program = ProgramSpec {
            command: vec!["python3".to_owned(), "t.py".to_owned()],
            env: Default::default(),
            metric: Metric { name: "test_acc".to_owned(), goal: Goal::Max },
            settings: settings.as_object().cloned().unwrap(),
        };
        // The sweep gives a program job without a model the recipe's placeholders (seed 0).
        let spec = JobSpec { program: Some(program), ..job("p", JobState::Pending).spec };
        JobRow::fixture("p", JobSpec { train: TrainConfig::paper(Arch::Vgg, 8, 0), ..spec }, JobState::Pending)
    };
    let seed = |settings| job_status(&program_job(settings)).seed;
    assert_eq!(seed(serde_json::json!({"lr": 0.1})), None, "no seed setting: none, not the placeholder 0");
    assert_eq!(seed(serde_json::json!({"seed": 7})), Some(7));
    assert_eq!(seed(serde_json::json!({"seed": 0})), Some(0), "a seed 0 that was given");
    assert_eq!(seed(serde_json::json!({"seed": -3})), None, "not a non-negative integer");
    assert_eq!(seed(serde_json::json!({"seed": "abc"})), None);
    assert_eq!(job_status(&job("b", JobState::Pending)).seed, Some(1), "a built-in job's own seed");
    let line = crate::display::job_line(&job_status(&program_job(serde_json::json!({}))));
    assert!(line.contains(" program     seed -    pending"), "{line}");
    let json = crate::display::to_json(&pb::SweepStatus {
        jobs: vec![job_status(&program_job(serde_json::json!({})))],
        ..Default::default()
    });
    assert_eq!(json["jobs"][0]["seed"], serde_json::Value::Null);
}
