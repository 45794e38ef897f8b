//! Tests of the tables on a fabricated sweep: 2 depths x 3 architectures x 3 seeds with one
//! diverged, one failed and one pending run, checked against hand-computed means and sample
//! standard deviations. Sweeps that vary more than that are in `conditions`.

use std::collections::HashMap;
use std::path::Path;

use gridsweep_proto::job::{AnalysisConfig, Arch, DataSpec, JobSpec, TrainConfig};
use gridsweep_proto::result::RunStatus;
use serde_json::{Value, json};

use super::*;

mod comparisons;
mod conditions;
mod protocol;

/// A worker's result JSON, shaped as `TrainResult` serialises.
fn result(spec: &JobSpec, status: &str, acc: f64, params: u64, flops: u64, grad: Option<Value>) -> Value {
    json!({
        "config": spec.train,
        "params": params,
        "flops": flops,
        "status": status,
        "epochs": [
            {"epoch": 1, "lr": 0.1, "train_loss": 2.0, "train_acc": 20.0, "test_loss": 1.9, "test_acc": acc - 1.0,
             "seconds": 1.0, "images_per_s": 100.0},
            {"epoch": 2, "lr": 0.01, "train_loss": 1.5, "train_acc": 40.0, "test_loss": 1.4, "test_acc": acc,
             "seconds": 1.0, "images_per_s": 100.0}
        ],
        "final_test_acc": acc,
        "best_test_acc": acc + 0.5,
        "best_epoch": 1,
        "wall_seconds": 3.0,
        "train_seconds": 2.5,
        "resumed_from_epoch": null,
        "data": {"dir": "/data", "synthetic": true, "train_images": 256, "test_images": 128},
        "environment": {"device": "cpu", "device_name": "4 threads", "libtorch_version": "2.9.0",
                        "cuda_version": null, "cudnn_benchmark": false, "deterministic": true},
        "grad_analysis": grad,
    })
}

/// A gradient analysis with the given std and vanished ratios (fractions).
fn grad(std: f64, ratios: [f64; 4]) -> Value {
    json!({
        "config": {"batch_size": 100, "bn_train_mode": false},
        "batches": 100,
        "total_gradients": 2_486_812_200u64,
        "mean": 1e-6,
        "std": std,
        "vanished": [
            {"eps": 1e-4, "count": 1, "ratio": ratios[0]},
            {"eps": 1e-5, "count": 1, "ratio": ratios[1]},
            {"eps": 1e-6, "count": 1, "ratio": ratios[2]},
            {"eps": 1e-7, "count": 1, "ratio": ratios[3]}
        ],
        "histogram": [0, 1, 2],
        "zeros": 0,
        "below_range": 0,
        "above_range": 0,
        "blocks": []
    })
}

/// Params per architecture and depth (the paper's family), and FLOPs.
fn size(arch: Arch, depth: u32) -> (u64, u64) {
    match (arch, depth) {
        (Arch::Vgg, 26) => (366_938, 55_694_016),
        (_, 26) => (369_690, 56_005_312),
        (Arch::Vgg, _) => (24_865_370, 3_680_752_320),
        _ => (24_868_122, 3_681_063_616),
    }
}

/// The fabricated sweep. Accuracies (seed 1, 2, 3):
/// vgg-26 91.0 91.5 92.0; resnet-26 93.0 93.2 failed; grid-26 92.5 92.9 pending;
/// vgg-1538 30.0 34.0 diverged (at 10.0); resnet-1538 94.0 94.2 94.4; grid-1538 95.0 95.1 95.5.
/// resnet-1538 and grid-1538 carry gradient analyses.
fn sweep() -> Vec<RunRecord> {
    let accs: HashMap<(Arch, u32), [f64; 3]> = [
        ((Arch::Vgg, 26), [91.0, 91.5, 92.0]),
        ((Arch::Resnet, 26), [93.0, 93.2, f64::NAN]),
        ((Arch::Grid, 26), [92.5, 92.9, f64::NAN]),
        ((Arch::Vgg, 1538), [30.0, 34.0, 10.0]),
        ((Arch::Resnet, 1538), [94.0, 94.2, 94.4]),
        ((Arch::Grid, 1538), [95.0, 95.1, 95.5]),
    ]
    .into();
    let mut runs = Vec::new();
    // Built depth-descending and grid-first so that the tables must sort.
    for depth in [1538, 26] {
        for arch in [Arch::Grid, Arch::Resnet, Arch::Vgg] {
            for seed in 1..=3u64 {
                let analysed = depth == 1538 && arch != Arch::Vgg;
                let spec = JobSpec {
                    train: TrainConfig { epochs: 2, ..TrainConfig::paper(arch, depth, seed) },
                    analysis: analysed.then(AnalysisConfig::default),
                    data: DataSpec::Synthetic { train: 256, test: 128, seed: 7 },
                    repeat: 0,
                    program: None,
                };
                let acc = accs[&(arch, depth)][(seed - 1) as usize];
                let (params, flops) = size(arch, depth);
                let g = match (arch, analysed) {
                    (Arch::Resnet, true) => Some(grad(
                        [2.5e-3, 2.6e-3, 2.7e-3][(seed - 1) as usize],
                        [[0.64, 0.39, 0.22, 0.14], [0.65, 0.40, 0.23, 0.15], [0.66, 0.41, 0.24, 0.16]]
                            [(seed - 1) as usize],
                    )),
                    (Arch::Grid, true) => Some(grad(1.5e-3, [0.40, 0.16, 0.09, 0.06])),
                    _ => None,
                };
                let (state, res, error) = match (arch, depth, seed) {
                    (Arch::Resnet, 26, 3) => (JobState::Failed, None, Some("worker lost, 3 attempts".to_owned())),
                    (Arch::Grid, 26, 3) => (JobState::Pending, None, None),
                    (Arch::Vgg, 1538, 3) => {
                        (JobState::Diverged, Some(result(&spec, "diverged", acc, params, flops, None)), None)
                    }
                    _ => (JobState::Completed, Some(result(&spec, "completed", acc, params, flops, g)), None),
                };
                runs.push(RunRecord {
                    job_id: spec.id(),
                    spec,
                    state,
                    attempts: if state == JobState::Failed { 3 } else { 1 },
                    worker: res.as_ref().map(|_| "w1".to_owned()),
                    error_kind: error.as_ref().map(|_| FailureKind::Job),
                    error,
                    result: res.map(|v| serde_json::from_value(v).unwrap()),
                    memory_need: None,
                });
            }
        }
    }
    runs
}

/// A completed run of `spec` with `result`, on worker w1 at its first attempt.
fn completed(spec: JobSpec, result: TrainResult) -> RunRecord {
    RunRecord {
        job_id: spec.id(),
        spec,
        state: JobState::Completed,
        attempts: 1,
        worker: Some("w1".to_owned()),
        error: None,
        error_kind: None,
        result: Some(result),
        memory_need: None,
    }
}

/// A CSV file as a header and rows of name -> cell.
fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_owned)).collect()).collect()
}

/// The cell parsed as a number.
fn num(row: &HashMap<String, String>, col: &str) -> f64 {
    row[col].parse().unwrap_or_else(|e| panic!("{col} = '{}': {e}", row[col]))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn mean_std_uses_the_sample_deviation() {
    assert_eq!(mean_std(&[]), (None, None));
    assert_eq!(mean_std(&[3.0]), (Some(3.0), None));
    let (m, s) = mean_std(&[91.0, 91.5, 92.0]);
    assert!(close(m.unwrap(), 91.5) && close(s.unwrap(), 0.5));
    let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
    assert!(close(m.unwrap(), 5.0) && close(s.unwrap(), (32.0f64 / 7.0).sqrt()));
}

#[test]
fn table1_averages_completed_runs_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/out");
    let summary = write_tables(&sweep(), "fabricated", &out).unwrap();
    assert_eq!((summary.completed, summary.diverged, summary.failed, summary.pending), (15, 1, 1, 1));
    let names: Vec<_> = summary.files.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(
        names,
        ["table1.csv", "table2.csv", "runs.csv", "table1.md", "table2.md", "runs.jsonl", "comparisons.csv"]
    );
    assert!(summary.files.iter().all(|p| p.starts_with(&out) && p.is_file()));
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 7, "no temporary files left: {leftovers:?}");
    let jsonl = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let records: Vec<RunRecord> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), sweep().len(), "one record per run");

    let rows = read_csv(&out.join("table1.csv"));
    assert_eq!(rows.len(), 2);
    let (d26, d1538) = (&rows[0], &rows[1]);
    assert_eq!((d26["depth"].as_str(), d1538["depth"].as_str()), ("26", "1538"));
    assert_eq!(d26["params_vgg"], "366938");
    assert_eq!(d26["params_resnet"], "369690");
    assert_eq!(d1538["flops_grid"], "3681063616");

    // vgg-26: 91.0, 91.5, 92.0 -> 91.5 ± 0.5.
    assert!(close(num(d26, "acc_mean_vgg"), 91.5) && close(num(d26, "acc_std_vgg"), 0.5));
    assert_eq!(d26["n_vgg"], "3");
    // resnet-26: seed 3 failed -> 93.1 ± sqrt(0.02), n = 2, failed = 1.
    assert!(close(num(d26, "acc_mean_resnet"), 93.1) && close(num(d26, "acc_std_resnet"), 0.02f64.sqrt()));
    assert_eq!((d26["n_resnet"].as_str(), d26["failed_resnet"].as_str()), ("2", "1"));
    // grid-26: seed 3 pending -> 92.7 ± sqrt(0.08), n = 2, pending = 1.
    assert!(close(num(d26, "acc_mean_grid"), 92.7) && close(num(d26, "acc_std_grid"), 0.08f64.sqrt()));
    assert_eq!((d26["n_grid"].as_str(), d26["pending_grid"].as_str()), ("2", "1"));
    // vgg-1538: seed 3 diverged at 10.0, not averaged in -> 32 ± sqrt(8).
    assert!(close(num(d1538, "acc_mean_vgg"), 32.0) && close(num(d1538, "acc_std_vgg"), 8f64.sqrt()));
    assert_eq!((d1538["n_vgg"].as_str(), d1538["diverged_vgg"].as_str()), ("2", "1"));
    assert_eq!(d1538["params_vgg"], "24865370", "a diverged run's result still gives the size");
    // resnet-1538 94.2 ± 0.2; grid-1538 95.2 ± sqrt(0.07).
    assert!(close(num(d1538, "acc_mean_resnet"), 94.2) && close(num(d1538, "acc_std_resnet"), 0.2));
    assert!(close(num(d1538, "acc_mean_grid"), 95.2) && close(num(d1538, "acc_std_grid"), 0.07f64.sqrt()));
    for col in ["diverged_resnet", "failed_grid", "pending_vgg", "failed_vgg"] {
        assert_eq!(d1538[col], "0", "{col}");
    }
}

#[test]
fn table1_leaves_missing_archs_and_single_runs_empty() {
    let runs: Vec<_> = sweep()
        .into_iter()
        .filter(|r| r.spec.train.arch != Arch::Grid && !(r.spec.train.arch == Arch::Vgg && r.spec.train.seed > 1))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write_tables(&runs, "partial", dir.path()).unwrap();
    let rows = read_csv(&dir.path().join("table1.csv"));
    for col in ["params_grid", "flops_grid", "acc_mean_grid", "acc_std_grid", "n_grid", "diverged_grid"] {
        assert_eq!(rows[0][col], "", "{col}");
    }
    assert!(close(num(&rows[0], "acc_mean_vgg"), 91.0));
    assert_eq!((rows[0]["acc_std_vgg"].as_str(), rows[0]["n_vgg"].as_str()), ("", "1"));
    let md = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
    assert!(md.contains("91.00 (1)"), "{md}");
}

#[test]
fn table2_means_over_seeds_in_percent() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(&sweep(), "fabricated", dir.path()).unwrap();
    let rows = read_csv(&dir.path().join("table2.csv"));
    assert_eq!(rows.len(), 2);
    let (resnet, grid) = (&rows[0], &rows[1]);
    assert_eq!((resnet["arch"].as_str(), resnet["depth"].as_str(), resnet["runs"].as_str()), ("resnet", "1538", "3"));
    assert_eq!(grid["arch"], "grid");
    assert!(close(num(resnet, "total_gradients"), 2_486_812_200.0));
    assert!(close(num(resnet, "std"), 2.6e-3));
    let expected = [65.0, 40.0, 23.0, 15.0];
    for (e, want) in EPS_NAMES.iter().zip(expected) {
        assert!(close(num(resnet, &format!("vanished_lt_{e}_pct")), want), "{e}");
    }
    assert!(close(num(grid, "vanished_lt_1e-4_pct"), 40.0) && close(num(grid, "std"), 1.5e-3));
}

#[test]
fn runs_csv_has_every_job_and_reproduces_table1() {
    let runs = sweep();
    let dir = tempfile::tempdir().unwrap();
    write_tables(&runs, "fabricated", dir.path()).unwrap();
    let rows = read_csv(&dir.path().join("runs.csv"));
    assert_eq!(rows.len(), runs.len());
    let ids: std::collections::HashSet<_> = rows.iter().map(|r| r["job_id"].clone()).collect();
    assert!(runs.iter().all(|r| ids.contains(&r.job_id)));

    let failed = rows.iter().find(|r| r["state"] == "failed").unwrap();
    assert_eq!((failed["arch"].as_str(), failed["attempts"].as_str()), ("resnet", "3"));
    assert_eq!((failed["final_test_acc"].as_str(), failed["error"].as_str()), ("", "worker lost, 3 attempts"));
    let diverged = rows.iter().find(|r| r["state"] == "diverged").unwrap();
    assert_eq!(diverged["final_test_acc"], "10");
    let first = &rows[0];
    assert_eq!((first["depth"].as_str(), first["arch"].as_str(), first["seed"].as_str()), ("26", "vgg", "1"));
    assert_eq!(
        (first["epochs"].as_str(), first["lr_milestones"].as_str(), first["data"].as_str()),
        ("2", "0.5;0.75", "synthetic")
    );
    assert_eq!((first["device_name"].as_str(), first["epochs_run"].as_str()), ("4 threads", "2"));
    let spec: JobSpec = serde_json::from_str(&first["spec"]).unwrap();
    assert_eq!(spec.id(), first["job_id"]);

    // Recompute table 1's accuracies from runs.csv: the same numbers, bit for bit.
    let table1 = read_csv(&dir.path().join("table1.csv"));
    for t in &table1 {
        for arch in ["vgg", "resnet", "grid"] {
            let accs: Vec<f64> = rows
                .iter()
                .filter(|r| r["depth"] == t["depth"] && r["arch"] == arch && r["state"] == "completed")
                .map(|r| num(r, "final_test_acc"))
                .collect();
            let (m, s) = mean_std(&accs);
            assert_eq!(m.map(|v| v.to_string()).unwrap_or_default(), t[&format!("acc_mean_{arch}")]);
            assert_eq!(s.map(|v| v.to_string()).unwrap_or_default(), t[&format!("acc_std_{arch}")]);
        }
    }
}

#[test]
fn markdown_puts_the_paper_beside_ours() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(&sweep(), "fabricated", dir.path()).unwrap();
    let t1 = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
    let t2 = std::fs::read_to_string(dir.path().join("table2.md")).unwrap();
    // The paper's figures.
    for paper in ["93.07", "92.68", "91.34", "0.37M", "56.01M", "94.21", "95.09", "24.87M", "3.68G"] {
        assert!(t1.contains(paper), "table1.md lacks the paper's {paper}:\n{t1}");
    }
    assert!(t1.contains("| 10.00 |"), "the paper's chance-level VGG-1538:\n{t1}");
    for paper in ["64.64%", "39.55%", "22.68%", "14.72%", "40.10%", "6.51%", "2.60e-3", "1.52e-3", "~2.49e9"] {
        assert!(t2.contains(paper), "table2.md lacks the paper's {paper}:\n{t2}");
    }
    // Ours, with the runs left out marked.
    for ours in [
        "91.50 ± 0.50 (3)",
        "93.10 ± 0.14 (2) [91.83, 94.37] ⚠ **1 failed**",
        "92.70 ± 0.28 (2) [90.16, 95.24] ⚠ **1 pending**",
    ] {
        assert!(t1.contains(ours), "table1.md lacks {ours}:\n{t1}");
    }
    assert!(t1.contains("32.00 ± 2.83 (2) [6.59, 57.41] ⚠ **1 diverged**"), "{t1}");
    assert!(t1.contains("0.37M") && t1.contains("55.69M") && t1.contains("synthetic data"), "{t1}");
    assert!(t2.contains("| resnet-1538 | 3 | 2.49e9 | ~2.49e9 | 2.60e-3 | 2.60e-3 | 65.00% | 64.64% |"), "{t2}");
    assert!(t2.contains("| grid-1538 | 3 |") && t2.contains("40.00% | 40.10%"), "{t2}");
    // A depth the paper lacks.
    let mut runs = sweep();
    for r in &mut runs {
        r.spec.train.depth = if r.spec.train.depth == 26 { 8 } else { 1538 };
    }
    write_tables(&runs, "odd", dir.path()).unwrap();
    let t1 = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
    let row8 = t1.lines().find(|l| l.starts_with("| 8 |")).unwrap();
    assert!(row8.contains("| — |") && !row8.contains("93.07"), "{row8}");
}

/// A result that does not fit its run (the schema itself is checked when a result is taken;
/// see `gridsweep_proto::result`).
#[test]
fn results_that_contradict_their_run_name_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let mut runs = sweep();
    let victim = runs.iter_mut().find(|r| r.state == JobState::Diverged).unwrap();
    victim.result = None;
    let id = victim.job_id.clone();
    let msg = write_tables(&runs, "bad", &out).unwrap_err().to_string();
    assert!(msg.contains(&id) && msg.contains("diverged but has no result"), "{msg}");

    let mut runs = sweep();
    let victim = runs.iter_mut().find(|r| r.state == JobState::Completed).unwrap();
    victim.result.as_mut().unwrap().status = RunStatus::Stopped;
    let msg = write_tables(&runs, "bad", &out).unwrap_err().to_string();
    assert!(msg.contains("status is 'stopped'"), "{msg}");

    let mut runs = sweep();
    let victim = runs.iter_mut().find(|r| r.state == JobState::Completed).unwrap();
    victim.result.as_mut().unwrap().final_test_acc = None;
    let msg = write_tables(&runs, "bad", &out).unwrap_err().to_string();
    assert!(msg.contains("without a final test accuracy"), "{msg}");

    let mut runs = sweep();
    let victim = runs.iter_mut().find(|r| r.state == JobState::Completed).unwrap();
    victim.result.as_mut().unwrap().params = 1;
    let id = victim.job_id.clone();
    let msg = write_tables(&runs, "bad", &out).unwrap_err().to_string();
    assert!(msg.contains(&id) && msg.contains("params = ") && msg.contains("reports "), "{msg}");
    assert!(!out.exists(), "nothing is written when a result is bad");
}

#[test]
fn run_records_serialise_with_lowercase_states() {
    let run = sweep().into_iter().find(|r| r.state == JobState::Diverged).unwrap();
    let json = serde_json::to_value(&run).unwrap();
    assert_eq!(json["state"], "diverged");
    let back: RunRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, run);
    let running: JobState = serde_json::from_str("\"running\"").unwrap();
    assert_eq!(running, JobState::Running);
}

/// Analysis-only runs (0 epochs, analysed at initialisation): no accuracy in Table 1, which says
/// so; Table 2 shows the epoch, and never the paper's after-training figures beside them.
#[test]
fn analysis_only_runs_have_no_accuracy_and_no_paper_figures() {
    let mut runs = Vec::new();
    for arch in [Arch::Resnet, Arch::Grid] {
        let spec = JobSpec {
            train: TrainConfig { epochs: 0, ..TrainConfig::paper(arch, 1538, 42) },
            analysis: Some(AnalysisConfig { at_epochs: vec![0], ..AnalysisConfig::default() }),
            data: DataSpec::Cifar10,
            repeat: 0,
            program: None,
        };
        let mut res = result(&spec, "completed", 50.0, 24_868_122, 3_681_063_616, None);
        res["epochs"] = json!([]);
        res["final_test_acc"] = Value::Null;
        (res["best_test_acc"], res["best_epoch"]) = (Value::Null, Value::Null);
        let mut g = grad(4.65, [0.0211, 0.0021, 0.0002, 0.0]);
        (g["epoch"], g["histogram"]) = (json!(0), json!([]));
        res["grad_analysis"] = g;
        let result: TrainResult = serde_json::from_value(res).unwrap();
        result.validate().unwrap();
        runs.push(completed(spec, result));
    }
    let (t1, t2) = render_markdown(&runs, "init").unwrap();
    assert!(t1.contains("— (1 analysis-only, no accuracy)"), "{t1}");
    let row = t2.lines().find(|l| l.starts_with("| resnet-1538 |")).unwrap();
    assert!(row.starts_with("| resnet-1538 | 0 (init) | 1 |"), "{row}");
    assert!(!row.contains("64.64%") && !row.contains("2.60e-3"), "no paper figures at initialisation: {row}");
}
