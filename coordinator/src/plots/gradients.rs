//! The gradient plots, resnet against grid at the deepest depth where a completed run of either
//! has a gradient analysis: the |gradient| histogram (the worker's log10 bins, summed over runs,
//! as a share of all gradient elements, with Table 2's four thresholds) and the mean squared
//! gradient per block against the block's distance from the input (the paper's sigma_g^2(d)).
//! A series is one architecture in one condition, as Table 2 groups the analysed runs.

use gridsweep_proto::job::Arch;
use plotters::prelude::*;

use super::Drawn;
use super::accuracy::{curve_label, curve_lines, draw_curve, runs_label};
use super::data::{self, Curve, HIST_LOG10_HI, HIST_LOG10_LO, Run, series_name};
use super::fit::{self, Fit, Model};
use super::style::{self, Axis, Chart, DrawFailure};

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

/// One series of the histogram: an architecture in one condition at the plot's depth.
struct HistSeries {
    /// The architecture (its colour).
    arch: Arch,
    /// The condition's rank (the colour's shade).
    rank: usize,
    /// `resnet`, or `resnet lr=0.05` in a condition with a label (the note's name).
    name: String,
    /// `resnet-98`, or `resnet-98 lr=0.05` (the legend's name).
    model: String,
    /// Runs summed.
    runs: usize,
    /// Share of all gradient elements per bin, percent.
    bins: Vec<f64>,
    /// Share of elements exactly zero, percent.
    zeros: f64,
    /// Share of non-zero elements below the histogram's range, percent.
    below: f64,
}

impl HistSeries {
    /// The legend entry: the model, its runs and what the bins do not show.
    fn label(&self) -> String {
        let mut label = format!("{} ({}", self.model, runs_label(self.runs));
        if self.zeros > 0.0 {
            label.push_str(&format!("; {} exactly 0", pct(self.zeros)));
        }
        if self.below > 0.0 {
            label.push_str(&format!("; {} below 1e-12", pct(self.below)));
        }
        label + ")"
    }
}

/// The histogram's depth and series (the deepest analysed depth), or why there are none.
fn hist_series(runs: &[Run]) -> Result<(u32, Vec<HistSeries>), String> {
    let Some((depth, per_series)) = data::deepest_grads(runs, |r| r.grad.as_ref(), |g| !g.histogram.is_empty()) else {
        return Err("no completed resnet or grid run has a gradient histogram".to_owned());
    };
    let mut series = Vec::new();
    for (arch, cond, grads) in &per_series {
        let name = series_name(*arch, cond);
        let model =
            if cond.label.is_empty() { format!("{arch}-{depth}") } else { format!("{arch}-{depth} {}", cond.label) };
        let Some((bins, zeros, below)) = data::histogram_pct(grads) else {
            return Err(format!("the {model} histograms have different bin counts or count nothing"));
        };
        series.push(HistSeries { arch: *arch, rank: cond.rank, name, model, runs: grads.len(), bins, zeros, below });
    }
    Ok((depth, series))
}

/// Draws `series` as outlined, lightly filled step curves over bins starting at `lo`, `width`
/// decades wide, clamped to `x`.
fn draw_bins(
    chart: &mut Chart<'_, '_>,
    series: &[HistSeries],
    (lo, width): (f64, f64),
    x: (f64, f64),
) -> Result<(), DrawFailure> {
    let edge = |i: usize| lo + width * i as f64;
    for s in series {
        let color = style::shade(s.arch, s.rank);
        let mut outline = vec![(edge(0), 0.0)];
        for (i, p) in s.bins.iter().enumerate() {
            outline.extend([(edge(i), *p), (edge(i + 1), *p)]);
        }
        outline.push((edge(s.bins.len()), 0.0));
        let shown: Vec<(f64, f64)> = outline.into_iter().map(|(v, y)| (v.clamp(x.0, x.1), y)).collect();
        chart.draw_series(std::iter::once(Polygon::new(shown.clone(), color.mix(0.15).filled())))?;
        chart
            .draw_series(LineSeries::new(shown, color.stroke_width(2)))?
            .label(s.label())
            .legend(style::line_mark(color));
    }
    Ok(())
}

/// `grad_histogram.svg`.
pub(crate) fn histogram(runs: &[Run]) -> Result<Drawn, DrawFailure> {
    let (depth, series) = match hist_series(runs) {
        Ok(found) => found,
        Err(why) => return Ok(Drawn::Skipped(why)),
    };
    let bins = series.iter().map(|s| s.bins.len()).max().unwrap_or(1).max(1);
    let width = (HIST_LOG10_HI - HIST_LOG10_LO) / bins as f64;
    let edge = |i: usize| HIST_LOG10_LO + width * i as f64;
    // Show the bins that hold something, and always the thresholds.
    let used = series.iter().flat_map(|s| s.bins.iter().enumerate().filter(|(_, p)| **p > 0.0).map(|(i, _)| i));
    let (first, last) = used.fold((usize::MAX, 0), |(a, b), i| (a.min(i), b.max(i + 1)));
    let x0 = (edge(first.min(bins)).min(-7.0) - 0.5).max(HIST_LOG10_LO);
    let x1 = (edge(last).max(-4.0) + 0.5).min(HIST_LOG10_HI);
    let peak = series.iter().flat_map(|s| s.bins.iter().copied()).fold(0.0, f64::max).max(1e-9);
    let labels: Vec<String> =
        series.iter().map(HistSeries::label).chain(std::iter::once(THRESHOLD_LABEL.to_owned())).collect();
    let lines: Vec<Vec<(f64, f64)>> =
        series.iter().map(|s| s.bins.iter().enumerate().map(|(i, p)| (edge(i) + width / 2.0, *p)).collect()).collect();
    let prefs = [SeriesLabelPosition::UpperLeft, SeriesLabelPosition::UpperRight];
    let (corner, (_, ymax)) =
        style::plan_legend(&lines, (x0, x1), (0.0, peak * 1.08), &labels, style::plot_px(SIZE), &prefs);
    let x = Axis::log10(x0, x1, "|gradient| of the loss per parameter element (log scale)");
    let y = Axis::linear(0.0, ymax, format!("share of gradient elements (% per {width:.2}-decade bin)"));
    let svg = style::render(SIZE, |root| {
        let title = format!("|gradient| distribution, depth {depth} (summed over runs)");
        let mut chart = style::chart(root, &title, x, y)?;
        draw_bins(&mut chart, &series, (HIST_LOG10_LO, width), (x0, x1))?;
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
    let counts = series.iter().map(|s| format!("{} ({})", s.name, runs_label(s.runs))).collect::<Vec<_>>().join(", ");
    Ok(Drawn::Svg { svg, note: format!("depth {depth}: {counts}") })
}

/// `grad_vs_distance.svg`: the latest analysis of each run (after training).
pub(crate) fn vs_distance(runs: &[Run]) -> Result<Drawn, DrawFailure> {
    vs_distance_of(runs, |r| r.grad.as_ref(), "")
}

/// `grad_vs_distance_init.svg`: the analysis at initialisation (epoch 0), where the paper's eq. 5
/// and 6 speak, for runs analysed then and later.
pub(crate) fn vs_distance_init(runs: &[Run]) -> Result<Drawn, DrawFailure> {
    vs_distance_of(runs, |r| r.grad_init.as_ref(), " at initialisation")
}

/// A fitted model drawn as a dashed line: the architecture and condition rank (its colour), the
/// legend text and the points.
type FitLine = (Arch, usize, String, Vec<(f64, f64)>);

/// A curve's fitted model and its values at the curve's distances.
type Fitted = (Fit, Vec<(f64, f64)>);

/// One curve's fit of the paper's model for its architecture, on the curve's mean points, with
/// the distance counted from the output (the last block is k = 0), and the fitted values at the
/// curve's distances (the dashed line).
fn fit_curve(curve: &Curve) -> Option<Fitted> {
    let model = Model::of(curve.arch)?;
    let dmax = curve.points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let points: Vec<(f64, f64)> = curve.points.iter().map(|(d, s)| (dmax - d, s.mean)).collect();
    let f = fit::fit(model, &points)?;
    let line = curve.points.iter().map(|(d, _)| (*d, f.predict(dmax - d))).collect();
    Some((f, line))
}

/// A fit as text: `resnet: eq. 5, α = 0.99871, rms residual 0.213 decades over 768 distances`.
fn fit_text(name: &str, f: &Fit) -> String {
    format!(
        "{name}: {}, {} = {:.5}, rms residual {:.3} decades over {} distances",
        f.model.equation(),
        f.model.symbol(),
        f.param,
        f.rms,
        f.points
    )
}

/// The mean squared gradient per block against distance, for the analysis `pick` chooses, with
/// the paper's model for each architecture fitted to its mean points (dashed).
fn vs_distance_of<'a>(
    runs: &'a [Run],
    pick: impl Fn(&'a Run) -> Option<&'a data::Grad>,
    when: &str,
) -> Result<Drawn, DrawFailure> {
    let Some((depth, per_series)) = data::deepest_grads(runs, pick, |g| !g.blocks.is_empty()) else {
        return Ok(Drawn::Skipped(format!("no completed resnet or grid run has per-block gradients{when}")));
    };
    let curves: Vec<Curve> = per_series
        .iter()
        .map(|(arch, cond, grads)| log_curve(*arch, cond, grads))
        .filter(|c| !c.points.is_empty())
        .collect();
    let fits: Vec<Option<Fitted>> = curves.iter().map(fit_curve).collect();
    let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let ys = curves.iter().flat_map(|c| c.points.iter().flat_map(|(_, s)| [s.min, s.max]));
    let (Some(dmax), Some(ylo), Some(yhi)) = (
        xs.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))),
        ys.clone().reduce(f64::min),
        ys.reduce(f64::max),
    ) else {
        return Ok(Drawn::Skipped(format!("the depth-{depth} per-block gradients{when} are all zero")));
    };
    let fit_lines: Vec<FitLine> =
        curves.iter().zip(&fits).filter_map(|(c, f)| f.as_ref().map(|(f, line)| fit_line(c, f, line))).collect();
    let mut x = Axis::linear(0.5, dmax + 0.5, "distance d from the input (blocks on the longest path)");
    x.ticks.retain(|t| t.fract() == 0.0);
    let mut lines: Vec<Vec<(f64, f64)>> = curves.iter().flat_map(curve_lines).collect();
    lines.extend(fit_lines.iter().map(|l| l.3.clone()));
    let mut labels: Vec<String> = curves.iter().map(curve_label).collect();
    labels.extend(fit_lines.iter().map(|l| l.2.clone()));
    use SeriesLabelPosition::*;
    let prefs = [UpperRight, LowerLeft, UpperLeft, LowerRight];
    let (xr, yr) = ((0.5, dmax + 0.5), style::padded(ylo, yhi, 0.06, 0.5));
    let (corner, (a, b)) = style::plan_legend(&lines, xr, yr, &labels, style::plot_px(SIZE), &prefs);
    let y = Axis::log10(a, b, "mean squared gradient σ_g²(d) (log scale)");
    let svg = style::render(SIZE, |root| {
        let title = format!("Mean squared gradient vs distance from the input{when}, depth {depth} (band: min to max)");
        let mut chart = style::chart(root, &title, x, y)?;
        for curve in &curves {
            draw_curve(&mut chart, curve, false)?;
        }
        for (arch, rank, label, line) in &fit_lines {
            let color = style::shade(*arch, *rank);
            chart
                .draw_series(DashedLineSeries::new(line.clone(), 7, 5, color.mix(0.9).stroke_width(1)))?
                .label(label.as_str())
                .legend(style::dashed_mark(color));
        }
        style::legend(&mut chart, corner)
    })?;
    Ok(Drawn::Svg { svg, note: distance_note(depth, when, &curves, &fits) })
}

/// One series' mean squared gradient per distance, over its runs, in log10 (zero and
/// non-finite points left out: they have no logarithm).
fn log_curve(arch: Arch, cond: &data::Cond, grads: &[&data::Grad]) -> Curve {
    let per_run: Vec<Vec<(f64, f64)>> = grads
        .iter()
        .map(|g| data::per_distance(g).into_iter().filter(|&(_, y)| y > 0.0 && y.is_finite()).collect())
        .collect();
    let mut curve = data::cond_curve(arch, cond, &per_run);
    for (_, s) in &mut curve.points {
        (s.mean, s.min, s.max) = (s.mean.log10(), s.min.log10(), s.max.log10());
    }
    curve
}

/// A fitted model's dashed line with its legend entry.
fn fit_line(c: &Curve, f: &Fit, line: &[(f64, f64)]) -> FitLine {
    let label = format!(
        "{} fit, {}: {} = {:.4} (rms {:.2} dec.)",
        series_name(c.arch, &c.cond),
        f.model.equation(),
        f.model.symbol(),
        f.param,
        f.rms
    );
    (c.arch, c.cond.rank, label, line.to_vec())
}

/// The plot's note: the depth, the runs behind each series and the fitted parameters.
fn distance_note(depth: u32, when: &str, curves: &[Curve], fits: &[Option<Fitted>]) -> String {
    let counts = curves
        .iter()
        .map(|c| format!("{} ({})", series_name(c.arch, &c.cond), runs_label(c.runs)))
        .collect::<Vec<_>>()
        .join(", ");
    let fitted: Vec<String> = curves
        .iter()
        .zip(fits)
        .filter_map(|(c, f)| f.as_ref().map(|(f, _)| fit_text(&series_name(c.arch, &c.cond), f)))
        .collect();
    let fitted = if fitted.is_empty() { String::new() } else { format!("; fitted: {}", fitted.join("; ")) };
    format!("depth {depth}{when}: {counts}{fitted}")
}

/// `vanished_vs_epoch.svg`: Table 2's vanished fractions against the analysed epoch, one panel
/// per threshold, a line per architecture (mean over completed runs, band min to max), at the
/// deepest depth analysed at more than one epoch.
pub(crate) fn vanished_vs_epoch(runs: &[Run]) -> Result<Drawn, DrawFailure> {
    let usable = |r: &&Run| r.completed && r.vanished.len() > 1;
    let Some(depth) = runs.iter().filter(usable).map(|r| r.depth).max() else {
        return Ok(Drawn::Skipped("no completed run was analysed at more than one epoch".to_owned()));
    };
    let here: Vec<&Run> = runs.iter().filter(usable).filter(|r| r.depth == depth).collect();
    let series: std::collections::BTreeSet<(Arch, &data::Cond)> = here.iter().map(|r| (r.arch, &r.grad_cond)).collect();
    let panels: Vec<Vec<Curve>> = (0..THRESHOLDS.len())
        .map(|t| {
            series
                .iter()
                .map(|&(arch, cond)| {
                    let per_run: Vec<Vec<(f64, f64)>> = here
                        .iter()
                        .filter(|r| r.arch == arch && &r.grad_cond == cond)
                        .map(|r| r.vanished.iter().map(|(e, v)| (f64::from(*e), 100.0 * v[t])).collect())
                        .collect();
                    data::cond_curve(arch, cond, &per_run)
                })
                .collect()
        })
        .collect();
    let emax = here.iter().flat_map(|r| r.vanished.iter().map(|v| f64::from(v.0))).fold(1.0, f64::max);
    const PANEL: (u32, u32) = (480, 340);
    let size = (PANEL.0 * 2, PANEL.1 * 2);
    let svg = style::render(size, |root| {
        let areas = root.split_evenly((2, 2));
        for (t, (area, curves)) in areas.iter().zip(&panels).enumerate() {
            let ys = curves.iter().flat_map(|c| c.points.iter().flat_map(|(_, s)| [s.min, s.max]));
            let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
            let (lo, hi) = style::padded(lo, hi, 0.08, 1.0);
            let xr = (-0.05 * emax, emax * 1.05);
            // The legend goes in a corner that hides no line, else above them.
            let lines: Vec<Vec<(f64, f64)>> = curves.iter().flat_map(curve_lines).collect();
            let labels: Vec<String> = curves.iter().map(curve_label).collect();
            use SeriesLabelPosition::*;
            let prefs = [UpperLeft, LowerRight, UpperRight, LowerLeft];
            let (corner, (lo, hi)) =
                style::plan_legend(&lines, xr, (lo.max(0.0), hi), &labels, style::plot_px(PANEL), &prefs);
            let mut x = Axis::linear(xr.0, xr.1, "epoch analysed (0: at initialisation)");
            x.ticks.retain(|t| t.fract() == 0.0 && *t >= 0.0);
            let y = Axis::linear(lo, hi, format!("% of gradients with |g| < 1e{}", THRESHOLDS[t]));
            let title = format!("vanished < 1e{}, depth {depth}", THRESHOLDS[t]);
            let mut chart = style::chart(area, &title, x, y)?;
            for curve in curves {
                draw_curve(&mut chart, curve, false)?;
            }
            style::legend(&mut chart, corner)?;
        }
        Ok(())
    })?;
    let counts = series
        .iter()
        .map(|(arch, cond)| {
            let n = here.iter().filter(|r| r.arch == *arch && &r.grad_cond == *cond).count();
            format!("{} ({})", series_name(*arch, cond), runs_label(n))
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Drawn::Svg { svg, note: format!("depth {depth}: {counts}") })
}
