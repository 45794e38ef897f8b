//! `program:` sweeps: the user's own training program instead of the built-in trainer. A
//! top-level `program` block makes every job a program job; its settings are free (any key, any
//! scalar on an axis, no arch/depth/seed required, no recipe defaults added): a job's settings
//! are exactly the `train` block with the job's axis values or include entry over it. An include
//! entry holding a `program` block is a program job too, in either kind of sweep (so a built-in
//! sweep can put a program beside the trainer at equal settings: `sweeps/crosscheck.yaml`).
//! Every `{placeholder}` must name a setting of each job it is used in; errors are located like
//! every other sweep error.

use std::collections::BTreeMap;

use gridsweep_proto::job::program::{check_env_name, pieces};
use gridsweep_proto::job::{Arch, DataSpec, JobSpec, ProgramSpec, TrainConfig};
use serde_json::{Map, Value as Json};
use serde_yaml::{Mapping, Value as Yaml};

use super::check::{Axis, Cx, Object};
use super::error::SweepError;
use super::locate::KeyPath;
use super::raw::RawProgram;
use super::settings::{Settings, show};

/// A checked `program` block, before a job's settings fill it.
#[derive(Clone)]
pub(super) struct Template {
    /// The argv template.
    command: Vec<String>,
    /// Extra environment variables.
    env: BTreeMap<String, String>,
    /// The tables' metric.
    metric: gridsweep_proto::job::Metric,
    /// Where the block is, for errors about its placeholders.
    root: KeyPath,
}

impl Cx<'_> {
    /// Checks a `program` block at `root`: a non-empty command of scalars with balanced braces,
    /// environment names the worker does not set, a metric name.
    pub(super) fn program(&self, raw: &RawProgram, root: KeyPath) -> Result<Template, SweepError> {
        let command_root = root.key("command");
        let Yaml::Sequence(items) = &raw.command else {
            return Err(self.invalid(command_root, "a list: the program and its arguments, e.g. [python3, train.py]"));
        };
        if items.is_empty() {
            return Err(self.invalid(command_root, "empty: give the program and its arguments"));
        }
        let mut command = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = command_root.index(i);
            let arg = self.scalar_text(item, &path)?;
            if i == 0 && arg.is_empty() {
                return Err(self.invalid(path, "the program's name is empty"));
            }
            pieces(&arg).map_err(|e| self.invalid(path, e.to_string()))?;
            command.push(arg);
        }
        let env_root = root.key("env");
        let mut env = BTreeMap::new();
        for (key, value) in raw.env.iter().flatten() {
            let name = self.key_str(key, &env_root)?;
            let path = env_root.key(name);
            check_env_name(name).map_err(|e| self.invalid(path.clone(), e.to_string()))?;
            let value = self.scalar_text(value, &path)?;
            pieces(&value).map_err(|e| self.invalid(path, e.to_string()))?;
            env.insert(name.to_owned(), value);
        }
        if raw.metric.name.is_empty() {
            return Err(self.invalid(root.key("metric").key("name"), "empty: name a key of the result line"));
        }
        Ok(Template { command, env, metric: raw.metric.clone(), root })
    }

    /// A scalar as text (`2`, `0.1`, `true`, `x`); a list, map or null is an error at `path`.
    fn scalar_text(&self, value: &Yaml, path: &KeyPath) -> Result<String, SweepError> {
        match value {
            Yaml::String(s) => Ok(s.clone()),
            Yaml::Number(n) => Ok(n.to_string()),
            Yaml::Bool(b) => Ok(b.to_string()),
            _ => Err(self.invalid(path.clone(), "a string or a number")),
        }
    }

    /// A free setting's value: any YAML value but a tagged one, as JSON.
    pub(super) fn free_value(&self, value: &Yaml, path: &KeyPath) -> Result<Json, SweepError> {
        serde_json::to_value(value).map_err(|e| self.setting(path.clone(), format!("not a setting's value: {e}")))
    }

    /// The `train` block of a program sweep: any setting, any value.
    pub(super) fn free_train(&self, map: Option<&Mapping>) -> Result<Map<String, Json>, SweepError> {
        let root = KeyPath::top("train");
        let mut out = Map::new();
        for (key, value) in map.into_iter().flatten() {
            let key = self.key_str(key, &root)?;
            out.insert(key.to_owned(), self.free_value(value, &root.key(key))?);
        }
        Ok(out)
    }

    /// The `axes` of a program sweep: any setting not in `train`, a non-empty list of scalars.
    pub(super) fn free_axes(&self, map: Option<&Mapping>, train: &Map<String, Json>) -> Result<Vec<Axis>, SweepError> {
        self.axes_of(
            map,
            train,
            |_, _| Ok(()),
            |_, item, path| {
                if matches!(item, Yaml::Sequence(_) | Yaml::Mapping(_) | Yaml::Tagged(_)) {
                    return Err(self.invalid(path, "an axis value is a scalar (a number, string or boolean)"));
                }
                self.free_value(item, &path)
            },
        )
    }

    /// An include entry's own `program` block, if it has one, and its settings (free values).
    pub(super) fn program_entry(
        &self,
        entry: &Mapping,
        root: &KeyPath,
    ) -> Result<Option<(Template, Object)>, SweepError> {
        let Some(block) = entry.get("program") else { return Ok(None) };
        let path = root.key("program");
        let raw: RawProgram =
            serde_yaml::from_value(block.clone()).map_err(|e| self.invalid(path.clone(), e.to_string()))?;
        let template = self.program(&raw, path)?;
        let mut settings = Map::new();
        for (key, value) in entry {
            let key = self.key_str(key, root)?;
            if key != "program" {
                settings.insert(key.to_owned(), self.free_value(value, &root.key(key))?);
            }
        }
        Ok(Some((template, settings)))
    }
}

impl Template {
    /// The program job with `settings`, every placeholder checked against them (an unknown one
    /// is an error at the argument or variable that holds it, naming the job when `job` does).
    pub(super) fn job(&self, cx: &Cx<'_>, settings: Map<String, Json>, data: &DataSpec) -> Result<JobSpec, SweepError> {
        let spec =
            ProgramSpec { command: self.command.clone(), env: self.env.clone(), metric: self.metric.clone(), settings };
        let in_job = || {
            let shown: Vec<String> = spec.settings.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
            if shown.is_empty() {
                " (the job has no settings)".to_owned()
            } else {
                format!(" in the job {}", shown.join(" "))
            }
        };
        for (i, arg) in self.command.iter().enumerate() {
            spec.fill(arg).map_err(|e| cx.invalid(self.root.key("command").index(i), format!("{e}{}", in_job())))?;
        }
        for (name, value) in &self.env {
            spec.fill(value).map_err(|e| cx.invalid(self.root.key("env").key(name), format!("{e}{}", in_job())))?;
        }
        let train = derived_config(&spec.settings);
        Ok(JobSpec { train, analysis: None, data: data.clone(), repeat: 0, program: Some(spec) })
    }
}

/// The built-in recipe's view of a program job, for the cost model, the ETA and the tables'
/// grouping: the paper's recipe with every setting of the program that is a `TrainConfig` field
/// and holds a valid value for it (arch, depth, seed, epochs, train_subset, ...). A program job
/// without arch or depth gets vgg-8's placeholders here; `JobSpec::program`'s settings say what
/// the program was actually given.
pub(super) fn derived_config(settings: &Map<String, Json>) -> TrainConfig {
    let names = Settings::new();
    let mut object = names.template().clone();
    for (key, value) in settings {
        let Ok(yaml) = serde_yaml::to_value(value) else { continue };
        if names.is_field(key)
            && let Ok(v) = names.canonical(key, &yaml)
        {
            object.insert(key.clone(), v);
        }
    }
    let built = Settings::build(object).ok().filter(|c| c.model().is_ok() && c.validate().is_ok());
    built.unwrap_or_else(|| {
        let mut paper = TrainConfig::paper(Arch::Vgg, 8, 0);
        if let Some(e) = settings.get("epochs").and_then(Json::as_u64).and_then(|e| u32::try_from(e).ok()) {
            paper.epochs = e.max(1);
        }
        paper
    })
}

#[cfg(test)]
#[path = "program_tests.rs"]
mod tests;
