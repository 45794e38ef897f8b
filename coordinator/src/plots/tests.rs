//! Tests of the plots' arithmetic and axes; the files themselves are tested end to end in
//! `coordinator/tests/outputs.rs`.

use gridsweep_proto::job::Arch;
use plotters::prelude::SeriesLabelPosition;

use super::accuracy::curve_label;
use super::data::{
    Block, Cond, Grad, Run, Spread, deepest_grads, depth_curves, epoch_curves, histogram_pct, mean_curve, per_distance,
};
use super::style::{log_ticks, nice_ticks, plan_legend};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn mean_curve_spreads_over_the_runs_that_have_each_x() {
    let c = mean_curve(Arch::Grid, &[vec![(1.0, 10.0), (2.0, 20.0)], vec![(1.0, 14.0)]]);
    assert_eq!(c.runs, 2);
    assert_eq!(c.points.len(), 2);
    // The interval of 10 and 14: stats.t.ppf(0.975, 1) * np.std([10, 14], ddof=1) / np.sqrt(2)
    // = 25.412409472349388 (scipy 1.17.1); none from one run.
    let (x, s) = c.points[0];
    assert_eq!((x, s.mean, s.min, s.max, s.n), (1.0, 12.0, 10.0, 14.0, 2));
    assert!(close(s.ci.unwrap(), 25.412_409_472_349_39), "{s:?}");
    assert_eq!(c.points[1], (2.0, Spread { mean: 20.0, min: 20.0, max: 20.0, n: 1, ci: None }));
}

#[test]
fn per_distance_weights_blocks_by_their_elements() {
    let block = |distance, elements, mean_sq| Block { distance, elements, mean_sq };
    let g = Grad {
        blocks: vec![block(2, 3, 1.0), block(1, 10, 5.0), block(2, 1, 5.0), block(3, 0, 7.0)],
        ..Grad::default()
    };
    // Distance 2: (3 * 1 + 1 * 5) / 4 = 2; distance 3 has no elements.
    assert_eq!(per_distance(&g), vec![(1.0, 5.0), (2.0, 2.0)]);
}

#[test]
fn histogram_shares_count_zeros_and_out_of_range_elements() {
    let a = Grad { histogram: vec![1, 2, 3], zeros: 2, below_range: 1, above_range: 1, ..Grad::default() };
    let b = Grad { histogram: vec![0, 0, 0], ..Grad::default() };
    let (pct, zeros, below) = histogram_pct(&[&a, &b]).unwrap();
    // Total 6 + 2 + 1 + 1 = 10 elements.
    assert!(pct.iter().zip([10.0, 20.0, 30.0]).all(|(a, b)| close(*a, b)), "{pct:?}");
    assert!(close(zeros, 20.0) && close(below, 10.0));
    let c = Grad { histogram: vec![1, 2], ..Grad::default() };
    assert_eq!(histogram_pct(&[&a, &c]), None, "different bin counts");
    assert_eq!(histogram_pct(&[&b]), None, "nothing counted");
}

/// A completed (or diverged) run with a gradient analysis holding a histogram when `hist`.
fn run(arch: Arch, depth: u32, completed: bool, hist: bool) -> Run {
    let grad = Grad { histogram: if hist { vec![1] } else { Vec::new() }, ..Grad::default() };
    let (cond, grad_cond) = (Cond::default(), Cond::default());
    Run {
        arch,
        cond,
        grad_cond,
        depth,
        completed,
        epochs: vec![(1, 50.0)],
        final_acc: Some(50.0),
        grad: Some(grad),
        grad_init: None,
        vanished: Vec::new(),
    }
}

#[test]
fn gradient_plots_take_the_deepest_analysed_resnet_or_grid_depth() {
    let runs = [
        run(Arch::Resnet, 26, true, true),
        run(Arch::Grid, 26, true, true),
        run(Arch::Grid, 98, true, true),
        run(Arch::Vgg, 386, true, true),
        run(Arch::Resnet, 386, false, true),
        run(Arch::Grid, 1538, true, false),
    ];
    let (depth, per_arch) = deepest_grads(&runs, |r| r.grad.as_ref(), |g| !g.histogram.is_empty()).unwrap();
    assert_eq!(depth, 98, "vgg, diverged runs and runs without a histogram do not count");
    assert_eq!(per_arch.iter().map(|(a, _, g)| (*a, g.len())).collect::<Vec<_>>(), [(Arch::Grid, 1)]);
    assert!(deepest_grads(&runs[3..4], |r| r.grad.as_ref(), |_| true).is_none());
}

#[test]
fn epoch_curves_keep_diverged_runs_apart() {
    let runs = [run(Arch::Vgg, 26, true, false), run(Arch::Vgg, 26, false, false), run(Arch::Grid, 8, true, false)];
    let panels = epoch_curves(&runs);
    assert_eq!(panels.iter().map(|p| p.0).collect::<Vec<_>>(), [8, 26]);
    let (_, curves, diverged) = &panels[1];
    assert_eq!(curves.len(), 1);
    assert_eq!((curves[0].arch, curves[0].runs), (Arch::Vgg, 1));
    assert_eq!(diverged, &vec![(Arch::Vgg, Cond::default(), vec![(1.0, 50.0)])]);
}

#[test]
fn a_varying_setting_splits_the_series_and_labels_them() {
    let lr = |rank, label: &str| Cond { rank, label: label.to_owned() };
    let mut runs = Vec::new();
    for (cond, acc) in [(lr(1, "lr=0.1"), 60.0), (lr(0, "lr=0.05"), 50.0)] {
        for seed_offset in [0.0, 2.0] {
            let mut r = run(Arch::Resnet, 26, true, true);
            (r.cond, r.grad_cond) = (cond.clone(), cond.clone());
            (r.epochs, r.final_acc) = (vec![(1, acc + seed_offset)], Some(acc + seed_offset));
            runs.push(r);
        }
    }
    runs.push(run(Arch::Vgg, 26, true, false));
    let panels = epoch_curves(&runs);
    let labels: Vec<String> = panels[0].1.iter().map(curve_label).collect();
    assert_eq!(labels, ["vgg (1 run)", "resnet lr=0.05 (2 runs)", "resnet lr=0.1 (2 runs)"], "arch, then condition");
    let means: Vec<f64> = panels[0].1.iter().map(|c| c.points[0].1.mean).collect();
    assert_eq!(means, [50.0, 51.0, 61.0], "each condition averages only its own runs");
    let depth: Vec<String> = depth_curves(&runs).iter().map(curve_label).collect();
    assert_eq!(depth, labels);
    let (_, grads) = deepest_grads(&runs, |r| r.grad.as_ref(), |g| !g.histogram.is_empty()).unwrap();
    let series: Vec<(Arch, &str, usize)> = grads.iter().map(|(a, c, g)| (*a, c.label.as_str(), g.len())).collect();
    assert_eq!(series, [(Arch::Resnet, "lr=0.05", 2), (Arch::Resnet, "lr=0.1", 2)]);
    assert_ne!(super::style::shade(Arch::Resnet, 1), super::style::shade(Arch::Resnet, 0));
    assert_eq!(super::style::shade(Arch::Resnet, 0), super::style::color(Arch::Resnet));
}

#[test]
fn ticks_are_round_and_inside_the_range() {
    assert_eq!(nice_ticks(0.0, 100.0), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
    assert_eq!(nice_ticks(21.3, 24.9), [22.0, 23.0, 24.0]);
    assert_eq!(log_ticks(-10.9, 0.0), (-10..=0).map(f64::from).collect::<Vec<_>>());
    // Under three decades: 1, 2 and 5 times each power of ten.
    let t = log_ticks(-5.2, -3.9);
    let shown: Vec<String> = t.iter().map(super::style::fmt_pow10).collect();
    assert_eq!(shown, ["1e-5", "2e-5", "5e-5", "1e-4"]);
}

#[test]
fn the_legend_goes_where_the_data_is_not() {
    use SeriesLabelPosition::*;
    let prefs = [UpperLeft, UpperRight, LowerLeft, LowerRight];
    let labels = ["resnet (2 runs)".to_owned()];
    let (px, unit) = ((600.0, 400.0), (0.0, 10.0));
    let rising = vec![vec![(0.0, 0.0), (10.0, 10.0)]];
    assert_eq!(plan_legend(&rising, unit, unit, &labels, px, &prefs), (UpperLeft, unit));
    let falling = vec![vec![(0.0, 10.0), (10.0, 0.0)]];
    assert_eq!(plan_legend(&falling, unit, unit, &labels, px, &prefs), (UpperRight, unit));
    // Data in every corner: the top is raised until the legend fits above it.
    let everywhere = vec![vec![(0.0, 0.0), (0.0, 10.0), (10.0, 10.0), (10.0, 0.0)]];
    let (corner, (lo, hi)) = plan_legend(&everywhere, unit, unit, &labels, px, &prefs);
    assert_eq!((corner, lo), (UpperLeft, 0.0));
    assert!(hi > 11.0 && hi < 20.0, "{hi}");
}
