//! What every plot shares: the SVG canvas, one colour per architecture (a shade of it per
//! condition), axes with tick marks
//! chosen here (linear, or decades of a log10 axis labelled `1e-5`), legends, and the drawing
//! error. Text is left as SVG `<text>` in a generic `sans-serif` family: no font files are read.

use std::fmt;

use gridsweep_proto::job::Arch;
use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// A failure inside the plotting library, as text (its error types borrow the backend).
#[derive(Debug)]
pub(crate) struct DrawFailure(pub String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawFailure {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawFailure(e.to_string())
    }
}

impl fmt::Display for DrawFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The drawing area of one SVG.
pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// A chart with both axes f64 and tick marks chosen here.
pub(crate) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, Ticked>>;

/// A linear f64 coordinate with the tick marks given (plotters' own key-point decorator loses
/// the label formatter of f64 axes).
pub(crate) struct Ticked {
    /// The range shown.
    range: Range<f64>,
    /// Where the ticks go.
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span == 0.0 || !value.is_finite() {
            return (limit.0 + limit.1) / 2;
        }
        let t = (value - self.range.start) / span;
        limit.0 + (f64::from(limit.1 - limit.0) * t).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// The font of every text.
pub(crate) const FONT: &str = "sans-serif";

/// Draws an SVG of `size` pixels on a white background with `draw`, returning its text.
pub(crate) fn render(
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), DrawFailure>,
) -> Result<String, DrawFailure> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(svg)
}

/// The colour of an architecture's series (the same in every plot).
pub(crate) fn color(arch: Arch) -> RGBColor {
    match arch {
        Arch::Vgg => RGBColor(44, 160, 44),
        Arch::Resnet => RGBColor(31, 119, 180),
        Arch::Grid => RGBColor(214, 39, 40),
    }
}

/// The colour of an architecture's series in the condition of rank `rank` (0, the first
/// condition and the only one in the paper's shape, keeps [`color`]): the others alternate
/// darker and lighter shades of it, cycling after four.
pub(crate) fn shade(arch: Arch, rank: usize) -> RGBColor {
    /// How far each shade moves towards black (negative) or white (positive).
    const SHADES: [f64; 5] = [0.0, -0.45, 0.45, -0.7, 0.65];
    let t = match rank {
        0 => return color(arch),
        r => SHADES[1 + (r - 1) % (SHADES.len() - 1)],
    };
    let RGBColor(r, g, b) = color(arch);
    let towards = |c: u8| {
        let c = f64::from(c);
        let target = if t < 0.0 { 0.0 } else { 255.0 };
        (c + (target - c) * t.abs()).round().clamp(0.0, 255.0) as u8
    };
    RGBColor(towards(r), towards(g), towards(b))
}

/// One axis: its range, where its ticks go, how they read, and its label (with units).
pub(crate) struct Axis {
    /// The range shown.
    pub range: (f64, f64),
    /// The ticks, inside the range.
    pub ticks: Vec<f64>,
    /// A tick's text.
    pub format: fn(&f64) -> String,
    /// The axis label.
    pub label: String,
}

impl Axis {
    /// A linear axis over `lo..hi` with round ticks.
    pub(crate) fn linear(lo: f64, hi: f64, label: impl Into<String>) -> Axis {
        Axis { range: (lo, hi), ticks: nice_ticks(lo, hi), format: fmt_plain, label: label.into() }
    }

    /// A log10 axis: values are log10 of the quantity, `lo..hi` in decades; ticks at whole
    /// decades (and at 2x and 5x when the range spans less than three).
    pub(crate) fn log10(lo: f64, hi: f64, label: impl Into<String>) -> Axis {
        Axis { range: (lo, hi), ticks: log_ticks(lo, hi), format: fmt_pow10, label: label.into() }
    }
}

/// A tick's text on a linear axis: no decimals for whole numbers.
fn fmt_plain(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{:.0}", v) } else { format!("{v:.2}").trim_end_matches('0').to_owned() }
}

/// A tick's text on a log10 axis: 10^v as `1e-5`, `2e-6`, or plain for 1 .. 1000.
pub(crate) fn fmt_pow10(v: &f64) -> String {
    let x = 10f64.powf(*v);
    if (1.0..1000.0).contains(&x) { format!("{:.0}", x) } else { format!("{x:.0e}") }
}

/// Round ticks (steps of 1, 2, 2.5 or 5 times a power of ten) covering `lo..=hi`, about six.
pub(crate) fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return vec![lo];
    }
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks of a log10 axis over `lo..=hi` (in decades): the whole decades, plus log10(2) and
/// log10(5) past each when fewer than three decades are shown.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (first, last) = (lo.ceil() as i64, hi.floor() as i64);
    let decades = last - first + 1;
    let mut ticks = Vec::new();
    for d in (lo.floor() as i64)..=last {
        ticks.push(d as f64);
        if decades < 3 {
            ticks.extend([2f64, 5.0].map(|m| d as f64 + m.log10()));
        }
    }
    ticks.retain(|t| (lo - 1e-9..=hi + 1e-9).contains(t));
    ticks
}

/// A chart in `area` titled `title` with axes `x` and `y`, mesh drawn.
pub(crate) fn chart<'a, 'b>(area: &'a Area<'b>, title: &str, x: Axis, y: Axis) -> Result<Chart<'a, 'b>, DrawFailure> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d(
            Ticked { range: x.range.0..x.range.1, ticks: x.ticks },
            Ticked { range: y.range.0..y.range.1, ticks: y.ticks },
        )?;
    chart
        .configure_mesh()
        .x_desc(x.label)
        .y_desc(y.label)
        .x_label_formatter(&x.format)
        .y_label_formatter(&y.format)
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 12))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    Ok(chart)
}

/// Draws the chart's legend at `position`.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<Ticked, Ticked>>,
    position: SeriesLabelPosition,
) -> Result<(), DrawFailure> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(8)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

/// The legend mark of a solid line in `color`.
pub(crate) fn line_mark(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// The legend mark of a dashed line in `color`.
pub(crate) fn dashed_mark(
    color: RGBColor,
) -> impl Fn((i32, i32)) -> DashedPathElement<std::array::IntoIter<(i32, i32), 2>, i32> {
    move |(x, y)| DashedPathElement::new([(x, y), (x + 20, y)], 6, 4, color.stroke_width(2))
}

/// The pixels a legend of `labels` takes (plotters' own estimate for its built-in font, 13 px,
/// plus its mark area and margins), with 10 px to spare.
fn legend_px(labels: &[String]) -> (f64, f64) {
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    (0.7 * 13.0 / 1.24 / 1.24 * chars + 30.0 + 16.0 + 10.0, 17.0 * labels.len() as f64 + 16.0 + 10.0)
}

/// The plotting area, in pixels, of a chart drawn by [`chart`] in an area of `size`.
pub(crate) fn plot_px(size: (u32, u32)) -> (f64, f64) {
    (f64::from(size.0) - 2.0 * 12.0 - 64.0, f64::from(size.1) - 2.0 * 12.0 - 46.0 - 28.0)
}

/// Where the legend of `labels` goes on a chart of `lines` drawn over `x` by `y` in a plotting
/// area of `px` pixels, and the y range to draw: the first of `prefs` whose corner holds no
/// point of `lines` (each sampled between its points too), keeping `y`; else the y range is
/// raised until the legend fits above the data in an upper corner (the first upper one of
/// `prefs`).
pub(crate) fn plan_legend(
    lines: &[Vec<(f64, f64)>],
    x: (f64, f64),
    y: (f64, f64),
    labels: &[String],
    px: (f64, f64),
    prefs: &[SeriesLabelPosition],
) -> (SeriesLabelPosition, (f64, f64)) {
    let (lw, lh) = legend_px(labels);
    let (fw, fh) = ((lw / px.0.max(1.0)).min(0.95), (lh / px.1.max(1.0)).min(0.9));
    let (w, h) = (x.1 - x.0, y.1 - y.0);
    let mut samples = Vec::new();
    for line in lines {
        samples.extend(line.iter().copied());
        for pair in line.windows(2) {
            let ((a, b), (c, d)) = (pair[0], pair[1]);
            samples.extend((1..20).map(|k| f64::from(k) / 20.0).map(|t| (a + (c - a) * t, b + (d - b) * t)));
        }
    }
    let upper = |p: &SeriesLabelPosition| matches!(p, SeriesLabelPosition::UpperLeft | SeriesLabelPosition::UpperRight);
    let hidden = |p: &SeriesLabelPosition| {
        let left = matches!(p, SeriesLabelPosition::UpperLeft | SeriesLabelPosition::LowerLeft);
        let in_x = |v: f64| if left { v <= x.0 + fw * w } else { v >= x.1 - fw * w };
        let in_y = |v: f64| if upper(p) { v >= y.1 - fh * h } else { v <= y.0 + fh * h };
        samples.iter().any(|&(a, b)| in_x(a) && in_y(b))
    };
    if let Some(p) = prefs.iter().find(|p| !hidden(p)) {
        return (p.clone(), y);
    }
    // Raise the top so that the top `fh` of the range is above every point.
    let top = samples.iter().map(|p| p.1).fold(y.0, f64::max);
    let raised = ((top - fh * y.0) / (1.0 - fh)).max(y.1);
    let corner = prefs.iter().find(|p| upper(p)).cloned().unwrap_or(SeriesLabelPosition::UpperRight);
    (corner, (y.0, raised))
}

/// A range `lo..hi` padded by `pad` of its span on each side (at least `min_span` wide).
pub(crate) fn padded(lo: f64, hi: f64, pad: f64, min_span: f64) -> (f64, f64) {
    let span = (hi - lo).max(min_span);
    let mid = (lo + hi) / 2.0;
    (mid - span * (0.5 + pad), mid + span * (0.5 + pad))
}
