//! The report's "Conditions" section: when the jobs differ in more than architecture, depth
//! and seed, which settings split the runs (Table 1's and, when they differ, Table 2's) and a
//! row per condition with its jobs by state. The paper's shape has no such section.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{cell, row};
use crate::condition::{Grouping, SettingValue, Varying};
use crate::tables::{JobState, RunRecord};

/// The conditions of `runs` by `varying` (sorted by their values), each with its jobs by
/// state: the rows of a table, one per condition, `varying`'s settings first.
fn condition_rows<'a>(md: &mut String, runs: impl Iterator<Item = &'a RunRecord>, varying: &Varying) {
    let mut counts: BTreeMap<Vec<SettingValue>, [usize; 5]> = BTreeMap::new();
    for run in runs {
        let c = counts.entry(varying.key(&run.spec)).or_default();
        c[0] += 1;
        let k = match run.state {
            JobState::Completed => 1,
            JobState::Diverged => 2,
            JobState::Failed | JobState::Unspecified => 3,
            JobState::Pending | JobState::Running => 4,
        };
        c[k] += 1;
    }
    let mut names: Vec<String> = varying.names.iter().map(|n| format!("`{n}`")).collect();
    names.extend(["jobs", "completed", "diverged", "failed", "pending or running"].map(String::from));
    row(md, &names);
    row(md, &vec!["---".to_owned(); names.len()]);
    for (key, c) in counts {
        let mut cells: Vec<String> =
            key.iter().map(|v| cell(&v.text())).map(|t| if t.is_empty() { "none".to_owned() } else { t }).collect();
        cells.extend(c.map(|k| k.to_string()));
        row(md, &cells);
    }
    md.push('\n');
}

/// The conditions the tables and plots group by, when the jobs differ in more than
/// architecture, depth and seed; nothing otherwise (the paper's shape).
pub(super) fn conditions(md: &mut String, runs: &[RunRecord], grouping: &Grouping) {
    if grouping.table1.is_empty() && grouping.table2.is_empty() {
        return;
    }
    let list = |v: &Varying| v.names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    md.push_str("## Conditions\n\n");
    if !grouping.table1.is_empty() {
        let _ = writeln!(
            md,
            "Besides architecture, depth and seed, the jobs differ in {}. Each condition ({}) has its own rows in \
             Table 1 and its own series in the accuracy plots; only its seeds and repeats are averaged.\n",
            list(&grouping.table1),
            if grouping.table1.names.len() == 1 { "one value of it" } else { "one combination of their values" },
        );
        condition_rows(md, runs.iter(), &grouping.table1);
    }
    if !grouping.table2.is_empty() && grouping.table2.names != grouping.table1.names {
        let _ = writeln!(
            md,
            "Table 2 and the gradient plots group the jobs with a gradient analysis by {}.\n",
            list(&grouping.table2)
        );
        condition_rows(md, runs.iter().filter(|r| r.spec.analysis.is_some()), &grouping.table2);
    }
}
