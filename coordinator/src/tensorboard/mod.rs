//! The runs as TensorBoard reads them: `<out>/tensorboard/<run>/events.out.tfevents.0.gridsweep`,
//! one directory per job named by its condition and seed (`grid-98_lr=0.1_seed=2`; a program
//! job's by its condition as `results.csv` groups it, `lr=0.1_seed=2`), so
//! `tensorboard --logdir <out>/tensorboard` lists every run under its settings.
//!
//! Each file holds, after the version record, one event per reported epoch (step = epoch, wall
//! time = when the coordinator took the report) with the scalars `test_acc`, `train_acc`,
//! `train_loss`, `test_loss` (percent and mean cross-entropy, the last two absent when
//! non-finite) and `lr` (the schedule's rate in that epoch), then one event per gradient
//! analysis (step = the epoch analysed) with the histogram `gradients/log10_abs_grad`: the
//! worker's |g| histogram on a log10 axis ([`histogram`]). A program job's file holds one event
//! per epoch line instead (step = the line's epoch), with every number of the line as a scalar
//! tagged by its key, `epoch` and `epochs` (the total) left out. The epochs are the state's epoch
//! log (the latest attempt's report of each epoch) and a program's stored lines, the analyses the
//! run's result: the records `epochs.csv` and the tables are written from.
//!
//! The bytes are a function of those records alone, so a file only grows while its run trains:
//! [`Writer`] appends what is new to the file it wrote last (a TensorBoard reading the file
//! follows it) and rewrites a file whose start changed (a retried epoch) through a temporary
//! file renamed into place.

pub mod proto;
mod record;

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use gridsweep_proto::job::JobSpec;
use gridsweep_proto::job::program::render;
use gridsweep_proto::result::{EpochMetrics, GradReport, HIST_BINS, HIST_LOG10_HI, HIST_LOG10_LO};
use gridsweep_proto::v1::JobState;
use prost::Message as _;
use serde_json::{Map, Value as Json};

use crate::condition::Varying;
use crate::files::{OutputError, create_dir, write_output};
use crate::tables::results::{ResultRun, condition_of_each};
pub use record::{crc32c, masked_crc32c};

/// The directory under the output directory.
pub const DIR: &str = "tensorboard";
/// Every run's event file name ("tfevents" is what TensorBoard looks for; the rest is fixed so
/// the same records give the same file).
pub const FILE: &str = "events.out.tfevents.0.gridsweep";
/// The histogram's tag.
pub const HISTOGRAM_TAG: &str = "gradients/log10_abs_grad";

/// Why an event file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TensorboardError {
    /// A directory or a rewritten file.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Appending to a file.
    #[error("cannot append to {}: {source}", path.display())]
    Append {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// One run, as its event file is written from.
pub struct RunEvents<'a> {
    /// The job.
    pub job_id: &'a str,
    /// Its settings.
    pub spec: &'a JobSpec,
    /// Its reported epochs, in order, each with when it was reported (Unix seconds).
    pub epochs: Vec<(Option<f64>, EpochMetrics)>,
    /// Its gradient analyses, each with the epoch it was taken after.
    pub grads: Vec<(u32, &'a GradReport)>,
    /// A program job's epoch lines, in epoch order, each with when it was reported (Unix
    /// seconds) and its epoch: a program has no typed metrics, so its lines are kept apart.
    pub lines: Vec<(Option<f64>, u32, &'a Map<String, Json>)>,
}

/// Keys of a program's epoch line that are no scalar: its epoch (the step) and its total.
const NOT_SCALARS: [&str; 2] = ["epoch", "epochs"];

/// Keeps the event files of a sweep current, appending where it can.
#[derive(Debug, Default)]
pub struct Writer {
    /// Per run directory: the length and hash of what was last written there.
    written: HashMap<String, (usize, u64)>,
}

impl Writer {
    /// Writes each run with at least one epoch or analysis to `out/tensorboard/<run>/`, the
    /// directories named from all of `runs` (those with nothing to write included); returns how
    /// many files changed.
    pub fn write(&mut self, out: &Path, runs: &[RunEvents<'_>]) -> Result<usize, TensorboardError> {
        let names = dir_names(runs.iter().map(|r| (r.job_id, r.spec)));
        let root = out.join(DIR);
        let mut changed = 0;
        for (run, name) in runs.iter().zip(names) {
            if run.epochs.is_empty() && run.grads.is_empty() && run.lines.is_empty() {
                continue;
            }
            let bytes = event_file(run);
            let dir = root.join(&name);
            let path = dir.join(FILE);
            let full = (bytes.len(), digest(&bytes));
            match self.written.get(&name) {
                Some(&seen) if seen == full && on_disk(&path) == Some(seen.0) => continue,
                Some(&(len, hash))
                    if bytes.len() > len && digest(&bytes[..len]) == hash && on_disk(&path) == Some(len) =>
                {
                    append(&path, &bytes[len..])?;
                }
                _ => {
                    create_dir(&dir)?;
                    write_output(&dir, FILE, &bytes)?;
                }
            }
            self.written.insert(name, full);
            changed += 1;
        }
        Ok(changed)
    }
}

/// The length of the file at `path`, if there is one.
fn on_disk(path: &Path) -> Option<usize> {
    std::fs::metadata(path).ok().map(|m| m.len() as usize)
}

/// A hash of `bytes`, to tell whether a file's start is what was written.
fn digest(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Appends `bytes` to the file at `path` and syncs it.
fn append(path: &Path, bytes: &[u8]) -> Result<(), TensorboardError> {
    let err = |source| TensorboardError::Append { path: path.to_owned(), source };
    let mut f = std::fs::OpenOptions::new().append(true).open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_data().map_err(err)
}

/// Each run's directory name: a built-in job's `<arch>-<depth>`, each setting in which the runs
/// differ as `name=value` and `seed=<seed>`; a program job's condition as `results.csv` groups
/// it (`implementation=<label>` when the sweep has several, each varying setting of the
/// programs as `name=value`; `program` when nothing varies) and `seed=<its seed setting>` when it
/// has one; then `repeat=<k>` when above 0, joined by `_`, with characters other than letters,
/// digits and `.,=+-` as `_`; a name two runs would share gets its job id's first 12 characters.
pub fn dir_names<'a>(runs: impl Iterator<Item = (&'a str, &'a JobSpec)> + Clone) -> Vec<String> {
    let varying = Varying::of(runs.clone().map(|(_, s)| s), false);
    let conditions = program_conditions(runs.clone());
    let mut names: Vec<String> = runs
        .clone()
        .zip(conditions)
        .map(|((_, spec), condition)| {
            let t = &spec.train;
            let mut parts = match &spec.program {
                Some(p) => {
                    let mut parts: Vec<String> = condition.iter().map(|(n, v)| format!("{n}={v}")).collect();
                    if parts.is_empty() {
                        parts.push("program".to_owned());
                    }
                    parts.extend(p.settings.get("seed").map(|s| format!("seed={}", render(s))));
                    parts
                }
                None => {
                    let mut parts = vec![format!("{}-{}", t.arch, t.depth)];
                    let settings = varying.names.iter().zip(varying.key(spec));
                    parts.extend(settings.map(|(n, v)| format!("{n}={}", v.text())));
                    parts.push(format!("seed={}", t.seed));
                    parts
                }
            };
            if spec.repeat > 0 {
                parts.push(format!("repeat={}", spec.repeat));
            }
            parts
                .join("_")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || ".,=+-".contains(c) { c } else { '_' })
                .collect()
        })
        .collect();
    let mut count: HashMap<String, usize> = HashMap::new();
    for n in &names {
        *count.entry(n.clone()).or_default() += 1;
    }
    for (name, (id, _)) in names.iter_mut().zip(runs) {
        if count[name.as_str()] > 1 {
            name.push_str(&format!("_job={}", &id[..id.len().min(12)]));
        }
    }
    names
}

/// Each run's condition as the results table groups it, when the sweep has a program job (its
/// program jobs' directories are named from it); empty conditions otherwise.
fn program_conditions<'a>(runs: impl Iterator<Item = (&'a str, &'a JobSpec)> + Clone) -> Vec<Vec<(String, String)>> {
    if !runs.clone().any(|(_, s)| s.program.is_some()) {
        return runs.map(|_| Vec::new()).collect();
    }
    let as_results: Vec<ResultRun> = runs
        .map(|(id, spec)| match spec.program {
            Some(_) => ResultRun::program(id, spec, JobState::Pending, None),
            None => ResultRun::builtin(id, spec, JobState::Pending, None),
        })
        .collect();
    condition_of_each(&as_results)
}

/// A run's whole event file.
pub fn event_file(run: &RunEvents<'_>) -> Vec<u8> {
    let first_line = run.lines.first().and_then(|(t, ..)| *t);
    let start = run.epochs.first().and_then(|(t, _)| *t).or(first_line).unwrap_or(0.0);
    let mut out = Vec::new();
    let mut push = |wall_time: f64, step: u32, what: proto::What| {
        let event = proto::Event { wall_time, step: i64::from(step), what: Some(what) };
        record::push_record(&mut out, &event.encode_to_vec());
    };
    push(start, 0, proto::What::FileVersion("brain.Event:2".to_owned()));
    let mut last = start;
    for (at, m) in &run.epochs {
        last = at.unwrap_or(last);
        push(last, m.epoch, proto::What::Summary(proto::Summary { value: scalars(m) }));
    }
    for (at, epoch, line) in &run.lines {
        last = at.unwrap_or(last);
        let value = line_scalars(line);
        if !value.is_empty() {
            push(last, *epoch, proto::What::Summary(proto::Summary { value }));
        }
    }
    for (epoch, g) in &run.grads {
        if g.histogram.is_empty() {
            continue;
        }
        let value =
            proto::SummaryValue { tag: HISTOGRAM_TAG.to_owned(), value: Some(proto::Value::Histo(histogram(g))) };
        push(last, *epoch, proto::What::Summary(proto::Summary { value: vec![value] }));
    }
    out
}

/// An epoch's scalars; a non-finite loss is left out.
fn scalars(m: &EpochMetrics) -> Vec<proto::SummaryValue> {
    let mut values = vec![("test_acc", Some(m.test_acc)), ("train_acc", Some(m.train_acc))];
    values.extend([("train_loss", m.train_loss), ("test_loss", m.test_loss), ("lr", Some(m.lr))]);
    values
        .into_iter()
        .filter_map(|(tag, v)| {
            let v = v.filter(|v| v.is_finite())?;
            Some(proto::SummaryValue { tag: tag.to_owned(), value: Some(proto::Value::SimpleValue(v as f32)) })
        })
        .collect()
}

/// A program's epoch line's scalars: every number of the line but its epoch and total, tagged
/// by its key, in key order; a number that is not finite as a 32-bit float (the
/// event's scalar type) is left out, as are nulls, strings and booleans.
fn line_scalars(line: &Map<String, Json>) -> Vec<proto::SummaryValue> {
    line.iter()
        .filter(|(k, _)| !NOT_SCALARS.contains(&k.as_str()))
        .filter_map(|(tag, v)| {
            let v = v.as_f64().map(|v| v as f32).filter(|v| v.is_finite())?;
            Some(proto::SummaryValue { tag: tag.clone(), value: Some(proto::Value::SimpleValue(v)) })
        })
        .collect()
}

/// The worker's |g| histogram on TensorBoard's terms, in log10 |g|: its `HIST_BINS` bins, each
/// with its upper edge as the limit; before them, when there are any, the zeros and the
/// elements below the range in one bucket up to 10^HIST_LOG10_LO; after them the elements at or
/// above the top in one bucket up to f64::MAX (TensorFlow's own last limit). min and max are the
/// outer edges of the non-empty buckets (the range's ends for the outer buckets); sum and sum of
/// squares are of the bins' centres (the outer buckets at the range's ends), the worker sending
/// counts only.
pub fn histogram(g: &GradReport) -> proto::HistogramProto {
    let width = (HIST_LOG10_HI - HIST_LOG10_LO) / HIST_BINS as f64;
    // (lower edge, upper limit, representative value, count)
    let mut buckets: Vec<(f64, f64, f64, u64)> = Vec::new();
    let low = g.zeros + g.below_range;
    if low > 0 {
        buckets.push((HIST_LOG10_LO, HIST_LOG10_LO, HIST_LOG10_LO, low));
    }
    for (i, &count) in g.histogram.iter().enumerate() {
        let lo = HIST_LOG10_LO + i as f64 * width;
        buckets.push((lo, lo + width, lo + width / 2.0, count));
    }
    if g.above_range > 0 {
        buckets.push((HIST_LOG10_HI, f64::MAX, HIST_LOG10_HI, g.above_range));
    }
    let filled: Vec<&(f64, f64, f64, u64)> = buckets.iter().filter(|b| b.3 > 0).collect();
    let min = filled.first().map_or(0.0, |b| b.0);
    let max = filled.last().map_or(0.0, |b| b.1.min(HIST_LOG10_HI));
    let (mut num, mut sum, mut sum_squares) = (0.0, 0.0, 0.0);
    for &(_, _, x, c) in &buckets {
        let c = c as f64;
        (num, sum, sum_squares) = (num + c, sum + x * c, sum_squares + x * x * c);
    }
    proto::HistogramProto {
        min,
        max,
        num,
        sum,
        sum_squares,
        bucket_limit: buckets.iter().map(|b| b.1).collect(),
        bucket: buckets.iter().map(|b| b.3 as f64).collect(),
    }
}

#[cfg(test)]
mod tests;
