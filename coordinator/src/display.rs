//! Rendering a sweep's status message for people and scripts: an overall progress line and one
//! line per running job (worker, epoch/total, last test accuracy, ETA), shared by `coordinator
//! run` and `coordinator status`, and `status --json`. The message is the read model's
//! (`view::SweepView::to_status`); the counts and worker states are read back as its types
//! (`view::Counts`, `view::WorkerState`).

use gridsweep_proto::v1 as pb;

/// The jobs by state, the read model's tally (kept here under its old path).
pub use crate::view::Counts;
use crate::view::WorkerState;

/// "[#####.....] 5/12 ended (4 completed, 1 diverged, 0 failed), 2 running, 5 pending, eta 3m10s".
pub fn progress_line(status: &pb::SweepStatus) -> String {
    let c = Counts::of(status);
    let width = 24;
    let filled = if c.total() == 0 { width } else { c.ended() * width / c.total() };
    let eta = status.eta_s.map_or_else(String::new, |s| format!(", eta {}", duration(s)));
    format!(
        "[{}{}] {}/{} ended ({} completed, {} diverged, {} failed), {} running, {} pending{eta}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        c.ended(),
        c.total(),
        c.completed,
        c.diverged,
        c.failed,
        c.running,
        c.pending
    )
}

/// One job: "abc123def456 grid-26 seed 42  running  w1-0a3f  epoch 3/10  acc 61.20%  eta 1m20s".
pub fn job_line(j: &pb::JobStatus) -> String {
    let acc = j.test_acc.map_or_else(|| "-".to_owned(), |a| format!("{a:.2}%"));
    let eta = j.eta_s.map_or_else(String::new, |s| format!("  eta {}", duration(s)));
    let worker = if j.worker_id.is_empty() { "-" } else { &j.worker_id };
    let error = if j.error.is_empty() || j.state() == pb::JobState::Completed {
        String::new()
    } else {
        format!("  failures {}/{}, last error ({}): {}", j.failures, j.max_attempts, j.error_kind().name(), j.error)
    };
    // A program job whose settings name no model has depth 0: its line says `program` alone.
    let model = if j.depth == 0 { format!("{:<11}", j.arch) } else { format!("{:>6}-{:<4}", j.arch, j.depth) };
    format!(
        "{} {model} seed {:<4} {:<9} {:<10} epoch {}/{}  acc {}{}{}",
        j.job_id,
        j.seed.map_or_else(|| "-".to_owned(), |s| s.to_string()),
        j.state().name(),
        worker,
        j.epoch,
        j.epochs_total.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        acc,
        eta,
        error
    )
}

/// 83.2 -> "1m23s".
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The whole status: progress, running jobs, then (with `all`) every job, and the workers.
pub fn render(status: &pb::SweepStatus, all: bool) -> String {
    let mut out = format!("sweep {}: {}\n", status.sweep_name, progress_line(status));
    if !status.stalled.is_empty() {
        out += &format!("  STALLED: {}\n", status.stalled);
        if !status.attach.is_empty() {
            out += &format!("  attach workers with: {}\n", status.attach);
        }
    }
    for j in status.jobs.iter().filter(|j| all || j.state() == pb::JobState::Running) {
        out += &format!("  {}\n", job_line(j));
    }
    for w in &status.workers {
        out += &format!(
            "  worker {} ({}, {}) last seen {} ago{}{}\n",
            w.worker_id,
            w.name,
            w.device,
            duration(w.last_seen_s),
            match WorkerState::of_status(w) {
                _ if w.quarantined => ", QUARANTINED",
                Some(WorkerState::Quiet) => ", quiet",
                _ => "",
            },
            if w.problem.is_empty() { String::new() } else { format!(", problem: {}", w.problem) }
        );
    }
    out
}

/// The status as one JSON document for scripts (`status --json`): the sweep's counts and ETA,
/// every job and every worker, states and failure kinds by name.
pub fn to_json(status: &pb::SweepStatus) -> serde_json::Value {
    use serde_json::json;
    let c = Counts::of(status);
    let jobs: Vec<serde_json::Value> = status
        .jobs
        .iter()
        .map(|j| {
            json!({
                "job_id": j.job_id, "arch": j.arch, "depth": j.depth, "seed": j.seed, "state": j.state().name(),
                "worker": (!j.worker_id.is_empty()).then_some(&j.worker_id), "epoch": j.epoch,
                "epochs_total": j.epochs_total, "test_acc": j.test_acc, "eta_s": j.eta_s, "attempts": j.attempts,
                "failures": j.failures, "max_attempts": j.max_attempts,
                "error": (!j.error.is_empty()).then_some(&j.error),
                "error_kind": (!j.error.is_empty()).then(|| j.error_kind().name()),
            })
        })
        .collect();
    let workers: Vec<serde_json::Value> = status
        .workers
        .iter()
        .map(|w| {
            json!({
                "worker_id": w.worker_id, "name": w.name, "device": w.device, "last_seen_s": w.last_seen_s,
                "quarantined": w.quarantined, "problem": (!w.problem.is_empty()).then_some(&w.problem),
                "state": WorkerState::of_status(w).map(WorkerState::name),
            })
        })
        .collect();
    json!({
        "sweep": status.sweep_name,
        "finished": status.finished,
        "eta_s": status.eta_s,
        "stalled": (!status.stalled.is_empty()).then_some(&status.stalled),
        "attach": (!status.attach.is_empty()).then_some(&status.attach),
        "counts": {"pending": c.pending, "running": c.running, "completed": c.completed,
                   "diverged": c.diverged, "failed": c.failed},
        "jobs": jobs,
        "workers": workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(5.4), "5s");
        assert_eq!(duration(83.0), "1m23s");
        assert_eq!(duration(7300.0), "2h01m");
    }

    #[test]
    fn progress_counts_states() {
        let job = |state: pb::JobState| pb::JobStatus { state: state.into(), ..Default::default() };
        let s = pb::SweepStatus {
            sweep_name: "x".into(),
            jobs: [pb::JobState::Completed, pb::JobState::Diverged, pb::JobState::Running, pb::JobState::Pending]
                .map(job)
                .into(),
            ..Default::default()
        };
        let line = progress_line(&s);
        assert!(line.contains("2/4 ended (1 completed, 1 diverged, 0 failed), 1 running, 1 pending"), "{line}");
    }

    #[test]
    fn an_unknown_total_reads_as_a_question_mark() {
        let mut j = pb::JobStatus { epoch: 3, epochs_total: None, ..Default::default() };
        assert!(job_line(&j).contains("epoch 3/?"), "{}", job_line(&j));
        assert_eq!(
            to_json(&pb::SweepStatus { jobs: vec![j.clone()], ..Default::default() })["jobs"][0]["epochs_total"],
            serde_json::Value::Null
        );
        j.epochs_total = Some(30);
        assert!(job_line(&j).contains("epoch 3/30"), "{}", job_line(&j));
    }
}
