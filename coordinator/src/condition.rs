//! Experimental conditions: what the runs of one table cell share. A job's *condition* is its
//! resolved settings without its seed and repeat (what is averaged over) and without the
//! execution settings that change speed or bitwise reproducibility, not the experiment
//! (`eval_batch_size` and `deterministic` here; the
//! worker's `--grid-exec`, `--memory-format` and TF32 are in its result's environment).
//! Architecture and depth are part of every condition and have their own columns; the other
//! settings that differ between the runs of a sweep are its *varying settings*, each of which
//! becomes a leading column of the tables and a part of each series' label.
//!
//! Setting names are those of the sweep file (`lr`, `batch_size`, ...), a map's fields joined to
//! its name (`precision_conv`, `precision_matmul`); the data set's are
//! `data`, `data_train`, `data_test` and `data_seed`, and the gradient analysis's (grouped on in
//! Table 2 only) `analysis_batch_size` and `analysis_bn_train_mode`, as in `runs.csv`.

use std::cmp::Ordering;

use gridsweep_proto::job::{DataSpec, JobSpec};
use serde_json::Value;

/// Settings that are never grouped on: averaged over (seed), speed only (eval batch size),
/// bit-for-bit reproducibility only (deterministic), or columns of their own (arch, depth).
const NOT_GROUPED: [&str; 5] = ["seed", "eval_batch_size", "deterministic", "arch", "depth"];

/// One setting's value, comparable: numbers by value, everything else by its text.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingValue(Value);

impl SettingValue {
    /// The value as a table cell, written as `runs.csv` writes the same setting (so that its
    /// rows can be matched to a table's by text): fractional numbers as Rust prints an `f64`
    /// (`0.05`, `1`), whole numbers and booleans as they are, text as it is, lists joined with
    /// `;`, none as empty.
    pub fn text(&self) -> String {
        fn show(v: &Value) -> String {
            match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(";"),
                Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(|| n.to_string(), |x| x.to_string()),
                other => other.to_string(),
            }
        }
        show(&self.0)
    }
}

impl Eq for SettingValue {}

impl PartialOrd for SettingValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SettingValue {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0.as_f64(), other.0.as_f64()) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            // None (absent) sorts first, then numbers, then the rest by text.
            _ => rank(&self.0).cmp(&rank(&other.0)).then_with(|| self.text().cmp(&other.text())),
        }
    }
}

/// The order of kinds of values: none, numbers, the rest.
fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Number(_) => 1,
        _ => 2,
    }
}

/// A job's settings by name, in the sweep file's order (training settings, then data, then
/// analysis when `with_analysis`).
pub fn settings(spec: &JobSpec, with_analysis: bool) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    // Through YAML, whose mapping keeps TrainConfig's declaration order (serde_json's is sorted).
    if let Ok(serde_yaml::Value::Mapping(train)) = serde_yaml::to_value(&spec.train) {
        for (k, v) in train {
            match (k.as_str(), serde_json::to_value(v)) {
                // A map of settings (precision): one setting per field, `precision_conv`.
                (Some(k), Ok(Value::Object(fields))) => {
                    out.extend(fields.into_iter().map(|(f, v)| (format!("{k}_{f}"), v)));
                }
                (Some(k), Ok(v)) => out.push((k.to_owned(), v)),
                _ => {}
            }
        }
    }
    let (kind, train, test, seed) = match &spec.data {
        DataSpec::Cifar10 => ("cifar10", None, None, None),
        DataSpec::Synthetic { train, test, seed } => ("synthetic", Some(*train), Some(*test), Some(*seed)),
        DataSpec::None => ("none", None, None, None),
    };
    out.push(("data".to_owned(), Value::from(kind)));
    out.push(("data_train".to_owned(), train.map_or(Value::Null, Value::from)));
    out.push(("data_test".to_owned(), test.map_or(Value::Null, Value::from)));
    out.push(("data_seed".to_owned(), seed.map_or(Value::Null, Value::from)));
    if with_analysis {
        let a = spec.analysis.as_ref();
        out.push(("analysis_batch_size".to_owned(), a.map_or(Value::Null, |a| Value::from(a.batch_size))));
        out.push(("analysis_bn_train_mode".to_owned(), a.map_or(Value::Null, |a| Value::from(a.bn_train_mode))));
    }
    out
}

/// The settings that vary between a set of jobs, beyond architecture and depth.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Varying {
    /// Their names, in the sweep file's order; empty when only architecture, depth and seed vary.
    pub names: Vec<String>,
    /// Whether the analysis settings were considered (Table 2).
    with_analysis: bool,
}

impl Varying {
    /// The settings in which `specs` differ (training and data; the analysis's too when
    /// `with_analysis`).
    pub fn of<'a>(specs: impl IntoIterator<Item = &'a JobSpec>, with_analysis: bool) -> Varying {
        let mut first: Option<Vec<(String, Value)>> = None;
        let mut differs: Vec<bool> = Vec::new();
        for spec in specs {
            let s = settings(spec, with_analysis);
            match &first {
                None => {
                    differs = vec![false; s.len()];
                    first = Some(s);
                }
                Some(f) => {
                    for (i, ((_, a), (_, b))) in f.iter().zip(&s).enumerate() {
                        differs[i] |= a != b;
                    }
                }
            }
        }
        let names = first
            .unwrap_or_default()
            .into_iter()
            .zip(differs)
            .filter(|((name, _), d)| *d && !NOT_GROUPED.contains(&name.as_str()))
            .map(|((name, _), _)| name)
            .collect();
        Varying { names, with_analysis }
    }

    /// Table 2's varying settings: those in which the jobs with a gradient analysis differ,
    /// the analysis's own settings included. Jobs without one are not in Table 2, so their
    /// settings (and their lack of an analysis) split nothing there.
    pub fn of_analysed<'a>(specs: impl IntoIterator<Item = &'a JobSpec>) -> Varying {
        Varying::of(specs.into_iter().filter(|s| s.analysis.is_some()), true)
    }

    /// Whether nothing but architecture, depth and seed varies (the paper's shape).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// `spec`'s value of each varying setting, in `names`' order: its condition beyond
    /// architecture and depth. Sorting by it orders conditions naturally (numbers by value).
    pub fn key(&self, spec: &JobSpec) -> Vec<SettingValue> {
        let all = settings(spec, self.with_analysis);
        self.names
            .iter()
            .map(|n| SettingValue(all.iter().find(|(k, _)| k == n).map_or(Value::Null, |(_, v)| v.clone())))
            .collect()
    }

    /// `spec`'s varying settings as `name=value` pairs, for labels (`lr=0.05, batch_size=64`);
    /// empty when nothing varies.
    pub fn label(&self, spec: &JobSpec) -> String {
        self.label_of(&self.key(spec))
    }

    /// The label of a condition key (from [`Varying::key`]).
    pub fn label_of(&self, key: &[SettingValue]) -> String {
        self.names.iter().zip(key).map(|(n, v)| format!("{n}={}", v.text())).collect::<Vec<_>>().join(", ")
    }
}

/// How a sweep's outputs group its runs beyond architecture and depth.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grouping {
    /// Table 1, `runs.csv` and the accuracy plots: the settings in which any two jobs differ.
    pub table1: Varying,
    /// Table 2 and the gradient plots: those in which two jobs with a gradient analysis differ
    /// (see [`Varying::of_analysed`]).
    pub table2: Varying,
}

impl Grouping {
    /// The grouping of a sweep made of `specs` (every job, whatever its state, so that the
    /// columns do not change as the sweep runs).
    pub fn of<'a>(specs: impl IntoIterator<Item = &'a JobSpec> + Clone) -> Grouping {
        Grouping { table1: Varying::of(specs.clone(), false), table2: Varying::of_analysed(specs) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsweep_proto::job::{AnalysisConfig, Arch, TrainConfig};

    fn job(arch: Arch, depth: u32, seed: u64, lr: f64) -> JobSpec {
        let train = TrainConfig { lr, eval_batch_size: 100 + seed as i64, ..TrainConfig::paper(arch, depth, seed) };
        JobSpec { train, analysis: None, data: DataSpec::Cifar10, repeat: 0, program: None }
    }

    #[test]
    fn the_papers_shape_varies_in_nothing() {
        let jobs: Vec<JobSpec> = [Arch::Vgg, Arch::Grid]
            .into_iter()
            .flat_map(|a| [26, 98].map(|d| job(a, d, 1, 0.1)))
            .chain([job(Arch::Vgg, 26, 2, 0.1)])
            .collect();
        assert!(Varying::of(&jobs, false).is_empty(), "arch, depth, seed and eval batch are not conditions");
    }

    #[test]
    fn a_learning_rate_axis_is_a_condition() {
        let jobs = [job(Arch::Resnet, 26, 1, 0.1), job(Arch::Resnet, 26, 1, 0.05), job(Arch::Resnet, 26, 2, 0.1)];
        let v = Varying::of(&jobs, false);
        assert_eq!(v.names, ["lr"]);
        assert_eq!(v.label(&jobs[1]), "lr=0.05");
        assert!(v.key(&jobs[1]) < v.key(&jobs[0]), "numbers sort by value");
        assert_eq!(v.key(&jobs[0]), v.key(&jobs[2]), "seeds share a condition");
    }

    #[test]
    fn analysis_settings_count_only_for_table_2() {
        let mut a = job(Arch::Grid, 26, 1, 0.1);
        let mut b = a.clone();
        a.analysis = Some(AnalysisConfig { batch_size: 100, bn_train_mode: false, ..AnalysisConfig::default() });
        b.analysis = Some(AnalysisConfig { batch_size: 100, bn_train_mode: true, ..AnalysisConfig::default() });
        assert!(Varying::of([&a, &b], false).is_empty());
        let v = Varying::of([&a, &b], true);
        assert_eq!(v.names, ["analysis_bn_train_mode"]);
        assert_eq!(v.label(&b), "analysis_bn_train_mode=true");
    }

    #[test]
    fn table_2_groups_only_the_analysed_jobs() {
        // The paper's shape: only the deepest jobs are analysed, so the analysis's presence
        // must not become a condition.
        let mut deep = job(Arch::Grid, 1538, 1, 0.1);
        deep.analysis = Some(AnalysisConfig { batch_size: 100, bn_train_mode: false, ..AnalysisConfig::default() });
        let jobs = [job(Arch::Grid, 26, 1, 0.1), deep.clone(), job(Arch::Vgg, 26, 1, 0.05)];
        let g = Grouping::of(&jobs);
        assert_eq!(g.table1.names, ["lr"]);
        assert!(g.table2.is_empty(), "{:?}", g.table2);
        let mut other = deep.clone();
        other.analysis = Some(AnalysisConfig { batch_size: 50, bn_train_mode: false, ..AnalysisConfig::default() });
        let g = Grouping::of([&deep, &other]);
        assert!(g.table1.is_empty());
        assert_eq!(g.table2.names, ["analysis_batch_size"]);
    }

    #[test]
    fn numbers_print_as_runs_csv_prints_them() {
        let mut a = job(Arch::Vgg, 8, 1, 1.0);
        let mut b = a.clone();
        a.train.weight_decay = 1e-7;
        b.train.weight_decay = 5e-4;
        b.train.lr = 0.05;
        let v = Varying::of([&a, &b], false);
        assert_eq!(v.names, ["lr", "weight_decay"]);
        let texts = |s: &JobSpec| v.key(s).iter().map(SettingValue::text).collect::<Vec<_>>();
        assert_eq!(texts(&a), [1.0f64.to_string(), 1e-7f64.to_string()]);
        assert_eq!(texts(&b), ["0.05", "0.0005"]);
    }

    #[test]
    fn values_print_as_in_the_sweep_file() {
        let mut a = job(Arch::Vgg, 8, 1, 0.1);
        let mut b = a.clone();
        a.train.lr_milestones = vec![0.5, 0.75];
        b.train.lr_milestones = vec![0.3];
        b.train.train_subset = Some(500);
        let v = Varying::of([&a, &b], false);
        assert_eq!(v.names, ["lr_milestones", "train_subset"]);
        assert_eq!(v.label(&a), "lr_milestones=0.5;0.75, train_subset=");
        assert!(v.key(&a)[1] < v.key(&b)[1], "none sorts first");
    }
}
