//! `results.csv` and `results.md`: a table for any sweep, program jobs and built-in ones alike.
//! One row per condition: the settings in which the sweep's jobs differ (the seed and the
//! repetition left out: they are what is averaged over) as leading columns, and an
//! `implementation` column (`builtin`, or a short label of the program's command: its script's
//! file name, `train.py`; `results_label.rs` has the rule) when the sweep has more than one. For each metric of the final results, the mean, sample standard deviation (n - 1), n,
//! minimum and maximum over the condition's *completed* runs; diverged, failed and unfinished
//! runs are counted in their own columns and never averaged in. Rows are sorted by their
//! condition's cells (numbers by value, so depth 8 comes before 26; other cells as text), runs
//! within a row summed in job order.
//!
//! A built-in run's metrics are its result's final and best test accuracy, the last epoch's
//! losses and training accuracy, and its training seconds; a program run's are the numbers of
//! its result line. `results.md` shows the sweep's metric (the program's `metric.name`, else
//! `test_acc`) per condition, to two decimals (the CSV keeps every digit); `plots::metric` draws a metric against the epoch per condition.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use gridsweep_proto::job::program::render;
use gridsweep_proto::job::{JobSpec, ProgramResult};
use gridsweep_proto::result::TrainResult;
use gridsweep_proto::v1::JobState;
use serde_json::{Map, Value as Json};

use super::csv_files::ci_cell;
use super::{TablesError, cell, ci95_half_width, csv_bytes, mean_std};
use crate::files::{create_dir, write_output};
use crate::plots::metric::{Epochs, metric_vs_epoch};
use crate::store::{JobRow, Store, StoreError};

/// `results.csv`.
pub const RESULTS_CSV: &str = "results.csv";
/// `results.md`.
pub const RESULTS_MD: &str = "results.md";
/// The built-in trainer's implementation name.
pub const BUILTIN: &str = "builtin";
/// Settings averaged over, never a condition column.
const AVERAGED: [&str; 2] = ["seed", "repeat"];

/// One job as the results table sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRun {
    /// The job's id, for the order within a condition.
    pub job_id: String,
    /// `builtin`, or the program's whole command (settings not filled in); the tables show
    /// its short label (`label::labels`).
    pub implementation: String,
    /// The job's settings: a program's as given, a built-in job's arch, depth, seed and those
    /// that differ from the paper's recipe.
    pub settings: Map<String, Json>,
    /// Where it stands.
    pub state: JobState,
    /// The final result's numbers by name (empty without a result).
    pub metrics: BTreeMap<String, f64>,
}

impl ResultRun {
    /// A built-in job and its result, if any.
    pub fn builtin(job_id: &str, spec: &JobSpec, state: JobState, result: Option<&TrainResult>) -> Self {
        let paper = gridsweep_proto::job::TrainConfig::paper(spec.train.arch, spec.train.depth, spec.train.seed);
        let (Ok(Json::Object(all)), Ok(Json::Object(base))) =
            (serde_json::to_value(&spec.train), serde_json::to_value(&paper))
        else {
            return ResultRun::empty(job_id, BUILTIN, state);
        };
        let keep = |k: &str| ["arch", "depth", "seed"].contains(&k);
        let settings = all.into_iter().filter(|(k, v)| keep(k) || base.get(k) != Some(v)).collect();
        let mut metrics = BTreeMap::new();
        if let Some(r) = result {
            let last = r.epochs.last();
            let named = [
                ("test_acc", r.final_test_acc),
                ("best_test_acc", r.best_test_acc),
                ("train_loss", last.and_then(|e| e.train_loss)),
                ("train_acc", last.map(|e| e.train_acc)),
                ("test_loss", last.and_then(|e| e.test_loss)),
                ("train_seconds", Some(r.train_seconds)),
            ];
            metrics.extend(named.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v.filter(|x| x.is_finite())?))));
        }
        ResultRun { job_id: job_id.to_owned(), implementation: BUILTIN.to_owned(), settings, state, metrics }
    }

    /// A program job and its result line, if any.
    pub fn program(job_id: &str, spec: &JobSpec, state: JobState, result: Option<&Map<String, Json>>) -> Self {
        let Some(program) = &spec.program else { return ResultRun::empty(job_id, "program", state) };
        let metrics = result
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64().filter(|x| x.is_finite())?)))
            .collect();
        ResultRun {
            job_id: job_id.to_owned(),
            implementation: program.command.join(" "),
            settings: program.settings.clone(),
            state,
            metrics,
        }
    }

    fn empty(job_id: &str, implementation: &str, state: JobState) -> Self {
        let (job_id, implementation) = (job_id.to_owned(), implementation.to_owned());
        ResultRun { job_id, implementation, settings: Map::new(), state, metrics: BTreeMap::new() }
    }
}

/// One row: a condition and its runs.
#[derive(Debug)]
pub(super) struct Row<'a> {
    /// The condition's cells (one per condition column).
    pub(super) cells: Vec<String>,
    /// Its runs, in job order.
    pub(super) runs: Vec<&'a ResultRun>,
}

/// The condition columns: `implementation` when the runs have several, then every setting
/// (but the seed and repeat) whose value is not the same in all runs (a missing one counts as
/// a value), sorted by name.
pub(super) fn condition_columns(runs: &[ResultRun]) -> Vec<String> {
    let mut out = Vec::new();
    if runs.iter().map(|r| &r.implementation).collect::<BTreeSet<_>>().len() > 1 {
        out.push("implementation".to_owned());
    }
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.settings.keys()).collect();
    for key in keys {
        if AVERAGED.contains(&key.as_str()) {
            continue;
        }
        let values: BTreeSet<String> =
            runs.iter().map(|r| r.settings.get(key).map(render).unwrap_or_default()).collect();
        if values.len() > 1 {
            out.push(key.clone());
        }
    }
    out
}

/// Each run's values of `columns`, in `runs`' order: a setting as the program gets it (empty
/// when the run has none), the implementation as its label.
pub(super) fn cells(runs: &[ResultRun], columns: &[String]) -> Vec<Vec<String>> {
    let labels = label::labels(runs.iter().map(|r| r.implementation.as_str()));
    runs.iter()
        .map(|run| {
            columns
                .iter()
                .map(|c| match c.as_str() {
                    "implementation" => labels[&run.implementation].clone(),
                    key => run.settings.get(key).map(render).unwrap_or_default(),
                })
                .collect()
        })
        .collect()
}

/// Each run's condition as (column, value) pairs, in `runs`' order: what its row of the table
/// is grouped by (the TensorBoard run directories of program jobs are named from it).
pub fn condition_of_each(runs: &[ResultRun]) -> Vec<Vec<(String, String)>> {
    let columns = condition_columns(runs);
    cells(runs, &columns).into_iter().map(|cells| columns.iter().cloned().zip(cells).collect()).collect()
}

/// The runs grouped by the values of `columns`, rows sorted by their cells (numbers by value).
pub(super) fn rows<'a>(runs: &'a [ResultRun], columns: &[String]) -> Vec<Row<'a>> {
    let mut groups: BTreeMap<Vec<String>, Vec<&ResultRun>> = BTreeMap::new();
    for (run, cells) in runs.iter().zip(cells(runs, columns)) {
        groups.entry(cells).or_default().push(run);
    }
    let mut rows: Vec<Row<'a>> = groups
        .into_iter()
        .map(|(cells, mut runs)| {
            runs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
            Row { cells, runs }
        })
        .collect();
    // Numbers in numeric order (depth 8 before 26), other cells as text.
    rows.sort_by(|a, b| {
        a.cells.iter().zip(&b.cells).map(|(x, y)| cell_order(x, y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    });
    rows
}

/// Two cells of a column: by value when both are numbers, else as text (a number first).
fn cell_order(x: &str, y: &str) -> Ordering {
    match (x.parse::<f64>(), y.parse::<f64>()) {
        (Ok(a), Ok(b)) => a.total_cmp(&b).then_with(|| x.cmp(y)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => x.cmp(y),
    }
}

/// The conditions in row order: each one's label (`implementation=builtin lr=0.1`, empty when
/// nothing varies) and runs.
pub fn conditions(runs: &[ResultRun]) -> Vec<(String, Vec<&ResultRun>)> {
    let columns = condition_columns(runs);
    rows(runs, &columns)
        .into_iter()
        .map(|row| {
            let label: Vec<String> = columns.iter().zip(&row.cells).map(|(c, v)| format!("{c}={v}")).collect();
            (label.join(" "), row.runs)
        })
        .collect()
}

/// A metric's statistics over a row's completed runs: mean, std, the half-width of the mean's
/// 95% interval (`n/a` from one run), n, min, max.
fn stats(row: &Row<'_>, metric: &str) -> [String; 6] {
    let values = completed_values(row, metric);
    let (mean, std, n, min, max) = stat_values(&values);
    [cell(mean), cell(std), ci_cell(&values), n.to_string(), cell(min), cell(max)]
}

/// A metric's final values over a row's completed runs.
pub(super) fn completed_values(row: &Row<'_>, metric: &str) -> Vec<f64> {
    row.runs.iter().filter(|r| r.state == JobState::Completed).filter_map(|r| r.metrics.get(metric).copied()).collect()
}

/// Mean, std, n, min and max of `values` (none where there is no value, or one for the std).
fn stat_values(values: &[f64]) -> (Option<f64>, Option<f64>, usize, Option<f64>, Option<f64>) {
    let (mean, std) = mean_std(values);
    let min = values.iter().copied().reduce(f64::min);
    let max = values.iter().copied().reduce(f64::max);
    (mean, std, values.len(), min, max)
}

/// Runs of a row in `states`.
fn count(row: &Row<'_>, states: &[JobState]) -> usize {
    row.runs.iter().filter(|r| states.contains(&r.state)).count()
}

/// The count columns, after the condition and before the metrics.
const COUNTS: [&str; 5] = ["runs", "completed", "diverged", "failed", "unfinished"];

/// A row's counts, in `COUNTS`' order.
fn counts(row: &Row<'_>) -> [String; 5] {
    [
        row.runs.len(),
        count(row, &[JobState::Completed]),
        count(row, &[JobState::Diverged]),
        count(row, &[JobState::Failed]),
        count(row, &[JobState::Pending, JobState::Running]),
    ]
    .map(|n| n.to_string())
}

/// `results.csv`'s bytes; `path` only names the file in errors.
pub fn results_csv(path: &Path, runs: &[ResultRun]) -> Result<Vec<u8>, TablesError> {
    let columns = condition_columns(runs);
    let metrics: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
    let mut header = columns.clone();
    header.extend(COUNTS.map(str::to_owned));
    for m in &metrics {
        header.extend(["mean", "std", "ci95", "n", "min", "max"].map(|s| format!("{m}_{s}")));
    }
    let body = rows(runs, &columns)
        .iter()
        .map(|row| {
            let mut line = row.cells.clone();
            line.extend(counts(row));
            for m in &metrics {
                line.extend(stats(row, m));
            }
            line
        })
        .collect();
    csv_bytes(path, &header, body)
}

/// `results.md`: the sweep's `metric` per condition, with the counts.
pub fn results_md(sweep: &str, metric: &str, runs: &[ResultRun]) -> String {
    let columns = condition_columns(runs);
    let mut header = columns.clone();
    header.extend([format!("{metric} mean ± std [95% CI]"), "n".to_owned(), "min".to_owned(), "max".to_owned()]);
    header.extend(["diverged", "failed", "unfinished"].map(str::to_owned));
    let mut out = format!(
        "# Results of {sweep}\n\nFinal `{metric}` per condition: mean ± sample std over completed runs (seeds and repeats), \
         the mean's 95% confidence interval (Student's t over the n runs; n/a from one run), min and max; \
         diverged, failed and unfinished runs are counted, never averaged.\n\n"
    );
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in rows(runs, &columns) {
        let values = completed_values(&row, metric);
        let (mean, std, n, min, max) = stat_values(&values);
        let two = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        let value = match (mean, std, ci95_half_width(&values)) {
            (Some(m), Some(s), Some(h)) => format!("{m:.2} ± {s:.2} [{:.2}, {:.2}]", m - h, m + h),
            (Some(m), _, _) => format!("{m:.2} [CI n/a]"),
            (None, _, _) => two(None),
        };
        let (n, min, max) = (n.to_string(), two(min), two(max));
        let [_, _, diverged, failed, unfinished] = counts(&row);
        let mut line = row.cells.clone();
        line.extend([value, n, min, max, diverged, failed, unfinished]);
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    out.push_str(&super::result_comparisons::markdown(&super::result_comparisons::compare(runs, metric), metric));
    out
}

/// Every reported epoch of the sweep in `store` by job: a built-in job's metrics and a program
/// job's epoch lines alike, as name -> number maps.
pub fn epochs_of(store: &Store) -> Result<HashMap<String, Epochs>, StoreError> {
    let mut out: HashMap<String, Epochs> = HashMap::new();
    for row in store.epoch_log()? {
        if let Ok(Json::Object(m)) = serde_json::to_value(&row.metrics) {
            out.entry(row.job).or_default().push((row.metrics.epoch, m));
        }
    }
    for e in store.program_epochs()? {
        out.entry(e.job).or_default().push((e.epoch, e.metrics));
    }
    Ok(out)
}

/// The runs of the sweep in `store` (every active job, built-in and program) and the metric
/// `results.md` shows: the first program job's `metric.name`, else `test_acc`.
pub fn runs_of(store: &Store) -> Result<(Vec<ResultRun>, String), StoreError> {
    let (jobs, _) = store.snapshot_with_results()?;
    Ok(runs_from(&jobs, &store.program_results()?))
}

/// [`runs_of`] from a snapshot with results already read and the program jobs' results.
pub fn runs_from(jobs: &[JobRow], programs: &HashMap<String, ProgramResult>) -> (Vec<ResultRun>, String) {
    let metric = jobs
        .iter()
        .find_map(|j| j.spec.program.as_ref().map(|p| p.metric.name.clone()))
        .unwrap_or_else(|| "test_acc".to_owned());
    let runs = jobs
        .iter()
        .map(|j| match &j.spec.program {
            Some(_) => ResultRun::program(&j.id, &j.spec, j.state, programs.get(&j.id).map(|r| &r.result)),
            None => ResultRun::builtin(&j.id, &j.spec, j.state, j.result.as_ref()),
        })
        .collect();
    (runs, metric)
}

/// Writes `results.csv`, `results.md` (with its comparisons), `results_runs.csv` (the runs
/// before averaging) and `results_comparisons.csv` into `out_dir`, and `results_<m>_vs_epoch.svg` for
/// the sweep's `metric` and the training loss (when some epoch reported them). A plot that
/// cannot be drawn is logged and skipped.
pub fn write_results(
    runs: &[ResultRun],
    epochs: &HashMap<String, Epochs>,
    sweep: &str,
    metric: &str,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, TablesError> {
    create_dir(out_dir)?;
    let csv = results_csv(&out_dir.join(RESULTS_CSV), runs)?;
    let md = results_md(sweep, metric, runs);
    let by_run = super::result_runs::results_runs_csv(&out_dir.join(super::result_runs::RESULTS_RUNS_CSV), runs)?;
    let mut files = vec![
        write_output(out_dir, RESULTS_CSV, &csv)?,
        write_output(out_dir, RESULTS_MD, md.as_bytes())?,
        write_output(out_dir, super::result_runs::RESULTS_RUNS_CSV, &by_run)?,
    ];
    use super::result_comparisons::{self as compared, RESULTS_COMPARISONS_CSV};
    let compared = compared::csv(&out_dir.join(RESULTS_COMPARISONS_CSV), &compared::compare(runs, metric))?;
    files.push(write_output(out_dir, RESULTS_COMPARISONS_CSV, &compared)?);
    let mut plotted = vec![metric];
    if metric != "train_loss" {
        plotted.push("train_loss");
    }
    for m in plotted {
        let name = format!("results_{}_vs_epoch.svg", m.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "-"));
        match metric_vs_epoch(runs, epochs, m) {
            Ok(Some(svg)) => files.push(write_output(out_dir, &name, svg.as_bytes())?),
            Ok(None) => {}
            Err(e) => tracing::error!("{name} not drawn: {e}"),
        }
    }
    Ok(files)
}

#[path = "results_label.rs"]
pub mod label;
#[cfg(test)]
#[path = "results_tests.rs"]
mod tests;
