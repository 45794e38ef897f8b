//! The comparisons written out: `comparisons.csv` (one row per comparison, every figure) and
//! the Markdown section under Table 1, Table 2 and `results.md` (difference with its interval, p-value,
//! verdict and seeds needed), with the method stated once below it.

use std::fmt::Write as _;
use std::path::Path;

use super::comparisons::Comparison;
use super::{TablesError, cell, csv_bytes};
use crate::stats::{self, MAX_SEEDS, SeedsNeeded};

/// The header of `comparisons.csv`: what the comparison is, then its [`FIGURES`].
const HEADER: [&str; 8] = ["table", "condition", "depth", "epoch", "measure", "axis", "a", "b"];

/// The figures of a comparison, as CSV columns (`comparisons.csv`, `results_comparisons.csv`).
pub(super) const FIGURES: [&str; 12] = [
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "diff",
    "diff_ci95_low",
    "diff_ci95_high",
    "welch_t",
    "welch_df",
    "p_value",
    "verdict",
    "seeds_per_side_80pct_power",
];

/// The cells of [`FIGURES`] for `c`; empty where there is no figure (no test from fewer than
/// two runs a side).
pub(super) fn figures(c: &Comparison) -> Vec<String> {
    let (ma, mb) = c.means();
    let w = c.test.as_ref().ok();
    vec![
        c.values_a.len().to_string(),
        c.values_b.len().to_string(),
        cell(ma),
        cell(mb),
        cell(ma.zip(mb).map(|(a, b)| a - b)),
        cell(w.map(|w| w.ci.0)),
        cell(w.map(|w| w.ci.1)),
        cell(w.map(|w| w.t)),
        cell(w.map(|w| w.df)),
        cell(w.map(|w| w.p)),
        c.verdict(),
        c.seeds.cell(),
    ]
}

/// `comparisons.csv`: Table 1's comparisons, then Table 2's.
pub(super) fn csv(path: &Path, comparisons: &[Comparison]) -> Result<Vec<u8>, TablesError> {
    let header: Vec<String> = HEADER.iter().chain(FIGURES.iter()).map(|s| (*s).to_owned()).collect();
    let rows = comparisons
        .iter()
        .map(|c| {
            let mut row = vec![
                c.table.to_string(),
                c.condition.clone(),
                c.depth.to_string(),
                cell(c.epoch),
                c.measure.clone(),
                c.axis.clone(),
                c.a.clone(),
                c.b.clone(),
            ];
            row.extend(figures(c));
            row
        })
        .collect();
    csv_bytes(path, &header, rows)
}

/// The seeds cell in Markdown.
fn seeds_md(s: SeedsNeeded) -> String {
    match s {
        SeedsNeeded::Undefined => "—".to_owned(),
        s => s.cell(),
    }
}

/// The decimals that show two significant digits of an interval's half-width `half`: at least
/// `least`, at most 8.
fn decimals(half: f64, least: usize) -> usize {
    if !(half.is_finite() && half > 0.0) {
        return least;
    }
    (1 - half.log10().floor() as i64).clamp(least as i64, 8) as usize
}

/// The Markdown section of comparisons under a table; `what` names the measure in the heading;
/// differences with `digits` decimals, more where the interval is narrower than 0.1.
/// Nothing when there is no comparison. `csv_file` names the file with every figure.
pub(super) fn markdown(comparisons: &[Comparison], what: &str, digits: usize, csv_file: &str) -> String {
    if comparisons.is_empty() {
        return String::new();
    }
    let mut md = String::new();
    let _ = writeln!(md, "\n## Comparisons — {what}: beyond seed noise?\n");
    let with_condition = comparisons.iter().any(|c| !c.condition.is_empty());
    let with_epoch = comparisons.iter().any(|c| c.epoch.is_some());
    let with_measure = comparisons.iter().any(|c| c.measure != comparisons[0].measure);
    // `results.md`'s comparisons (table 0) have no model depth of their own.
    let with_layers = comparisons.iter().any(|c| c.table != 0);
    let mut header: Vec<&str> = Vec::new();
    if with_condition {
        header.push("condition");
    }
    if with_layers {
        header.push("layers");
    }
    if with_epoch {
        header.push("epoch");
    }
    if with_measure {
        header.push("measure");
    }
    header.extend(["compared", "n", "difference [95% CI]", "p", "verdict", "seeds per side for 80% power"]);
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let _ = writeln!(md, "|{}", " --- |".repeat(header.len()));
    for c in comparisons {
        let mut row: Vec<String> = Vec::new();
        if with_condition {
            row.push(if c.condition.is_empty() { "—".to_owned() } else { c.condition.clone() });
        }
        if with_layers {
            row.push(c.depth.to_string());
        }
        if with_epoch {
            row.push(cell(c.epoch));
        }
        if with_measure {
            row.push(c.measure.clone());
        }
        let axis = if c.axis == super::comparisons::ARCH_AXIS { String::new() } else { format!("{} ", c.axis) };
        row.push(format!("{axis}{} − {}", c.a, c.b));
        row.push(format!("{} vs {}", c.values_a.len(), c.values_b.len()));
        row.push(match (&c.test, c.means()) {
            (Ok(w), _) => {
                let d = decimals(w.ci.1 - w.diff, digits);
                format!("{:+.d$} [{:+.d$}, {:+.d$}]", w.diff, w.ci.0, w.ci.1)
            }
            (Err(_), (Some(a), Some(b))) => format!("{:+.digits$} [n/a]", a - b),
            _ => "—".to_owned(),
        });
        row.push(c.test.as_ref().map_or_else(|_| "—".to_owned(), |w| stats::p_text(w.p)));
        row.push(c.verdict());
        row.push(seeds_md(c.seeds));
        let _ = writeln!(md, "| {} |", row.join(" | "));
    }
    md.push_str(&method_note(csv_file));
    md
}

/// How the comparisons are computed, stated once under their table; `csv_file` has every figure.
fn method_note(csv_file: &str) -> String {
    format!(
        "\nMethod: the difference of means (first minus second) with its 95% interval and the two-sided p-value \
         of Welch's unequal-variances t-test (Welch–Satterthwaite degrees of freedom) over the completed runs \
         (seeds, repeats) on each side; no test and no p-value with fewer than 2 runs a side. A verdict names \
         the higher side when p < 0.05, else says no difference was detectable with the runs there are; it is \
         one test per row, with no correction for the number of rows. Seeds per side: the smallest number of \
         runs on each side at which Welch's test at 5% would detect the observed difference with 80% power, \
         taking the observed difference and variances as true (power from the noncentral t distribution with \
         Welch's degrees of freedom); > {MAX_SEEDS} when even that many would not; — when the means are equal \
         or a side has fewer than 2 runs. `{csv_file}` has every figure (t, df, p, interval).\n"
    )
}
