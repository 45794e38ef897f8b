//! The comparisons of the fabricated sweep (`super::sweep`): `comparisons.csv` and the
//! sections of `table1.md` and `table2.md`, with figures from scipy 1.17.1
//! (`stats.ttest_ind(a, b, equal_var=False)`, its `.pvalue`, `.df` and
//! `.confidence_interval(0.95)`; the seeds from the noncentral-t power of `stats/tests.rs`,
//! counted up from 2).

use super::*;

/// The comparisons.csv row for `table`, `depth`, `measure`, `a` against `b`.
fn find<'a>(
    rows: &'a [HashMap<String, String>],
    table: &str,
    depth: &str,
    measure: &str,
    b: &str,
) -> &'a HashMap<String, String> {
    rows.iter()
        .find(|r| {
            r["table"] == table && r["depth"] == depth && r["measure"] == measure && r["a"] == "grid" && r["b"] == b
        })
        .unwrap_or_else(|| panic!("no row {table} {depth} {measure} grid-{b}: {rows:?}"))
}

fn near(row: &HashMap<String, String>, col: &str, want: f64) {
    let got = num(row, col);
    assert!((got - want).abs() <= 1e-8 * want.abs().max(1.0), "{col}: got {got}, want {want}");
}

#[test]
fn grid_is_compared_with_resnet_and_vgg_at_each_depth() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(&sweep(), "fabricated", dir.path()).unwrap();
    let rows = read_csv(&dir.path().join("comparisons.csv"));
    assert_eq!(rows.iter().filter(|r| r["table"] == "1").count(), 4, "2 depths x (resnet, vgg)");

    // Depth 26: grid 92.5, 92.9 against resnet 93.0, 93.2.
    let r = find(&rows, "1", "26", "final_test_acc", "resnet");
    near(r, "diff", -0.4);
    near(r, "p_value", 0.2585321337078375);
    near(r, "welch_df", 1.4705882352941178);
    near(r, "diff_ci95_low", -1.783704566014224);
    near(r, "diff_ci95_high", 0.9837045660142409);
    assert_eq!((r["n_a"].as_str(), r["n_b"].as_str()), ("2", "2"));
    assert_eq!(r["verdict"], "no difference detectable with 2 seeds");
    assert_eq!(r["seeds_per_side_80pct_power"], "7");
    // Against vgg 91.0, 91.5, 92.0.
    let r = find(&rows, "1", "26", "final_test_acc", "vgg");
    near(r, "p_value", 0.041959260560304676);
    near(r, "welch_df", 2.9989047097480843);
    assert_eq!(r["verdict"], "grid higher, p = 0.042");
    assert_eq!(r["seeds_per_side_80pct_power"], "4");
    // Depth 1538: grid 95.0, 95.1, 95.5 against resnet 94.0, 94.2, 94.4.
    let r = find(&rows, "1", "1538", "final_test_acc", "resnet");
    near(r, "p_value", 0.007800429240485159);
    near(r, "diff_ci95_low", 0.45238672699934945);
    near(r, "diff_ci95_high", 1.5476132730006507);
    assert_eq!(r["verdict"], "grid higher, p = 0.008");
    assert_eq!(r["seeds_per_side_80pct_power"], "3");
    // Against vgg's two finite runs (the diverged third is not a figure).
    let r = find(&rows, "1", "1538", "final_test_acc", "vgg");
    near(r, "p_value", 0.019444636004789594);
    assert_eq!((r["n_a"].as_str(), r["n_b"].as_str()), ("3", "2"));

    // Table 2: grid's vanished fractions (40% at 1e-4 in each run) against resnet's 64, 65, 66%.
    let r = find(&rows, "2", "1538", "vanished_lt_1e-4_pct", "resnet");
    near(r, "p_value", 0.00053290704557229);
    near(r, "welch_df", 2.0);
    near(r, "diff_ci95_low", -27.48413771175033);
    assert_eq!(r["verdict"], "resnet higher, p < 0.001");
    assert_eq!(rows.iter().filter(|r| r["table"] == "2").count(), 4, "one per threshold; vgg was not analysed");

    let t1 = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
    let line = t1.lines().find(|l| l.starts_with("| 1538 | grid − resnet |")).unwrap_or_else(|| panic!("{t1}"));
    assert_eq!(line, "| 1538 | grid − resnet | 3 vs 3 | +1.00 [+0.45, +1.55] | 0.008 | grid higher, p = 0.008 | 3 |");
    assert!(t1.contains("Method: the difference of means"), "{t1}");
    let t2 = std::fs::read_to_string(dir.path().join("table2.md")).unwrap();
    assert!(t2.contains("resnet higher, p < 0.001"), "{t2}");
}

#[test]
fn intervals_beside_every_mean() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(&sweep(), "fabricated", dir.path()).unwrap();
    let rows = read_csv(&dir.path().join("table1.csv"));
    // stats.t.ppf(0.975, n - 1) * np.std(v, ddof=1) / np.sqrt(n): vgg-26 91.0, 91.5, 92.0
    // -> [90.25793114412484, 92.74206885587516]; resnet-26 93.0, 93.2 -> [91.82937952638251, ...].
    near(&rows[0], "acc_ci95_vgg", 92.74206885587516 - 91.5);
    near(&rows[0], "acc_ci95_resnet", 94.37062047361748 - 93.1);
    near(&rows[1], "acc_ci95_vgg", 57.41240947234939 - 32.0);
    let t1 = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
    for cell in ["91.50 ± 0.50 (3) [90.26, 92.74]", "93.10 ± 0.14 (2) [91.83, 94.37] ⚠ **1 failed**"] {
        assert!(t1.contains(cell), "table1.md lacks {cell}:\n{t1}");
    }

    // One run: "n/a", never a zero-width interval, and no test.
    let one: Vec<RunRecord> =
        sweep().into_iter().filter(|r| r.spec.train.seed == 1 && r.spec.train.depth == 1538).collect();
    write_tables(&one, "one", dir.path()).unwrap();
    let rows = read_csv(&dir.path().join("table1.csv"));
    assert_eq!(rows[0]["acc_ci95_grid"], "n/a");
    let t1 = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
    assert!(t1.contains("95.00 (1) [CI n/a]"), "{t1}");
    let cmp = read_csv(&dir.path().join("comparisons.csv"));
    let r = find(&cmp, "1", "1538", "final_test_acc", "resnet");
    assert_eq!((r["p_value"].as_str(), r["verdict"].as_str()), ("", "no test: needs 2 runs a side, has 1 and 1"));
}

#[test]
fn an_unknown_axis_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_tables_comparing(&sweep(), "fabricated", dir.path(), "lr").unwrap_err();
    assert_eq!(err.to_string(), "--compare lr: the sweep's runs do not differ in `lr`; they can be compared by: arch");
}

#[test]
fn compare_along_a_named_setting() {
    // The lr sweep: at each depth and architecture, lr 0.05 is one point above lr 0.1, each
    // side 0.37 x seed apart: stats.ttest_ind(a, b, equal_var=False) with a = b + 1 gives
    // pvalue 0.02965107667204531, df 4.0.
    let dir = tempfile::tempdir().unwrap();
    write_tables_comparing(&super::conditions::lr_sweep(), "lr", dir.path(), "lr").unwrap();
    let rows = read_csv(&dir.path().join("comparisons.csv"));
    let t1: Vec<_> = rows.iter().filter(|r| r["table"] == "1").collect();
    assert_eq!(t1.len(), 4, "2 depths x 2 architectures: {t1:?}");
    for r in &t1 {
        assert_eq!((r["axis"].as_str(), r["a"].as_str(), r["b"].as_str()), ("lr", "0.05", "0.1"));
        near(r, "diff", 1.0);
        near(r, "p_value", 0.02965107667204531);
        near(r, "welch_df", 4.0);
        assert_eq!(r["verdict"], "0.05 higher, p = 0.030");
    }
    assert_eq!(t1[0]["condition"], "arch=resnet");
    let md = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
    assert!(md.contains("| arch=grid | 26 | lr 0.05 − 0.1 | 3 vs 3 |"), "{md}");
}
