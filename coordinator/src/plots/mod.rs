//! The sweep's plots, SVG files written beside the tables:
//!
//! - `accuracy_vs_epoch.svg`: test accuracy after each epoch, one panel per depth, a line per
//!   architecture (the mean over its completed runs, every seed and repeat) with a band from
//!   their minimum to their maximum;
//! - `accuracy_vs_depth.svg`: final test accuracy (the last epoch's, as in Table 1) against depth
//!   on a log axis, the mean per architecture with bars from the minimum to the maximum;
//! - `grad_histogram.svg`: the |gradient| distribution (log10 bins) of resnet and grid at the
//!   deepest depth where a completed run of either has a gradient analysis, histograms summed
//!   over runs, with Table 2's thresholds 1e-4 .. 1e-7 as vertical lines;
//! - `grad_vs_distance.svg`: the mean squared gradient per block against the block's distance
//!   from the input (the paper's sigma_g^2(d)), log y, resnet and grid at that same kind of
//!   deepest depth, with the paper's eq. 5 (resnet, alpha^k) and eq. 6 (grid,
//!   beta^k + (1 - beta^k)/2) fitted to the mean points, k counted from the output;
//! - `grad_vs_distance_init.svg`: the same for the analysis at initialisation (epoch 0), when
//!   runs were analysed then and later (`analysis.at_epochs`);
//! - `vanished_vs_epoch.svg`: Table 2's vanished fractions against the analysed epoch, a panel
//!   per threshold, at the deepest depth analysed at more than one epoch.
//!
//! Series: one per architecture in each *condition* (the settings beyond architecture, depth
//! and seed in which the sweep's jobs differ, [`crate::condition`]), labelled with the
//! condition's settings (`resnet lr=0.05`) and drawn in a shade of the architecture's colour;
//! the accuracy plots group as Table 1 does, the gradient plots as Table 2 does. In the paper's
//! shape there is one condition, and a series per architecture. A plot's note lists the
//! conditions it splits by.
//!
//! Which runs: completed runs make every series. A diverged run appears only in the epoch
//! curves, drawn alone (dashed, a cross at its last epoch, "diverged" in the legend); it is left
//! out of the depth curve and the gradient plots, as it is left out of the tables' means.
//! Pending, running and failed runs have no result and are not drawn.
//!
//! A plot without data (no gradient analysis, say) is skipped: [`plot_index`] says why, and a
//! file of that name left in the output directory by an earlier call is removed so that no stale
//! picture sits beside fresh tables.

mod accuracy;
mod data;
mod fit;
mod gradients;
pub mod metric;
mod style;
#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::files::{OutputError, create_dir};
use crate::tables::RunRecord;

/// Why the plots could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output directory or a file could not be made.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The plotting library failed while drawing a file.
    #[error("cannot draw {}: {message}", path.display())]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// What the library said.
        message: String,
    },
    /// A result field a plot reads is present but malformed.
    #[error("job {job_id}: result field `{field}` {problem}")]
    BadResult {
        /// The job whose result is bad.
        job_id: String,
        /// The field's path in the result JSON, `grad_analysis.histogram`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// One plot: its file, what it shows, and whether it is drawn for these runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotInfo {
    /// The file name in the output directory, `grad_histogram.svg`.
    pub file: &'static str,
    /// A one-line title.
    pub title: &'static str,
    /// What the picture shows and how it was made from the runs.
    pub caption: &'static str,
    /// Which data it holds for these runs (depths, runs per series); empty when skipped.
    pub note: String,
    /// Why it is not drawn for these runs; None when it is.
    pub skipped: Option<String>,
}

/// A drawn picture or the reason there is none.
pub(crate) enum Drawn {
    /// The SVG text and a note on its data.
    Svg {
        /// The SVG document.
        svg: String,
        /// Which data it holds.
        note: String,
    },
    /// Why it was not drawn.
    Skipped(String),
}

/// A plot's file, title, caption and drawing function.
struct Plot {
    /// File name.
    file: &'static str,
    /// Title.
    title: &'static str,
    /// Caption.
    caption: &'static str,
    /// Draws it.
    draw: fn(&[data::Run]) -> Result<Drawn, style::DrawFailure>,
}

/// Every plot, in the report's order.
const PLOTS: [Plot; 6] = [
    Plot {
        file: "accuracy_vs_epoch.svg",
        title: "Test accuracy vs epoch",
        caption: "Test accuracy after each epoch, one panel per depth. A line per architecture: the mean over its \
                  completed runs (seeds and repeats); the band spans their minimum to maximum. A diverged run is \
                  drawn alone, dashed, up to the epoch its loss became non-finite, with a cross at its last epoch.",
        draw: accuracy::vs_epoch,
    },
    Plot {
        file: "accuracy_vs_depth.svg",
        title: "Final test accuracy vs depth",
        caption: "Final test accuracy (last epoch, as in Table 1) against depth on a log axis: the mean over the \
                  completed runs per architecture, bars from their minimum to maximum. Diverged runs are left out, \
                  as in Table 1's means.",
        draw: accuracy::vs_depth,
    },
    Plot {
        file: "grad_histogram.svg",
        title: "|gradient| distribution, resnet vs grid",
        caption: "Distribution of |gradient| over every trainable parameter element and validation batch, at the \
                  deepest depth with a gradient analysis of a completed resnet or grid run: the worker's log10 \
                  histogram summed over runs, as a share of all gradient elements per bin. Dashed lines: the \
                  vanishing thresholds 1e-4, 1e-5, 1e-6, 1e-7 of Table 2.",
        draw: gradients::histogram,
    },
    Plot {
        file: "grad_vs_distance.svg",
        title: "Mean squared gradient vs distance from the input (sigma_g^2(d)), resnet vs grid",
        caption: "Mean squared gradient of a block's parameters against its distance d from the input (blocks on \
                  the longest input path up to and including it), log scale; blocks at the same distance (grid \
                  nodes on one anti-diagonal) are pooled, weighted by their gradient elements. The line is the \
                  mean over completed runs, the band their minimum to maximum; deepest analysed depth. Dashed: \
                  the paper's model for each architecture fitted to the mean points (eq. 5 for resnet, eq. 6 for \
                  grid, k = blocks from the output), with the root mean square residual in decades.",
        draw: gradients::vs_distance,
    },
    Plot {
        file: "grad_vs_distance_init.svg",
        title: "Mean squared gradient vs distance from the input at initialisation, resnet vs grid",
        caption: "As the plot above, for the gradient analysis at initialisation (epoch 0, before any step), where \
                  the paper's eq. 5 and 6 speak. Dashed: the paper's model for each architecture fitted to the mean \
                  points by least squares on log10 (eq. 5, c alpha^k, for resnet; eq. 6, c (beta^k + (1 - beta^k)/2), \
                  for grid; k = blocks from the output), with the root mean square residual in decades.",
        draw: gradients::vs_distance_init,
    },
    Plot {
        file: "vanished_vs_epoch.svg",
        title: "Vanished gradient fractions vs epoch",
        caption: "Table 2's vanished fractions (percentage of gradient elements with |g| below 1e-4 .. 1e-7, a panel \
                  per threshold) against the epoch analysed (0: at initialisation), a line per architecture: the \
                  mean over completed runs, the band their minimum to maximum; deepest depth analysed at more than \
                  one epoch.",
        draw: gradients::vanished_vs_epoch,
    },
];

/// Draws every plot for `runs`, in memory.
fn draw_all(runs: &[RunRecord]) -> Result<Vec<(&'static Plot, Drawn)>, PlotError> {
    let read = data::read(runs)?;
    PLOTS
        .iter()
        .map(|plot| {
            (plot.draw)(&read)
                .map(|d| (plot, d))
                .map_err(|e| PlotError::Draw { path: PathBuf::from(plot.file), message: e.0 })
        })
        .collect()
}

/// Every plot with what it holds for `runs`, or why it is skipped, without writing anything.
pub fn plot_index(runs: &[RunRecord]) -> Result<Vec<PlotInfo>, PlotError> {
    Ok(render_plots(runs)?.into_iter().map(|(info, _)| info).collect())
}

/// Every plot drawn in memory, with its description and its SVG (none when skipped, the reason
/// in `skipped`): what the dashboard's plots page shows.
pub fn render_plots(runs: &[RunRecord]) -> Result<Vec<(PlotInfo, Option<String>)>, PlotError> {
    Ok(draw_all(runs)?
        .into_iter()
        .map(|(plot, drawn)| {
            let (note, skipped, svg) = match drawn {
                Drawn::Svg { svg, note } => (note, None, Some(svg)),
                Drawn::Skipped(why) => (String::new(), Some(why), None),
            };
            (PlotInfo { file: plot.file, title: plot.title, caption: plot.caption, note, skipped }, svg)
        })
        .collect())
}

/// Writes the plots of `runs` into `out_dir` (created if missing), each through a temporary
/// file renamed into place, and returns the files written. A plot without data is skipped (see
/// [`plot_index`] for why) and an old file of its name removed. Everything is drawn before
/// anything is written, so a bad result leaves the directory as it was. A file that cannot be
/// written does not stop the others: they are written, the old file of that name is removed
/// (best effort), and the first such error is returned.
pub fn write_plots(runs: &[RunRecord], out_dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let drawn = draw_all(runs)?;
    create_dir(out_dir)?;
    let mut written = Vec::new();
    let mut first_error = None;
    for (plot, d) in drawn {
        let path = out_dir.join(plot.file);
        let outcome = match d {
            Drawn::Svg { svg, .. } => crate::files::write_atomic(out_dir, plot.file, svg.as_bytes()).map(|()| true),
            Drawn::Skipped(why) => {
                tracing::info!(plot = plot.file, "plot skipped: {why}");
                remove_stale(&path).map(|()| false)
            }
        };
        match outcome {
            Ok(true) => written.push(path),
            Ok(false) => {}
            Err(source) => {
                // Go on with the other plots; no stale picture may stay under this name.
                let _ = remove_stale(&path);
                first_error.get_or_insert(PlotError::Output(OutputError::Write { path, source }));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(written),
    }
}

/// Removes the file at `path` if there is one.
fn remove_stale(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
