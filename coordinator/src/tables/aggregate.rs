//! Grouping the runs into the tables' cells: table 1 by (condition, depth, architecture),
//! table 2 by the (condition, depth, architecture) triples whose completed runs carry a
//! gradient analysis. The runs arrive in the files' order, and every average is summed in that
//! order.

use std::collections::{BTreeMap, BTreeSet};

use gridsweep_proto::job::Arch;

use gridsweep_proto::result::EPSILONS;

use super::extract::{GradFigures, Outcome, Protocol};
use super::{Entry, RunRecord, TablesError, arch_index, mean_std};
use crate::condition::{SettingValue, Varying};

/// One architecture at one depth in table 1.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Cell {
    /// Parameters, from any run with a result.
    pub params: Option<u64>,
    /// FLOPs per image, from any run with a result.
    pub flops: Option<u64>,
    /// Final test accuracies of the completed runs, percent.
    pub accs: Vec<f64>,
    /// Diverged runs.
    pub diverged: usize,
    /// Failed runs.
    pub failed: usize,
    /// Pending or running runs.
    pub pending: usize,
    /// Completed analysis-only runs (0 epochs), which have no accuracy.
    pub analysis_only: usize,
}

/// One condition at one depth of table 1: a cell per architecture (vgg, resnet, grid), None
/// where the sweep has no run of that architecture in that condition at that depth.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Table1Row {
    /// The values of Table 1's varying settings (empty in the paper's shape).
    pub condition: Vec<SettingValue>,
    /// Layers with weights.
    pub depth: u32,
    /// The cells, in Arch::ALL's order.
    pub cells: [Option<Cell>; 3],
}

/// One analysed (condition, architecture, depth) of table 2: means over its runs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Table2Row {
    /// The values of Table 2's varying settings (empty in the paper's shape).
    pub condition: Vec<SettingValue>,
    /// The architecture.
    pub arch: Arch,
    /// The depth.
    pub depth: u32,
    /// The epoch analysed (0: at initialisation).
    pub epoch: u32,
    /// Whether every run was analysed after its last epoch (the paper's protocol).
    pub after_training: bool,
    /// Completed runs with a gradient analysis.
    pub runs: usize,
    /// Mean gradient elements.
    pub total_gradients: f64,
    /// Mean gradient std (over the runs with a finite gradient; NaN when none has one).
    pub std: f64,
    /// Mean share of non-finite gradient elements, percent (0 in a network that did not overflow).
    pub nonfinite_pct: f64,
    /// Mean vanished ratios at EPSILONS, in percent.
    pub vanished_pct: [f64; 4],
    /// Each run's vanished ratios, in percent, in run order: what Table 2's comparisons test.
    pub vanished_runs: Vec<[f64; 4]>,
    /// The protocols the row's runs were analysed with (one, unless they differ).
    pub protocols: Vec<Protocol>,
}

/// Records `value` (from `run`, in the condition labelled `condition`) as the cell's `field`,
/// which every run of the cell must report the same; `first` remembers the first value and the
/// job it came from.
fn agree<'a>(
    first: &mut Option<(u64, &'a str)>,
    value: Option<u64>,
    field: &str,
    run: &'a RunRecord,
    condition: &str,
) -> Result<Option<u64>, TablesError> {
    match (*first, value) {
        (Some((old, job)), Some(new)) if old != new => Err(TablesError::Inconsistent {
            job_id: run.job_id.clone(),
            problem: format!(
                "{field} = {new}, but job {job} of the same model ({}-{}{}{condition}) reports {old}",
                run.spec.train.arch,
                run.spec.train.depth,
                if condition.is_empty() { "" } else { ", " },
            ),
        }),
        (None, Some(new)) => {
            *first = Some((new, &run.job_id));
            Ok(Some(new))
        }
        (seen, _) => Ok(seen.map(|(v, _)| v)),
    }
}

/// Table 1's rows, by condition (`varying`'s values, sorted) then increasing depth.
pub(crate) fn table1<'a>(runs: &[Entry<'a>], varying: &Varying) -> Result<Vec<Table1Row>, TablesError> {
    type Key = (Vec<SettingValue>, u32);
    let mut rows: BTreeMap<Key, [Option<Cell>; 3]> = BTreeMap::new();
    // The first params and FLOPs seen per (condition, depth, arch), with their job.
    type Seen<'a> = [Option<(u64, &'a str)>; 2];
    let mut seen: BTreeMap<(Key, usize), Seen<'a>> = BTreeMap::new();
    for Entry { run, figures: f, condition, .. } in runs {
        let t = &run.spec.train;
        let key = (condition.clone(), t.depth);
        let first = seen.entry((key.clone(), arch_index(t.arch))).or_default();
        let label = varying.label_of(condition);
        let params = agree(&mut first[0], f.params, "params", run, &label)?;
        let flops = agree(&mut first[1], f.flops, "flops", run, &label)?;
        let cell = rows.entry(key).or_default()[arch_index(t.arch)].get_or_insert_with(Cell::default);
        (cell.params, cell.flops) = (params, flops);
        match f.outcome {
            Outcome::Completed => match f.final_test_acc {
                Some(acc) => cell.accs.push(acc),
                // An analysis-only run (0 epochs): no accuracy, nothing to average.
                None if run.spec.train.epochs == 0 => cell.analysis_only += 1,
                // extract::figures guarantees it; refuse rather than drop a run silently.
                None => {
                    return Err(TablesError::Inconsistent {
                        job_id: run.job_id.clone(),
                        problem: "completed without a final test accuracy".to_owned(),
                    });
                }
            },
            Outcome::Diverged => cell.diverged += 1,
            Outcome::Failed => cell.failed += 1,
            Outcome::Unfinished => cell.pending += 1,
        }
    }
    Ok(rows.into_iter().map(|((condition, depth), cells)| Table1Row { condition, depth, cells }).collect())
}

/// Table 2's rows, by condition, depth, architecture, then analysed epoch: the analyses of
/// completed runs, and those a diverged run took before it diverged (a worker analyses no
/// diverged epoch, so each is of a network that was still finite at that epoch).
pub(crate) fn table2(runs: &[Entry<'_>]) -> Vec<Table2Row> {
    let mut groups: BTreeMap<(Vec<SettingValue>, u32, Arch, u32), Vec<&GradFigures>> = BTreeMap::new();
    for Entry { run, figures: f, grad_condition, .. } in runs {
        if matches!(f.outcome, Outcome::Completed | Outcome::Diverged) {
            let t = &run.spec.train;
            for g in &f.grads {
                groups.entry((grad_condition.clone(), t.depth, t.arch, g.epoch)).or_default().push(g);
            }
        }
    }
    groups
        .into_iter()
        .map(|((condition, depth, arch, epoch), grads)| {
            let mean = |values: Vec<f64>| mean_std(&values).0.unwrap_or(f64::NAN);
            let mut vanished_pct = [0.0; 4];
            for (i, slot) in vanished_pct.iter_mut().enumerate().take(EPSILONS.len()) {
                *slot = mean(grads.iter().map(|g| g.vanished[i] * 100.0).collect());
            }
            Table2Row {
                condition,
                arch,
                depth,
                epoch,
                after_training: grads.iter().all(|g| g.after_training),
                runs: grads.len(),
                total_gradients: mean(grads.iter().map(|g| g.total_gradients as f64).collect()),
                std: mean(grads.iter().filter_map(|g| g.std).collect()),
                nonfinite_pct: mean(grads.iter().map(|g| g.nonfinite * 100.0).collect()),
                vanished_pct,
                vanished_runs: grads.iter().map(|g| g.vanished.map(|v| v * 100.0)).collect(),
                protocols: grads.iter().map(|g| g.protocol.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
            }
        })
        .collect()
}

/// Whether Table 2 needs an epoch column: its rows were analysed at more than one epoch, or a
/// row was not analysed after training (at initialisation, say).
pub(crate) fn shows_epoch(rows: &[Table2Row]) -> bool {
    rows.windows(2).any(|w| w[0].epoch != w[1].epoch) || rows.iter().any(|r| !r.after_training)
}
