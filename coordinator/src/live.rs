//! Results while a sweep runs: `epochs.csv`, one row per job and reported epoch in long format
//! (what people plot while a 300-epoch sweep runs), rewritten atomically from the state; `run`
//! refreshes it every few seconds while epochs arrive and rewrites the tables as jobs end, each
//! paced by what its last rewrite took (`pace`). The TensorBoard event files
//! (`tensorboard/<run>/`, [`crate::tensorboard`]) follow both: epochs as they arrive, a run's
//! gradient histograms when its result does. The CSV's format, with program jobs' epoch lines
//! (their figures by name, their other metrics as extra columns), is `epochs.rs`.

mod epochs;

pub use epochs::epochs_csv;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridsweep_proto::v1 as pb;

use crate::files::{OutputError, create_dir, write_output};
use crate::pace;
use crate::server::Shared;
use crate::store::{EpochRow, JobRow, ProgramEpoch, Store, StoreError};
use crate::tables::{self, RunRecord, TablesError};
use crate::tensorboard::{self, RunEvents, TensorboardError};

/// The file's name in the output directory.
pub const EPOCHS_CSV: &str = "epochs.csv";

/// Why `epochs.csv` could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Reading the state.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the file.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Formatting the file.
    #[error(transparent)]
    Tables(#[from] TablesError),
    /// Writing an event file.
    #[error(transparent)]
    Tensorboard(#[from] TensorboardError),
}

/// How often `epochs.csv` is rewritten at most while epochs arrive.
const EPOCHS_EVERY: Duration = Duration::from_secs(2);
/// How often the tables are rewritten at most as jobs end, in a sweep of more than
/// `SMALL_SWEEP` jobs (each rewrite reads every result).
const TABLES_EVERY: Duration = Duration::from_secs(10);
/// Sweeps up to this many jobs get their tables rewritten at every job's end.
const SMALL_SWEEP: usize = 200;
/// Either file waits at least this many times what its last rewrite took: a sweep of 10,000
/// jobs of 300 epochs has 3 million epoch rows, and its rewrites stay a tenth of a core.
const REWRITE_FACTOR: u32 = 10;

/// The sweep's runs as the tables want them, from the state database.
pub fn records(store: &Store) -> Result<Vec<RunRecord>, StoreError> {
    Ok(records_from(store.snapshot_with_results()?.0))
}

/// [`records`] from a snapshot already read (with results), for a caller that also builds
/// `tables::results`' runs from it and so reads every result once.
pub fn records_from(jobs: Vec<JobRow>) -> Vec<RunRecord> {
    jobs.into_iter()
        // Program jobs have no typed result: `tables::results` reports them.
        .filter(|j| j.spec.program.is_none())
        .map(|j| RunRecord {
            job_id: j.id,
            spec: j.spec,
            state: j.state,
            attempts: j.attempts,
            worker: j.worker,
            error_kind: j.error.is_some().then_some(j.error_kind),
            error: j.error,
            result: j.result,
            memory_need: j.memory_need,
        })
        .collect()
}

/// Keeps the output directory current while a sweep runs: `epochs.csv` when epochs arrive (at
/// most every `EPOCHS_EVERY`), the tables (with pending and running jobs counted) when jobs end
/// (at most every `TABLES_EVERY` in a sweep of more than `SMALL_SWEEP` jobs); either at most
/// every `REWRITE_FACTOR` times its last rewrite's duration.
/// Writing happens on the blocking pool; a failure is logged naming the file, and the sweep goes
/// on (the files are written again at the next change and at the end).
#[derive(Debug)]
pub struct Refresh {
    /// The output directory.
    out: PathBuf,
    /// The sweep's name, for the tables.
    sweep: String,
    /// Epochs reported, over all jobs, when `epochs.csv` was last written.
    epochs: Option<u64>,
    /// When it was last written, and how long that took.
    epochs_at: Option<(Instant, Duration)>,
    /// Jobs ended when the tables were last written.
    ended: Option<usize>,
    /// When they were, and how long that took.
    tables_at: Option<(Instant, Duration)>,
    /// The event files, which it appends to; shared with the blocking task that writes them.
    events: Arc<std::sync::Mutex<tensorboard::Writer>>,
}

impl Refresh {
    /// Nothing written yet.
    pub fn new(out: &Path, sweep: &str) -> Self {
        Refresh {
            out: out.to_owned(),
            sweep: sweep.to_owned(),
            epochs: None,
            epochs_at: None,
            ended: None,
            tables_at: None,
            events: Arc::default(),
        }
    }

    /// Writes what `status` shows has changed since the last call.
    pub async fn update(&mut self, shared: &Arc<Shared>, status: &pb::SweepStatus) {
        let epochs: u64 = status.jobs.iter().map(|j| u64::from(j.epoch)).sum();
        let ended = status.jobs.iter().filter(|j| !j.state().is_open()).count();
        let rested = |at: Option<(Instant, Duration)>, floor| {
            at.is_none_or(|(t, took)| t.elapsed() >= pace::wait_after(took, floor, REWRITE_FACTOR))
        };
        let epochs_due = self.epochs != Some(epochs) && rested(self.epochs_at, EPOCHS_EVERY);
        // Every result is read to write the tables: on a large sweep, not more often than
        // TABLES_EVERY (the last job's end always writes them, at the end of `run`).
        let floor = if status.jobs.len() <= SMALL_SWEEP { Duration::ZERO } else { TABLES_EVERY };
        let tables_due = self.ended != Some(ended) && ended > 0 && rested(self.tables_at, floor);
        if !epochs_due && !tables_due {
            return;
        }
        let (shared, out, sweep) = (shared.clone(), self.out.clone(), self.sweep.clone());
        let events = self.events.clone();
        let task = tokio::task::spawn_blocking(move || {
            let epochs_took = epochs_due.then(|| {
                timed(|| {
                    if let Err(e) = write_epochs(&shared.store, &out) {
                        tracing::error!("{} not written: {e}", out.join(EPOCHS_CSV).display());
                    }
                })
            });
            let tables_took = tables_due.then(|| {
                timed(|| {
                    let written = records(&shared.store)
                        .map_err(|e| e.to_string())
                        .and_then(|runs| tables::write_tables(&runs, &sweep, &out).map_err(|e| e.to_string()));
                    if let Err(e) = written {
                        tracing::error!("tables in {} not refreshed: {e}", out.display());
                    }
                })
            });
            // The event files grow with the epochs (open jobs only, read without the results)
            // and take a run's histograms when the tables do (every result read); their time
            // counts towards the pace of what triggered them. (Only this blocking task locks
            // the writer, and `update` awaits it before the next.)
            let events_took = timed(|| {
                let mut writer = events.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = write_tensorboard_of(&shared.store, &out, &mut writer, tables_due) {
                    tracing::error!("{} not written: {e}", out.join(tensorboard::DIR).display());
                }
            });
            let (epochs_took, tables_took) = match tables_took {
                Some(t) => (epochs_took, Some(t + events_took)),
                None => (epochs_took.map(|t| t + events_took), None),
            };
            (epochs_took, tables_took)
        });
        let (epochs_took, tables_took) = task.await.unwrap_or_else(|e| {
            tracing::error!("refreshing {}: {e}", self.out.display());
            (None, None)
        });
        let now = Instant::now();
        if epochs_due {
            (self.epochs, self.epochs_at) = (Some(epochs), Some((now, epochs_took.unwrap_or_default())));
        }
        if tables_due {
            (self.ended, self.tables_at) = (Some(ended), Some((now, tables_took.unwrap_or_default())));
        }
    }
}

/// How long `f` took.
fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

/// Writes `out/epochs.csv` from the state; returns its path.
pub fn write_epochs(store: &Store, out: &Path) -> Result<PathBuf, LiveError> {
    let (jobs, _) = store.snapshot()?;
    let log = store.epoch_log()?;
    let lines = store.program_epochs()?;
    let bytes = epochs_csv(&out.join(EPOCHS_CSV), &jobs, &log, &lines)?;
    create_dir(out)?;
    Ok(write_output(out, EPOCHS_CSV, &bytes)?)
}

/// Writes the TensorBoard event files of every run with an epoch or an analysis to
/// `out/tensorboard/` from the state (epochs from the epoch log and the program jobs' lines,
/// analyses from the results),
/// appending through `writer` where it can; returns how many files changed.
pub fn write_tensorboard(store: &Store, out: &Path, writer: &mut tensorboard::Writer) -> Result<usize, LiveError> {
    write_tensorboard_of(store, out, writer, true)
}

/// [`write_tensorboard`]; without `ended`, only the open jobs' files (from a snapshot without
/// results, which open jobs do not have), so that a refresh as epochs arrive reads no result.
/// Either way each directory is named from every job's settings.
fn write_tensorboard_of(
    store: &Store,
    out: &Path,
    writer: &mut tensorboard::Writer,
    ended: bool,
) -> Result<usize, LiveError> {
    let (jobs, _) = if ended { store.snapshot_with_results()? } else { store.snapshot()? };
    let (log, lines) = (store.epoch_log()?, store.program_epochs()?);
    let mut runs = tensorboard_runs(&jobs, &log, &lines);
    if !ended {
        // Every job still names the directories (by the settings in which all jobs differ);
        // an ended one with nothing to write is left as it is.
        for (run, job) in runs.iter_mut().zip(&jobs) {
            if !job.state.is_open() {
                (run.epochs, run.grads, run.lines) = (Vec::new(), Vec::new(), Vec::new());
            }
        }
    }
    Ok(writer.write(out, &runs)?)
}

/// Each job's epochs (the latest attempt's report of each epoch; a result's own epochs when the
/// log has none), gradient analyses (by epoch) and program epoch lines (`lines`, one per job and
/// epoch, in epoch order), as the event files are written from.
pub fn tensorboard_runs<'a>(jobs: &'a [JobRow], log: &[EpochRow], lines: &'a [ProgramEpoch]) -> Vec<RunEvents<'a>> {
    type Epochs = std::collections::BTreeMap<u32, (u32, Option<f64>, gridsweep_proto::result::EpochMetrics)>;
    let mut by_job: HashMap<&str, Epochs> = HashMap::new();
    for row in log {
        let epochs = by_job.entry(row.job.as_str()).or_default();
        let m = &row.metrics;
        if epochs.get(&m.epoch).is_none_or(|(attempt, ..)| *attempt <= row.attempt) {
            epochs.insert(m.epoch, (row.attempt, row.reported_at, m.clone()));
        }
    }
    let mut lines_of: HashMap<&str, Vec<_>> = HashMap::new();
    for l in lines {
        lines_of.entry(l.job.as_str()).or_default().push((l.reported_at, l.epoch, &l.metrics));
    }
    jobs.iter()
        .map(|j| {
            let mut epochs: Vec<_> =
                by_job.remove(j.id.as_str()).unwrap_or_default().into_values().map(|(_, at, m)| (at, m)).collect();
            let mut grads = Vec::new();
            if let Some(r) = &j.result {
                if epochs.is_empty() {
                    epochs = r.epochs.iter().map(|m| (None, m.clone())).collect();
                }
                grads = r
                    .earlier_grad_analyses
                    .iter()
                    .chain(&r.grad_analysis)
                    .map(|g| (g.epoch_or(r.epochs.len()), g))
                    .collect();
                grads.sort_by_key(|(epoch, _)| *epoch);
            }
            let lines = lines_of.remove(j.id.as_str()).unwrap_or_default();
            RunEvents { job_id: &j.id, spec: &j.spec, epochs, grads, lines }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsweep_proto::job::{Arch, DataSpec, JobSpec, TrainConfig};
    use gridsweep_proto::result::{RunStatus, TrainResult};

    /// A 2-epoch resnet-8 job at learning rate `lr` on a tiny synthetic set.
    fn job(lr: f64) -> JobSpec {
        JobSpec {
            train: TrainConfig { lr, epochs: 2, ..TrainConfig::paper(Arch::Resnet, 8, 1) },
            analysis: None,
            data: DataSpec::Synthetic { train: 10, test: 5, seed: 0 },
            repeat: 0,
            program: None,
        }
    }

    #[test]
    fn one_row_per_epoch_with_the_varying_settings() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let specs = [job(0.1), job(0.05)];
        store.add_sweep("s", "s.yaml", &specs, 3).unwrap();
        let w = store.register_worker("w", "cpu", None).unwrap();
        let crate::store::Grant::Lease(l) = store.grant(&w, 60.0, false).unwrap() else { panic!("a lease") };
        let spec: JobSpec = serde_json::from_str(&l.spec_json).unwrap();
        let r = TrainResult::simulated(spec.train.clone(), RunStatus::Completed, &[30.0, 40.0]);
        let epochs: Vec<(u32, String)> =
            r.epochs.iter().map(|m| (m.epoch, serde_json::to_string(m).unwrap())).collect();
        store.heartbeat(&w, &l.job_id, l.token, &epochs, 60.0).unwrap();

        let path = write_epochs(&store, &dir.path().join("out")).unwrap();
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header[..6], ["job_id", "arch", "depth", "seed", "repeat", "lr"]);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (&rows[0][0], &rows[0][5], &rows[0][6], &rows[1][11]),
            (l.job_id.as_str(), &*spec.train.lr.to_string(), "1", "40")
        );
        assert_eq!(&rows[1][13], w.as_str(), "the worker of the attempt");
    }

    #[test]
    fn event_files_follow_open_jobs_and_take_results_when_jobs_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add_sweep("s", "s.yaml", &[job(0.1), job(0.05)], 3).unwrap();
        let w = store.register_worker("w", "cpu", None).unwrap();
        let mut names = Vec::new();
        for end in [true, false] {
            let crate::store::Grant::Lease(l) = store.grant(&w, 60.0, false).unwrap() else { panic!("a lease") };
            let spec: JobSpec = serde_json::from_str(&l.spec_json).unwrap();
            let r = TrainResult::simulated(spec.train.clone(), RunStatus::Completed, &[30.0, 40.0]);
            let epochs: Vec<(u32, String)> =
                r.epochs.iter().map(|m| (m.epoch, serde_json::to_string(m).unwrap())).collect();
            store.heartbeat(&w, &l.job_id, l.token, &epochs, 60.0).unwrap();
            if end {
                store.complete(&w, &l.job_id, l.token, &serde_json::to_string(&r).unwrap()).unwrap();
            }
            names.push(format!("resnet-8_lr={}_seed=1", spec.train.lr));
        }
        let out = dir.path().join("out");
        let mut writer = tensorboard::Writer::default();
        // As epochs arrive: the running job only, named by the setting the two jobs differ in.
        assert_eq!(write_tensorboard_of(&store, &out, &mut writer, false).unwrap(), 1);
        assert!(out.join(tensorboard::DIR).join(&names[1]).join(tensorboard::FILE).is_file(), "{names:?}");
        assert!(!out.join(tensorboard::DIR).join(&names[0]).exists());
        // When a job ends: every job, the running one unchanged.
        assert_eq!(write_tensorboard_of(&store, &out, &mut writer, true).unwrap(), 1);
        assert!(out.join(tensorboard::DIR).join(&names[0]).join(tensorboard::FILE).is_file());
    }
}
