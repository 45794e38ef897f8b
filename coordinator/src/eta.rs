//! The sweep's ETA from the throughput observed so far. Work is measured in the scheduler's cost
//! units (`JobSpec::cost`, the same model that orders the queue), plus, for a job with a
//! gradient analysis, one forward and backward pass over its test images (what the analysis
//! does) in the same units. Two rates are learned from the state: seconds per unit, from the
//! reported epochs (training and evaluation), and seconds of overhead per job (loading data,
//! checkpoints: the part of the time workers held a job that neither its epochs nor its
//! analysis account for), from the jobs that have ended. The remaining work, spread over the
//! live workers, gives the ETA; the longest remaining job bounds it below. A running job's time
//! since its last epoch is taken off its remaining work, so the ETA counts down between reports.

use gridsweep_proto::job::JobSpec;
use gridsweep_proto::v1::JobState;

use crate::store::JobRow;

/// The gradient analyses' work in cost units: a forward and backward pass over the test images
/// per analysed epoch at the model's per-image cost (0 for a job without one).
fn analysis_units(spec: &JobSpec) -> f64 {
    spec.analysis_cost()
}

/// A job's training work and its total epochs, when known. A built-in job's work is its cost
/// in the scheduler's units; a program job's cost is unknown to gridsweep, so its work is its
/// epochs (its total as `JobRow::epochs_total` knows it: none until the program says, unless
/// the sweep set `epochs`).
fn work(j: &JobRow) -> Option<(f64, u32)> {
    match &j.spec.program {
        None => Some((j.spec.training_cost(), j.spec.train.epochs)),
        Some(_) => j.epochs_total().map(|t| (f64::from(t), t)),
    }
}

/// Seconds until every job of `jobs` has ended, with `workers` taking jobs in parallel; None
/// until an epoch has been reported (nothing to learn from yet). Built-in and program jobs learn
/// their rates apart (cost units and program epochs are not the same work); a group with jobs
/// still to run but no rate yet, or a program job still to run whose total is unknown, leaves
/// the ETA unknown.
pub fn sweep_eta(jobs: &[JobRow], workers: usize) -> Option<f64> {
    let (programs, builtin): (Vec<&JobRow>, Vec<&JobRow>) = jobs.iter().partition(|j| j.spec.program.is_some());
    let mut remaining = 0.0;
    let mut longest: f64 = 0.0;
    let mut learned = false;
    for group in [builtin, programs] {
        if group.iter().any(|j| matches!(j.state, JobState::Pending | JobState::Running)) {
            let (left, long) = group_eta(&group)?;
            (remaining, longest, learned) = (remaining + left, longest.max(long), true);
        }
    }
    if !learned {
        // Nothing left to run: done, once anything was ever measured.
        return jobs.iter().any(|j| j.epoch > 0 && j.epoch_seconds > 0.0).then_some(0.0);
    }
    Some((remaining / workers.max(1) as f64).max(longest))
}

/// The remaining seconds of one group's jobs (all built-in or all program jobs) and of its
/// longest job, from the group's own rates.
fn group_eta(jobs: &[&JobRow]) -> Option<(f64, f64)> {
    let fraction = |j: &JobRow, total: u32| f64::from(j.epoch.min(total)) / f64::from(total.max(1));
    // Seconds per unit, over every job with reported epochs.
    let (secs, done_units) = jobs
        .iter()
        .filter(|j| j.epoch > 0)
        .filter_map(|j| work(j).map(|(units, total)| (j.epoch_seconds, units * fraction(j, total))))
        .fold((0.0, 0.0), |(s, u), (js, ju)| (s + js, u + ju));
    if done_units <= 0.0 || secs <= 0.0 {
        return None;
    }
    let per_unit = secs / done_units;
    // Overhead per job, over the jobs that have ended with a result.
    let ended: Vec<&&JobRow> =
        jobs.iter().filter(|j| matches!(j.state, JobState::Completed | JobState::Diverged)).collect();
    let overhead = if ended.is_empty() {
        0.0
    } else {
        let extra = |j: &&&JobRow| (j.busy_seconds - j.epoch_seconds - per_unit * analysis_units(&j.spec)).max(0.0);
        ended.iter().map(extra).sum::<f64>() / ended.len() as f64
    };
    let mut remaining = 0.0;
    let mut longest: f64 = 0.0;
    for j in jobs {
        if !matches!(j.state, JobState::Pending | JobState::Running) {
            continue;
        }
        let (units, total) = work(j)?;
        let epochs_left = per_unit * units * (1.0 - fraction(j, total));
        let left = match j.state {
            JobState::Pending => epochs_left + per_unit * analysis_units(&j.spec) + overhead,
            // A running job has paid part of its overhead (count half) and is into its next epoch.
            _ => {
                let into_epoch = j.since_progress.unwrap_or(0.0).max(0.0);
                (epochs_left - into_epoch).max(0.0) + per_unit * analysis_units(&j.spec) + overhead / 2.0
            }
        };
        remaining += left;
        longest = longest.max(left);
    }
    Some((remaining, longest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsweep_proto::job::{Arch, DataSpec, JobSpec, TrainConfig};

    /// A job of `depth` (cost (n + 0.5) x epochs x 100 images) with `epoch` of 2 epochs done in
    /// `secs` seconds of epochs and `busy` seconds held.
    fn job(depth: u32, state: JobState, epoch: u32, secs: f64, busy: f64) -> JobRow {
        let train = TrainConfig { epochs: 2, train_subset: Some(100), ..TrainConfig::paper(Arch::Resnet, depth, 1) };
        let spec = JobSpec { train, analysis: None, data: DataSpec::Cifar10, repeat: 0, program: None };
        JobRow { epoch, epoch_seconds: secs, busy_seconds: busy, attempts: 1, ..JobRow::fixture("j", spec, state) }
    }

    #[test]
    fn nothing_reported_yet_means_no_estimate() {
        assert_eq!(sweep_eta(&[job(8, JobState::Pending, 0, 0.0, 0.0)], 1), None);
    }

    #[test]
    fn remaining_units_and_overheads_over_the_workers() {
        // Depth 8: n = 1, cost 1.5 x 2 x 100 = 300 units; depth 26: 4.5 x 200 = 900.
        // The ended depth-26 job: 900 units in 9 s of epochs (0.01 s/unit), held 11 s: 2 s overhead.
        let jobs = [
            job(26, JobState::Completed, 2, 9.0, 11.0),
            job(26, JobState::Running, 1, 4.5, 5.0),
            job(8, JobState::Pending, 0, 0.0, 0.0),
            job(8, JobState::Pending, 0, 0.0, 0.0),
        ];
        // Running: 450 units left x 0.01 + 1 = 5.5; each pending: 3 + 2 = 5; total 15.5.
        // Per unit: (9 + 4.5) s / (900 + 450) units = 0.01.
        let one = sweep_eta(&jobs, 1).unwrap();
        assert!((one - 15.5).abs() < 1e-9, "{one}");
        // Two workers: 7.75, above the longest remaining job (5.5).
        assert!((sweep_eta(&jobs, 2).unwrap() - 7.75).abs() < 1e-9);
        // Ten workers: the longest job bounds it.
        assert!((sweep_eta(&jobs, 10).unwrap() - 5.5).abs() < 1e-9);
    }

    #[test]
    fn an_analysis_is_work_and_a_running_job_counts_down() {
        use gridsweep_proto::job::AnalysisConfig;
        // Depth 26 analysed on a 50-image test subset: 4.5 x 50 = 225 units.
        let mut done = job(26, JobState::Completed, 2, 9.0, 13.25);
        let mut next = job(26, JobState::Pending, 0, 0.0, 0.0);
        for j in [&mut done, &mut next] {
            j.spec.analysis = Some(AnalysisConfig::default());
            j.spec.train.test_subset = Some(50);
        }
        // 0.01 s/unit; the analysis of `done` took 2.25 s, so its overhead is 13.25 - 9 - 2.25 = 2.
        let mut running = job(8, JobState::Running, 1, 1.5, 2.0);
        running.since_progress = Some(1.0);
        let jobs = [done, next, running];
        // Pending: 9 + 2.25 + 2 = 13.25; running: (1.5 - 1.0) + 0 + 1 = 1.5.
        let eta = sweep_eta(&jobs, 1).unwrap();
        assert!((eta - 14.75).abs() < 1e-9, "{eta}");
    }

    /// A program job (settings `epochs` only when `set`) with `epoch` epochs done in `secs`.
    fn program(set: Option<u32>, state: JobState, epoch: u32, secs: f64) -> JobRow {
        use gridsweep_proto::job::{Goal, Metric, ProgramSpec};
        let mut j = job(8, state, epoch, secs, secs);
        let mut settings = serde_json::Map::new();
        if let Some(n) = set {
            settings.insert("epochs".into(), n.into());
            j.spec.train.epochs = n;
        } else {
            j.spec.train.epochs = 300;
        }
        let metric = Metric { name: "acc".into(), goal: Goal::Max };
        j.spec.program = Some(ProgramSpec { command: vec!["t".into()], env: Default::default(), metric, settings });
        j
    }

    #[test]
    fn a_program_job_counts_its_own_epochs_once_its_total_is_known() {
        // Unknown total (no setting, no line said it): no ETA, not the built-in 300 epochs.
        let mut running = program(None, JobState::Running, 2, 4.0);
        assert_eq!(running.epochs_total(), None);
        assert_eq!(sweep_eta(std::slice::from_ref(&running), 1), None);
        // Its line said `"epochs": 5`: 2 s an epoch, 3 epochs left.
        running.epochs_reported = Some(5);
        running.secs_per_epoch = Some(2.0);
        assert_eq!(running.epochs_total(), Some(5));
        assert_eq!(running.eta_s(), Some(6.0));
        let eta = sweep_eta(std::slice::from_ref(&running), 1).unwrap();
        assert!((eta - 6.0).abs() < 1e-9, "{eta}");
        // A pending program job with `epochs: 4` set, beside a built-in job measured apart
        // (depth 8: 300 units; 3 s for half of them, 0.02 s a unit).
        let pending = program(Some(4), JobState::Pending, 0, 0.0);
        assert_eq!(pending.epochs_total(), Some(4));
        let builtin = job(8, JobState::Running, 1, 3.0, 3.0);
        let eta = sweep_eta(&[running, pending, builtin], 1).unwrap();
        // Programs: 6 + 4 x 2 = 14; built-in: 150 units x 0.02 = 3.
        assert!((eta - 17.0).abs() < 1e-9, "{eta}");
    }
}
