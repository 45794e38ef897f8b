//! Expanding a sweep file into checked jobs: parse the serde shape, check the sweep-level fields,
//! put every training setting in canonical form, walk the axes' product (the last axis fastest)
//! minus the excludes, then the includes, validate each job's config, attach the analysis,
//! collapse duplicates, apply the job cap and the repeats.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::path::Path;

use gridsweep_proto::job::{AnalysisConfig, ConfigError, DataSpec, JobSpec};
use serde_json::{Map, Value as Json};
use serde_yaml::{Mapping, Value as Yaml};

use super::Sweep;
use super::error::{Location, SweepError};
use super::locate::{KeyPath, locate};
use super::raw::{DataKind, RawAnalysis, RawData, RawSweep};
use super::settings::{JOB_KEYS, Settings, show};

/// Longest accepted sweep name.
const MAX_NAME: usize = 128;
/// Accepted lease lifetimes, seconds.
const LEASE_TTL_S: RangeInclusive<u64> = 5..=86_400;
/// Accepted synthetic training set sizes (the generator writes one file per CIFAR batch, 5).
const SYNTHETIC_TRAIN: RangeInclusive<usize> = 5..=1_000_000;
/// Accepted synthetic test set sizes.
const SYNTHETIC_TEST: RangeInclusive<usize> = 1..=1_000_000;
/// Axis combinations (x repeats) beyond `max_jobs` times this are refused without expanding them.
const SCAN_FACTOR: u128 = 10;

/// One axis: a training setting and its distinct values, canonical, in the file's order.
struct Axis {
    name: String,
    values: Vec<Json>,
}

/// The `analysis` block, checked.
struct Analysis {
    when: Vec<(String, Vec<Json>)>,
    config: AnalysisConfig,
}

impl Analysis {
    /// Whether the job whose settings are `object` is analysed.
    fn selects(&self, object: &Map<String, Json>) -> bool {
        self.when.iter().all(|(key, values)| object.get(key).is_some_and(|v| values.contains(v)))
    }
}

/// Where a job came from, to name the key behind a bad setting.
enum Origin<'a> {
    /// A combination of the axes: the value index on each.
    Product(&'a [Axis], &'a [usize]),
    /// The n-th include entry, with its settings.
    Include(usize, &'a Map<String, Json>),
}

/// The text being expanded, for locating keys.
struct Cx<'a> {
    text: &'a str,
    origin: &'a Path,
    settings: Settings,
}

/// Expands the sweep in `text` (from the file `origin`).
pub(super) fn expand(text: &str, origin: &Path) -> Result<Sweep, SweepError> {
    let cx = Cx { text, origin, settings: Settings::new() };
    let raw: RawSweep = serde_yaml::from_str(text).map_err(|e| cx.yaml(&e))?;
    cx.check_name(&raw.name)?;
    let data = cx.data(&raw.data)?;
    if raw.retry.max_attempts == 0 {
        return Err(cx.invalid(KeyPath::top("retry").key("max_attempts"), "must be at least 1"));
    }
    if !LEASE_TTL_S.contains(&raw.lease_ttl_s) {
        let (lo, hi) = (LEASE_TTL_S.start(), LEASE_TTL_S.end());
        let msg = format!("must be between {lo} and {hi} seconds (got {})", raw.lease_ttl_s);
        return Err(cx.invalid(KeyPath::top("lease_ttl_s"), msg));
    }
    if raw.repeats == 0 {
        return Err(cx.invalid(KeyPath::top("repeats"), "must be at least 1"));
    }
    if raw.max_jobs == 0 {
        return Err(cx.invalid(KeyPath::top("max_jobs"), "must be at least 1"));
    }
    let train = cx.train(raw.train.as_ref())?;
    let axes = cx.axes(raw.axes.as_ref(), &train)?;
    let includes = cx.includes(raw.include.as_deref().unwrap_or_default())?;
    let excludes = cx.excludes(raw.exclude.as_deref().unwrap_or_default(), &axes)?;
    let analysis = cx.analysis(raw.analysis.as_ref())?;
    let mut base = cx.settings.template().clone();
    base.extend(train.iter().map(|(k, v)| (k.clone(), v.clone())));

    let combos = axes.iter().try_fold(1u128, |n, a| n.checked_mul(a.values.len() as u128)).unwrap_or(u128::MAX);
    let repeats = u128::from(raw.repeats);
    if combos.saturating_mul(repeats) > (raw.max_jobs as u128).saturating_mul(SCAN_FACTOR) {
        let note = " (axis combinations x repeats, before exclude)";
        return Err(cx.too_many(combos.saturating_mul(repeats), raw.max_jobs, note));
    }
    let mut out = Jobs {
        cx: &cx,
        data,
        analysis: analysis.as_ref(),
        extra_axes: axes.len() > JOB_KEYS.len(),
        seen: HashSet::new(),
        jobs: Vec::new(),
    };
    let mut digits = vec![0usize; axes.len()];
    for n in 0..combos {
        let mut rest = n;
        for (d, axis) in digits.iter_mut().zip(&axes).rev() {
            let len = axis.values.len() as u128;
            *d = (rest % len) as usize;
            rest /= len;
        }
        if excludes.iter().any(|entry| entry.iter().all(|&(a, v)| digits[a] == v)) {
            continue;
        }
        let mut object = base.clone();
        for (axis, &d) in axes.iter().zip(&digits) {
            object.insert(axis.name.clone(), axis.values[d].clone());
        }
        out.add(object, &Origin::Product(&axes, &digits))?;
    }
    for (i, entry) in includes.iter().enumerate() {
        let mut object = base.clone();
        object.extend(entry.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.add(object, &Origin::Include(i, entry))?;
    }

    let Some(first) = out.jobs.first().map(|j| j.train.clone()) else {
        return Err(cx.invalid(KeyPath::top("exclude"), "drops every job and there is no include: the sweep is empty"));
    };
    let total = out.jobs.len() as u128 * repeats;
    if total > raw.max_jobs as u128 {
        return Err(cx.too_many(total, raw.max_jobs, ""));
    }
    if analysis.as_ref().is_some_and(|a| !a.when.is_empty()) && out.jobs.iter().all(|j| j.analysis.is_none()) {
        return Err(cx.invalid(KeyPath::top("analysis").key("when"), "selects no job of the sweep"));
    }
    let jobs = out
        .jobs
        .into_iter()
        .flat_map(|job| (0..raw.repeats).map(move |repeat| JobSpec { repeat, ..job.clone() }))
        .collect();
    let mut base = Settings::build(base).map_err(|m| cx.invalid(KeyPath::top("train"), m))?;
    (base.arch, base.depth, base.seed) = (first.arch, first.depth, first.seed);
    Ok(Sweep {
        name: raw.name,
        data: out.data,
        base,
        jobs,
        max_attempts: raw.retry.max_attempts,
        lease_ttl_s: raw.lease_ttl_s,
        source: origin.to_path_buf(),
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
            SweepError::Model { at: cx.at(&key), key: key.to_string(), arch, depth, source }
        };
        config.model().map_err(model_error)?;
        match config.validate() {
            Ok(()) => {}
            Err(ConfigError::Model(source)) => return Err(model_error(source)),
            Err(ConfigError::Field { field, value, reason }) => {
                let key = self.key_of(origin, field);
                let context = match origin {
                    Origin::Product(axes, digits) if self.extra_axes => {
                        let values =
                            axes.iter().zip(digits.iter()).map(|(a, &d)| format!("{}={}", a.name, show(&a.values[d])));
                        format!(" in the job {}", values.collect::<Vec<_>>().join(" "))
                    }
                    _ => String::new(),
                };
                return Err(SweepError::Range { at: cx.at(&key), key: key.to_string(), value, reason, context });
            }
        }
        let analysis = self.analysis.filter(|a| a.selects(&object)).map(|a| a.config.clone());
        let job = JobSpec { train: config, analysis, data: self.data.clone(), repeat: 0 };
        if self.seen.insert(job.id()) {
            self.jobs.push(job);
        }
        Ok(())
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

impl Cx<'_> {
    /// The place of `path` in the text (as much of it as is found).
    fn at(&self, path: &KeyPath) -> Location {
        let found = locate(self.text, path);
        Location { file: self.origin.to_path_buf(), line: found.map(|p| p.0), column: found.map(|p| p.1) }
    }

    /// An invalid part of the sweep.
    fn invalid(&self, path: KeyPath, message: impl Into<String>) -> SweepError {
        SweepError::Invalid { at: self.at(&path), key: path.to_string(), message: message.into() }
    }

    /// An unknown or ill-typed training setting.
    fn setting(&self, path: KeyPath, message: String) -> SweepError {
        SweepError::Setting { at: self.at(&path), key: path.to_string(), message }
    }

    /// More jobs than the cap.
    fn too_many(&self, count: u128, max: usize, note: &'static str) -> SweepError {
        SweepError::TooManyJobs { at: self.at(&KeyPath::top("max_jobs")), count, max, note }
    }

    /// serde_yaml's error, its position moved to the front.
    fn yaml(&self, e: &serde_yaml::Error) -> SweepError {
        let mut message = e.to_string();
        let (line, column) = match e.location() {
            _ if self.text.trim().is_empty() => {
                message = "the sweep file is empty".to_owned();
                (None, None)
            }
            Some(l) => {
                message = message.replacen(&format!(" at line {} column {}", l.line(), l.column()), "", 1);
                (Some(l.line()), Some(l.column()))
            }
            None => (None, None),
        };
        SweepError::Yaml { at: Location { file: self.origin.to_path_buf(), line, column }, message }
    }

    /// A map key that must be a string.
    fn key_str<'k>(&self, key: &'k Yaml, parent: &KeyPath) -> Result<&'k str, SweepError> {
        key.as_str().ok_or_else(|| {
            let shown = serde_yaml::to_string(key).unwrap_or_default();
            self.invalid(parent.clone(), format!("keys must be setting names, not `{}`", shown.trim()))
        })
    }

    /// A training setting's value in canonical form, or an unknown key or wrong type error.
    fn value(&self, key: &str, value: &Yaml, path: KeyPath) -> Result<Json, SweepError> {
        self.settings.canonical(key, value).map_err(|m| self.setting(path, m))
    }

    /// An error unless `key` is a training setting.
    fn known(&self, key: &str, path: &KeyPath, allowed: impl Fn(&str) -> bool) -> Result<(), SweepError> {
        match self.settings.is_field(key) && allowed(key) {
            true => Ok(()),
            false => Err(self.setting(path.clone(), self.settings.unknown(key, allowed))),
        }
    }

    /// `name`: `[A-Za-z0-9_.-]+`, not `.` or `..`.
    fn check_name(&self, name: &str) -> Result<(), SweepError> {
        let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if name.is_empty() || name.len() > MAX_NAME || !ok_chars || name == "." || name == ".." {
            let msg = format!("{name:?} is not a valid name: use 1 to {MAX_NAME} of A-Z a-z 0-9 _ . - (not . or ..)");
            return Err(self.invalid(KeyPath::top("name"), msg));
        }
        Ok(())
    }

    /// The `data` block.
    fn data(&self, raw: &RawData) -> Result<DataSpec, SweepError> {
        let root = KeyPath::top("data");
        let given = [("train", raw.train.is_some()), ("test", raw.test.is_some()), ("seed", raw.seed.is_some())];
        match raw.kind {
            DataKind::Cifar10 => match given.iter().find(|(_, g)| *g) {
                Some((key, _)) => Err(self.invalid(root.key(key), "only synthetic data takes train, test and seed")),
                None => Ok(DataSpec::Cifar10),
            },
            DataKind::Synthetic => {
                let (Some(train), Some(test), Some(seed)) = (raw.train, raw.test, raw.seed) else {
                    let missing: Vec<&str> = given.iter().filter(|(_, g)| !g).map(|(k, _)| *k).collect();
                    let msg = format!("synthetic data needs train, test and seed (missing: {})", missing.join(", "));
                    return Err(self.invalid(root, msg));
                };
                for (key, n, range) in [("train", train, SYNTHETIC_TRAIN), ("test", test, SYNTHETIC_TEST)] {
                    if !range.contains(&n) {
                        let msg = format!("must be between {} and {} (got {n})", range.start(), range.end());
                        return Err(self.invalid(root.key(key), msg));
                    }
                }
                Ok(DataSpec::Synthetic { train, test, seed })
            }
        }
    }

    /// The `train` block: base settings, canonical, in the file's order.
    fn train(&self, map: Option<&Mapping>) -> Result<Map<String, Json>, SweepError> {
        let root = KeyPath::top("train");
        let mut out = Map::new();
        for (key, value) in map.into_iter().flatten() {
            let key = self.key_str(key, &root)?;
            let path = root.key(key);
            if JOB_KEYS.contains(&key) {
                let msg = "arch, depth and seed are not base settings: give them under axes (or in include entries)";
                return Err(self.invalid(path, msg));
            }
            self.known(key, &path, |k| !JOB_KEYS.contains(&k))?;
            out.insert(key.to_owned(), self.value(key, value, path)?);
        }
        Ok(out)
    }

    /// The `axes` block: at least arch, depth and seed, none also in `train`, none empty.
    fn axes(&self, map: Option<&Mapping>, train: &Map<String, Json>) -> Result<Vec<Axis>, SweepError> {
        let root = KeyPath::top("axes");
        let mut axes: Vec<Axis> = Vec::new();
        for (key, value) in map.into_iter().flatten() {
            let name = self.key_str(key, &root)?;
            let path = root.key(name);
            self.known(name, &path, |_| true)?;
            if train.contains_key(name) {
                let msg = format!("`{name}` is both an axis and a base setting (train.{name}): give it in one place");
                return Err(self.invalid(path, msg));
            }
            let Yaml::Sequence(items) = value else {
                return Err(self.invalid(path, "an axis is a list of values, e.g. [a, b]"));
            };
            if items.is_empty() {
                return Err(self.invalid(path, "empty axis: give at least one value"));
            }
            let mut values = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let v = self.value(name, item, path.index(i))?;
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            axes.push(Axis { name: name.to_owned(), values });
        }
        for key in JOB_KEYS {
            if !axes.iter().any(|a| a.name == key) {
                let msg = "missing axis: arch, depth and seed must each be an axis (a list of values)";
                return Err(self.invalid(root.key(key), msg));
            }
        }
        Ok(axes)
    }

    /// The `include` entries: each gives arch, depth and seed, and any other settings.
    fn includes(&self, entries: &[Mapping]) -> Result<Vec<Map<String, Json>>, SweepError> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let root = KeyPath::top("include").index(i);
            let mut object = Map::new();
            for (key, value) in entry {
                let key = self.key_str(key, &root)?;
                let path = root.key(key);
                self.known(key, &path, |_| true)?;
                object.insert(key.to_owned(), self.value(key, value, path)?);
            }
            if let Some(missing) = JOB_KEYS.iter().find(|k| !object.contains_key(**k)) {
                return Err(self.invalid(root, format!("missing `{missing}`: an include gives arch, depth and seed")));
            }
            out.push(object);
        }
        Ok(out)
    }

    /// The `exclude` entries, as (axis index, value index) pairs.
    fn excludes(&self, entries: &[Mapping], axes: &[Axis]) -> Result<Vec<Vec<(usize, usize)>>, SweepError> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let root = KeyPath::top("exclude").index(i);
            if entry.is_empty() {
                return Err(self.invalid(root, "an empty entry would drop every job"));
            }
            let mut matches = Vec::with_capacity(entry.len());
            for (key, value) in entry {
                let key = self.key_str(key, &root)?;
                let path = root.key(key);
                self.known(key, &path, |_| true)?;
                let Some(a) = axes.iter().position(|a| a.name == key) else {
                    let names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
                    let msg =
                        format!("`{key}` is not an axis; exclude entries match axis values ({})", names.join(", "));
                    return Err(self.invalid(path, msg));
                };
                let v = self.value(key, value, path.clone())?;
                let Some(d) = axes[a].values.iter().position(|x| *x == v) else {
                    return Err(self.invalid(path, format!("{} is not a value of axes.{key}", show(&v))));
                };
                matches.push((a, d));
            }
            out.push(matches);
        }
        Ok(out)
    }

    /// The `analysis` block.
    fn analysis(&self, raw: Option<&RawAnalysis>) -> Result<Option<Analysis>, SweepError> {
        let Some(raw) = raw else { return Ok(None) };
        let root = KeyPath::top("analysis");
        if raw.batch_size < 1 {
            return Err(self.invalid(root.key("batch_size"), format!("must be at least 1 (got {})", raw.batch_size)));
        }
        let when_root = root.key("when");
        let mut when = Vec::new();
        for (key, value) in raw.when.iter().flatten() {
            let key = self.key_str(key, &when_root)?;
            let path = when_root.key(key);
            self.known(key, &path, |_| true)?;
            let Yaml::Sequence(items) = value else {
                return Err(self.invalid(path, "a list of values, e.g. [1538]"));
            };
            if items.is_empty() {
                return Err(self.invalid(path, "an empty list selects no job"));
            }
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| self.value(key, item, path.index(i)))
                .collect::<Result<Vec<_>, _>>()?;
            when.push((key.to_owned(), values));
        }
        let config = AnalysisConfig { batch_size: raw.batch_size, bn_train_mode: raw.bn_train_mode };
        Ok(Some(Analysis { when, config }))
    }
}
