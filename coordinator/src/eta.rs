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

/// Seconds until every job of `jobs` has ended, with `workers` taking jobs in parallel; None
/// until an epoch has been reported (nothing to learn from yet).
pub fn sweep_eta(jobs: &[JobRow], workers: usize) -> Option<f64> {
    let units = |j: &JobRow| j.spec.training_cost();
    let fraction = |j: &JobRow| f64::from(j.epoch.min(j.spec.train.epochs)) / f64::from(j.spec.train.epochs.max(1));
    // Seconds per unit, over every job with reported epochs.
    let (secs, done_units) = jobs
        .iter()
        .filter(|j| j.epoch > 0)
        .fold((0.0, 0.0), |(s, u), j| (s + j.epoch_seconds, u + units(j) * fraction(j)));
    if done_units <= 0.0 || secs <= 0.0 {
        return None;
    }
    let per_unit = secs / done_units;
    // Overhead per job, over the jobs that have ended with a result.
    let ended: Vec<&JobRow> =
        jobs.iter().filter(|j| matches!(j.state, JobState::Completed | JobState::Diverged)).collect();
    let overhead = if ended.is_empty() {
        0.0
    } else {
        let extra = |j: &&JobRow| (j.busy_seconds - j.epoch_seconds - per_unit * analysis_units(&j.spec)).max(0.0);
        ended.iter().map(extra).sum::<f64>() / ended.len() as f64
    };
    let mut remaining = 0.0;
    let mut longest: f64 = 0.0;
    for j in jobs {
        let epochs_left = per_unit * units(j) * (1.0 - fraction(j));
        let left = match j.state {
            JobState::Pending => epochs_left + per_unit * analysis_units(&j.spec) + overhead,
            // A running job has paid part of its overhead (count half) and is into its next epoch.
            JobState::Running => {
                let into_epoch = j.since_progress.unwrap_or(0.0).max(0.0);
                (epochs_left - into_epoch).max(0.0) + per_unit * analysis_units(&j.spec) + overhead / 2.0
            }
            _ => continue,
        };
        remaining += left;
        longest = longest.max(left);
    }
    Some((remaining / workers.max(1) as f64).max(longest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsweep_proto::job::{Arch, DataSpec, JobSpec, TrainConfig};
    use gridsweep_proto::v1::FailureKind;

    /// A job of `depth` (cost (n + 0.5) x epochs x 100 images) with `epoch` of 2 epochs done in
    /// `secs` seconds of epochs and `busy` seconds held.
    fn job(depth: u32, state: JobState, epoch: u32, secs: f64, busy: f64) -> JobRow {
        let train = TrainConfig { epochs: 2, train_subset: Some(100), ..TrainConfig::paper(Arch::Resnet, depth, 1) };
        JobRow {
            id: "j".into(),
            spec: JobSpec { train, analysis: None, data: DataSpec::Cifar10, repeat: 0, program: None },
            state,
            worker: None,
            epoch,
            test_acc: None,
            secs_per_epoch: None,
            epoch_seconds: secs,
            busy_seconds: busy,
            since_progress: None,
            attempts: 1,
            error: None,
            error_kind: FailureKind::Job,
            failures: 0,
            max_attempts: 3,
            result: None,
            memory_need: None,
        }
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
}
