//! Checking each block of a sweep file (name, data, limits, train, axes, include, exclude,
//! analysis) and putting its training settings in canonical form; every error is located in the
//! text and names its key path.

use std::ops::RangeInclusive;
use std::path::Path;

use gridsweep_proto::job::{AnalysisConfig, DataSpec};
use serde_json::{Map, Value as Json};
use serde_yaml::{Mapping, Value as Yaml};

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
/// Accepted job caps.
const MAX_JOBS: RangeInclusive<usize> = 1..=1_000_000;

/// A job's settings by name.
pub(super) type Object = Map<String, Json>;

/// One axis: a training setting and its distinct values, canonical, in the file's order.
pub(super) struct Axis {
    /// The setting.
    pub(super) name: String,
    /// Its values.
    pub(super) values: Vec<Json>,
}

/// The `analysis` block, checked.
pub(super) struct Analysis {
    /// Setting -> accepted values; empty selects every job.
    pub(super) when: Vec<(String, Vec<Json>)>,
    /// The analysis settings.
    pub(super) config: AnalysisConfig,
}

impl Analysis {
    /// Whether the job whose settings are `object` is analysed.
    pub(super) fn selects(&self, object: &Map<String, Json>) -> bool {
        self.when.iter().all(|(key, values)| object.get(key).is_some_and(|v| values.contains(v)))
    }
}

/// The text being expanded, for locating keys.
pub(super) struct Cx<'a> {
    /// The sweep's text.
    pub(super) text: &'a str,
    /// Its file, for messages.
    pub(super) origin: &'a Path,
    /// The training settings' names and defaults.
    pub(super) settings: Settings,
}

impl Cx<'_> {
    /// The place of `path` in the text (as much of it as is found).
    pub(super) fn at(&self, path: &KeyPath) -> Location {
        let found = locate(self.text, path);
        Location { file: self.origin.to_path_buf(), line: found.map(|p| p.0), column: found.map(|p| p.1) }
    }

    /// An invalid part of the sweep.
    pub(super) fn invalid(&self, path: KeyPath, message: impl Into<String>) -> SweepError {
        SweepError::Invalid { at: self.at(&path), key: path.to_string(), message: message.into() }
    }

    /// An unknown or ill-typed training setting.
    pub(super) fn setting(&self, path: KeyPath, message: String) -> SweepError {
        SweepError::Setting { at: self.at(&path), key: path.to_string(), message }
    }

    /// More jobs than the cap.
    pub(super) fn too_many(&self, count: u128, max: usize, note: &'static str) -> SweepError {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        SweepError::TooManyJobs { at: self.at(&KeyPath::top("max_jobs")), count, max, note }
    }

    /// serde_yaml's error, its position moved to the front.
    pub(super) fn yaml(&self, e: &serde_yaml::Error) -> SweepError {
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
    pub(super) fn key_str<'k>(&self, key: &'k Yaml, parent: &KeyPath) -> Result<&'k str, SweepError> {
        key.as_str().ok_or_else(|| {
            let shown = serde_yaml::to_string(key).unwrap_or_default();
            self.invalid(parent.clone(), format!("keys must be setting names, not `{}`", shown.trim()))
        })
    }

    /// A training setting's value in canonical form, or an unknown key or wrong type error.
    pub(super) fn value(&self, key: &str, value: &Yaml, path: KeyPath) -> Result<Json, SweepError> {
        self.settings.canonical(key, value).map_err(|m| self.setting(path, m))
    }

    /// An error unless `key` is a training setting.
    pub(super) fn known(&self, key: &str, path: &KeyPath, allowed: impl Fn(&str) -> bool) -> Result<(), SweepError> {
        match self.settings.is_field(key) && allowed(key) {
            true => Ok(()),
            false => Err(self.setting(path.clone(), self.settings.unknown(key, allowed))),
        }
    }

    /// `retry.max_attempts`, `lease_ttl_s`, `repeats` and `max_jobs` within their ranges.
    pub(super) fn limits(&self, raw: &RawSweep) -> Result<(), SweepError> {
        if raw.retry.max_attempts == 0 {
            return Err(self.invalid(KeyPath::top("retry").key("max_attempts"), "must be at least 1"));
        }
        if !LEASE_TTL_S.contains(&raw.lease_ttl_s) {
            let (lo, hi) = (LEASE_TTL_S.start(), LEASE_TTL_S.end());
            let msg = format!("must be between {lo} and {hi} seconds (got {})", raw.lease_ttl_s);
            return Err(self.invalid(KeyPath::top("lease_ttl_s"), msg));
        }
        if raw.repeats == 0 {
            return Err(self.invalid(KeyPath::top("repeats"), "must be at least 1"));
        }
        if !MAX_JOBS.contains(&raw.max_jobs) {
            let msg = format!("must be between {} and {} (got {})", MAX_JOBS.start(), MAX_JOBS.end(), raw.max_jobs);
            return Err(self.invalid(KeyPath::top("max_jobs"), msg));
        }
        Ok(())
    }

    /// `name`: `[A-Za-z0-9_.-]+`, not `.` or `..`.
    pub(super) fn check_name(&self, name: &str) -> Result<(), SweepError> {
        let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if name.is_empty() || name.len() > MAX_NAME || !ok_chars || name == "." || name == ".." {
            let msg = format!("{name:?} is not a valid name: use 1 to {MAX_NAME} of A-Z a-z 0-9 _ . - (not . or ..)");
            return Err(self.invalid(KeyPath::top("name"), msg));
        }
        Ok(())
    }

    /// A built-in sweep without `data`: located at the top of the file, where serde places a
    /// missing field (a `program:` sweep may leave it out).
    pub(super) fn missing_data(&self) -> SweepError {
        let at = Location { file: self.origin.to_path_buf(), line: Some(1), column: Some(1) };
        let message = "missing `data`: the built-in trainer needs a data set (`data: {kind: cifar10}` or \
                       `data: {kind: synthetic, train: N, test: N, seed: N}`); only a `program:` sweep may leave it out";
        SweepError::Invalid { at, key: "data".to_owned(), message: message.to_owned() }
    }

    /// The `data` block.
    pub(super) fn data(&self, raw: &RawData) -> Result<DataSpec, SweepError> {
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
    pub(super) fn train(&self, map: Option<&Mapping>) -> Result<Map<String, Json>, SweepError> {
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
    pub(super) fn axes(&self, map: Option<&Mapping>, train: &Map<String, Json>) -> Result<Vec<Axis>, SweepError> {
        let root = KeyPath::top("axes");
        let axes = self.axes_of(
            map,
            train,
            |name, path| self.known(name, path, |_| true),
            |name, item, path| self.value(name, item, path),
        )?;
        for key in JOB_KEYS {
            if !axes.iter().any(|a| a.name == key) {
                let msg = "missing axis: arch, depth and seed must each be an axis (a list of values)";
                return Err(self.invalid(root.key(key), msg));
            }
        }
        Ok(axes)
    }

    /// An `axes` block's axes in file order, each a non-empty list of distinct values, none also
    /// in `train`: every name passes `name_ok` and every value is read by `value`. The built-in
    /// trainer's axes and a program's free ones differ only in those two.
    pub(super) fn axes_of(
        &self,
        map: Option<&Mapping>,
        train: &Map<String, Json>,
        name_ok: impl Fn(&str, &KeyPath) -> Result<(), SweepError>,
        value: impl Fn(&str, &Yaml, KeyPath) -> Result<Json, SweepError>,
    ) -> Result<Vec<Axis>, SweepError> {
        let root = KeyPath::top("axes");
        let mut axes: Vec<Axis> = Vec::new();
        for (key, items) in map.into_iter().flatten() {
            let name = self.key_str(key, &root)?;
            let path = root.key(name);
            name_ok(name, &path)?;
            if train.contains_key(name) {
                let msg = format!("`{name}` is both an axis and a base setting (train.{name}): give it in one place");
                return Err(self.invalid(path, msg));
            }
            let Yaml::Sequence(items) = items else {
                return Err(self.invalid(path, "an axis is a list of values, e.g. [a, b]"));
            };
            if items.is_empty() {
                return Err(self.invalid(path, "empty axis: give at least one value"));
            }
            let mut values = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let v = value(name, item, path.index(i))?;
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            axes.push(Axis { name: name.to_owned(), values });
        }
        Ok(axes)
    }

    /// The built-in `include` entries with their index: each gives arch, depth and seed, and any
    /// other settings. An entry with a `program` block is a program job, left to `program.rs`.
    pub(super) fn includes(&self, entries: &[Mapping]) -> Result<Vec<(usize, Object)>, SweepError> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if entry.contains_key("program") {
                continue;
            }
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
            out.push((i, object));
        }
        Ok(out)
    }

    /// The `exclude` entries, as (axis index, value index) pairs; `free` for a program sweep,
    /// whose settings are any names and values.
    pub(super) fn excludes(
        &self,
        entries: &[Mapping],
        axes: &[Axis],
        free: bool,
    ) -> Result<Vec<Vec<(usize, usize)>>, SweepError> {
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
                if !free {
                    self.known(key, &path, |_| true)?;
                }
                let Some(a) = axes.iter().position(|a| a.name == key) else {
                    let names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
                    let msg =
                        format!("`{key}` is not an axis; exclude entries match axis values ({})", names.join(", "));
                    return Err(self.invalid(path, msg));
                };
                let v = if free { self.free_value(value, &path)? } else { self.value(key, value, path.clone())? };
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
    pub(super) fn analysis(&self, raw: Option<&RawAnalysis>) -> Result<Option<Analysis>, SweepError> {
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
        let at_epochs = self.at_epochs(raw.at_epochs.as_ref(), root.key("at_epochs"))?;
        let config = AnalysisConfig { batch_size: raw.batch_size, bn_train_mode: raw.bn_train_mode, at_epochs };
        Ok(Some(Analysis { when, config }))
    }

    /// `analysis.at_epochs`: a list of increasing epochs, each a whole number >= 0. Whether they
    /// fit a job's epochs is checked per job.
    fn at_epochs(&self, raw: Option<&Yaml>, path: KeyPath) -> Result<Vec<u32>, SweepError> {
        let Some(raw) = raw else { return Ok(Vec::new()) };
        let Yaml::Sequence(items) = raw else {
            return Err(self.invalid(path, "a list of epochs, e.g. [0, 1, 150, 300] (0: at initialisation)"));
        };
        if items.is_empty() {
            return Err(
                self.invalid(path, "an empty list analyses nothing; leave the key out to analyse after training")
            );
        }
        let mut out: Vec<u32> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = path.index(i);
            let Some(e) = item.as_u64().and_then(|e| u32::try_from(e).ok()) else {
                return Err(self.invalid(at, format!("{} is not an epoch (a whole number >= 0)", show_yaml(item))));
            };
            if out.contains(&e) {
                return Err(self.invalid(at, format!("epoch {e} appears twice")));
            }
            if out.last().is_some_and(|&last| e < last) {
                return Err(self.invalid(
                    at,
                    format!("epoch {e} comes after {}: list the epochs in increasing order", out[out.len() - 1]),
                ));
            }
            out.push(e);
        }
        Ok(out)
    }
}

/// A YAML scalar as written (`-1`, `1.5`, `"x"`), for messages.
fn show_yaml(v: &Yaml) -> String {
    serde_yaml::to_string(v).map_or_else(|_| format!("{v:?}"), |s| s.trim_end().to_owned())
}
