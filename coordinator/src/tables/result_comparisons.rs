//! Which differences in `results.csv` are more than seed noise: every two conditions of the
//! results table that differ in exactly one condition column (one setting, or the
//! implementation in a sweep that mixes them) are compared on the sweep's metric with Welch's
//! t-test over their completed runs, as Table 1's comparisons are ([`super::comparisons`]).
//! `results_comparisons.csv` has every such pair; the Comparisons section of `results.md` the
//! first [`MD_ROWS`] of them.
//!
//! In a sweep over `lr: [0.1, 0.05]` that is one comparison; in `sweeps/crosscheck.yaml` (two
//! implementations x two architectures) four: each architecture's implementations against each
//! other (do they agree?) and each implementation's architectures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::comparisons::Comparison;
use super::results::{ResultRun, completed_values, condition_columns, rows};
use super::{TablesError, csv_bytes};

/// The file's name.
pub const RESULTS_COMPARISONS_CSV: &str = "results_comparisons.csv";
/// At most this many comparisons are listed in `results.md` (the CSV has them all).
pub const MD_ROWS: usize = 60;

/// The comparisons of `runs` on `metric`, grouped by the column compared, then by the other
/// columns' values; within a pair the first condition in the table's row order comes first.
pub(super) fn compare(runs: &[ResultRun], metric: &str) -> Vec<Comparison> {
    let columns = condition_columns(runs);
    let rows = rows(runs, &columns);
    let mut out = Vec::new();
    for (k, axis) in columns.iter().enumerate() {
        // The rows by their cells other than column k (rows are distinct, so within a group
        // they differ in column k alone), each group in row order: linear in the rows.
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            let condition = (0..columns.len())
                .filter(|&c| c != k)
                .map(|c| format!("{}={}", columns[c], row.cells[c]))
                .collect::<Vec<_>>()
                .join(", ");
            groups.entry(condition).or_default().push(i);
        }
        for (condition, members) in groups {
            for (n, &i) in members.iter().enumerate() {
                for &j in &members[n + 1..] {
                    let (a, b) = (&rows[i], &rows[j]);
                    out.push(Comparison::of(
                        0,
                        condition.clone(),
                        0,
                        None,
                        metric.to_owned(),
                        axis,
                        (a.cells[k].clone(), completed_values(a, metric)),
                        (b.cells[k].clone(), completed_values(b, metric)),
                    ));
                }
            }
        }
    }
    out.sort_by(|x, y| (&x.axis, &x.condition).cmp(&(&y.axis, &y.condition)));
    out
}

/// `results_comparisons.csv`: one row per comparison, every figure (empty where there is no test).
pub(super) fn csv(path: &Path, comparisons: &[Comparison]) -> Result<Vec<u8>, TablesError> {
    let mut header: Vec<String> = ["condition", "metric", "axis", "a", "b"].map(String::from).into();
    header.extend(super::verdicts::FIGURES.map(String::from));
    let rows = comparisons
        .iter()
        .map(|c| {
            let mut row = vec![c.condition.clone(), c.measure.clone(), c.axis.clone(), c.a.clone(), c.b.clone()];
            row.extend(super::verdicts::figures(c));
            row
        })
        .collect();
    csv_bytes(path, &header, rows)
}

/// The Markdown section under `results.md`'s table: the first [`MD_ROWS`] comparisons, and a
/// line saying how many more the CSV has.
pub(super) fn markdown(comparisons: &[Comparison], metric: &str) -> String {
    let shown = &comparisons[..comparisons.len().min(MD_ROWS)];
    let mut md = super::verdicts::markdown(shown, &format!("final {metric}"), 2, RESULTS_COMPARISONS_CSV);
    if comparisons.len() > shown.len() {
        let _ = writeln!(
            md,
            "\n{} more comparisons in `{RESULTS_COMPARISONS_CSV}` ({} in all).",
            comparisons.len() - shown.len(),
            comparisons.len()
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gridsweep_proto::v1::JobState;
    use serde_json::json;

    use super::*;

    fn run(id: &str, implementation: &str, settings: serde_json::Value, acc: f64) -> ResultRun {
        ResultRun {
            job_id: id.to_owned(),
            implementation: implementation.to_owned(),
            settings: settings.as_object().unwrap().clone(),
            state: JobState::Completed,
            metrics: BTreeMap::from([("test_acc".to_owned(), acc)]),
        }
    }

    /// Two implementations x two architectures, three seeds each: four pairs differ in one
    /// column; the two diagonal pairs differ in two and are not compared. The figures are
    /// Welch's, checked against scipy 1.17.1:
    /// `scipy.stats.ttest_ind([30, 31, 32], [20, 21, 22], equal_var=False)` gives
    /// t = 12.24744871391589, p = 0.0002552167494419268, df = 4; against train.py's grid
    /// (30.5, 31.5, 32.5), t = -0.6123724356957945, p = 0.5733922538253555.
    #[test]
    fn conditions_differing_in_one_column_are_compared() {
        let mut runs = Vec::new();
        for (imp, arch, base) in [("builtin", "grid", 30.0), ("builtin", "resnet", 20.0), ("train.py", "grid", 30.5)] {
            for (seed, d) in [(1, 0.0), (2, 1.0), (3, 2.0)] {
                runs.push(run(&format!("{imp}{arch}{seed}"), imp, json!({"arch": arch, "seed": seed}), base + d));
            }
        }
        for (seed, acc) in [(1, 20.0), (2, 25.0), (3, 21.0)] {
            runs.push(run(&format!("t-resnet{seed}"), "train.py", json!({"arch": "resnet", "seed": seed}), acc));
        }
        let c = compare(&runs, "test_acc");
        let pairs: Vec<(&str, &str, &str, &str)> =
            c.iter().map(|c| (c.axis.as_str(), c.condition.as_str(), c.a.as_str(), c.b.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("arch", "implementation=builtin", "grid", "resnet"),
                ("arch", "implementation=train.py", "grid", "resnet"),
                ("implementation", "arch=grid", "builtin", "train.py"),
                ("implementation", "arch=resnet", "builtin", "train.py"),
            ]
        );
        let w = c[0].test.as_ref().unwrap();
        assert!(
            (w.t - 12.247_448_713_915_89).abs() < 1e-9 && (w.p / 0.000_255_216_749_441_926_8 - 1.0).abs() < 1e-6,
            "{w:?}"
        );
        let same = c[2].test.as_ref().unwrap();
        assert!(
            (same.t + 0.612_372_435_695_794_5).abs() < 1e-9 && (same.p - 0.573_392_253_825_355_5).abs() < 1e-6,
            "{same:?}"
        );
        assert_eq!(c[0].verdict(), "grid higher, p < 0.001");
        // builtin grid 30, 31, 32 against train.py grid 30.5, 31.5, 32.5: no difference.
        assert!(c[2].verdict().starts_with("no difference detectable with 3 seeds"), "{}", c[2].verdict());
        let md = markdown(&c, "test_acc");
        assert!(md.contains("## Comparisons — final test_acc: beyond seed noise?"), "{md}");
        assert!(md.contains("| arch=grid | implementation builtin − train.py | 3 vs 3 |"), "{md}");
        assert!(!md.contains("layers"), "no model depth column: {md}");
        let csv = String::from_utf8(csv(Path::new("x.csv"), &c).unwrap()).unwrap();
        assert!(csv.starts_with("condition,metric,axis,a,b,n_a,n_b,mean_a,mean_b,diff,"), "{csv}");
        assert_eq!(csv.lines().count(), 5);
    }

    #[test]
    fn numbers_are_in_numeric_order() {
        let runs: Vec<ResultRun> = [26, 8, 110]
            .into_iter()
            .flat_map(|d| {
                (1..=2).map(move |s| run(&format!("{d}-{s}"), "p", json!({"depth": d, "seed": s}), f64::from(s)))
            })
            .collect();
        let pairs: Vec<(String, String)> = compare(&runs, "test_acc").into_iter().map(|c| (c.a, c.b)).collect();
        let want = [("8", "26"), ("8", "110"), ("26", "110")].map(|(a, b)| (a.to_owned(), b.to_owned()));
        assert_eq!(pairs, want);
    }

    #[test]
    fn one_varying_setting_gives_one_comparison_and_a_long_list_is_cut() {
        let runs: Vec<ResultRun> = (0..2)
            .flat_map(|lr| {
                (1..=2).map(move |s| run(&format!("{lr}{s}"), "p", json!({"lr": lr, "seed": s}), f64::from(s)))
            })
            .collect();
        let c = compare(&runs, "test_acc");
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].condition.as_str(), c[0].axis.as_str()), ("", "lr"));
        let many: Vec<ResultRun> = (0..13)
            .flat_map(|lr| {
                (1..=2).map(move |s| run(&format!("{lr}-{s}"), "p", json!({"lr": lr, "seed": s}), f64::from(s)))
            })
            .collect();
        let c = compare(&many, "test_acc");
        assert_eq!(c.len(), 13 * 12 / 2);
        let md = markdown(&c, "test_acc");
        assert!(
            md.contains(&format!("{} more comparisons in `results_comparisons.csv` (78 in all).", 78 - MD_ROWS)),
            "{md}"
        );
    }
}
