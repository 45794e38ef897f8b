//! `epochs.csv`'s format: one row per job and reported epoch in long format, the built-in
//! trainer's epochs first, then program jobs' epoch lines. A program's line is free-form (any
//! metric names), so it fills the file's own figure columns from the keys of the same names (`train_loss`,
//! `train_acc`, `test_loss`, `test_acc`, `seconds`, `epoch_lr`; absent: an empty cell) and
//! brings its other metrics as extra columns after `attempt`, named as in the line and sorted.
//! A sweep without program jobs gets no extra column, so its file is what it was.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::condition::Varying;
use crate::store::{EpochRow, JobRow, ProgramEpoch};
use crate::tables::{TablesError, cell as figure_cell, csv_bytes};

/// The figure columns of `epochs.csv` that a program's line fills by name.
const FIGURES: [&str; 6] = ["epoch_lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"];

/// Keys of a line that are no metric column: the epoch (a column of its own) and the job's total.
const NOT_METRICS: [&str; 2] = ["epoch", "epochs"];

/// The CSV: job id, arch, depth, seed, repeat, each setting that varies between the sweep's
/// jobs (named as in the sweep file), then the epoch's figures (`epoch_lr`: the learning rate
/// the schedule used in that epoch, apart from the `lr` setting), its worker and attempt.
/// Missing figures (a non-finite loss) are empty cells; `path` only names the file in errors.
/// Program jobs' `lines` follow the built-in rows (`programs`): their other metrics are extra
/// columns after `attempt`, empty in the built-in rows; without program lines there are none.
pub fn epochs_csv(
    path: &Path,
    jobs: &[JobRow],
    log: &[EpochRow],
    lines: &[ProgramEpoch],
) -> Result<Vec<u8>, TablesError> {
    let varying = Varying::of(jobs.iter().map(|j| &j.spec), false);
    let mut header: Vec<String> = ["job_id", "arch", "depth", "seed", "repeat"].map(String::from).into();
    header.extend(varying.names.iter().cloned());
    header.extend(
        ["epoch", "epoch_lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "worker", "attempt"]
            .map(String::from),
    );
    let extras = extra_columns(lines);
    header.extend(extras.iter().cloned());
    // Each job's leading cells, once: a long sweep has hundreds of epochs per job.
    let leading: HashMap<&str, Vec<String>> = jobs
        .iter()
        .map(|j| {
            let t = &j.spec.train;
            let mut cells = match &j.spec.program {
                Some(p) => leading(j, p.settings.get("seed")),
                None => {
                    let mut cells = vec![j.id.clone(), t.arch.to_string(), t.depth.to_string(), t.seed.to_string()];
                    cells.push(j.spec.repeat.to_string());
                    cells
                }
            };
            cells.extend(varying.key(&j.spec).iter().map(|v| v.text()));
            (j.id.as_str(), cells)
        })
        .collect();
    let mut rows: Vec<Vec<String>> = log
        .iter()
        .filter_map(|row| {
            let mut record = leading.get(row.job.as_str())?.clone();
            let m = &row.metrics;
            record.extend([
                m.epoch.to_string(),
                m.lr.to_string(),
                figure_cell(m.train_loss),
                m.train_acc.to_string(),
                figure_cell(m.test_loss),
                m.test_acc.to_string(),
                m.seconds.to_string(),
                row.worker.clone().unwrap_or_default(),
                row.attempt.to_string(),
            ]);
            record.extend(extras.iter().map(|_| String::new()));
            Some(record)
        })
        .collect();
    rows.extend(lines.iter().filter_map(|line| {
        let mut record = leading.get(line.job.as_str())?.clone();
        record.extend(row_cells(line, &extras));
        Some(record)
    }));
    csv_bytes(path, &header, rows)
}

/// The extra columns: every key of the program lines that is neither a figure column nor
/// `epoch`/`epochs`, sorted.
fn extra_columns(lines: &[ProgramEpoch]) -> Vec<String> {
    let names: BTreeSet<&String> = lines
        .iter()
        .flat_map(|l| l.metrics.keys())
        .filter(|k| !FIGURES.contains(&k.as_str()) && !NOT_METRICS.contains(&k.as_str()))
        .collect();
    names.into_iter().cloned().collect()
}

/// A value of a line as a cell: a number as the line wrote it, null (or absent) as empty.
fn cell(metrics: &Map<String, Json>, key: &str) -> String {
    match metrics.get(key) {
        Some(Json::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The leading cells of a program job: its id, its model as the status names it (`program`
/// and depth 0 without one), its `seed` setting (empty without one) and its repeat.
fn leading(j: &JobRow, program_seed: Option<&Json>) -> Vec<String> {
    let (arch, depth) = crate::view::model_of(j);
    let seed = program_seed.and_then(Json::as_i64).map(|s| s.to_string()).unwrap_or_default();
    vec![j.id.clone(), arch.to_owned(), depth.to_string(), seed, j.spec.repeat.to_string()]
}

/// The cells of one line after the leading ones: epoch, the figure columns, worker, attempt,
/// then `extras` in order.
fn row_cells(line: &ProgramEpoch, extras: &[String]) -> Vec<String> {
    let mut cells = vec![line.epoch.to_string()];
    cells.extend(FIGURES.iter().map(|k| cell(&line.metrics, k)));
    cells.push(line.worker.clone().unwrap_or_default());
    cells.push(line.attempt.to_string());
    cells.extend(extras.iter().map(|k| cell(&line.metrics, k)));
    cells
}

#[cfg(test)]
mod tests {
    use gridsweep_proto::job::{Arch, DataSpec, Goal, JobSpec, Metric, ProgramSpec, TrainConfig};
    use gridsweep_proto::result::{RunStatus, TrainResult};

    use crate::store::{Grant, Store};

    #[test]
    fn program_lines_join_epochs_csv_with_their_own_metrics_as_extra_columns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let builtin = JobSpec {
            train: TrainConfig { epochs: 2, ..TrainConfig::paper(Arch::Resnet, 8, 1) },
            analysis: None,
            data: DataSpec::Cifar10,
            repeat: 0,
            program: None,
        };
        let settings = serde_json::json!({"width": 64, "seed": 3}).as_object().cloned().unwrap();
        let metric = Metric { name: "val_f1".into(), goal: Goal::Max };
        let program = ProgramSpec { command: vec!["t".into()], env: Default::default(), metric, settings };
        let program = JobSpec { program: Some(program), data: DataSpec::None, ..builtin.clone() };
        store.add_sweep("s", "s.yaml", &[builtin.clone(), program.clone()], 3).unwrap();
        let out = dir.path().join("out");
        let read = || {
            let path = crate::live::write_epochs(&store, &out).unwrap();
            let mut reader = csv::Reader::from_path(&path).unwrap();
            let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
            let rows: Vec<Vec<String>> =
                reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
            (header, rows)
        };
        let w = store.register_worker("w", "cpu", None).unwrap();
        for _ in 0..2 {
            let Grant::Lease(l) = store.grant(&w, 60.0, false).unwrap() else { panic!("a lease") };
            let lines: Vec<(u32, String)> = if l.job_id == builtin.id() {
                let r = TrainResult::simulated(builtin.train.clone(), RunStatus::Completed, &[30.0, 40.0]);
                r.epochs.iter().map(|m| (m.epoch, serde_json::to_string(m).unwrap())).collect()
            } else {
                vec![
                    (1, r#"{"epoch": 1, "epochs": 2, "val_f1": 0.5, "train_loss": 1.5, "seconds": 2.0}"#.into()),
                    (2, r#"{"epoch": 2, "val_f1": 0.75, "grad_norm": null, "test_acc": 61.2}"#.into()),
                ]
            };
            store.heartbeat(&w, &l.job_id, l.token, &lines, 60.0).unwrap();
        }
        let (header, rows) = read();
        let builtin_header =
            ["epoch", "epoch_lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "worker", "attempt"];
        let at = |name: &str| header.iter().position(|h| h == name).unwrap();
        // The built-in columns as they were, then the program's own metrics, sorted.
        assert_eq!(header[at("epoch")..=at("attempt")], builtin_header);
        assert_eq!(header[at("attempt") + 1..], ["grad_norm", "val_f1"]);
        assert_eq!(rows.len(), 4);
        let (b, p): (Vec<&Vec<String>>, Vec<&Vec<String>>) = rows.iter().partition(|r| r[0] == builtin.id());
        assert_eq!((b.len(), p.len()), (2, 2));
        assert_eq!((&*b[1][at("test_acc")], &*b[1][at("val_f1")]), ("40", ""), "built-in rows: extras empty");
        let id = program.id();
        assert_eq!(p[0][..5], [id.as_str(), "program", "0", "3", "0"]);
        assert_eq!(
            [&p[0][at("epoch")], &p[0][at("train_loss")], &p[0][at("seconds")], &p[0][at("test_acc")]],
            ["1", "1.5", "2.0", ""]
        );
        assert_eq!([&p[0][at("worker")], &p[0][at("attempt")], &p[0][at("val_f1")]], [w.as_str(), "1", "0.5"]);
        assert_eq!([&p[1][at("test_acc")], &p[1][at("val_f1")], &p[1][at("grad_norm")]], ["61.2", "0.75", ""]);
    }

    #[test]
    fn a_sweep_without_program_jobs_gets_no_extra_column() {
        assert!(super::extra_columns(&[]).is_empty());
    }
}
