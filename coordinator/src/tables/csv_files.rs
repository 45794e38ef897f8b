//! The CSV files: `table1.csv` and `table2.csv` (one row per condition and depth, or per
//! condition, depth and architecture, each varying setting a leading column named as in the
//! sweep file) and the long-format `runs.csv` (one row per job: its settings, state, figures
//! and last error). See the parent module for the rules they follow.

use std::path::Path;

use gridsweep_proto::job::{Arch, DataSpec};
use gridsweep_proto::result::EPSILONS;

use super::aggregate::{Table1Row, Table2Row};
use super::extract::Protocol;
use super::{EPS_NAMES, Entry, TablesError, cell, mean_std};
use crate::condition::{SettingValue, Varying};
use crate::files::OutputError;

/// Formats `rows` under `header` as CSV (the writer checks that every row has the header's
/// length); `path` only names the file in errors.
pub(crate) fn csv_bytes(path: &Path, header: &[String], rows: Vec<Vec<String>>) -> Result<Vec<u8>, TablesError> {
    let csv_err = |source| TablesError::Csv { path: path.to_owned(), source };
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header).map_err(csv_err)?;
    for row in rows {
        writer.write_record(&row).map_err(csv_err)?;
    }
    writer.into_inner().map_err(|e| OutputError::Write { path: path.to_owned(), source: e.into_error() }.into())
}

/// A condition's leading cells, one per varying setting.
fn condition_cells(condition: &[SettingValue]) -> Vec<String> {
    condition.iter().map(SettingValue::text).collect()
}

/// `table1.csv`: one row per condition and depth, the condition's settings (`varying`) first;
/// see the parent module for the rules. `acc_ci95_<arch>` is the half-width of the mean's 95%
/// Student-t interval.
pub(super) fn table1(path: &Path, varying: &Varying, rows: &[Table1Row]) -> Result<Vec<u8>, TablesError> {
    let archs = Arch::ALL.map(Arch::name);
    let mut header = varying.names.clone();
    header.push("depth".to_owned());
    header.extend(archs.iter().map(|a| format!("params_{a}")));
    header.extend(archs.iter().map(|a| format!("flops_{a}")));
    for a in archs {
        for col in ["acc_mean", "acc_std", "acc_ci95", "n", "diverged", "failed", "pending"] {
            header.push(format!("{col}_{a}"));
        }
    }
    let rows = rows
        .iter()
        .map(|row| {
            let mut out = condition_cells(&row.condition);
            out.push(row.depth.to_string());
            out.extend(row.cells.iter().map(|c| cell(c.as_ref().and_then(|c| c.params))));
            out.extend(row.cells.iter().map(|c| cell(c.as_ref().and_then(|c| c.flops))));
            for c in &row.cells {
                match c {
                    Some(c) => {
                        let (mean, std) = mean_std(&c.accs);
                        out.extend([cell(mean), cell(std), ci_cell(&c.accs), c.accs.len().to_string()]);
                        out.extend([c.diverged, c.failed, c.pending].map(|k| k.to_string()));
                    }
                    None => out.extend(std::iter::repeat_n(String::new(), 7)),
                }
            }
            out
        })
        .collect();
    csv_bytes(path, &header, rows)
}

/// The half-width of the 95% interval of a cell's mean (mean ± this): empty without runs,
/// `n/a` from one run (no interval, not a zero-width one).
pub(super) fn ci_cell(values: &[f64]) -> String {
    match values.len() {
        0 => String::new(),
        1 => "n/a".to_owned(),
        _ => cell(crate::stats::ci95_half_width(values)),
    }
}

/// `table2.csv`: one row per analysed (condition, architecture, depth), the condition's
/// settings (`varying`) first; ratios in percent.
pub(super) fn table2(path: &Path, varying: &Varying, rows: &[Table2Row]) -> Result<Vec<u8>, TablesError> {
    let with_epoch = super::aggregate::shows_epoch(rows);
    let mut header = varying.names.clone();
    header.extend(["arch", "depth"].map(String::from));
    if with_epoch {
        header.push("epoch".to_owned());
    }
    header.extend(["runs", "total_gradients", "std"].map(String::from));
    header.extend(EPS_NAMES.iter().map(|e| format!("vanished_lt_{e}_pct")));
    header.push("nonfinite_pct".to_owned());
    header.extend(PROTOCOL_COLUMNS.map(String::from));
    let rows = rows
        .iter()
        .map(|r| {
            let mut out = condition_cells(&r.condition);
            out.extend([r.arch.name().to_owned(), r.depth.to_string()]);
            if with_epoch {
                out.push(r.epoch.to_string());
            }
            out.push(r.runs.to_string());
            out.extend([r.total_gradients.to_string(), r.std.to_string()]);
            out.extend(r.vanished_pct.iter().map(f64::to_string));
            out.push(r.nonfinite_pct.to_string());
            out.extend(protocol_cells(&r.protocols));
            out
        })
        .collect();
    csv_bytes(path, &header, rows)
}

/// Table 2's protocol columns: how the row's gradients were taken.
const PROTOCOL_COLUMNS: [&str; 5] =
    ["protocol_bn_mode", "protocol_loss", "protocol_batch_size", "protocol_batches", "protocol_split"];

/// The protocol cells of a Table 2 row: each field's value, or its values joined with `;` when
/// the row's runs were analysed differently.
fn protocol_cells(protocols: &[Protocol]) -> [String; 5] {
    let join = |f: &dyn Fn(&Protocol) -> String| {
        let mut values: Vec<String> = Vec::new();
        for v in protocols.iter().map(f) {
            if !values.contains(&v) {
                values.push(v);
            }
        }
        values.join(";")
    };
    [
        join(&|p| p.bn_mode().to_owned()),
        Protocol::LOSS.to_owned(),
        join(&|p| p.batch_size.to_string()),
        join(&|p| p.batches.to_string()),
        join(&|p| p.split()),
    ]
}

/// The settings columns of `runs.csv`, named as in the sweep file (the data set's and the
/// analysis's flattened, as [`crate::condition`] names them).
const SETTINGS: [&str; 26] = [
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
];

/// The state and figures columns of `runs.csv`, before the vanished ratios.
const FIGURES: [&str; 14] = [
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
];

/// `runs.csv`: one row per job, in table order, with its settings, its state, its figures and
/// its last error with whose fault it was (`error_kind`: `job`, `transfer`, `out-of-memory`,
/// ...; empty without an error).
pub(super) fn runs(path: &Path, entries: &[Entry<'_>]) -> Result<Vec<u8>, TablesError> {
    let mut header: Vec<String> = SETTINGS.iter().chain(&FIGURES).map(|c| (*c).to_owned()).collect();
    header.extend(EPS_NAMES.iter().map(|e| format!("vanished_lt_{e}_pct")));
    header.extend(["error", "error_kind", "spec"].map(String::from));
    let rows = entries.iter().map(runs_row).collect::<Result<_, _>>()?;
    csv_bytes(path, &header, rows)
}

/// One row of `runs.csv`, in the order of its header.
fn runs_row(entry: &Entry<'_>) -> Result<Vec<String>, TablesError> {
    let (run, f) = (entry.run, &entry.figures);
    let t = &run.spec.train;
    let analysis = run.spec.analysis.as_ref();
    let (data, data_train, data_test, data_seed) = match &run.spec.data {
        DataSpec::Cifar10 => ("cifar10", None, None, None),
        DataSpec::Synthetic { train, test, seed } => ("synthetic", Some(*train), Some(*test), Some(*seed)),
        DataSpec::None => ("none", None, None, None),
    };
    let milestones = t.lr_milestones.iter().map(f64::to_string).collect::<Vec<_>>().join(";");
    let spec = serde_json::to_string(&run.spec)
        .map_err(|e| TablesError::Inconsistent { job_id: run.job_id.clone(), problem: e.to_string() })?;
    let grad = f.grads.last();
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
    ];
    row.extend([
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
        cell(grad.and_then(|g| g.std)),
    ]);
    row.extend((0..EPSILONS.len()).map(|i| cell(grad.map(|g| g.vanished[i] * 100.0))));
    row.push(run.error.clone().unwrap_or_default());
    row.push(cell(run.error_kind.filter(|_| run.error.is_some()).map(|k| k.name())));
    row.push(spec);
    Ok(row)
}
