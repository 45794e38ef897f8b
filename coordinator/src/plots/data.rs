//! What the plots read from the runs, and the series they draw, computed before anything is
//! drawn. Results are typed and were checked when the coordinator took them; a finished run
//! without one is a [`PlotError::BadResult`] naming the job, and an absent optional part (no
//! gradient analysis, an analysis without `histogram` or `blocks`) only leaves the plot that
//! needs it without data.
//!
//! Only completed and diverged runs are read (pending, running and failed runs have no result).
//! Completed runs make the means, bands and gradient series; a diverged run is drawn only in the
//! epoch curves, alone, up to its last recorded epoch.
//!
//! A series is one architecture in one *condition* ([`crate::condition`]): the accuracy plots
//! group as Table 1 does, the gradient plots as Table 2 does. When only architecture, depth and
//! seed vary there is one condition and a series per architecture, as in the paper.

use std::collections::{BTreeMap, BTreeSet};

use gridsweep_proto::job::{Arch, JobSpec};
use gridsweep_proto::result::GradReport;

use super::PlotError;
use crate::condition::{Grouping, SettingValue, Varying};
use crate::tables::{JobState, RunRecord};

pub(crate) use gridsweep_proto::result::{HIST_LOG10_HI, HIST_LOG10_LO};

/// A polyline's points, (x, y).
pub(crate) type Points = Vec<(f64, f64)>;

/// One panel of the epoch plot: the depth, the completed runs' mean curve per architecture and
/// condition, and each diverged run's own curve with its architecture and condition.
pub(crate) type EpochPanel = (u32, Vec<Curve>, Vec<(Arch, Cond, Points)>);

/// Gradient analyses per architecture and condition.
pub(crate) type ArchGrads<'a> = Vec<(Arch, Cond, Vec<&'a Grad>)>;

/// Which condition a run is in, as the plots tell series apart.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cond {
    /// Its place among the sweep's conditions sorted by their values (0 when nothing varies):
    /// orders the series and picks their shade.
    pub rank: usize,
    /// Its varying settings, `lr=0.05`; empty when nothing varies.
    pub label: String,
}

/// `resnet`, or `resnet lr=0.05` in a condition with a label: a series' name in legends.
pub(crate) fn series_name(arch: Arch, cond: &Cond) -> String {
    if cond.label.is_empty() { arch.to_string() } else { format!("{arch} {}", cond.label) }
}

/// The conditions of `specs` by their key, ranked in the keys' order.
fn ranked<'a>(varying: &Varying, specs: impl Iterator<Item = &'a JobSpec>) -> BTreeMap<Vec<SettingValue>, Cond> {
    let keys: BTreeSet<Vec<SettingValue>> = specs.map(|s| varying.key(s)).collect();
    keys.into_iter().enumerate().map(|(rank, k)| (k.clone(), Cond { rank, label: varying.label_of(&k) })).collect()
}

/// The condition of `spec` among `ranked` (every job's is there).
fn cond_of(varying: &Varying, ranked: &BTreeMap<Vec<SettingValue>, Cond>, spec: &JobSpec) -> Cond {
    ranked.get(&varying.key(spec)).cloned().unwrap_or_default()
}

/// One block's gradient, as `grad_analysis.blocks[i]` holds it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Block {
    /// Blocks on the longest path from the input up to and including this one.
    pub distance: u32,
    /// Gradient elements counted.
    pub elements: u64,
    /// Their mean square.
    pub mean_sq: f64,
}

/// The parts of a gradient analysis the plots draw.
#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct Grad {
    /// Counts per log10 bin, empty when the result has no histogram.
    pub histogram: Vec<u64>,
    /// Elements exactly zero.
    pub zeros: u64,
    /// Non-zero elements below the histogram's range.
    pub below_range: u64,
    /// Elements at or above its top.
    pub above_range: u64,
    /// Per-block mean squares, empty when the result has none.
    pub blocks: Vec<Block>,
}

/// One completed or diverged run, as the plots see it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Run {
    /// Architecture.
    pub arch: Arch,
    /// Its condition as Table 1 groups (the accuracy plots' series).
    pub cond: Cond,
    /// Its condition as Table 2 groups (the gradient plots' series).
    pub grad_cond: Cond,
    /// Depth in layers.
    pub depth: u32,
    /// Completed (true) or diverged (false).
    pub completed: bool,
    /// (epoch, test accuracy in percent), in the result's order.
    pub epochs: Vec<(u32, f64)>,
    /// The final test accuracy, percent (completed runs always have it).
    pub final_acc: Option<f64>,
    /// The gradient analysis, if any: the latest analysed epoch's.
    pub grad: Option<Grad>,
    /// The analysis at initialisation (epoch 0), when the run has one besides the latest.
    pub grad_init: Option<Grad>,
    /// Every analysis's epoch and vanished fractions at `EPSILONS`, in increasing epoch order.
    pub vanished: Vec<(u32, [f64; 4])>,
}

/// The completed and diverged runs of `runs`, read; others are left out. Conditions are
/// those of the whole sweep (every run, whatever its state), so they are ranked and coloured
/// alike while it runs.
pub(crate) fn read(runs: &[RunRecord]) -> Result<Vec<Run>, PlotError> {
    let grouping = Grouping::of(runs.iter().map(|r| &r.spec));
    let conds = ranked(&grouping.table1, runs.iter().map(|r| &r.spec));
    let grad_conds = ranked(&grouping.table2, runs.iter().map(|r| &r.spec).filter(|s| s.analysis.is_some()));
    let mut out = Vec::new();
    for run in runs {
        let completed = match run.state {
            JobState::Completed => true,
            JobState::Diverged => false,
            JobState::Pending | JobState::Running | JobState::Failed | JobState::Unspecified => continue,
        };
        let Some(result) = run.result.as_ref() else {
            return Err(bad(run, "<root>", "is missing from a finished run"));
        };
        let final_acc = result.final_test_acc;
        // An analysis-only run (0 epochs) has no accuracy.
        if completed && final_acc.is_none() && run.spec.train.epochs > 0 {
            return Err(bad(run, "final_test_acc", "is missing in a completed run"));
        }
        out.push(Run {
            arch: run.spec.train.arch,
            cond: cond_of(&grouping.table1, &conds, &run.spec),
            grad_cond: cond_of(&grouping.table2, &grad_conds, &run.spec),
            depth: run.spec.train.depth,
            completed,
            epochs: result.epochs.iter().map(|e| (e.epoch, e.test_acc)).collect(),
            final_acc,
            grad: result.grad_analysis.as_ref().map(grad),
            grad_init: result.earlier_grad_analyses.iter().find(|g| g.epoch == Some(0)).map(grad),
            vanished: result.grad_reports().map(|g| (g.epoch_or(result.epochs.len()), g.vanished_ratios())).collect(),
        });
    }
    Ok(out)
}

/// The plotted parts of one gradient analysis.
fn grad(g: &GradReport) -> Grad {
    Grad {
        histogram: g.histogram.clone(),
        zeros: g.zeros,
        below_range: g.below_range,
        above_range: g.above_range,
        blocks: g
            .blocks
            .iter()
            .map(|b| Block { distance: b.distance, elements: b.elements, mean_sq: b.mean_sq })
            .collect(),
    }
}

/// The error for `field` of `run`'s result.
fn bad(run: &RunRecord, field: &str, problem: &str) -> PlotError {
    PlotError::BadResult { job_id: run.job_id.clone(), field: field.to_owned(), problem: problem.to_owned() }
}

/// A mean with the smallest and largest value it was taken over and its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Spread {
    /// The arithmetic mean.
    pub mean: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many values.
    pub n: usize,
    /// Half the width of the mean's 95% Student-t interval (the depth plot's error bars); None
    /// from one value.
    pub ci: Option<f64>,
}

impl Spread {
    /// The spread of `values`; None when empty.
    pub(crate) fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread { mean, min, max, n: values.len(), ci: crate::stats::ci95_half_width(values) })
    }
}

/// One architecture's mean curve over its completed runs in one condition: x -> spread over
/// runs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Curve {
    /// The architecture.
    pub arch: Arch,
    /// The condition (the default one when nothing but architecture, depth and seed varies).
    pub cond: Cond,
    /// Runs that went into it.
    pub runs: usize,
    /// The points, in increasing x.
    pub points: Vec<(f64, Spread)>,
}

/// The mean curve over `per_run` (each run's (x, y) points): at each x, the spread of the runs
/// that have a value there. Its condition is the default one; see [`cond_curve`].
pub(crate) fn mean_curve(arch: Arch, per_run: &[Vec<(f64, f64)>]) -> Curve {
    let mut at: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
    for points in per_run {
        for &(x, y) in points {
            // Keyed by the bits of a non-negative x: their order is the numbers' order.
            at.entry(x.to_bits()).or_insert_with(|| (x, Vec::new())).1.push(y);
        }
    }
    let points = at.into_values().filter_map(|(x, ys)| Spread::of(&ys).map(|s| (x, s))).collect();
    Curve { arch, cond: Cond::default(), runs: per_run.len(), points }
}

/// [`mean_curve`] in the condition `cond`.
pub(crate) fn cond_curve(arch: Arch, cond: &Cond, per_run: &[Vec<(f64, f64)>]) -> Curve {
    Curve { cond: cond.clone(), ..mean_curve(arch, per_run) }
}

/// The (architecture, condition) series of the completed runs among `runs`, sorted.
fn series<'a>(runs: impl Iterator<Item = &'a Run>) -> BTreeSet<(Arch, &'a Cond)> {
    runs.filter(|r| r.completed).map(|r| (r.arch, &r.cond)).collect()
}

/// Test accuracy per epoch, for each depth (increasing): the completed runs' mean curve per
/// architecture and condition, and the diverged runs' own curves (by architecture and
/// condition, each in the runs' order).
pub(crate) fn epoch_curves(runs: &[Run]) -> Vec<EpochPanel> {
    let mut depths: Vec<u32> = runs.iter().filter(|r| !r.epochs.is_empty()).map(|r| r.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let points = |r: &Run| r.epochs.iter().map(|&(e, a)| (f64::from(e), a)).collect::<Vec<_>>();
    depths
        .into_iter()
        .map(|depth| {
            let at = |r: &&Run| r.depth == depth && !r.epochs.is_empty();
            let curves = series(runs.iter().filter(at))
                .into_iter()
                .map(|(arch, cond)| {
                    let of = |r: &&Run| r.arch == arch && &r.cond == cond && r.completed;
                    cond_curve(arch, cond, &runs.iter().filter(at).filter(of).map(points).collect::<Vec<_>>())
                })
                .collect();
            let mut diverged: Vec<(Arch, Cond, Points)> =
                runs.iter().filter(at).filter(|r| !r.completed).map(|r| (r.arch, r.cond.clone(), points(r))).collect();
            diverged.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            (depth, curves, diverged)
        })
        .collect()
}

/// Final test accuracy against depth per architecture and condition, over completed runs.
pub(crate) fn depth_curves(runs: &[Run]) -> Vec<Curve> {
    series(runs.iter().filter(|r| r.final_acc.is_some()))
        .into_iter()
        .map(|(arch, cond)| {
            let per_run: Vec<Vec<(f64, f64)>> = runs
                .iter()
                .filter(|r| r.arch == arch && &r.cond == cond && r.completed)
                .filter_map(|r| r.final_acc.map(|a| vec![(f64::from(r.depth), a)]))
                .collect();
            cond_curve(arch, cond, &per_run)
        })
        .collect()
}

/// The architectures the gradient plots compare.
pub(crate) const GRAD_ARCHS: [Arch; 2] = [Arch::Resnet, Arch::Grid];

/// The deepest depth at which a completed resnet or grid run has a gradient analysis for which
/// `has` holds, with those runs' analyses per architecture and (Table 2's) condition, sorted
/// (GRAD_ARCHS' order, then the conditions'; a series without one at that depth is left out).
/// `pick` chooses which of a run's analyses (the latest, or the one at initialisation).
pub(crate) fn deepest_grads<'a>(
    runs: &'a [Run],
    pick: impl Fn(&'a Run) -> Option<&'a Grad>,
    has: impl Fn(&Grad) -> bool,
) -> Option<(u32, ArchGrads<'a>)> {
    let usable = |r: &&'a Run| r.completed && GRAD_ARCHS.contains(&r.arch) && pick(r).is_some_and(&has);
    let depth = runs.iter().filter(usable).map(|r| r.depth).max()?;
    let here: Vec<&Run> = runs.iter().filter(usable).filter(|r| r.depth == depth).collect();
    let series: BTreeSet<(Arch, &Cond)> = here.iter().map(|r| (r.arch, &r.grad_cond)).collect();
    let per_series = series
        .into_iter()
        .map(|(arch, cond)| {
            let grads: Vec<&Grad> =
                here.iter().filter(|r| r.arch == arch && &r.grad_cond == cond).filter_map(|r| pick(r)).collect();
            (arch, cond.clone(), grads)
        })
        .collect();
    Some((depth, per_series))
}

/// The summed histogram of `grads` as percentages of all their gradient elements (zeros and
/// out-of-range ones included in the total), with the percentages of zeros and of non-zero
/// elements below the range. None when the histograms' bin counts differ or nothing was counted.
pub(crate) fn histogram_pct(grads: &[&Grad]) -> Option<(Vec<f64>, f64, f64)> {
    let bins = grads.first()?.histogram.len();
    if bins == 0 || grads.iter().any(|g| g.histogram.len() != bins) {
        return None;
    }
    let mut sum = vec![0u64; bins];
    let (mut zeros, mut below, mut total) = (0u64, 0u64, 0u64);
    for g in grads {
        for (s, c) in sum.iter_mut().zip(&g.histogram) {
            *s = s.saturating_add(*c);
        }
        zeros = zeros.saturating_add(g.zeros);
        below = below.saturating_add(g.below_range);
        let counted = g.histogram.iter().fold(0u64, |a, c| a.saturating_add(*c));
        total = total.saturating_add(counted).saturating_add(g.zeros).saturating_add(g.below_range);
        total = total.saturating_add(g.above_range);
    }
    if total == 0 {
        return None;
    }
    let pct = |c: u64| 100.0 * c as f64 / total as f64;
    Some((sum.into_iter().map(pct).collect(), pct(zeros), pct(below)))
}

/// One run's mean squared gradient per block distance: the element-weighted mean over the
/// blocks at that distance (a grid has several). Distances with no elements are left out.
pub(crate) fn per_distance(grad: &Grad) -> Vec<(f64, f64)> {
    let mut at: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    for b in &grad.blocks {
        let e = at.entry(b.distance).or_insert((0.0, 0.0));
        e.0 += b.mean_sq * b.elements as f64;
        e.1 += b.elements as f64;
    }
    at.into_iter().filter(|(_, (_, n))| *n > 0.0).map(|(d, (s, n))| (f64::from(d), s / n)).collect()
}
