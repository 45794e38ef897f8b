//! The accuracy plots: test accuracy against epoch (one panel per depth) and final test accuracy
//! against depth, one series per architecture and condition (as Table 1 groups; the condition's
//! settings in the legend, `resnet lr=0.05`). A series is the mean over its completed runs
//! (every seed and repeat), with a band from their minimum to their maximum (epoch curves) or
//! error bars of the mean's 95% Student-t interval (depth curve; none from a single run). A
//! diverged run is drawn alone in the epoch curves, dashed, up to its last
//! recorded epoch, with a cross at the end, and is left out of the depth curve (as it is left
//! out of Table 1's means).

use std::collections::BTreeSet;

use gridsweep_proto::job::Arch;
use plotters::prelude::*;

use super::Drawn;
use super::data::{self, Cond, Curve, EpochPanel, Points, Run, series_name};
use super::style::{self, Area, Axis, Chart, DrawFailure, FONT};

/// Size in pixels of one panel of the epoch plot, and of the depth plot.
const PANEL: (u32, u32) = (560, 400);
/// Markers are drawn on curves with at most this many points.
const MAX_MARKED: usize = 40;

/// `n runs`, `1 run`.
pub(crate) fn runs_label(n: usize) -> String {
    if n == 1 { "1 run".to_owned() } else { format!("{n} runs") }
}

/// `depth 8` or `depths 8, 26, 98`.
fn depth_list(depths: impl Iterator<Item = u32>) -> String {
    let list: Vec<String> = depths.map(|d| d.to_string()).collect();
    format!("{} {}", if list.len() == 1 { "depth" } else { "depths" }, list.join(", "))
}

/// The smallest and largest of `values` (None when empty).
fn bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().fold(None, |b, v| match b {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A y range for accuracies in `lo..hi`: padded, inside 0 ..= 100.
fn accuracy_range(lo: f64, hi: f64) -> (f64, f64) {
    let (a, b) = style::padded(lo, hi, 0.08, 4.0);
    let (a, b) = (a.max(0.0), b.min(100.0));
    (a, b.max(a + 1.0))
}

/// A linear accuracy axis over `range`, with no tick past 100 %.
fn accuracy_axis(range: (f64, f64), label: &str) -> Axis {
    let mut axis = Axis::linear(range.0, range.1, label);
    axis.ticks.retain(|t| *t <= 100.0);
    axis
}

/// The lines a legend should not hide: `curve`'s mean, minimum and maximum.
pub(crate) fn curve_lines(curve: &Curve) -> [Vec<(f64, f64)>; 3] {
    let line = |f: fn(&data::Spread) -> f64| curve.points.iter().map(|(x, s)| (*x, f(s))).collect();
    [line(|s| s.mean), line(|s| s.min), line(|s| s.max)]
}

/// The legend entry of `curve`: `resnet (2 runs)`, `resnet lr=0.05 (2 runs)`.
pub(crate) fn curve_label(curve: &Curve) -> String {
    format!("{} ({})", series_name(curve.arch, &curve.cond), runs_label(curve.runs))
}

/// The legend entry of `n` diverged runs of an architecture in a condition.
fn diverged_label(arch: Arch, cond: &Cond, n: usize) -> String {
    format!("{} diverged ({}, x = last epoch)", series_name(arch, cond), runs_label(n))
}

/// What a plot's note adds when its series are split by condition: `; a series per
/// architecture and condition (lr=0.05; lr=0.1)`; nothing when no condition has a label.
pub(crate) fn conditions_note<'a>(conds: impl IntoIterator<Item = &'a Cond>) -> String {
    let labels: BTreeSet<&Cond> = conds.into_iter().filter(|c| !c.label.is_empty()).collect();
    if labels.is_empty() {
        return String::new();
    }
    let list: Vec<&str> = labels.iter().map(|c| c.label.as_str()).collect();
    format!("; a series per architecture and condition ({})", list.join("; "))
}

/// The lines of `curve`'s mean and the ends of its 95% intervals (the mean where there is none).
pub(crate) fn ci_lines(curve: &Curve) -> [Vec<(f64, f64)>; 3] {
    let line = |sign: f64| curve.points.iter().map(|(x, s)| (*x, s.mean + sign * s.ci.unwrap_or(0.0))).collect();
    [line(0.0), line(-1.0), line(1.0)]
}

/// Draws `curve` into `chart`: its min-max band, or with `bars` its 95% interval as error bars
/// (none where a point has one run), its mean line, its markers, its legend entry.
pub(crate) fn draw_curve(chart: &mut Chart<'_, '_>, curve: &Curve, bars: bool) -> Result<(), DrawFailure> {
    let color = style::shade(curve.arch, curve.cond.rank);
    let spread = curve.points.iter().any(|(_, s)| s.max > s.min);
    if bars {
        let (lo, hi) = (chart.x_range().start, chart.x_range().end);
        let cap = (hi - lo) * 0.008;
        let with_ci = curve.points.iter().filter_map(|&(x, s)| Some((x, s.mean - s.ci?, s.mean + s.ci?)));
        chart.draw_series(with_ci.flat_map(|(x, lo, hi)| {
            [
                PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(2)),
                PathElement::new(vec![(x - cap, lo), (x + cap, lo)], color.stroke_width(2)),
                PathElement::new(vec![(x - cap, hi), (x + cap, hi)], color.stroke_width(2)),
            ]
        }))?;
    } else if spread {
        let mut outline: Vec<(f64, f64)> = curve.points.iter().map(|&(x, s)| (x, s.max)).collect();
        outline.extend(curve.points.iter().rev().map(|&(x, s)| (x, s.min)));
        chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.18).filled())))?;
    }
    chart
        .draw_series(LineSeries::new(curve.points.iter().map(|&(x, s)| (x, s.mean)), color.stroke_width(2)))?
        .label(curve_label(curve))
        .legend(style::line_mark(color));
    if curve.points.len() <= MAX_MARKED {
        chart.draw_series(curve.points.iter().map(|&(x, s)| Circle::new((x, s.mean), 3, color.filled())))?;
    }
    Ok(())
}

/// Draws one panel of the epoch plot into `area`.
fn epoch_panel(area: &Area<'_>, (depth, curves, diverged): &EpochPanel) -> Result<(), DrawFailure> {
    let mut lines: Vec<Vec<(f64, f64)>> = curves.iter().flat_map(curve_lines).collect();
    lines.extend(diverged.iter().map(|(_, _, pts)| pts.clone()));
    let (Some((x0, x1)), Some((y0, y1))) =
        (bounds(lines.iter().flatten().map(|p| p.0)), bounds(lines.iter().flatten().map(|p| p.1)))
    else {
        return Ok(());
    };
    // The diverged runs by series; `diverged` is sorted by (arch, condition).
    let mut diverged_by_series: Vec<(Arch, &Cond, Vec<&Points>)> = Vec::new();
    for (arch, cond, pts) in diverged {
        match diverged_by_series.last_mut() {
            Some((a, c, runs)) if a == arch && *c == cond => runs.push(pts),
            _ => diverged_by_series.push((*arch, cond, vec![pts])),
        }
    }
    let mut labels: Vec<String> = curves.iter().map(curve_label).collect();
    labels.extend(diverged_by_series.iter().map(|(arch, cond, runs)| diverged_label(*arch, cond, runs.len())));
    let (xa, xb) = style::padded(x0, x1, 0.03, 1.0);
    use SeriesLabelPosition::*;
    let prefs = [LowerRight, UpperLeft, LowerLeft, UpperRight];
    let (corner, yr) =
        style::plan_legend(&lines, (xa, xb), accuracy_range(y0, y1), &labels, style::plot_px(PANEL), &prefs);
    let mut x = Axis::linear(xa, xb, "epoch");
    x.ticks.retain(|t| t.fract() == 0.0);
    let mut chart = style::chart(area, &format!("depth {depth}"), x, accuracy_axis(yr, "test accuracy (%)"))?;
    for curve in curves {
        draw_curve(&mut chart, curve, false)?;
    }
    for (arch, cond, runs) in &diverged_by_series {
        let color = style::shade(*arch, cond.rank);
        for (k, pts) in runs.iter().enumerate() {
            let drawn = chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 6, 4, color.stroke_width(2)))?;
            if k == 0 {
                drawn.label(diverged_label(*arch, cond, runs.len())).legend(style::dashed_mark(color));
            }
            if let Some(&end) = pts.last() {
                chart.draw_series(std::iter::once(Cross::new(end, 6, color.stroke_width(2))))?;
            }
        }
    }
    style::legend(&mut chart, corner)
}

/// `accuracy_vs_epoch.svg`: one panel per depth.
pub(crate) fn vs_epoch(runs: &[Run]) -> Result<Drawn, DrawFailure> {
    let panels = data::epoch_curves(runs);
    if panels.is_empty() {
        return Ok(Drawn::Skipped("no completed or diverged run has per-epoch metrics".to_owned()));
    }
    let cols = (panels.len() as f64).sqrt().ceil() as usize;
    let rows = panels.len().div_ceil(cols);
    let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32 + 44);
    let svg = style::render(size, |root| {
        let title = "Test accuracy vs epoch (line: mean over completed runs; band: min to max)";
        let root = root.titled(title, (FONT, 20))?;
        for (panel, area) in panels.iter().zip(root.split_evenly((rows, cols))) {
            epoch_panel(&area, panel)?;
        }
        Ok(())
    })?;
    let conds = panels.iter().flat_map(|p| p.1.iter().map(|c| &c.cond).chain(p.2.iter().map(|d| &d.1)));
    let note = depth_list(panels.iter().map(|p| p.0)) + &conditions_note(conds);
    Ok(Drawn::Svg { svg, note })
}

/// A depth tick: 10^v as a whole number of layers.
fn fmt_depth(v: &f64) -> String {
    format!("{:.0}", 10f64.powf(*v))
}

/// `accuracy_vs_depth.svg`.
pub(crate) fn vs_depth(runs: &[Run]) -> Result<Drawn, DrawFailure> {
    let curves: Vec<Curve> = data::depth_curves(runs)
        .into_iter()
        .map(|mut c| {
            c.points.iter_mut().for_each(|p| p.0 = p.0.log10());
            c
        })
        .collect();
    let mut depths: Vec<f64> = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)).collect();
    depths.sort_by(f64::total_cmp);
    depths.dedup();
    let lines: Vec<Vec<(f64, f64)>> = curves.iter().flat_map(ci_lines).collect();
    let (Some((x0, x1)), Some((y0, y1))) =
        (bounds(depths.iter().copied()), bounds(lines.iter().flatten().map(|p| p.1)))
    else {
        return Ok(Drawn::Skipped("no run completed".to_owned()));
    };
    let note = "error bars: 95% confidence interval of the mean (Student's t over the runs; none from one run); "
        .to_owned()
        + &depth_list(depths.iter().map(|d| 10f64.powf(*d).round() as u32))
        + &conditions_note(curves.iter().map(|c| &c.cond));
    let (xa, xb) = style::padded(x0, x1, 0.08, 0.3);
    let labels: Vec<String> = curves.iter().map(curve_label).collect();
    use SeriesLabelPosition::*;
    let prefs = [LowerLeft, LowerRight, UpperRight, UpperLeft];
    let (corner, yr) =
        style::plan_legend(&lines, (xa, xb), accuracy_range(y0, y1), &labels, style::plot_px(PANEL), &prefs);
    let x = Axis { range: (xa, xb), ticks: depths, format: fmt_depth, label: "depth (layers, log scale)".to_owned() };
    let y = accuracy_axis(yr, "final test accuracy (%)");
    let svg = style::render(PANEL, |root| {
        let mut chart = style::chart(root, "Final test accuracy vs depth (mean; bars: 95% CI)", x, y)?;
        for curve in &curves {
            draw_curve(&mut chart, curve, true)?;
        }
        style::legend(&mut chart, corner)
    })?;
    Ok(Drawn::Svg { svg, note })
}
