//! Tests of the grouping by condition: a fabricated sweep with a learning-rate axis (resnet and
//! grid x depths 26 and 1538 x lr 0.1 and 0.05 x 3 seeds, gradient analyses at 1538) has a row
//! per (lr, depth) with an `lr` column and means that `runs.csv` reproduces; the paper's shape
//! keeps its columns; analysis settings split Table 2 only.

use super::*;

/// The learning rates of the fabricated sweep, in the file's order (not the tables').
const LRS: [f64; 2] = [0.1, 0.05];

/// Test accuracy of one run: distinct per arch, depth, lr and seed, with awkward decimals.
fn acc(arch: Arch, depth: u32, lr: f64, seed: u64) -> f64 {
    let arch_offset = if arch == Arch::Grid { 1.0 } else { 0.0 };
    let depth_offset = if depth == 1538 { 2.0 } else { 0.0 };
    90.0 + arch_offset + depth_offset - 20.0 * lr + 0.37 * seed as f64
}

/// The lr sweep, every run completed, built in the reverse of the tables' order so that they
/// must sort.
pub(super) fn lr_sweep() -> Vec<RunRecord> {
    let mut runs = Vec::new();
    for lr in LRS {
        for depth in [1538, 26] {
            for arch in [Arch::Grid, Arch::Resnet] {
                for seed in (1..=3u64).rev() {
                    let analysed = depth == 1538;
                    let spec = JobSpec {
                        train: TrainConfig { epochs: 2, lr, ..TrainConfig::paper(arch, depth, seed) },
                        analysis: analysed.then(AnalysisConfig::default),
                        data: DataSpec::Synthetic { train: 256, test: 128, seed: 7 },
                        repeat: 0,
                        program: None,
                    };
                    let (params, flops) = size(arch, depth);
                    let std = 2e-3 + lr * 1e-2 + seed as f64 * 1e-4;
                    let g = analysed.then(|| grad(std, [0.5 + lr, 0.3, 0.2, 0.1]));
                    let res = result(&spec, "completed", acc(arch, depth, lr, seed), params, flops, g);
                    runs.push(completed(spec, serde_json::from_value(res).unwrap()));
                }
            }
        }
    }
    runs
}

/// The header of a CSV file.
fn header(path: &Path) -> Vec<String> {
    csv::Reader::from_path(path).unwrap().headers().unwrap().iter().map(str::to_owned).collect()
}

/// The mean and std of `runs.csv`'s `column` over the completed rows where every `(name, value)`
/// of `filter` matches, as the tables write them.
fn recompute(runs: &[HashMap<String, String>], filter: &[(&str, &str)], column: &str) -> (String, String) {
    let values: Vec<f64> = runs
        .iter()
        .filter(|r| r["state"] == "completed" && filter.iter().all(|(k, v)| r[*k] == *v))
        .map(|r| num(r, column))
        .collect();
    let (m, s) = mean_std(&values);
    (cell(m), cell(s))
}

#[test]
fn an_lr_axis_gives_a_row_per_condition_and_depth() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(&lr_sweep(), "lr", dir.path()).unwrap();
    let head = header(&dir.path().join("table1.csv"));
    assert_eq!(head[..3], ["lr", "depth", "params_vgg"], "the varying setting leads");
    let table1 = read_csv(&dir.path().join("table1.csv"));
    let keys: Vec<(&str, &str)> = table1.iter().map(|r| (r["lr"].as_str(), r["depth"].as_str())).collect();
    assert_eq!(keys, [("0.05", "26"), ("0.05", "1538"), ("0.1", "26"), ("0.1", "1538")]);

    let runs = read_csv(&dir.path().join("runs.csv"));
    let lrs: Vec<f64> = runs.iter().map(|r| num(r, "lr")).collect();
    assert!(lrs.windows(2).all(|w| w[0] <= w[1]), "runs.csv is ordered by condition: {lrs:?}");
    for t in &table1 {
        assert_eq!((t["n_vgg"].as_str(), t["acc_mean_vgg"].as_str()), ("", ""), "no vgg in this sweep");
        for arch in ["resnet", "grid"] {
            assert_eq!(t[&format!("n_{arch}")], "3", "{arch} at {t:?}");
            let filter = [("lr", t["lr"].as_str()), ("depth", t["depth"].as_str()), ("arch", arch)];
            let (mean, std) = recompute(&runs, &filter, "final_test_acc");
            assert_eq!(t[&format!("acc_mean_{arch}")], mean, "{arch} lr={} depth={}", t["lr"], t["depth"]);
            assert_eq!(t[&format!("acc_std_{arch}")], std, "{arch} lr={} depth={}", t["lr"], t["depth"]);
        }
    }
    // By hand: resnet-26 at lr 0.05 is 89 + 0.37 x (1, 2, 3) -> 89.74 ± 0.37.
    assert!(close(num(&table1[0], "acc_mean_resnet"), 89.74) && close(num(&table1[0], "acc_std_resnet"), 0.37));
    // lr 0.1 is one point lower throughout.
    assert!(close(num(&table1[2], "acc_mean_grid"), num(&table1[0], "acc_mean_grid") - 1.0));

    let head = header(&dir.path().join("table2.csv"));
    assert_eq!(head[..3], ["lr", "arch", "depth"]);
    let table2 = read_csv(&dir.path().join("table2.csv"));
    let keys: Vec<(&str, &str)> = table2.iter().map(|r| (r["lr"].as_str(), r["arch"].as_str())).collect();
    assert_eq!(keys, [("0.05", "resnet"), ("0.05", "grid"), ("0.1", "resnet"), ("0.1", "grid")]);
    for t in &table2 {
        assert_eq!(t["runs"], "3");
        let filter = [("lr", t["lr"].as_str()), ("depth", t["depth"].as_str()), ("arch", t["arch"].as_str())];
        assert_eq!(t["std"], recompute(&runs, &filter, "grad_std").0, "{t:?}");
        let pct = recompute(&runs, &filter, "vanished_lt_1e-4_pct").0;
        assert_eq!(t["vanished_lt_1e-4_pct"], pct, "{t:?}");
    }
}

#[test]
fn markdown_tables_lead_with_the_condition_beside_the_paper() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(&lr_sweep(), "lr", dir.path()).unwrap();
    let t1 = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
    assert!(t1.contains("| lr | layers | params vgg |"), "{t1}");
    assert!(t1.contains("Grouped by condition") && t1.contains("differ in `lr`"), "{t1}");
    let rows: Vec<&str> = t1.lines().filter(|l| l.starts_with("| 0.")).collect();
    assert_eq!(rows.len(), 4, "{t1}");
    assert!(rows[0].starts_with("| 0.05 | 26 |") && rows[3].starts_with("| 0.1 | 1538 |"), "{rows:?}");
    assert!(rows[0].contains("89.74 ± 0.37 (3)") && rows[0].contains("| 93.07 |"), "ours beside the paper's");
    assert!(rows[2].contains("88.74 ± 0.37 (3)") && rows[2].contains("| 93.07 |"), "{}", rows[2]);
    let t2 = std::fs::read_to_string(dir.path().join("table2.md")).unwrap();
    assert!(t2.contains("| lr | model | runs |"), "{t2}");
    assert!(t2.contains("| 0.1 | resnet-1538 | 3 |") && t2.contains("| 64.64% |"), "{t2}");
}

#[test]
fn cells_check_their_size_and_count_failures_per_condition() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = lr_sweep();
    let victim = runs.iter_mut().find(|r| r.spec.train.lr == 0.05 && r.spec.train.depth == 26).unwrap();
    victim.result.as_mut().unwrap().params += 1;
    let id = victim.job_id.clone();
    let msg = write_tables(&runs, "lr", dir.path()).unwrap_err().to_string();
    assert!(msg.contains(&id) && msg.contains("params = ") && msg.contains("lr=0.05"), "{msg}");

    let mut runs = lr_sweep();
    let victim = runs
        .iter_mut()
        .find(|r| r.spec.train.lr == 0.1 && r.spec.train.depth == 26 && r.spec.train.arch == Arch::Grid)
        .unwrap();
    (victim.state, victim.result) = (JobState::Failed, None);
    (victim.error, victim.error_kind) = (Some("CUDA out of memory".to_owned()), Some(FailureKind::OutOfMemory));
    write_tables(&runs, "lr", dir.path()).unwrap();
    let table1 = read_csv(&dir.path().join("table1.csv"));
    let counts: Vec<(&str, &str, &str)> =
        table1.iter().map(|r| (r["lr"].as_str(), r["n_grid"].as_str(), r["failed_grid"].as_str())).collect();
    assert_eq!(counts, [("0.05", "3", "0"), ("0.05", "3", "0"), ("0.1", "2", "1"), ("0.1", "3", "0")]);
    let csv_runs = read_csv(&dir.path().join("runs.csv"));
    let kinds: Vec<&str> = csv_runs.iter().map(|r| r["error_kind"].as_str()).filter(|k| !k.is_empty()).collect();
    assert_eq!(kinds, ["out-of-memory"]);
    let head = header(&dir.path().join("runs.csv"));
    let at = |c: &str| head.iter().position(|h| h == c).unwrap();
    assert_eq!(at("error_kind"), at("error") + 1, "error_kind sits next to error");
}

#[test]
fn the_papers_shape_keeps_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = sweep();
    // An execution setting varies: it is not a condition.
    for (i, r) in runs.iter_mut().enumerate() {
        r.spec.train.eval_batch_size = 100 + i as i64;
    }
    write_tables(&runs, "paper-shaped", dir.path()).unwrap();
    assert_eq!(header(&dir.path().join("table1.csv"))[0], "depth");
    assert_eq!(header(&dir.path().join("table2.csv"))[0], "arch", "analysed at 1538 only is no condition");
    assert_eq!(read_csv(&dir.path().join("table1.csv")).len(), 2);
    let t1 = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
    assert!(t1.contains("\n| layers | params vgg |") && !t1.contains("Grouped by condition"), "{t1}");
    let t2 = std::fs::read_to_string(dir.path().join("table2.md")).unwrap();
    assert!(t2.contains("\n| model | runs |") && !t2.contains("Grouped by condition"), "{t2}");
    let failed: Vec<_> =
        read_csv(&dir.path().join("runs.csv")).into_iter().filter(|r| r["state"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error_kind"], "job");
}

#[test]
fn analysis_settings_split_table_2_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = sweep();
    let victim = runs
        .iter_mut()
        .find(|r| r.spec.train.arch == Arch::Resnet && r.spec.train.depth == 1538 && r.spec.train.seed == 3)
        .unwrap();
    victim.spec.analysis = Some(AnalysisConfig { bn_train_mode: true, ..AnalysisConfig::default() });
    victim.job_id = victim.spec.id();
    write_tables(&runs, "bn", dir.path()).unwrap();
    assert_eq!(header(&dir.path().join("table1.csv"))[0], "depth", "the analysis does not change training");
    let table2 = read_csv(&dir.path().join("table2.csv"));
    let rows: Vec<(&str, &str, &str)> =
        table2.iter().map(|r| (r["analysis_bn_train_mode"].as_str(), r["arch"].as_str(), r["runs"].as_str())).collect();
    assert_eq!(rows, [("false", "resnet", "2"), ("false", "grid", "3"), ("true", "resnet", "1")]);
    // Seeds 1 and 2 of resnet-1538: std 2.5e-3 and 2.6e-3.
    assert!(close(num(&table2[0], "std"), 2.55e-3));
}
