//! A state written by an older gridsweep opens in this one with its jobs as they were: the
//! fixture `fixtures/v1-state/` was made by the coordinator and worker binaries built before job
//! ids were hashed from an explicit canonical form (its README says how). Opened now, every job
//! of its sweep is found under the same id, ended as it was, with its result; adding the sweep
//! again (what `coordinator run` does first) adds nothing, and the status is finished, so `run`
//! would run nothing.

use std::path::{Path, PathBuf};

use coordinator::store::Store;
use coordinator::view::SweepView;
use gridsweep_proto::v1::JobState;

mod common;

/// The fixture's folder.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-state")
}

/// A copy of the fixture's state in a scratch folder (opening a state may migrate it).
fn copied_state(name: &str) -> PathBuf {
    let dir = common::scratch("upgrade", name).join("state");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture().join("state/state.db"), dir.join("state.db")).unwrap();
    dir
}

#[test]
fn an_older_state_opens_with_its_jobs_ended_as_they_were() {
    let sweep = coordinator::sweep::load(&fixture().join("sweep.yaml")).unwrap();
    assert_eq!(sweep.jobs.len(), 3, "the fixture's sweep");
    let store = Store::open(&copied_state("open")).unwrap();
    assert_eq!(store.sweep_name().unwrap().as_deref(), Some("fixture-v1"));
    let (jobs, workers) = store.snapshot_with_results().unwrap();
    assert_eq!(jobs.len(), sweep.jobs.len());
    for spec in &sweep.jobs {
        let job =
            jobs.iter().find(|j| j.id == spec.id()).unwrap_or_else(|| panic!("job {} not in the state", spec.id()));
        assert_eq!(&job.spec, spec, "job {}", job.id);
        assert_eq!(job.state, JobState::Completed, "job {}", job.id);
        let result = job.result.as_ref().unwrap_or_else(|| panic!("job {} has no result", job.id));
        assert_eq!(result.epochs.len(), spec.train.epochs as usize, "job {}", job.id);
    }
    let view = SweepView::build(&sweep.name, jobs, workers, coordinator::store::now(), 120.0);
    assert!(view.finished() && view.counts.completed == 3, "{:?}", view.counts);
}

#[test]
fn running_the_same_sweep_again_adds_nothing_to_an_older_state() {
    let sweep = coordinator::sweep::load(&fixture().join("sweep.yaml")).unwrap();
    let store = Store::open(&copied_state("again")).unwrap();
    let (new, known) = store.add_sweep(&sweep.name, "sweep.yaml", &sweep.jobs, sweep.max_attempts).unwrap();
    assert_eq!((new, known), (0, 3), "every job is known by its id");
    let (jobs, _) = store.snapshot().unwrap();
    assert!(jobs.iter().all(|j| j.state == JobState::Completed), "nothing to run");
}
