//! Tests of `results.csv`/`results.md`: conditions from the varying settings (seed averaged
//! over), the statistics over completed runs only, the counts, the implementation column.

use std::collections::BTreeMap;
use std::path::Path;

use gridsweep_proto::v1::JobState;
use serde_json::json;

use super::{ResultRun, conditions, results_csv, results_md};

fn run(id: &str, implementation: &str, settings: serde_json::Value, state: JobState, acc: Option<f64>) -> ResultRun {
    ResultRun {
        job_id: id.to_owned(),
        implementation: implementation.to_owned(),
        settings: settings.as_object().cloned().unwrap_or_default(),
        state,
        metrics: acc.map(|a| BTreeMap::from([("test_acc".to_owned(), a)])).unwrap_or_default(),
    }
}

#[test]
fn a_row_per_condition_with_statistics_over_completed_runs() {
    let runs = vec![
        run("a", "p", json!({"lr": 0.1, "seed": 1}), JobState::Completed, Some(60.0)),
        run("b", "p", json!({"lr": 0.1, "seed": 2}), JobState::Completed, Some(62.0)),
        run("c", "p", json!({"lr": 0.1, "seed": 3}), JobState::Completed, Some(64.0)),
        run("d", "p", json!({"lr": 0.05, "seed": 1}), JobState::Diverged, Some(10.0)),
        run("e", "p", json!({"lr": 0.05, "seed": 2}), JobState::Failed, None),
        run("f", "p", json!({"lr": 0.05, "seed": 3}), JobState::Completed, Some(50.0)),
    ];
    let csv = String::from_utf8(results_csv(Path::new("results.csv"), &runs).unwrap()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "lr,runs,completed,diverged,failed,unfinished,test_acc_mean,test_acc_std,test_acc_ci95,test_acc_n,test_acc_min,test_acc_max"
    );
    assert_eq!(lines[1], "0.05,3,1,1,1,0,50,,n/a,1,50,50", "the diverged run's 10 is never averaged");
    // The interval's half-width: t(0.975, 2) * 2 / sqrt(3), with t(0.975, 2) = 4.302652729911275
    // (scipy.stats.t.ppf(0.975, 2)), i.e. 4.968275...
    let cells: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(cells[..8], ["0.1", "3", "3", "0", "0", "0", "62", "2"]);
    let half: f64 = cells[8].parse().unwrap();
    assert!((half - 4.302652729911275 * 2.0 / 3f64.sqrt()).abs() < 1e-6, "{}", lines[2]);
    assert_eq!(cells[9..], ["3", "60", "64"]);
    let md = results_md("s", "test_acc", &runs);
    assert!(
        md.contains("| lr | test_acc mean ± std [95% CI] | n | min | max | diverged | failed | unfinished |"),
        "{md}"
    );
    assert!(md.contains("| 0.1 | 62.00 ± 2.00 [57.03, 66.97] | 3 | 60.00 | 64.00 | 0 | 0 | 0 |"), "{md}");
    assert!(md.contains("| 0.05 | 50.00 [CI n/a] | 1 | 50.00 | 50.00 | 1 | 1 | 0 |"), "{md}");
}

#[test]
fn two_implementations_get_a_column_with_short_labels() {
    // sweeps/crosscheck.yaml's command, as `ResultRun::program` joins it.
    let cross = "sh -c exec \"$GRIDSWEEP_PYTHON\" \"$GRIDSWEEP_EXAMPLES/train.py\"";
    let runs = vec![
        run("a", "builtin", json!({"arch": "resnet", "seed": 1}), JobState::Completed, Some(40.0)),
        run("b", cross, json!({"arch": "resnet", "seed": 1}), JobState::Running, None),
    ];
    let csv = String::from_utf8(results_csv(Path::new("r.csv"), &runs).unwrap()).unwrap();
    assert!(csv.starts_with("implementation,runs,"), "{csv}");
    assert!(csv.contains("\ntrain.py,1,0,0,0,1,,,,0,,\n"), "{csv}");
    assert!(results_md("s", "test_acc", &runs).contains("\n| train.py | - | 0 |"), "the Markdown table too");
    assert_eq!(conditions(&runs)[1].0, "implementation=train.py", "and the plots' labels");

    // Two scripts of the same name: the whole commands tell them apart.
    let runs = vec![
        run("a", "python3 v1/train.py", json!({}), JobState::Completed, Some(40.0)),
        run("b", "python3 v2/train.py", json!({}), JobState::Completed, Some(41.0)),
    ];
    let csv = String::from_utf8(results_csv(Path::new("r.csv"), &runs).unwrap()).unwrap();
    assert!(csv.contains("\npython3 v1/train.py,1,") && csv.contains("\npython3 v2/train.py,1,"), "{csv}");
}
