//! The paper's tables from a sweep's runs: `table1.csv` (size, cost and accuracy per depth),
//! `table2.csv` (gradient statistics per analysed model), the long-format `runs.csv` (one row
//! per job) and Markdown versions of the two tables with the paper's published figures beside
//! ours.
//!
//! Rules, applied the same way in every file:
//! - Runs are grouped by *condition*: architecture, depth and every other setting in which the
//!   sweep's jobs differ ([`crate::condition`]), never by seed or repeat (what is averaged
//!   over) nor by execution settings. When only architecture, depth and seed vary, the tables
//!   have the paper's shape; otherwise each varying setting is a leading column, named as in
//!   the sweep file, and each of its values its own row (Table 2 also groups on the analysis's
//!   settings, among the analysed jobs).
//! - Accuracy is the worker's `final_test_acc` (the last epoch's test accuracy, in percent),
//!   never the best epoch's. A cell's accuracy is the mean over its *completed* runs (every
//!   seed and repeat of that condition, architecture and depth) with the sample standard
//!   deviation (n - 1; empty when fewer than two runs completed).
//! - A diverged run is counted in its own `diverged_<arch>` column and is never averaged in.
//!   (The paper prints 10.00 for deep VGG: a diverged network predicts one class, i.e. chance;
//!   we report the divergence instead of inventing a number.) Failed runs are counted in
//!   `failed_<arch>`, pending and running ones in `pending_<arch>`; neither is averaged in.
//! - Params and FLOPs come from the results (completed or diverged runs); the runs of one cell
//!   (condition, architecture, depth) must agree on them. A cell whose architecture has no run at that depth is empty
//!   throughout, counts included; an architecture with runs but no result has empty params,
//!   FLOPs and accuracy and its counts filled in.
//! - Table 2 averages, over the completed runs of a (condition, architecture, depth) that carry
//!   a gradient analysis, the total gradient count, the gradient std and the vanished ratios;
//!   the ratios are written in percent (`vanished_lt_1e-4_pct`), as the paper prints them.
//! - Rows are in a fixed order (Table 1's condition, sorted by its values with numbers by value,
//!   then depth, then vgg, resnet, grid, then seed, repeat, job id) and every average is summed
//!   in that order, so recomputing a table's cell from the matching rows of `runs.csv` with
//!   [`mean_std`] gives the same numbers. A condition's values are written as `runs.csv` writes
//!   the same settings, so its rows match a table's by text.

mod aggregate;
mod comparisons;
mod csv_files;
mod verdicts;

/// The 95% Student-t interval of a mean (its half-width), as every table prints it beside the
/// std and n; for other tables of means (`results.csv`).
pub use crate::stats::ci95_half_width;
pub use comparisons::ARCH_AXIS;
pub(crate) use csv_files::csv_bytes;
mod extract;
mod markdown;
mod result_comparisons;
pub mod result_runs;
pub mod results;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use gridsweep_proto::job::{Arch, JobSpec};
use gridsweep_proto::result::{EPSILON_NAMES as EPS_NAMES, TrainResult};
pub use gridsweep_proto::v1::{FailureKind, JobState};

use crate::condition::{Grouping, SettingValue};
use crate::files::{OutputError, create_dir, write_output};
use serde::{Deserialize, Serialize};

use extract::Figures;

/// One job of a sweep and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job id (`JobSpec::id`).
    pub job_id: String,
    /// The job.
    pub spec: JobSpec,
    /// Where it stands.
    pub state: JobState,
    /// How many times it was leased.
    pub attempts: u32,
    /// The worker that ran it last, if any.
    pub worker: Option<String>,
    /// The last error, if any.
    pub error: Option<String>,
    /// Whose fault the last error was, when there is one.
    #[serde(default)]
    pub error_kind: Option<FailureKind>,
    /// The worker's result; present for completed and diverged runs.
    pub result: Option<TrainResult>,
    /// It ran out of memory on a worker with this many bytes of device memory, and waits for a
    /// worker with more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_need: Option<u64>,
}

/// What [`write_tables`] wrote and how the runs were counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablesSummary {
    /// The files written, in the order table1.csv, table2.csv, runs.csv, table1.md, table2.md,
    /// runs.jsonl, comparisons.csv.
    pub files: Vec<PathBuf>,
    /// Runs that completed (their accuracies are averaged).
    pub completed: usize,
    /// Runs that diverged (counted, never averaged).
    pub diverged: usize,
    /// Runs that failed.
    pub failed: usize,
    /// Runs pending or running.
    pub pending: usize,
}

/// Why the tables could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// The output directory or a file could not be made.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A CSV record could not be formatted.
    #[error("cannot format {}: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
    /// A completed or diverged run without a result.
    #[error("job {job_id} is {state} but has no result")]
    MissingResult {
        /// The job.
        job_id: String,
        /// Its state.
        state: JobState,
    },
    /// `--compare` named a setting in which the sweep's jobs do not differ.
    #[error("--compare {axis}: the sweep's runs do not differ in `{axis}`; they can be compared by: {known}")]
    UnknownAxis {
        /// The axis asked for.
        axis: String,
        /// The axes there are.
        known: String,
    },
    /// A run that contradicts itself or the other runs of its cell.
    #[error("job {job_id}: {problem}")]
    Inconsistent {
        /// The job.
        job_id: String,
        /// What does not fit.
        problem: String,
    },
}

/// The mean and the sample standard deviation (n - 1) of `values`: `(None, None)` when empty,
/// no std for a single value.
pub fn mean_std(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (Some(mean), None);
    }
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (Some(mean), Some((ss / (n - 1.0)).sqrt()))
}

/// One run as the tables see it: the record, what was read from its result, and its
/// conditions.
pub(crate) struct Entry<'a> {
    /// The run.
    pub run: &'a RunRecord,
    /// Its outcome and figures.
    pub figures: Figures,
    /// Its values of Table 1's varying settings (empty in the paper's shape).
    pub condition: Vec<SettingValue>,
    /// Its values of Table 2's varying settings (meaningful for analysed runs only).
    pub grad_condition: Vec<SettingValue>,
}

/// The runs read, ordered and aggregated: what every table file is written from.
struct Prepared<'a> {
    /// How the runs are grouped beyond architecture and depth.
    grouping: Grouping,
    /// The runs with their figures, in table order.
    read: Vec<Entry<'a>>,
    /// Table 1's rows.
    table1: Vec<aggregate::Table1Row>,
    /// Table 2's rows.
    table2: Vec<aggregate::Table2Row>,
    /// What the Markdown versions say about the sweep.
    context: markdown::Context,
    /// Table 1's comparisons, along the axis asked for.
    compared1: Vec<comparisons::Comparison>,
    /// Table 2's comparisons (grid against each baseline).
    compared2: Vec<comparisons::Comparison>,
}

/// Reads every result and aggregates the tables, comparing Table 1 along `axis`.
fn prepare<'a>(runs: &'a [RunRecord], sweep_name: &str, axis: &str) -> Result<Prepared<'a>, TablesError> {
    let grouping = Grouping::of(runs.iter().map(|r| &r.spec));
    let mut read: Vec<Entry<'_>> = runs
        .iter()
        .map(|run| {
            Ok(Entry {
                run,
                figures: extract::figures(run)?,
                condition: grouping.table1.key(&run.spec),
                grad_condition: grouping.table2.key(&run.spec),
            })
        })
        .collect::<Result<_, TablesError>>()?;
    read.sort_by(|a, b| run_order(a).cmp(&run_order(b)));
    let table1 = aggregate::table1(&read, &grouping.table1)?;
    let table2 = aggregate::table2(&read);
    let context = markdown::Context::of(sweep_name, &read);
    let compared1 = comparisons::table1(&table1, &grouping.table1, axis)?;
    let compared2 = comparisons::table2(&table2, &grouping.table2);
    Ok(Prepared { grouping, read, table1, table2, context, compared1, compared2 })
}

impl Prepared<'_> {
    /// `table1.md`: the table, then its comparisons.
    fn table1_md(&self) -> String {
        let mut md = markdown::table1(&self.context, &self.grouping.table1, &self.table1);
        md.push_str(&verdicts::markdown(
            &self.compared1,
            "final test accuracy (percentage points)",
            2,
            "comparisons.csv",
        ));
        md
    }

    /// `table2.md`: the table, then its comparisons.
    fn table2_md(&self) -> String {
        let mut md = markdown::table2(&self.context, &self.grouping.table2, &self.table2);
        md.push_str(&verdicts::markdown(
            &self.compared2,
            "vanished fractions (percentage points)",
            2,
            "comparisons.csv",
        ));
        md
    }
}

/// One of Table 1's default comparisons (grid against resnet and vgg) with the seeds per side
/// it would need: what `coordinator plan --seeds-for` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedsRow {
    /// `depth 98, grid − resnet` (with the condition when there is one).
    pub label: String,
    /// Runs of the first side.
    pub n_a: usize,
    /// Runs of the second.
    pub n_b: usize,
    /// The verdict now.
    pub verdict: String,
    /// Seeds per side for 80% power.
    pub seeds: crate::stats::SeedsNeeded,
}

/// Table 1's default comparisons of `runs` with the seeds each needs.
pub fn seeds_rows(runs: &[RunRecord]) -> Result<Vec<SeedsRow>, TablesError> {
    let p = prepare(runs, "", ARCH_AXIS)?;
    Ok(p.compared1
        .iter()
        .map(|c| {
            let at = if c.condition.is_empty() { String::new() } else { format!(", {}", c.condition) };
            SeedsRow {
                label: format!("depth {}{at}, {} − {}", c.depth, c.a, c.b),
                n_a: c.values_a.len(),
                n_b: c.values_b.len(),
                verdict: c.verdict(),
                seeds: c.seeds,
            }
        })
        .collect())
}

/// `table1.md` and `table2.md` as `write_tables` writes them (ours beside the paper's figures),
/// in memory: what the dashboard shows while the sweep runs.
pub fn render_markdown(runs: &[RunRecord], sweep_name: &str) -> Result<(String, String), TablesError> {
    let p = prepare(runs, sweep_name, ARCH_AXIS)?;
    Ok((p.table1_md(), p.table2_md()))
}

/// Writes `table1.csv`, `table2.csv`, `runs.csv`, `table1.md`, `table2.md`, `runs.jsonl`
/// (every run record with the worker's whole result: epoch curves, gradient histograms) and
/// `comparisons.csv` for the sweep `sweep_name` into `out_dir` (created if missing), each through
/// a temporary file renamed into place, comparing architectures. Every result is read before
/// anything is written, so a bad result leaves the directory as it was.
pub fn write_tables(runs: &[RunRecord], sweep_name: &str, out_dir: &Path) -> Result<TablesSummary, TablesError> {
    write_tables_comparing(runs, sweep_name, out_dir, ARCH_AXIS)
}

/// As [`write_tables`], comparing Table 1 along `axis`: `arch` (grid against resnet and vgg)
/// or a setting in which the sweep's runs differ (each pair of its values); any other name is
/// [`TablesError::UnknownAxis`].
pub fn write_tables_comparing(
    runs: &[RunRecord],
    sweep_name: &str,
    out_dir: &Path,
    axis: &str,
) -> Result<TablesSummary, TablesError> {
    let p = prepare(runs, sweep_name, axis)?;
    let (table1_md, table2_md) = (p.table1_md(), p.table2_md());
    let Prepared { grouping, read, table1, table2, compared1, compared2, .. } = p;

    create_dir(out_dir)?;
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| -> Result<(), TablesError> {
        let path = out_dir.join(name);
        write_output(out_dir, name, &bytes)?;
        files.push(path);
        Ok(())
    };
    put("table1.csv", csv_files::table1(&out_dir.join("table1.csv"), &grouping.table1, &table1)?)?;
    put("table2.csv", csv_files::table2(&out_dir.join("table2.csv"), &grouping.table2, &table2)?)?;
    put("runs.csv", csv_files::runs(&out_dir.join("runs.csv"), &read)?)?;
    put("table1.md", table1_md.into_bytes())?;
    put("table2.md", table2_md.into_bytes())?;
    put("runs.jsonl", runs_jsonl(&read)?)?;
    let compared: Vec<comparisons::Comparison> = compared1.into_iter().chain(compared2).collect();
    put("comparisons.csv", verdicts::csv(&out_dir.join("comparisons.csv"), &compared)?)?;

    let count = |o: extract::Outcome| read.iter().filter(|e| e.figures.outcome == o).count();
    Ok(TablesSummary {
        files,
        completed: count(extract::Outcome::Completed),
        diverged: count(extract::Outcome::Diverged),
        failed: count(extract::Outcome::Failed),
        pending: count(extract::Outcome::Unfinished),
    })
}

/// One JSON line per run, in table order. A record that cannot be serialised is an error
/// naming its job, never a line left out.
fn runs_jsonl(read: &[Entry<'_>]) -> Result<Vec<u8>, TablesError> {
    let mut out = Vec::new();
    for Entry { run, .. } in read {
        let line = serde_json::to_string(run).map_err(|e| TablesError::Inconsistent {
            job_id: run.job_id.clone(),
            problem: format!("cannot write its runs.jsonl record: {e}"),
        })?;
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// The order of rows in every file: Table 1's condition, depth, architecture (vgg, resnet,
/// grid), seed, repeat, id.
fn run_order<'a>(e: &'a Entry<'_>) -> (&'a [SettingValue], u32, Arch, u64, u32, &'a str) {
    let t = &e.run.spec.train;
    (&e.condition, t.depth, t.arch, t.seed, e.run.spec.repeat, &e.run.job_id)
}

/// The column of `arch` in the per-architecture arrays (Arch::ALL's order).
fn arch_index(arch: Arch) -> usize {
    match arch {
        Arch::Vgg => 0,
        Arch::Resnet => 1,
        Arch::Grid => 2,
    }
}

/// An optional value as a CSV cell: empty when absent.
pub(crate) fn cell<T: fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}
