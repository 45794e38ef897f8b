//! The paper's tables from a sweep's runs: `table1.csv` (size, cost and accuracy per depth),
//! `table2.csv` (gradient statistics per analysed model), the long-format `runs.csv` (one row
//! per job) and Markdown versions of the two tables with the paper's published figures beside
//! ours.
//!
//! Rules, applied the same way in every file:
//! - Accuracy is the worker's `final_test_acc` (the last epoch's test accuracy, in percent),
//!   never the best epoch's. A cell's accuracy is the mean over its *completed* runs (every
//!   seed and repeat of that architecture and depth) with the sample standard deviation (n - 1;
//!   empty when fewer than two runs completed).
//! - A diverged run is counted in its own `diverged_<arch>` column and is never averaged in.
//!   (The paper prints 10.00 for deep VGG: a diverged network predicts one class, i.e. chance;
//!   we report the divergence instead of inventing a number.) Failed runs are counted in
//!   `failed_<arch>`, pending and running ones in `pending_<arch>`; neither is averaged in.
//! - Params and FLOPs come from the results (completed or diverged runs); the runs of one cell
//!   must agree on them. A cell whose architecture has no run at that depth is empty
//!   throughout, counts included; an architecture with runs but no result has empty params,
//!   FLOPs and accuracy and its counts filled in.
//! - Table 2 averages, over the completed runs of an (architecture, depth) that carry a
//!   gradient analysis, the total gradient count, the gradient std and the vanished ratios;
//!   the ratios are written in percent (`vanished_lt_1e-4_pct`), as the paper prints them.
//! - Rows are in a fixed order (depth, then vgg, resnet, grid, then seed, repeat, job id) and
//!   every average is summed in that order, so recomputing table 1 from `runs.csv` with
//!   [`mean_std`] gives the same numbers.

mod aggregate;
mod extract;
mod markdown;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use gridsweep_proto::job::{Arch, DataSpec, JobSpec};
use gridsweep_proto::result::{EPSILON_NAMES as EPS_NAMES, EPSILONS, TrainResult};
pub use gridsweep_proto::v1::{FailureKind, JobState};

use crate::files::{OutputError, create_dir, write_output};
use serde::{Deserialize, Serialize};

use aggregate::{Table1Row, Table2Row};
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
}

/// What [`write_tables`] wrote and how the runs were counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablesSummary {
    /// The files written, in the order table1.csv, table2.csv, runs.csv, table1.md, table2.md.
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

/// Writes `table1.csv`, `table2.csv`, `runs.csv`, `table1.md`, `table2.md` and `runs.jsonl`
/// (every run record with the worker's whole result: epoch curves, gradient histograms) for the sweep
/// `sweep_name` into `out_dir` (created if missing), each through a temporary file renamed into
/// place. Every result is read before anything is written, so a bad result leaves the
/// directory as it was.
pub fn write_tables(runs: &[RunRecord], sweep_name: &str, out_dir: &Path) -> Result<TablesSummary, TablesError> {
    let mut read: Vec<(&RunRecord, Figures)> =
        runs.iter().map(|run| extract::figures(run).map(|f| (run, f))).collect::<Result<_, _>>()?;
    read.sort_by(|(a, _), (b, _)| run_order(a).cmp(&run_order(b)));

    let table1 = aggregate::table1(&read)?;
    let table2 = aggregate::table2(&read);
    let context = markdown::Context::of(sweep_name, &read);

    create_dir(out_dir)?;
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| -> Result<(), TablesError> {
        let path = out_dir.join(name);
        write_output(out_dir, name, &bytes)?;
        files.push(path);
        Ok(())
    };
    put("table1.csv", table1_csv(&out_dir.join("table1.csv"), &table1)?)?;
    put("table2.csv", table2_csv(&out_dir.join("table2.csv"), &table2)?)?;
    put("runs.csv", runs_csv(&out_dir.join("runs.csv"), &read)?)?;
    put("table1.md", markdown::table1(&context, &table1).into_bytes())?;
    put("table2.md", markdown::table2(&context, &table2).into_bytes())?;
    put("runs.jsonl", runs_jsonl(&read)?)?;

    let count = |o: extract::Outcome| read.iter().filter(|(_, f)| f.outcome == o).count();
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
fn runs_jsonl(read: &[(&RunRecord, Figures)]) -> Result<Vec<u8>, TablesError> {
    let mut out = Vec::new();
    for (run, _) in read {
        let line = serde_json::to_string(run).map_err(|e| TablesError::Inconsistent {
            job_id: run.job_id.clone(),
            problem: format!("cannot write its runs.jsonl record: {e}"),
        })?;
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// The order of rows in every file: depth, architecture (vgg, resnet, grid), seed, repeat, id.
fn run_order(run: &RunRecord) -> (u32, Arch, u64, u32, &str) {
    let t = &run.spec.train;
    (t.depth, t.arch, t.seed, run.spec.repeat, &run.job_id)
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
fn cell<T: fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Formats `rows` under `header` as CSV (the writer checks that every row has the header's
/// length); `path` only names the file in errors.
fn csv_bytes(path: &Path, header: &[String], rows: Vec<Vec<String>>) -> Result<Vec<u8>, TablesError> {
    let csv_err = |source| TablesError::Csv { path: path.to_owned(), source };
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header).map_err(csv_err)?;
    for row in rows {
        writer.write_record(&row).map_err(csv_err)?;
    }
    writer.into_inner().map_err(|e| OutputError::Write { path: path.to_owned(), source: e.into_error() }.into())
}

/// `table1.csv`: one row per depth; see the module documentation for the rules.
fn table1_csv(path: &Path, rows: &[Table1Row]) -> Result<Vec<u8>, TablesError> {
    let archs = Arch::ALL.map(Arch::name);
    let mut header = vec!["depth".to_owned()];
    header.extend(archs.iter().map(|a| format!("params_{a}")));
    header.extend(archs.iter().map(|a| format!("flops_{a}")));
    for a in archs {
        for col in ["acc_mean", "acc_std", "n", "diverged", "failed", "pending"] {
            header.push(format!("{col}_{a}"));
        }
    }
    let rows = rows
        .iter()
        .map(|row| {
            let mut out = vec![row.depth.to_string()];
            out.extend(row.cells.iter().map(|c| cell(c.as_ref().and_then(|c| c.params))));
            out.extend(row.cells.iter().map(|c| cell(c.as_ref().and_then(|c| c.flops))));
            for c in &row.cells {
                match c {
                    Some(c) => {
                        let (mean, std) = mean_std(&c.accs);
                        out.extend([cell(mean), cell(std), c.accs.len().to_string()]);
                        out.extend([c.diverged, c.failed, c.pending].map(|k| k.to_string()));
                    }
                    None => out.extend(std::iter::repeat_n(String::new(), 6)),
                }
            }
            out
        })
        .collect();
    csv_bytes(path, &header, rows)
}

/// `table2.csv`: one row per analysed (architecture, depth); ratios in percent.
fn table2_csv(path: &Path, rows: &[Table2Row]) -> Result<Vec<u8>, TablesError> {
    let mut header: Vec<String> = ["arch", "depth", "runs", "total_gradients", "std"].map(String::from).into();
    header.extend(EPS_NAMES.iter().map(|e| format!("vanished_lt_{e}_pct")));
    let rows = rows
        .iter()
        .map(|r| {
            let mut out =
                vec![r.arch.name().to_owned(), r.depth.to_string(), r.runs.to_string(), r.total_gradients.to_string()];
            out.push(r.std.to_string());
            out.extend(r.vanished_pct.iter().map(f64::to_string));
            out
        })
        .collect();
    csv_bytes(path, &header, rows)
}

/// `runs.csv`: one row per job, with its settings, its state and its figures.
fn runs_csv(path: &Path, runs: &[(&RunRecord, Figures)]) -> Result<Vec<u8>, TablesError> {
    let mut header: Vec<String> = [
        "job_id",
        "arch",
        "depth",
        "seed",
        "repeat",
        "epochs",
        "batch_size",
        "lr",
        "momentum",
        "nesterov",
        "weight_decay",
        "lr_milestones",
        "lr_gamma",
        "warmup_epochs",
        "crop_padding",
        "flip",
        "train_subset",
        "test_subset",
        "eval_batch_size",
        "analysis",
        "analysis_batch_size",
        "analysis_bn_train_mode",
        "data",
        "data_train",
        "data_test",
        "data_seed",
        "state",
        "attempts",
        "worker",
        "final_test_acc",
        "best_test_acc",
        "best_epoch",
        "epochs_run",
        "params",
        "flops",
        "train_seconds",
        "device",
        "device_name",
        "grad_total_gradients",
        "grad_std",
    ]
    .map(String::from)
    .into();
    header.extend(EPS_NAMES.iter().map(|e| format!("vanished_lt_{e}_pct")));
    header.extend(["error", "spec"].map(String::from));

    let mut rows = Vec::with_capacity(runs.len());
    for (run, f) in runs {
        let t = &run.spec.train;
        let analysis = run.spec.analysis.as_ref();
        let (data, data_train, data_test, data_seed) = match &run.spec.data {
            DataSpec::Cifar10 => ("cifar10", None, None, None),
            DataSpec::Synthetic { train, test, seed } => ("synthetic", Some(*train), Some(*test), Some(*seed)),
        };
        let milestones = t.lr_milestones.iter().map(f64::to_string).collect::<Vec<_>>().join(";");
        let spec = serde_json::to_string(&run.spec)
            .map_err(|e| TablesError::Inconsistent { job_id: run.job_id.clone(), problem: e.to_string() })?;
        let grad = f.grad.as_ref();
        let mut row = vec![
            run.job_id.clone(),
            t.arch.name().to_owned(),
            t.depth.to_string(),
            t.seed.to_string(),
            run.spec.repeat.to_string(),
            t.epochs.to_string(),
            t.batch_size.to_string(),
            t.lr.to_string(),
            t.momentum.to_string(),
            t.nesterov.to_string(),
            t.weight_decay.to_string(),
            milestones,
            t.lr_gamma.to_string(),
            t.warmup_epochs.to_string(),
            t.crop_padding.to_string(),
            t.flip.to_string(),
            cell(t.train_subset),
            cell(t.test_subset),
            t.eval_batch_size.to_string(),
            analysis.is_some().to_string(),
            cell(analysis.map(|a| a.batch_size)),
            cell(analysis.map(|a| a.bn_train_mode)),
            data.to_owned(),
            cell(data_train),
            cell(data_test),
            cell(data_seed),
            run.state.name().to_owned(),
            run.attempts.to_string(),
            run.worker.clone().unwrap_or_default(),
            cell(f.final_test_acc),
            cell(f.best_test_acc),
            cell(f.best_epoch),
            cell(f.epochs_run),
            cell(f.params),
            cell(f.flops),
            cell(f.train_seconds),
            f.device.clone().unwrap_or_default(),
            f.device_name.clone().unwrap_or_default(),
            cell(grad.map(|g| g.total_gradients)),
            cell(grad.map(|g| g.std)),
        ];
        for i in 0..EPSILONS.len() {
            row.push(cell(grad.map(|g| g.vanished[i] * 100.0)));
        }
        row.push(run.error.clone().unwrap_or_default());
        row.push(spec);
        rows.push(row);
    }
    csv_bytes(path, &header, rows)
}
