//! Which differences in the tables are more than seed noise: two groups of runs compared on
//! one measure with Welch's t-test ([`crate::stats`]), the difference's 95% interval, a verdict
//! in words and the seeds per side that would detect the observed difference with 80% power.
//!
//! What is compared:
//! - Table 1's final test accuracy at each condition and depth: grid against resnet and grid
//!   against vgg (the paper's claims), or, with an axis named (`coordinator tables --compare
//!   lr`), each pair of that setting's values at each architecture, depth and remaining
//!   condition;
//! - Table 2's vanished fractions (each threshold) at each condition, depth and analysed epoch,
//!   grid against resnet and grid against vgg, where both sides had at least two analysed runs.

use gridsweep_proto::job::Arch;

use super::aggregate::{Table1Row, Table2Row};
use super::{EPS_NAMES, TablesError, arch_index};
use crate::condition::{SettingValue, Varying};
use crate::stats::{self, NoTest, SeedsNeeded, Welch};

/// The architecture pairs compared by default: ours against each baseline.
const ARCH_PAIRS: [(Arch, Arch); 2] = [(Arch::Grid, Arch::Resnet), (Arch::Grid, Arch::Vgg)];

/// The axis name that compares architectures (the default).
pub const ARCH_AXIS: &str = "arch";

/// Two groups of runs compared on one measure.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Comparison {
    /// Which table's figures: 1 (accuracy), 2 (vanished fractions) or 0 (`results.md`'s
    /// metric, with no model depth: `depth` is 0 there).
    pub table: u8,
    /// The settings both groups share besides depth (and, with an axis other than arch, the
    /// architecture), as `name=value, ...`; empty in the paper's shape.
    pub condition: String,
    /// Layers.
    pub depth: u32,
    /// Table 2's analysed epoch; None for Table 1.
    pub epoch: Option<u32>,
    /// The measure, named as its column: `final_test_acc`, `vanished_lt_1e-4_pct`, ...
    pub measure: String,
    /// The setting whose two values are compared (`arch`, or the axis named).
    pub axis: String,
    /// The value of the first group (the difference is a - b).
    pub a: String,
    /// The value of the second group.
    pub b: String,
    /// The first group's figures, one per run.
    pub values_a: Vec<f64>,
    /// The second group's.
    pub values_b: Vec<f64>,
    /// Welch's test, or why there is none.
    pub test: Result<Welch, NoTest>,
    /// Seeds per side for 80% power at the observed difference and spread.
    pub seeds: SeedsNeeded,
}

impl Comparison {
    /// Compares `values_a` with `values_b`; the other fields label it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn of(
        table: u8,
        condition: String,
        depth: u32,
        epoch: Option<u32>,
        measure: String,
        axis: &str,
        (a, values_a): (String, Vec<f64>),
        (b, values_b): (String, Vec<f64>),
    ) -> Self {
        let test = stats::welch(&values_a, &values_b);
        let seeds = match (stats::mean_var(&values_a), stats::mean_var(&values_b)) {
            (Some((ma, va)), Some((mb, vb))) => stats::seeds_needed(ma - mb, va, vb),
            _ => SeedsNeeded::Undefined,
        };
        Comparison {
            table,
            condition,
            depth,
            epoch,
            measure,
            axis: axis.to_owned(),
            a,
            b,
            values_a,
            values_b,
            test,
            seeds,
        }
    }

    /// The verdict in words.
    pub fn verdict(&self) -> String {
        stats::verdict(&self.a, &self.b, self.values_a.len(), self.values_b.len(), &self.test)
    }

    /// The mean of each side (None without runs).
    pub fn means(&self) -> (Option<f64>, Option<f64>) {
        (super::mean_std(&self.values_a).0, super::mean_std(&self.values_b).0)
    }
}

/// The names a user may give `--compare`: `arch` and every setting that splits Table 1.
pub(crate) fn axes(varying: &Varying) -> Vec<String> {
    std::iter::once(ARCH_AXIS.to_owned()).chain(varying.names.iter().cloned()).collect()
}

/// Table 1's comparisons along `axis` (`arch` by default).
pub(crate) fn table1(rows: &[Table1Row], varying: &Varying, axis: &str) -> Result<Vec<Comparison>, TablesError> {
    if axis == ARCH_AXIS {
        return Ok(by_arch(rows, varying));
    }
    let Some(index) = varying.names.iter().position(|n| n == axis) else {
        return Err(TablesError::UnknownAxis { axis: axis.to_owned(), known: axes(varying).join(", ") });
    };
    Ok(by_setting(rows, varying, index))
}

/// Grid against resnet and against vgg in every row that has both.
fn by_arch(rows: &[Table1Row], varying: &Varying) -> Vec<Comparison> {
    let mut out = Vec::new();
    for row in rows {
        for (a, b) in ARCH_PAIRS {
            let (Some(ca), Some(cb)) = (&row.cells[arch_index(a)], &row.cells[arch_index(b)]) else { continue };
            out.push(Comparison::of(
                1,
                varying.label_of(&row.condition),
                row.depth,
                None,
                "final_test_acc".to_owned(),
                ARCH_AXIS,
                (a.name().to_owned(), ca.accs.clone()),
                (b.name().to_owned(), cb.accs.clone()),
            ));
        }
    }
    out
}

/// Each pair of values of the setting at `index`, at each depth, architecture and value of the
/// other settings (rows arrive sorted by condition, then depth).
fn by_setting(rows: &[Table1Row], varying: &Varying, index: usize) -> Vec<Comparison> {
    let rest = |c: &[SettingValue]| -> Vec<SettingValue> {
        c.iter().enumerate().filter(|&(i, _)| i != index).map(|(_, v)| v.clone()).collect()
    };
    let others: Vec<String> =
        varying.names.iter().enumerate().filter(|&(i, _)| i != index).map(|(_, n)| n.clone()).collect();
    let mut out = Vec::new();
    for (i, ra) in rows.iter().enumerate() {
        for rb in &rows[i + 1..] {
            if ra.depth != rb.depth || rest(&ra.condition) != rest(&rb.condition) {
                continue;
            }
            for arch in Arch::ALL {
                let (Some(ca), Some(cb)) = (&ra.cells[arch_index(arch)], &rb.cells[arch_index(arch)]) else { continue };
                let mut label: Vec<String> = vec![format!("arch={arch}")];
                label.extend(others.iter().zip(rest(&ra.condition)).map(|(n, v)| format!("{n}={}", v.text())));
                out.push(Comparison::of(
                    1,
                    label.join(", "),
                    ra.depth,
                    None,
                    "final_test_acc".to_owned(),
                    &varying.names[index],
                    (ra.condition[index].text(), ca.accs.clone()),
                    (rb.condition[index].text(), cb.accs.clone()),
                ));
            }
        }
    }
    // By depth; within a depth, as found: the other settings' order, then vgg, resnet, grid.
    out.sort_by_key(|c| c.depth);
    out
}

/// Table 2's comparisons: grid against resnet and vgg on each vanished fraction, where both
/// sides were analysed in at least two runs at the same condition, depth and epoch.
pub(crate) fn table2(rows: &[Table2Row], varying: &Varying) -> Vec<Comparison> {
    let mut out = Vec::new();
    for ra in rows.iter().filter(|r| r.arch == Arch::Grid) {
        for (_, b) in ARCH_PAIRS {
            let same = |r: &&Table2Row| {
                r.arch == b && r.depth == ra.depth && r.epoch == ra.epoch && r.condition == ra.condition
            };
            let Some(rb) = rows.iter().find(same) else { continue };
            if ra.vanished_runs.len() < 2 || rb.vanished_runs.len() < 2 {
                continue;
            }
            for (k, eps) in EPS_NAMES.iter().enumerate() {
                let side = |r: &Table2Row| r.vanished_runs.iter().map(|v| v[k]).collect::<Vec<f64>>();
                out.push(Comparison::of(
                    2,
                    varying.label_of(&ra.condition),
                    ra.depth,
                    Some(ra.epoch),
                    format!("vanished_lt_{eps}_pct"),
                    ARCH_AXIS,
                    (Arch::Grid.name().to_owned(), side(ra)),
                    (b.name().to_owned(), side(rb)),
                ));
            }
        }
    }
    out
}
