//! Job ids pinned: the id of every job of the shipped sweeps (`sweeps/paper.yaml`, `smoke.yaml`,
//! `gradflow.yaml`) and of the state fixture's sweep, as gridsweep computed them before ids were
//! hashed from an explicit canonical form (`golden/job_ids.txt`, written by that code). A change
//! that moves any of them would make an upgraded coordinator re-run finished jobs.
//!
//! `GRIDSWEEP_WRITE_GOLDEN=1 cargo test -p gridsweep-sweep --test golden_ids` rewrites the file
//! from the current code and then fails on purpose, so that a rewrite is never a silent pass.

use std::path::{Path, PathBuf};

/// The sweeps whose ids are pinned, relative to the workspace root.
const SWEEPS: [&str; 4] = [
    "sweeps/paper.yaml",
    "sweeps/smoke.yaml",
    "sweeps/gradflow.yaml",
    "coordinator/tests/fixtures/v1-state/sweep.yaml",
];

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the sweep crate is in the workspace").to_owned()
}

/// One line per job, `FILE INDEX ID`, in expansion order.
fn current() -> String {
    let mut out = String::new();
    for file in SWEEPS {
        let sweep = sweep::load(&root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        for (i, job) in sweep.jobs.iter().enumerate() {
            out += &format!("{file} {i} {}\n", job.id());
        }
    }
    out
}

#[test]
fn the_shipped_sweeps_keep_their_job_ids() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/job_ids.txt");
    let now = current();
    if std::env::var_os("GRIDSWEEP_WRITE_GOLDEN").is_some() {
        std::fs::write(&golden, &now).unwrap();
        panic!("wrote {}; run again without GRIDSWEEP_WRITE_GOLDEN to check it", golden.display());
    }
    let pinned = std::fs::read_to_string(&golden).unwrap();
    assert!(pinned.lines().count() >= 36 + 12 + 12 + 3, "the golden file lists every job");
    for (want, got) in pinned.lines().zip(now.lines()) {
        assert_eq!(got, want, "a job id moved");
    }
    assert_eq!(now.lines().count(), pinned.lines().count(), "the sweeps expand to the pinned jobs");
}
