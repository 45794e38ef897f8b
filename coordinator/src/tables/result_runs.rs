//! `results_runs.csv`: `results.csv` before averaging, one row per run (program jobs and
//! built-in ones alike), so that a researcher can test or plot the runs themselves. The
//! columns: the job's id, the condition columns of `results.csv` (`implementation` when the
//! sweep has several, by the same short label, then the settings that vary), `seed` and
//! `repeat` when some run has them (cells as `results::cells` writes them), the run's state, and every number of any run's final result (empty where a run has none: a
//! run not completed, or one whose result did not report it). Rows in job order.

use std::collections::BTreeSet;
use std::path::Path;

use super::TablesError;
use super::csv_files::csv_bytes;
use super::results::{ResultRun, cells, condition_columns};

/// The file's name.
pub const RESULTS_RUNS_CSV: &str = "results_runs.csv";

/// `results_runs.csv`'s bytes; `path` only names the file in errors.
pub fn results_runs_csv(path: &Path, runs: &[ResultRun]) -> Result<Vec<u8>, TablesError> {
    let mut settings = condition_columns(runs);
    for averaged in ["seed", "repeat"] {
        if runs.iter().any(|r| r.settings.contains_key(averaged)) {
            settings.push(averaged.to_owned());
        }
    }
    let metrics: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
    let mut header = vec!["job_id".to_owned()];
    header.extend(settings.iter().cloned());
    header.push("state".to_owned());
    header.extend(metrics.iter().map(|m| (*m).clone()));
    let body = runs
        .iter()
        .zip(cells(runs, &settings))
        .map(|(run, cells)| {
            let mut line = vec![run.job_id.clone()];
            line.extend(cells);
            line.push(run.state.name().to_owned());
            line.extend(metrics.iter().map(|m| run.metrics.get(*m).map(|v| v.to_string()).unwrap_or_default()));
            line
        })
        .collect();
    csv_bytes(path, &header, body)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gridsweep_proto::v1::JobState;
    use serde_json::json;

    use super::*;

    fn run(id: &str, settings: serde_json::Value, state: JobState, metrics: &[(&str, f64)]) -> ResultRun {
        ResultRun {
            job_id: id.to_owned(),
            implementation: "python3 train.py".to_owned(),
            settings: settings.as_object().unwrap().clone(),
            state,
            metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn one_row_per_run_with_its_condition_seed_state_and_numbers() {
        let runs = [
            run("a", json!({"lr": 0.1, "seed": 1, "epochs": 5}), JobState::Completed, &[("test_acc", 40.5)]),
            run(
                "b",
                json!({"lr": 0.05, "seed": 1, "epochs": 5}),
                JobState::Completed,
                &[("test_acc", 21.0), ("loss", 0.6)],
            ),
            run("c", json!({"lr": 0.05, "seed": 2, "epochs": 5}), JobState::Failed, &[]),
        ];
        let bytes = results_runs_csv(Path::new("results_runs.csv"), &runs).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        // `epochs` is the same in every run: not a condition column.
        assert_eq!(
            text,
            "job_id,lr,seed,state,loss,test_acc\n\
             a,0.1,1,completed,,40.5\n\
             b,0.05,1,completed,0.6,21\n\
             c,0.05,2,failed,,\n"
        );
    }
}
