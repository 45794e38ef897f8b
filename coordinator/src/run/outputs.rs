//! What `run` checks before it serves and writes after the sweep: the data set the workers get
//! (refused early when the sweep needs CIFAR-10 and none is at hand), and the outputs derived from
//! the state (tables, `epochs.csv`, the TensorBoard event files, plots, `report.md`), which
//! `coordinator tables` rewrites from a stopped state the same way.

use std::path::{Path, PathBuf};

use gridsweep_proto::cifar;

use super::RunError;
use crate::live::{self, records_from};
use crate::store::Store;
use crate::tables::{self, RunRecord, TablesSummary};

/// Writes the tables of the state in `state_dir` to `out`, Table 1 compared along `axis`
/// (`arch`, or a setting the runs differ in: `coordinator tables --compare`), then
/// `epochs.csv`, the event files, the plots and the report.
pub fn write_tables(state_dir: &Path, out: &Path, axis: &str) -> Result<TablesSummary, RunError> {
    let store = Store::open_existing(state_dir)?;
    let name = store.sweep_name()?.unwrap_or_else(|| "sweep".to_owned());
    write_outputs_comparing(&store, &name, None, out, axis)
}

/// Writes every output of `store` to `out`: the tables (an error here is the command's), then
/// `epochs.csv`, the plots and the report, whose failures are logged and lose nothing else.
pub(super) fn write_outputs(
    store: &Store,
    name: &str,
    sweep_source: Option<&Path>,
    out: &Path,
) -> Result<TablesSummary, RunError> {
    write_outputs_comparing(store, name, sweep_source, out, tables::ARCH_AXIS)
}

/// [`write_outputs`] with Table 1 compared along `axis`.
fn write_outputs_comparing(
    store: &Store,
    name: &str,
    sweep_source: Option<&Path>,
    out: &Path,
    axis: &str,
) -> Result<TablesSummary, RunError> {
    // One read of every result serves both the paper's tables and results.csv.
    let (jobs, _) = store.snapshot_with_results()?;
    let results = store.program_results().map(|programs| tables::results::runs_from(&jobs, &programs));
    let runs = records_from(jobs);
    let tables = tables::write_tables_comparing(&runs, name, out, axis)?;
    let read = results.and_then(|r| Ok((r, tables::results::epochs_of(store)?)));
    let written = match read {
        Ok(((runs, metric), epochs)) => {
            tables::results::write_results(&runs, &epochs, name, &metric, out).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = written {
        tracing::error!("results.csv and results.md not written: {e}");
    }
    if let Err(e) = live::write_epochs(store, out) {
        tracing::error!("{} not written: {e}", out.join(live::EPOCHS_CSV).display());
    }
    if let Err(e) = live::write_tensorboard(store, out, &mut Default::default()) {
        tracing::error!("{} not written: {e}", out.join(crate::tensorboard::DIR).display());
    }
    write_plots_and_report(&runs, name, sweep_source, out);
    Ok(tables)
}

/// Writes the plots and `report.md` beside tables already written. A failure here must not
/// lose the tables: it is logged as an error (the report says which plot is missing) and the
/// command goes on.
fn write_plots_and_report(runs: &[RunRecord], name: &str, sweep_source: Option<&Path>, out: &Path) {
    match crate::plots::write_plots(runs, out) {
        Ok(files) => tracing::info!(count = files.len(), "plots written"),
        Err(e) => tracing::error!("plots not written: {e}"),
    }
    match crate::report::write_report(runs, name, sweep_source, out) {
        Ok(path) => tracing::info!(path = %path.display(), "report written"),
        Err(e) => tracing::error!("report not written: {e}"),
    }
}

/// The folder of CIFAR-10 files the sweep's workers get: `--data` when given, else `data/`
/// (where `make demo` and `make data` put the set) when it holds a verified set. A sweep on
/// CIFAR-10 without either is refused before anything is served or written, so that the
/// operator's mistake is not charged to the jobs.
pub(super) fn resolve_data(given: Option<&Path>, needs_cifar: bool) -> Result<Option<PathBuf>, RunError> {
    let verified = |dir: &Path| {
        let inner = cifar::resolve_dir(dir);
        cifar::verify(&inner).map(|()| inner)
    };
    match (given, needs_cifar) {
        (Some(d), true) => verified(d).map(Some).map_err(|e| {
            RunError::Data(format!(
                "--data {}: not a verified CIFAR-10 set ({e}); fetch one with `worker data fetch --dest DIR`",
                d.display()
            ))
        }),
        (Some(d), false) => Ok(Some(cifar::resolve_dir(d))),
        (None, true) => match verified(Path::new("data")) {
            Ok(dir) => {
                println!("data: CIFAR-10 from {} (md5 verified)", dir.display());
                Ok(Some(dir))
            }
            Err(e) => Err(RunError::Data(format!(
                "this sweep trains on CIFAR-10, but no --data was given and data/ holds no verified set ({e}); \
                 give --data DIR, after `worker data fetch --dest DIR` if needed"
            ))),
        },
        (None, false) => Ok(None),
    }
}
