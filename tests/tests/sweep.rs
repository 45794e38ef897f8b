//! Whole sweeps through the real binaries on loopback: a coordinator with two local workers runs
//! a small synthetic sweep to its tables, a second run on the same state starts nothing, and the
//! sweep files expand (or fail) as documented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gridsweep_e2e::{run, run_sweep, scratch, tiny_sweep};

/// Rows of a CSV file as maps from header to value.
fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.to_owned(), v.to_owned())).collect())
        .collect()
}

fn mean_std(xs: &[f64]) -> (f64, Option<f64>) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let std = (xs.len() > 1).then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (mean, std)
}

#[test]
fn a_sweep_runs_to_its_tables_with_two_workers_and_never_twice() {
    let dir = scratch("sweep");
    let sweep = tiny_sweep(&dir, "smoke-e2e", "vgg, resnet, grid", "1, 2");
    let (state, out) = (dir.join("state"), dir.join("out"));
    let first = run_sweep(&sweep, &state, &out, 2, &[]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("6 jobs (6 new, 0 already"), "{stdout}");

    let runs = csv_rows(&out.join("runs.csv"));
    assert_eq!(runs.len(), 6, "one row per job");
    assert!(runs.iter().all(|r| r["state"] == "completed"), "{runs:?}");
    let ids: BTreeSet<&str> = runs.iter().map(|r| r["job_id"].as_str()).collect();
    assert_eq!(ids.len(), 6);
    let workers: BTreeSet<&str> = runs.iter().map(|r| r["worker"].as_str()).collect();
    assert_eq!(workers.len(), 2, "both local workers took jobs: {workers:?}");

    // Every table1.csv mean and std equals what runs.csv gives.
    let table1 = csv_rows(&out.join("table1.csv"));
    assert_eq!(table1.len(), 1);
    for arch in ["vgg", "resnet", "grid"] {
        let accs: Vec<f64> = runs
            .iter()
            .filter(|r| r["arch"] == arch && r["state"] == "completed")
            .map(|r| r["final_test_acc"].parse().unwrap())
            .collect();
        let (mean, std) = mean_std(&accs);
        let row = &table1[0];
        let got_mean: f64 = row[&format!("acc_mean_{arch}")].parse().unwrap();
        let got_std: f64 = row[&format!("acc_std_{arch}")].parse().unwrap();
        assert!((got_mean - mean).abs() < 1e-9, "{arch}: {got_mean} vs {mean}");
        assert!((got_std - std.unwrap()).abs() < 1e-9, "{arch}: {got_std} vs {std:?}");
        assert_eq!(row[&format!("n_{arch}")], "2");
    }
    let table2 = csv_rows(&out.join("table2.csv"));
    assert_eq!(table2.len(), 1, "analysis only for grid");
    assert_eq!(table2[0]["arch"], "grid");
    assert_eq!(table2[0]["total_gradients"].parse::<f64>().unwrap(), 78_042.0 * 1.0);

    // The same sweep on the same state: nothing new, no worker started, the same tables.
    let out2 = dir.join("out2");
    let second = run_sweep(&sweep, &state, &out2, 2, &[]);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{stdout}");
    assert!(stdout.contains("(0 new, 6 already"), "{stdout}");
    assert!(!stdout.contains("local worker"), "a finished sweep starts no worker: {stdout}");
    assert_eq!(
        std::fs::read_to_string(out.join("table1.csv")).unwrap(),
        std::fs::read_to_string(out2.join("table1.csv")).unwrap()
    );
}

#[test]
fn the_paper_sweep_expands_to_36_stable_jobs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sweeps/paper.yaml");
    let a = run("coordinator", &["expand", root.to_str().unwrap()]);
    let b = run("coordinator", &["expand", root.to_str().unwrap()]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8_lossy(&a.stdout);
    assert!(text.trim_end().ends_with("36 jobs"), "{text}");
    let ids: BTreeSet<&str> =
        text.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.len() == 12).collect();
    assert_eq!(ids.len(), 36);
    assert_eq!(text.lines().filter(|l| l.contains("analysis")).count(), 9, "the 1538 models of 3 archs x 3 seeds");
}

#[test]
fn bad_sweep_files_name_the_file_line_and_key() {
    let dir = scratch("bad-yaml");
    let cases = [
        (
            "unknown.yaml",
            "name: x\ndata: {kind: cifar10}\nepochz: 3\naxes: {arch: [grid], depth: [26], seed: [1]}\n",
            "unknown.yaml:3",
        ),
        (
            "type.yaml",
            "name: x\ndata: {kind: cifar10}\ntrain:\n  epochs: many\naxes: {arch: [grid], depth: [26], seed: [1]}\n",
            "type.yaml:4",
        ),
        (
            "depth.yaml",
            "name: x\ndata: {kind: cifar10}\naxes:\n  arch: [grid]\n  depth: [20]\n  seed: [1]\n",
            "8 or 26",
        ),
        (
            "empty.yaml",
            "name: x\ndata: {kind: cifar10}\naxes:\n  arch: []\n  depth: [26]\n  seed: [1]\n",
            "empty.yaml:4",
        ),
    ];
    for (file, text, expected) in cases {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        let out = run("coordinator", &["expand", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(expected), "{file}: expected {expected:?} in {stderr}");
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
    }
}
