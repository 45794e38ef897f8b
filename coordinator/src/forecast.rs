//! `coordinator expand` and `coordinator plan`: a sweep's jobs with their expected device time
//! (seconds from a calibration, else the cost model's relative units, said so in the output), and
//! its makespan on N workers (`plan`), as text for people and JSON for scripts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gridsweep_proto::calibration::{Calibration, CalibrationError, MissingEntry};
use gridsweep_proto::estimate::{Unit, estimate_all};
use gridsweep_proto::job::JobSpec;
use serde::Serialize;

use crate::plan::{self, Assignment, Bound, Plan, PlanError, Schedule};
use crate::sweep::{self, Sweep, SweepError};

/// A sweep with each job's expected work.
#[derive(Clone, Debug)]
pub struct Forecast {
    /// The sweep, expanded.
    pub sweep: Sweep,
    /// The calibration the estimates come from and its file; none: cost units.
    pub calibration: Option<(PathBuf, Calibration)>,
    /// Seconds with a calibration, cost units without.
    pub unit: Unit,
    /// Each job's expected work, in sweep order.
    pub expected: Vec<f64>,
}

/// Why a forecast cannot be made; all of it is bad input (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// The sweep file.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// The calibration file.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    /// The calibration lacks a model the sweep uses.
    #[error("{}: {source}; job {job} of {} needs it", file.display(), sweep.display())]
    Missing {
        /// The calibration file.
        file: PathBuf,
        /// The sweep file.
        sweep: PathBuf,
        /// The first job without an entry.
        job: String,
        /// What is missing.
        source: MissingEntry,
    },
    /// The plan's settings.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The JSON output could not be encoded.
    #[error("encoding the JSON output: {0}")]
    Json(#[from] serde_json::Error),
}

/// The calibration as the JSON outputs name it.
#[derive(Serialize)]
struct CalibrationView<'a> {
    file: &'a Path,
    device: &'a str,
    device_name: &'a str,
    libtorch_version: &'a str,
    created_unix_s: u64,
}

/// One job of `expand --json`.
#[derive(Serialize)]
struct JobView<'a> {
    seq: usize,
    id: String,
    arch: &'a str,
    depth: u32,
    seed: u64,
    repeat: u32,
    analysis: bool,
    /// `JobSpec::cost`, the figure the queue is ordered by.
    cost: f64,
    /// The expected work in `unit`.
    expected: f64,
    spec: &'a JobSpec,
}

/// `expand --json`.
#[derive(Serialize)]
struct ExpandView<'a> {
    sweep: &'a str,
    source: &'a Path,
    unit: Unit,
    calibration: Option<CalibrationView<'a>>,
    total: f64,
    jobs: Vec<JobView<'a>>,
}

/// One schedule of `plan --json`.
#[derive(Serialize)]
struct ScheduleView<'a> {
    makespan: f64,
    ratio_to_bound: f64,
    order: plan::Order,
    /// Every job as handed out, with its id.
    assignments: Vec<AssignmentView<'a>>,
}

/// An assignment with the job's id.
#[derive(Serialize)]
struct AssignmentView<'a> {
    id: String,
    #[serde(flatten)]
    at: &'a Assignment,
}

/// `plan --json`.
#[derive(Serialize)]
struct PlanView<'a> {
    sweep: &'a str,
    source: &'a Path,
    unit: Unit,
    calibration: Option<CalibrationView<'a>>,
    workers: usize,
    jobs: usize,
    total: f64,
    lower_bound: &'a Bound,
    scheduler: ScheduleView<'a>,
    fifo: ScheduleView<'a>,
}

impl Forecast {
    /// Expands `sweep` and estimates each job, from the calibration in `calibration` when given.
    pub fn load(sweep: &Path, calibration: Option<&Path>) -> Result<Self, ForecastError> {
        let sweep = sweep::load(sweep)?;
        let calibration = match calibration {
            Some(file) => Some((file.to_owned(), Calibration::load(file)?)),
            None => None,
        };
        let (expected, unit) = estimate_all(&sweep.jobs, calibration.as_ref().map(|(_, c)| c)).map_err(|source| {
            let file = calibration.as_ref().map(|(f, _)| f.clone()).unwrap_or_default();
            let t = |j: &&JobSpec| (j.train.arch, j.train.depth, j.train.batch_size);
            let job = sweep.jobs.iter().find(|j| t(j) == (source.arch, source.depth, source.batch_size));
            let job = job.map(JobSpec::id).unwrap_or_default();
            ForecastError::Missing { file, sweep: sweep.source.clone(), job, source }
        })?;
        Ok(Forecast { sweep, calibration, unit, expected })
    }

    /// The expected work of all jobs added up (one worker's time).
    pub fn total(&self) -> f64 {
        self.expected.iter().sum()
    }

    /// The sweep on `workers` workers.
    pub fn plan(&self, workers: usize) -> Result<Plan, PlanError> {
        let costs: Vec<f64> = self.sweep.jobs.iter().map(JobSpec::cost).collect();
        plan::plan(&costs, &self.expected, workers)
    }

    /// `#` lines saying what the figures are: device seconds and whose, or cost units, plainly.
    fn unit_lines(&self) -> String {
        match &self.calibration {
            Some((file, c)) => format!(
                "# expected device time from the calibration {}: {} ({}, libtorch {}), measured {}; \
                 training and evaluation, not the gradient analysis\n",
                file.display(),
                c.device_name,
                c.device,
                c.libtorch_version,
                utc(c.created_unix_s)
            ),
            None => "# expected work in RELATIVE COST UNITS, NOT SECONDS: (blocks per stage + 0.5) x epochs x \
                     training images, the scheduler's cost model\n\
                     # for device time: `worker bench --calibrate SWEEP --out FILE` on the device, then \
                     --calibration FILE\n"
                .to_owned(),
        }
    }

    /// `expand`: today's listing with each job's expected time after its seed, and the total.
    pub fn expand_text(&self) -> String {
        let shown: Vec<String> = self.expected.iter().map(|&v| self.unit.format(v)).collect();
        let width = shown.iter().map(String::len).max().unwrap_or(0).max("expected".len());
        let mut out = sweep::header(&self.sweep);
        out.push_str(&self.unit_lines());
        let _ = writeln!(out, "{}", sweep::legend(&self.sweep, Some("expected")));
        for (job, s) in self.sweep.jobs.iter().zip(&shown) {
            let _ = writeln!(out, "{}", sweep::describe_with(job, &self.sweep.base, Some(&format!("{s:>width$}"))));
        }
        let _ = writeln!(out, "# expected in all (one worker): {}", self.unit.format(self.total()));
        let _ = writeln!(out, "{} jobs", self.sweep.jobs.len());
        out
    }

    /// `expand --json`: the same figures, with each job's full spec.
    pub fn expand_json(&self) -> Result<String, ForecastError> {
        let jobs = self
            .sweep
            .jobs
            .iter()
            .zip(&self.expected)
            .enumerate()
            .map(|(seq, (spec, &expected))| JobView {
                seq,
                id: spec.id(),
                arch: spec.train.arch.name(),
                depth: spec.train.depth,
                seed: spec.train.seed,
                repeat: spec.repeat,
                analysis: spec.analysis.is_some(),
                cost: spec.cost(),
                expected,
                spec,
            })
            .collect();
        let view = ExpandView {
            sweep: &self.sweep.name,
            source: &self.sweep.source,
            unit: self.unit,
            calibration: self.calibration_view(),
            total: self.total(),
            jobs,
        };
        Ok(serde_json::to_string_pretty(&view)? + "\n")
    }

    /// The calibration's identity for the JSON outputs.
    fn calibration_view(&self) -> Option<CalibrationView<'_>> {
        self.calibration.as_ref().map(|(file, c)| CalibrationView {
            file,
            device: &c.device,
            device_name: &c.device_name,
            libtorch_version: &c.libtorch_version,
            created_unix_s: c.created_unix_s,
        })
    }

    /// `plan`: the total, the lower bound and its terms, and each order's makespan beside it.
    pub fn plan_text(&self, p: &Plan) -> String {
        let f = |v: f64| self.unit.format(v);
        let n = p.workers;
        let mut terms = vec![format!("total / {n} = {}", f(p.bound.total_over_workers))];
        terms.push(format!("longest job = {}", f(p.bound.longest)));
        if let Some(pair) = p.bound.pair {
            terms.push(format!("{} + {} longest = {}", ordinal(n), ordinal(n + 1), f(pair)));
        }
        let rows = [
            ("total work", f(p.total), "all jobs one after another".to_owned()),
            ("lower bound", f(p.bound.value), format!("the largest of {}", terms.join(", "))),
            (
                "scheduler",
                f(p.scheduler.makespan),
                format!("{:.3} x bound: longest-expected-first, as `coordinator run`", p.ratio(&p.scheduler)),
            ),
            (
                "fifo",
                f(p.fifo.makespan),
                format!("{:.3} x bound: file order, as `coordinator run --fifo`", p.ratio(&p.fifo)),
            ),
        ];
        let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let mut out = String::new();
        let s = &self.sweep;
        let workers = if n == 1 { "1 worker".to_owned() } else { format!("{n} identical workers") };
        let _ = writeln!(out, "# plan: sweep {} ({}), {} jobs on {workers}", s.name, s.source.display(), p.jobs);
        out.push_str(&self.unit_lines());
        for (name, value, note) in rows {
            let _ = writeln!(out, "{name:<12} {value:>width$}  {note}");
        }
        out
    }

    /// `plan --json`: the same figures, with every job's simulated worker, start and end.
    pub fn plan_json(&self, p: &Plan) -> Result<String, ForecastError> {
        let view = PlanView {
            sweep: &self.sweep.name,
            source: &self.sweep.source,
            unit: self.unit,
            calibration: self.calibration_view(),
            workers: p.workers,
            jobs: p.jobs,
            total: p.total,
            lower_bound: &p.bound,
            scheduler: self.schedule_view(p, &p.scheduler),
            fifo: self.schedule_view(p, &p.fifo),
        };
        Ok(serde_json::to_string_pretty(&view)? + "\n")
    }

    /// A schedule of `p` for the JSON output, with each job's id.
    fn schedule_view<'a>(&self, p: &Plan, s: &'a Schedule) -> ScheduleView<'a> {
        let id = |job: usize| self.sweep.jobs.get(job).map(JobSpec::id).unwrap_or_default();
        ScheduleView {
            makespan: s.makespan,
            ratio_to_bound: p.ratio(s),
            order: s.order,
            assignments: s.assignments.iter().map(|a| AssignmentView { id: id(a.job), at: a }).collect(),
        }
    }
}

/// `1st`, `2nd`, `3rd`, `8th`, `11th`, `21st`.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Seconds since the Unix epoch as `2025-05-01 12:34 UTC` (the civil calendar from a day count).
fn utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let (hour, minute) = (unix_s % 86_400 / 3_600, unix_s % 3_600 / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ordinals() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400 + 3_600 + 120), "2000-02-29 01:02 UTC");
        assert_eq!(utc(1_735_689_599), "2024-12-31 23:59 UTC");
        let names: Vec<String> = [1, 2, 3, 4, 8, 11, 12, 13, 21, 22, 101].into_iter().map(ordinal).collect();
        assert_eq!(names, ["1st", "2nd", "3rd", "4th", "8th", "11th", "12th", "13th", "21st", "22nd", "101st"]);
    }
}
