//! `results_<metric>_vs_epoch.svg`: for any sweep (program jobs and built-in ones), one line per
//! condition of `results.csv` (`tables::results`): the mean over the condition's runs of a
//! metric at each epoch (each run's reported epochs, whatever became of the run), with the
//! runs' minimum to maximum as a band. Drawn with the paper plots' style helpers.

use std::collections::{BTreeMap, HashMap};

use plotters::prelude::*;
use serde_json::{Map, Value as Json};

use super::style::{self, Axis, DrawFailure, FONT};
use crate::tables::results::{ResultRun, conditions};

/// One run's epochs: (epoch, its line's numbers).
pub type Epochs = Vec<(u32, Map<String, Json>)>;

/// Colours of the conditions, in row order (cycling).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// A condition's curve: its label and, per epoch, mean, min and max over its runs.
type Curve = (String, Vec<(f64, f64, f64, f64)>);

/// The curves of `metric`, one per condition that reported it.
fn curves(runs: &[ResultRun], epochs: &HashMap<String, Epochs>, metric: &str) -> Vec<Curve> {
    let mut out = Vec::new();
    for (label, members) in conditions(runs) {
        let mut by_epoch: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
        for run in members {
            for (e, line) in epochs.get(&run.job_id).into_iter().flatten() {
                if let Some(v) = line.get(metric).and_then(Json::as_f64).filter(|v| v.is_finite()) {
                    by_epoch.entry(*e).or_default().push(v);
                }
            }
        }
        let points: Vec<_> = by_epoch
            .into_iter()
            .map(|(e, vs)| {
                let mean = vs.iter().sum::<f64>() / vs.len() as f64;
                let (lo, hi) = vs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
                (f64::from(e), mean, lo, hi)
            })
            .collect();
        if !points.is_empty() {
            out.push((label, points));
        }
    }
    out
}

/// The SVG of `metric` against the epoch, or none when no run reported it.
pub fn metric_vs_epoch(
    runs: &[ResultRun],
    epochs: &HashMap<String, Epochs>,
    metric: &str,
) -> Result<Option<String>, String> {
    let curves = curves(runs, epochs, metric);
    let all = curves.iter().flat_map(|c| c.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, _, lo, hi) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(lo), y1.max(hi));
    }
    if curves.is_empty() {
        return Ok(None);
    }
    let pad = ((y1 - y0) * 0.08).max(1e-9);
    let (x1, y0, y1) = (x1.max(x0 + 1.0), y0 - pad, y1 + pad);
    let svg = style::render((900, 560), |root| {
        let title = format!("{metric} vs epoch (line: mean over each condition's runs; band: min to max)");
        let mut chart = style::chart(root, &title, Axis::linear(x0, x1, "epoch"), Axis::linear(y0, y1, metric))?;
        for (i, (label, points)) in curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            if points.iter().any(|p| p.3 > p.2) {
                let mut band: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.3)).collect();
                band.extend(points.iter().rev().map(|p| (p.0, p.2)));
                chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.15).filled())))?;
            }
            chart
                .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), color.stroke_width(2)))?
                .label(if label.is_empty() { "all runs".to_owned() } else { label.clone() })
                .legend(style::line_mark(color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    })
    .map_err(|e: DrawFailure| e.to_string())?;
    Ok(Some(svg))
}
