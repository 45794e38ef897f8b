//! `report.md`: one page on a sweep, written beside its tables and plots. It holds the sweep's
//! name and configuration (the sweep file's text when given, and the distinct settings of its
//! jobs), the conditions the runs are grouped by when the jobs differ in more than
//! architecture, depth and seed (each with its jobs by state), Table 1 and Table 2 exactly as
//! `table1.md` and `table2.md` hold them (read back from the output directory, so the report
//! cannot disagree with the tables and CSVs), the plots as image links (or why one is
//! missing), the failed and diverged jobs with their reasons (and condition), the total
//! training time by device kind, and the hardware and libtorch/CUDA versions the results
//! report.

mod conditions;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use gridsweep_proto::result::Environment;
use serde_json::Value;

use crate::condition::{Grouping, Varying};
use crate::files::{OutputError, create_dir, write_output};
use crate::plots;
use crate::tables::{JobState, RunRecord};
use conditions::conditions;

/// The report's file name in the output directory.
pub const REPORT_FILE: &str = "report.md";

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A table written by `tables::write_tables` could not be read back.
    #[error("cannot read the table {}: {source} (the tables are written before the report)", path.display())]
    ReadTable {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The sweep file could not be read.
    #[error("cannot read the sweep file {}: {source}", path.display())]
    ReadSweep {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The output directory or the report could not be made.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Writes `report.md` for the sweep `sweep_name` made of `runs` into `out_dir`, embedding the
/// text of the sweep file `sweep_source` when given, and `table1.md` and `table2.md`, which must
/// already be in `out_dir`. Returns the report's path.
pub fn write_report(
    runs: &[RunRecord],
    sweep_name: &str,
    sweep_source: Option<&Path>,
    out_dir: &Path,
) -> Result<PathBuf, ReportError> {
    let read_table = |name: &str| {
        let path = out_dir.join(name);
        fs::read_to_string(&path).map_err(|source| ReportError::ReadTable { path, source })
    };
    let (table1, table2) = (read_table("table1.md")?, read_table("table2.md")?);
    let sweep = match sweep_source {
        Some(p) => {
            Some((p, fs::read_to_string(p).map_err(|source| ReportError::ReadSweep { path: p.to_owned(), source })?))
        }
        None => None,
    };

    let mut md = String::new();
    let _ = writeln!(md, "# Sweep `{sweep_name}`: report\n");
    let count = |s: &[JobState]| runs.iter().filter(|r| s.contains(&r.state)).count();
    let _ = writeln!(
        md,
        "{} jobs: {} completed, {} diverged, {} failed, {} pending or running. Every number is in the files \
         beside this one: `table1.csv`, `table2.csv`, `runs.csv` (one row per job), `runs.jsonl` (every \
         worker result, with its epoch curve and gradient analysis) and `comparisons.csv` (the tests between \
         architectures below each table); `tensorboard/` holds one event-file directory per run \
         (`tensorboard --logdir tensorboard`).\n",
        runs.len(),
        count(&[JobState::Completed]),
        count(&[JobState::Diverged]),
        count(&[JobState::Failed]),
        count(&[JobState::Pending, JobState::Running]),
    );
    configuration(&mut md, runs, sweep.as_ref().map(|(p, t)| (*p, t.as_str())));
    let grouping = Grouping::of(runs.iter().map(|r| &r.spec));
    conditions(&mut md, runs, &grouping);
    md.push_str("## Results\n\nThe tables below are `table1.md` and `table2.md`, as written.\n\n");
    md.push_str(&table1);
    md.push('\n');
    md.push_str(&table2);
    md.push('\n');
    plots_section(&mut md, runs, out_dir);
    problems(&mut md, runs, &grouping.table1);
    compute(&mut md, runs);
    hardware(&mut md, runs);

    create_dir(out_dir)?;
    Ok(write_output(out_dir, REPORT_FILE, md.as_bytes())?)
}

/// A Markdown table cell: no line breaks, `|` escaped, at most 300 characters.
fn cell(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
    if flat.chars().count() > 300 { format!("{}…", flat.chars().take(300).collect::<String>()) } else { flat }
}

/// Appends `| a | b | ... |`.
fn row(md: &mut String, cells: &[String]) {
    let _ = writeln!(md, "| {} |", cells.join(" | "));
}

/// Appends a header row and its rule.
fn header(md: &mut String, names: &[&str]) {
    row(md, &names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    row(md, &vec!["---".to_owned(); names.len()]);
}

/// A JSON setting as a table shows it: strings bare, null as `none`.
fn setting(v: &Value) -> String {
    match v {
        Value::Null => "none".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The sweep file and the distinct settings of the jobs.
fn configuration(md: &mut String, runs: &[RunRecord], sweep: Option<(&Path, &str)>) {
    md.push_str("## Configuration\n\n");
    match sweep {
        Some((path, text)) => {
            let ticks = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            let fence = "`".repeat(ticks.max(2) + 1);
            let _ = writeln!(md, "Sweep file `{}`:\n\n{fence}yaml\n{}\n{fence}\n", path.display(), text.trim_end());
        }
        None => md.push_str("The sweep file was not given (`coordinator tables` reads only the state).\n\n"),
    }
    md.push_str("Settings of the jobs (every distinct value):\n\n");
    header(md, &["setting", "values"]);
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut add = |key: String, v: Value| {
        let seen = values.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Vec::new()
        });
        if !seen.contains(&v) {
            seen.push(v);
        }
    };
    for run in runs {
        if let Ok(Value::Object(train)) = serde_json::to_value(&run.spec.train) {
            train.into_iter().for_each(|(k, v)| add(k, v));
        }
        add("analysis".to_owned(), serde_json::to_value(&run.spec.analysis).unwrap_or(Value::Null));
        add("data".to_owned(), serde_json::to_value(&run.spec.data).unwrap_or(Value::Null));
        add("repeat".to_owned(), Value::from(run.spec.repeat));
    }
    for key in order {
        let mut vs = values.remove(&key).unwrap_or_default();
        if vs.iter().all(Value::is_number) {
            vs.sort_by(|a, b| a.as_f64().unwrap_or(0.0).total_cmp(&b.as_f64().unwrap_or(0.0)));
        }
        row(md, &[format!("`{key}`"), cell(&vs.iter().map(setting).collect::<Vec<_>>().join(", "))]);
    }
    md.push('\n');
}

/// The plots, as image links, or why each is missing.
fn plots_section(md: &mut String, runs: &[RunRecord], out_dir: &Path) {
    md.push_str("## Plots\n\n");
    let index = match plots::plot_index(runs) {
        Ok(index) => index,
        Err(e) => {
            let _ = writeln!(md, "No plots: {e}\n");
            return;
        }
    };
    for p in index {
        let _ = writeln!(md, "### {}\n\n{}", p.title, p.caption);
        if !p.note.is_empty() {
            let _ = writeln!(md, "Data: {}.", p.note);
        }
        match &p.skipped {
            Some(why) => {
                let _ = writeln!(md, "\n_Not drawn: {why}._\n");
            }
            None if out_dir.join(p.file).is_file() => {
                let _ = writeln!(md, "\n![{}]({})\n", p.title, p.file);
            }
            None => {
                let _ = writeln!(md, "\n_`{}` was not written; see the coordinator's log._\n", p.file);
            }
        }
    }
}

/// The last epoch a result has metrics for.
fn last_epoch(run: &RunRecord) -> Option<u32> {
    run.result.as_ref()?.epochs.last().map(|e| e.epoch)
}

/// The failed and diverged jobs, with their reasons (and their condition by `varying`, when
/// the jobs differ in more than architecture, depth and seed).
fn problems(md: &mut String, runs: &[RunRecord], varying: &Varying) {
    md.push_str("## Failed and diverged jobs\n\n");
    let bad: Vec<&RunRecord> =
        runs.iter().filter(|r| matches!(r.state, JobState::Failed | JobState::Diverged)).collect();
    if bad.is_empty() {
        md.push_str("None.\n\n");
    } else {
        let mut names = vec!["job", "arch", "depth", "seed", "repeat", "state", "attempts", "worker", "reason"];
        if !varying.is_empty() {
            names.insert(1, "condition");
        }
        header(md, &names);
        for r in bad {
            let reason = match (&r.error, r.state) {
                (Some(e), _) => e.clone(),
                (None, JobState::Diverged) => match last_epoch(r) {
                    Some(e) => format!("the training loss became non-finite in epoch {e}"),
                    None => "the training loss became non-finite".to_owned(),
                },
                (None, _) => "no error recorded".to_owned(),
            };
            let t = &r.spec.train;
            let mut cells = vec![
                format!("`{}`", r.job_id),
                t.arch.to_string(),
                t.depth.to_string(),
                t.seed.to_string(),
                r.spec.repeat.to_string(),
                r.state.to_string(),
                r.attempts.to_string(),
                cell(r.worker.as_deref().unwrap_or("—")),
                cell(&reason),
            ];
            if !varying.is_empty() {
                cells.insert(1, cell(&varying.label(&r.spec)));
            }
            row(md, &cells);
        }
        md.push('\n');
    }
    let unfinished = runs.iter().filter(|r| matches!(r.state, JobState::Pending | JobState::Running)).count();
    if unfinished > 0 {
        let _ = writeln!(md, "{unfinished} jobs are still pending or running; they are in no mean.\n");
    }
    for r in runs.iter().filter(|r| r.state == JobState::Pending) {
        if let Some(need) = r.memory_need {
            let t = &r.spec.train;
            let _ = writeln!(
                md,
                "- `{}` ({}-{} batch {}) ran out of memory on a worker with {} and waits for one with more \
                 (last error: {}).",
                r.job_id,
                t.arch,
                t.depth,
                t.batch_size,
                crate::stall::gib(need),
                r.error.as_deref().unwrap_or("none recorded")
            );
        }
    }
    if runs.iter().any(|r| r.state == JobState::Pending && r.memory_need.is_some()) {
        md.push('\n');
    }
}

/// A CUDA runtime version as text: CUDART_VERSION is 1000 * major + 10 * minor.
fn cuda_text(version: Option<i64>) -> String {
    match version {
        Some(v) if v >= 1000 => format!("{}.{} ({v})", v / 1000, v % 1000 / 10),
        Some(v) => v.to_string(),
        None => "—".to_owned(),
    }
}

/// The environments of the runs that have a result.
fn environments(runs: &[RunRecord]) -> impl Iterator<Item = (&RunRecord, &Environment)> {
    runs.iter().filter_map(|r| r.result.as_ref().map(|res| (r, &res.environment)))
}

/// A duration in seconds as hours and seconds.
fn duration(s: f64) -> String {
    format!("{:.2} h ({s:.0} s)", s / 3600.0)
}

/// Training time by device kind and device.
fn compute(md: &mut String, runs: &[RunRecord]) {
    md.push_str("## Compute\n\n");
    let mut by_device: BTreeMap<(bool, String), (usize, f64)> = BTreeMap::new();
    for result in runs.iter().filter_map(|r| r.result.as_ref()) {
        let gpu = result.environment.device.starts_with("cuda");
        let e = by_device.entry((gpu, result.environment.device_name.clone())).or_insert((0, 0.0));
        *e = (e.0 + 1, e.1 + result.train_seconds);
    }
    let total = |gpu: bool| by_device.iter().filter(|((g, _), _)| *g == gpu).fold(0.0, |a, (_, (_, s))| a + s);
    let _ = writeln!(
        md,
        "Training time, the sum of the workers' `train_seconds` over the completed and diverged jobs: GPU {}, \
         CPU {}. (Failed jobs report no result, so their time is not counted.)\n",
        duration(total(true)),
        duration(total(false)),
    );
    if !by_device.is_empty() {
        header(md, &["kind", "device", "jobs", "training time"]);
        for ((gpu, name), (n, secs)) in &by_device {
            row(md, &[if *gpu { "GPU" } else { "CPU" }.to_owned(), cell(name), n.to_string(), duration(*secs)]);
        }
        md.push('\n');
    }
}

/// The hardware and software the results report.
fn hardware(md: &mut String, runs: &[RunRecord]) {
    md.push_str("## Hardware\n\n");
    let mut seen: BTreeMap<(String, String, String), (usize, BTreeSet<String>)> = BTreeMap::new();
    for (run, env) in environments(runs) {
        let key = (env.device_name.clone(), env.libtorch_version.clone(), cuda_text(env.cuda_version));
        let e = seen.entry(key).or_default();
        e.0 += 1;
        if let Some(w) = &run.worker {
            e.1.insert(w.clone());
        }
    }
    if seen.is_empty() {
        md.push_str("No job has a result yet.\n");
        return;
    }
    md.push_str("As reported by the workers' results (`environment`).\n\n");
    header(md, &["device", "libtorch", "CUDA runtime", "jobs", "workers"]);
    for ((device, torch, cuda), (n, workers)) in &seen {
        row(md, &[cell(device), cell(torch), cell(cuda), n.to_string(), workers.len().to_string()]);
    }
    md.push('\n');
    settings(md, runs);
}

/// How the jobs ran: the workers' speed switches, one row per combination. TF32 is the one that
/// lowers precision; the others change summation order at most.
fn settings(md: &mut String, runs: &[RunRecord]) {
    let mut seen: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for (r, e) in environments(runs) {
        let known = |v: Option<String>| v.unwrap_or_else(|| "unknown".to_owned());
        let key = [
            known(e.grid_exec.map(|g| g.to_string())),
            known(e.memory_format.map(|m| m.to_string())),
            r.spec.train.precision.describe(),
            known(e.tf32.map(|t| t.to_string())),
            e.cudnn_benchmark.to_string(),
            e.deterministic.to_string(),
        ];
        *seen.entry(key.into()).or_default() += 1;
    }
    md.push_str(
        "Execution settings (`environment`, and each job's `precision`, which lowers fp32 precision on CUDA \
         where it allows TF32: `conv=tf32 matmul=highest` is PyTorch's default, the paper's setting; the \
         rest change at most the order of fp32 sums; TF32 is never used on a CPU):\n\n",
    );
    header(
        md,
        &[
            "grid execution",
            "memory format",
            "precision (job)",
            "conv TF32 used",
            "cuDNN benchmark",
            "deterministic",
            "jobs",
        ],
    );
    for (values, n) in &seen {
        let mut cells: Vec<String> = values.iter().map(|v| cell(v)).collect();
        cells.push(n.to_string());
        row(md, &cells);
    }
}
