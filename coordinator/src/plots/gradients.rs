//! The gradient plots, resnet against grid at the deepest depth where a completed run of either
//! has a gradient analysis: the |gradient| histogram (the worker's log10 bins, summed over runs,
//! as a share of all gradient elements, with Table 2's four thresholds) and the mean squared
//! gradient per block against the block's distance from the input (the paper's sigma_g^2(d)).

use plotters::prelude::*;

use super::Drawn;
use super::accuracy::{curve_label, curve_lines, draw_curve, runs_label};
use super::data::{self, Curve, HIST_LOG10_HI, HIST_LOG10_LO, Run};
use super::style::{self, Axis, DrawFailure};

/// Size in pixels of each gradient plot.
const SIZE: (u32, u32) = (760, 480);
/// Table 2's thresholds, as log10.
const THRESHOLDS: [f64; 4] = [-4.0, -5.0, -6.0, -7.0];
/// The legend entry of the threshold lines.
const THRESHOLD_LABEL: &str = "vanishing thresholds 1e-4 .. 1e-7 (Table 2)";
/// The colour of the threshold lines.
const THRESHOLD_COLOR: RGBColor = RGBColor(90, 90, 90);

/// A percentage for a legend: `0.012%`, `<0.001%`.
fn pct(p: f64) -> String {
    if p < 0.001 { "<0.001%".to_owned() } else { format!("{p:.3}%") }
}

/// `grad_histogram.svg`.
pub(crate) fn histogram(runs: &[Run]) -> Result<Drawn, DrawFailure> {
    let Some((depth, per_arch)) = data::deepest_grads(runs, |g| !g.histogram.is_empty()) else {
        return Ok(Drawn::Skipped("no completed resnet or grid run has a gradient histogram".to_owned()));
    };
    let mut series = Vec::new();
    for (arch, grads) in &per_arch {
        match data::histogram_pct(grads) {
            Some((bins, zeros, below)) => series.push((*arch, grads.len(), bins, zeros, below)),
            None => {
                return Ok(Drawn::Skipped(format!(
                    "the {arch}-{depth} histograms have different bin counts or count nothing"
                )));
            }
        }
    }
    let bins = series.iter().map(|s| s.2.len()).max().unwrap_or(1).max(1);
    let width = (HIST_LOG10_HI - HIST_LOG10_LO) / bins as f64;
    let edge = |i: usize| HIST_LOG10_LO + width * i as f64;
    // Show the bins that hold something, and always the thresholds.
    let used = series.iter().flat_map(|s| s.2.iter().enumerate().filter(|(_, p)| **p > 0.0).map(|(i, _)| i));
    let (first, last) = used.fold((usize::MAX, 0), |(a, b), i| (a.min(i), b.max(i + 1)));
    let x0 = (edge(first.min(bins)).min(-7.0) - 0.5).max(HIST_LOG10_LO);
    let x1 = (edge(last).max(-4.0) + 0.5).min(HIST_LOG10_HI);
    let peak = series.iter().flat_map(|s| s.2.iter().copied()).fold(0.0, f64::max).max(1e-9);
    let labels: Vec<String> = series
        .iter()
        .map(|(arch, n, _, zeros, below)| {
            let mut label = format!("{arch}-{depth} ({}", runs_label(*n));
            if *zeros > 0.0 {
                label.push_str(&format!("; {} exactly 0", pct(*zeros)));
            }
            if *below > 0.0 {
                label.push_str(&format!("; {} below 1e-12", pct(*below)));
            }
            label + ")"
        })
        .chain(std::iter::once(THRESHOLD_LABEL.to_owned()))
        .collect();
    let lines: Vec<Vec<(f64, f64)>> =
        series.iter().map(|s| s.2.iter().enumerate().map(|(i, p)| (edge(i) + width / 2.0, *p)).collect()).collect();
    let prefs = [SeriesLabelPosition::UpperLeft, SeriesLabelPosition::UpperRight];
    let (corner, (_, ymax)) =
        style::plan_legend(&lines, (x0, x1), (0.0, peak * 1.08), &labels, style::plot_px(SIZE), &prefs);
    let x = Axis::log10(x0, x1, "|gradient| of the loss per parameter element (log scale)");
    let y = Axis::linear(0.0, ymax, format!("share of gradient elements (% per {width:.2}-decade bin)"));
    let svg = style::render(SIZE, |root| {
        let title = format!("|gradient| distribution, depth {depth} (summed over runs)");
        let mut chart = style::chart(root, &title, x, y)?;
        for ((arch, _, bins, _, _), label) in series.iter().zip(&labels) {
            let color = style::color(*arch);
            let mut outline = vec![(edge(0), 0.0)];
            for (i, p) in bins.iter().enumerate() {
                outline.extend([(edge(i), *p), (edge(i + 1), *p)]);
            }
            outline.push((edge(bins.len()), 0.0));
            let shown: Vec<(f64, f64)> = outline.into_iter().map(|(x, y)| (x.clamp(x0, x1), y)).collect();
            chart.draw_series(std::iter::once(Polygon::new(shown.clone(), color.mix(0.15).filled())))?;
            chart
                .draw_series(LineSeries::new(shown, color.stroke_width(2)))?
                .label(label.clone())
                .legend(style::line_mark(color));
        }
        // The thresholds sit on labelled decade ticks of the x axis.
        for (k, t) in THRESHOLDS.into_iter().enumerate() {
            let line = DashedLineSeries::new([(t, 0.0), (t, ymax)], 6, 4, THRESHOLD_COLOR.stroke_width(1));
            let drawn = chart.draw_series(line)?;
            if k == 0 {
                drawn.label(THRESHOLD_LABEL).legend(style::dashed_mark(THRESHOLD_COLOR));
            }
        }
        style::legend(&mut chart, corner)
    })?;
    let counts = series.iter().map(|s| format!("{} ({})", s.0, runs_label(s.1))).collect::<Vec<_>>().join(", ");
    Ok(Drawn::Svg { svg, note: format!("depth {depth}: {counts}") })
}

/// `grad_vs_distance.svg`.
pub(crate) fn vs_distance(runs: &[Run]) -> Result<Drawn, DrawFailure> {
    let Some((depth, per_arch)) = data::deepest_grads(runs, |g| !g.blocks.is_empty()) else {
        return Ok(Drawn::Skipped("no completed resnet or grid run has per-block gradients".to_owned()));
    };
    let curves: Vec<Curve> = per_arch
        .iter()
        .map(|(arch, grads)| {
            let per_run: Vec<Vec<(f64, f64)>> = grads
                .iter()
                .map(|g| data::per_distance(g).into_iter().filter(|&(_, y)| y > 0.0 && y.is_finite()).collect())
                .collect();
            let mut curve = data::mean_curve(*arch, &per_run);
            for (_, s) in &mut curve.points {
                (s.mean, s.min, s.max) = (s.mean.log10(), s.min.log10(), s.max.log10());
            }
            curve
        })
        .filter(|c| !c.points.is_empty())
        .collect();
    let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let ys = curves.iter().flat_map(|c| c.points.iter().flat_map(|(_, s)| [s.min, s.max]));
    let (Some(dmax), Some(ylo), Some(yhi)) = (
        xs.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))),
        ys.clone().reduce(f64::min),
        ys.reduce(f64::max),
    ) else {
        return Ok(Drawn::Skipped(format!("the depth-{depth} per-block gradients are all zero")));
    };
    let mut x = Axis::linear(0.5, dmax + 0.5, "distance d from the input (blocks on the longest path)");
    x.ticks.retain(|t| t.fract() == 0.0);
    let lines: Vec<Vec<(f64, f64)>> = curves.iter().flat_map(curve_lines).collect();
    let labels: Vec<String> = curves.iter().map(curve_label).collect();
    use SeriesLabelPosition::*;
    let prefs = [UpperRight, LowerLeft, UpperLeft, LowerRight];
    let (xr, yr) = ((0.5, dmax + 0.5), style::padded(ylo, yhi, 0.06, 0.5));
    let (corner, (a, b)) = style::plan_legend(&lines, xr, yr, &labels, style::plot_px(SIZE), &prefs);
    let y = Axis::log10(a, b, "mean squared gradient σ_g²(d) (log scale)");
    let svg = style::render(SIZE, |root| {
        let title = format!("Mean squared gradient vs distance from the input, depth {depth} (band: min to max)");
        let mut chart = style::chart(root, &title, x, y)?;
        for curve in &curves {
            draw_curve(&mut chart, curve, false)?;
        }
        style::legend(&mut chart, corner)
    })?;
    let counts = curves.iter().map(|c| format!("{} ({})", c.arch, runs_label(c.runs))).collect::<Vec<_>>().join(", ");
    Ok(Drawn::Svg { svg, note: format!("depth {depth}: {counts}") })
}
