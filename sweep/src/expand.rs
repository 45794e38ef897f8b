//! Expanding a sweep file into checked jobs: parse the serde shape, check the sweep-level fields,
//! put every training setting in canonical form, walk the axes' product (the last axis fastest)
//! minus the excludes, then the includes, validate each job's config, attach the analysis,
//! collapse duplicates, apply the job cap and the repeats. A sweep with a top-level `program`
//! block, and include entries with one, become program jobs (`program.rs`).

use std::collections::HashSet;
use std::path::Path;

use gridsweep_proto::job::{ConfigError, DataSpec, JobSpec};
use serde_json::{Map, Value as Json};

use super::Sweep;
use super::check::{Analysis, Axis, Cx};
use super::error::SweepError;
use super::locate::KeyPath;
use super::program::derived_config;
use super::raw::{RawProgram, RawSweep};
use super::settings::{JOB_KEYS, Settings, show};

/// Axis combinations (x repeats) beyond `max_jobs` times this are refused without expanding them.
const SCAN_FACTOR: u128 = 10;

/// Where a job came from, to name the key behind a bad setting.
enum Origin<'a> {
    /// A combination of the axes: the value index on each.
    Product(&'a [Axis], &'a [usize]),
    /// The n-th include entry, with its settings.
    Include(usize, &'a Map<String, Json>),
}

/// Expands the sweep in `text` (from the file `origin`).
pub(super) fn expand(text: &str, origin: &Path) -> Result<Sweep, SweepError> {
    let cx = Cx { text, origin, settings: Settings::new() };
    let raw: RawSweep = serde_yaml::from_str(text).map_err(|e| cx.yaml(&e))?;
    cx.check_name(&raw.name)?;
    cx.limits(&raw)?;
    if let Some(program) = &raw.program {
        let data = raw.data.as_ref().map_or(Ok(DataSpec::None), |d| cx.data(d))?;
        return expand_program(&cx, &raw, program, data);
    }
    let Some(data) = &raw.data else {
        return Err(cx.missing_data());
    };
    let data = cx.data(data)?;
    let train = cx.train(raw.train.as_ref())?;
    let axes = cx.axes(raw.axes.as_ref(), &train)?;
    let includes = cx.includes(raw.include.as_deref().unwrap_or_default())?;
    let excludes = cx.excludes(raw.exclude.as_deref().unwrap_or_default(), &axes, false)?;
    let analysis = cx.analysis(raw.analysis.as_ref())?;
    let mut base = cx.settings.template().clone();
    base.extend(train.iter().map(|(k, v)| (k.clone(), v.clone())));

    let combos = combinations(&cx, &raw, &axes)?;
    let mut out = Jobs {
        cx: &cx,
        data,
        analysis: analysis.as_ref(),
        extra_axes: axes.len() > JOB_KEYS.len(),
        seen: HashSet::new(),
        jobs: Vec::new(),
    };
    walk(&axes, &excludes, combos, |digits| {
        let mut object = base.clone();
        for (axis, &d) in axes.iter().zip(digits) {
            object.insert(axis.name.clone(), axis.values[d].clone());
        }
        out.add(object, &Origin::Product(&axes, digits))
    })?;
    let mut builtin = includes.iter().peekable();
    for (i, entry) in raw.include.iter().flatten().enumerate() {
        if let Some((_, entry)) = builtin.next_if(|e| e.0 == i) {
            let mut object = base.clone();
            object.extend(entry.iter().map(|(k, v)| (k.clone(), v.clone())));
            out.add(object, &Origin::Include(i, entry))?;
        } else if let Some((template, settings)) = cx.program_entry(entry, &KeyPath::top("include").index(i))? {
            let mut object = train.clone();
            object.extend(settings);
            let job = template.job(&cx, object, &out.data)?;
            out.push(job);
        }
    }
    if analysis.as_ref().is_some_and(|a| !a.when.is_empty()) && out.jobs.iter().all(|j| j.analysis.is_none()) {
        return Err(cx.invalid(KeyPath::top("analysis").key("when"), "selects no job of the sweep"));
    }
    let first = out.jobs.iter().find(|j| j.program.is_none()).or(out.jobs.first()).map(|j| j.train.clone());
    let mut base = Settings::build(base).map_err(|m| cx.invalid(KeyPath::top("train"), m))?;
    if let Some(first) = first {
        (base.arch, base.depth, base.seed) = (first.arch, first.depth, first.seed);
    }
    finish(&cx, &raw, out.data, base, out.jobs)
}

/// Expands a sweep with a top-level `program` block: free settings, every job a program job.
fn expand_program(cx: &Cx<'_>, raw: &RawSweep, program: &RawProgram, data: DataSpec) -> Result<Sweep, SweepError> {
    if raw.analysis.is_some() {
        let msg = "the gradient analysis is the built-in trainer's: a program sweep has none";
        return Err(cx.invalid(KeyPath::top("analysis"), msg));
    }
    let template = cx.program(program, KeyPath::top("program"))?;
    let train = cx.free_train(raw.train.as_ref())?;
    let axes = cx.free_axes(raw.axes.as_ref(), &train)?;
    let excludes = cx.excludes(raw.exclude.as_deref().unwrap_or_default(), &axes, true)?;
    let combos = combinations(cx, raw, &axes)?;
    let mut out = Jobs { cx, data, analysis: None, extra_axes: true, seen: HashSet::new(), jobs: Vec::new() };
    walk(&axes, &excludes, combos, |digits| {
        let mut object = train.clone();
        for (axis, &d) in axes.iter().zip(digits) {
            object.insert(axis.name.clone(), axis.values[d].clone());
        }
        let job = template.job(cx, object, &out.data)?;
        out.push(job);
        Ok(())
    })?;
    for (i, entry) in raw.include.iter().flatten().enumerate() {
        let root = KeyPath::top("include").index(i);
        let mut object = train.clone();
        let job = match cx.program_entry(entry, &root)? {
            Some((own, settings)) => {
                object.extend(settings);
                own.job(cx, object, &out.data)?
            }
            None => {
                for (key, value) in entry {
                    let key = cx.key_str(key, &root)?;
                    object.insert(key.to_owned(), cx.free_value(value, &root.key(key))?);
                }
                template.job(cx, object, &out.data)?
            }
        };
        out.push(job);
    }
    let base = out.jobs.first().map_or_else(|| derived_config(&train), |j| j.train.clone());
    finish(cx, raw, out.data, base, out.jobs)
}

/// The number of axis combinations, refused without expanding them when far over the cap.
fn combinations(cx: &Cx<'_>, raw: &RawSweep, axes: &[Axis]) -> Result<u128, SweepError> {
    let combos = axes.iter().try_fold(1u128, |n, a| n.checked_mul(a.values.len() as u128)).unwrap_or(u128::MAX);
    let repeats = u128::from(raw.repeats);
    if combos.saturating_mul(repeats) > (raw.max_jobs as u128).saturating_mul(SCAN_FACTOR) {
        let note = " (axis combinations x repeats, before exclude)";
        return Err(cx.too_many(combos.saturating_mul(repeats), raw.max_jobs, note));
    }
    Ok(combos)
}

/// Calls `f` with each combination's value indices (the last axis fastest), excludes skipped.
fn walk(
    axes: &[Axis],
    excludes: &[Vec<(usize, usize)>],
    combos: u128,
    mut f: impl FnMut(&[usize]) -> Result<(), SweepError>,
) -> Result<(), SweepError> {
    let mut digits = vec![0usize; axes.len()];
    for n in 0..combos {
        let mut rest = n;
        for (d, axis) in digits.iter_mut().zip(axes).rev() {
            let len = axis.values.len() as u128;
            *d = (rest % len) as usize;
            rest /= len;
        }
        if excludes.iter().any(|entry| entry.iter().all(|&(a, v)| digits[a] == v)) {
            continue;
        }
        f(&digits)?;
    }
    Ok(())
}

/// The sweep from its distinct jobs: not empty, within the cap, each repeated.
fn finish(
    cx: &Cx<'_>,
    raw: &RawSweep,
    data: DataSpec,
    base: gridsweep_proto::job::TrainConfig,
    jobs: Vec<JobSpec>,
) -> Result<Sweep, SweepError> {
    if jobs.is_empty() {
        return Err(cx.invalid(KeyPath::top("exclude"), "drops every job and there is no include: the sweep is empty"));
    }
    let total = jobs.len() as u128 * u128::from(raw.repeats);
    if total > raw.max_jobs as u128 {
        return Err(cx.too_many(total, raw.max_jobs, ""));
    }
    let repeats = raw.repeats;
    let jobs =
        jobs.into_iter().flat_map(|job| (0..repeats).map(move |repeat| JobSpec { repeat, ..job.clone() })).collect();
    Ok(Sweep {
        name: raw.name.clone(),
        data,
        base,
        jobs,
        max_attempts: raw.retry.max_attempts,
        lease_ttl_s: raw.lease_ttl_s,
        source: cx.origin.to_path_buf(),
    })
}

/// The jobs found so far, distinct, in order.
struct Jobs<'a> {
    cx: &'a Cx<'a>,
    data: DataSpec,
    analysis: Option<&'a Analysis>,
    /// Whether the axes go beyond arch, depth and seed (then errors name the job).
    extra_axes: bool,
    seen: HashSet<String>,
    jobs: Vec<JobSpec>,
}

impl Jobs<'_> {
    /// Checks the job whose settings are `object` and keeps it unless an equal one came first.
    fn add(&mut self, object: Map<String, Json>, origin: &Origin<'_>) -> Result<(), SweepError> {
        let cx = self.cx;
        let root = match origin {
            Origin::Product(..) => KeyPath::top("axes"),
            Origin::Include(i, _) => KeyPath::top("include").index(*i),
        };
        let config = Settings::build(object.clone()).map_err(|m| cx.invalid(root, m))?;
        let model_error = |source| {
            let key = self.key_of(origin, "depth");
            let (arch, depth) = (config.arch, config.depth);
            SweepError::Model { at: cx.at(&key), key: key.to_string(), arch, depth, source: Box::new(source) }
        };
        config.model().map_err(model_error)?;
        match config.validate() {
            // The training settings alone: the analysis is checked with the job below.
            Ok(()) | Err(ConfigError::AnalysisEpoch { .. }) => {}
            Err(ConfigError::Model(source)) => return Err(model_error(source)),
            Err(ConfigError::Field { field, value, reason }) => {
                let key = self.key_of(origin, &field);
                let detail = match origin {
                    Origin::Product(axes, digits) if self.extra_axes => {
                        let values =
                            axes.iter().zip(digits.iter()).map(|(a, &d)| format!("{}={}", a.name, show(&a.values[d])));
                        format!("got {value} in the job {}", values.collect::<Vec<_>>().join(" "))
                    }
                    _ => format!("got {value}"),
                };
                return Err(SweepError::Range { at: cx.at(&key), key: key.to_string(), reason, detail });
            }
        }
        let analysis = self.analysis.filter(|a| a.selects(&object)).map(|a| a.config.clone());
        let job = JobSpec { train: config, analysis, data: self.data.clone(), repeat: 0, program: None };
        // What only the analysis decides: an analysis-only job (0 epochs), analysed epochs
        // within the job's epochs.
        let failed = match job.validate() {
            Err(ConfigError::AnalysisEpoch { index, value, reason }) => {
                Some((KeyPath::top("analysis").key("at_epochs").index(index), value, reason))
            }
            Err(ConfigError::Field { field, value, reason }) => {
                let key = match field.strip_prefix("analysis.") {
                    Some(rest) => KeyPath::top("analysis").key(rest),
                    None => self.key_of(origin, &field),
                };
                Some((key, value, reason))
            }
            Err(ConfigError::Model(_)) | Ok(()) => None,
        };
        if let Some((key, value, reason)) = failed {
            let detail = format!("got {value} in the job {}", describe_job(&job));
            return Err(SweepError::Range { at: cx.at(&key), key: key.to_string(), reason, detail });
        }
        self.push(job);
        Ok(())
    }

    /// Keeps `job` unless an equal one came first.
    fn push(&mut self, job: JobSpec) {
        if self.seen.insert(job.id()) {
            self.jobs.push(job);
        }
    }

    /// The key that gave a job its `field`: its axis or include entry, else `train`.
    fn key_of(&self, origin: &Origin<'_>, field: &str) -> KeyPath {
        match origin {
            Origin::Product(axes, _) if axes.iter().any(|a| a.name == field) => KeyPath::top("axes").key(field),
            Origin::Include(i, entry) if entry.contains_key(field) => KeyPath::top("include").index(*i).key(field),
            _ => KeyPath::top("train").key(field),
        }
    }
}

/// A job for messages: `arch=grid depth=26 seed=1 epochs=2`.
fn describe_job(job: &JobSpec) -> String {
    let t = &job.train;
    format!("arch={} depth={} seed={} epochs={}", t.arch, t.depth, t.seed, t.epochs)
}
