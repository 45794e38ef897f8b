//! The serde shape of a sweep file, before any checking beyond YAML types: the training settings
//! stay YAML maps here because any `TrainConfig` field may be a base setting, an axis, an include,
//! an exclude or an analysis selector; `settings` and `expand` check them.

use serde::Deserialize;
use serde_yaml::{Mapping, Value as Yaml};

/// Attempts per job when `retry` is left out.
pub(super) const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Lease lifetime when `lease_ttl_s` is left out.
pub(super) const DEFAULT_LEASE_TTL_S: u64 = 120;
/// Job cap when `max_jobs` is left out.
pub(super) const DEFAULT_MAX_JOBS: usize = 10_000;

/// A whole sweep file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a sweep: a map with name, data, train, axes, ...")]
pub(super) struct RawSweep {
    /// The sweep's name.
    pub name: String,
    /// The data set: required for the built-in trainer, optional for a `program:` sweep (whose
    /// program may find its own data).
    #[serde(default)]
    pub data: Option<RawData>,
    /// Base training settings (no arch, depth or seed).
    #[serde(default)]
    pub train: Option<Mapping>,
    /// Setting -> list of values; the cartesian product makes the jobs.
    pub axes: Option<Mapping>,
    /// Extra jobs, each a map of settings merged over `train`.
    #[serde(default)]
    pub include: Option<Vec<Mapping>>,
    /// Filters on the product: a job matching every key of one entry is dropped.
    #[serde(default)]
    pub exclude: Option<Vec<Mapping>>,
    /// Gradient analysis for the jobs it selects.
    #[serde(default)]
    pub analysis: Option<RawAnalysis>,
    /// Copies of each job (distinct by `JobSpec::repeat`).
    #[serde(default = "one")]
    pub repeats: u32,
    /// Retry policy.
    #[serde(default)]
    pub retry: RawRetry,
    /// Lease lifetime without a heartbeat, seconds.
    #[serde(default = "default_lease_ttl_s")]
    pub lease_ttl_s: u64,
    /// Cap on the number of jobs.
    #[serde(default = "default_max_jobs")]
    pub max_jobs: usize,
    /// The user's program that runs every job instead of the built-in trainer (`program.rs`).
    #[serde(default)]
    pub program: Option<RawProgram>,
}

/// A `program` block (top level, or in an include entry).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map with command, env and metric")]
pub(super) struct RawProgram {
    /// The argv template, each item checked on its own (so that an error has a line).
    pub command: Yaml,
    /// Extra environment variables, name -> value template.
    #[serde(default)]
    pub env: Option<Mapping>,
    /// The result's metric the tables report.
    pub metric: gridsweep_proto::job::Metric,
}

/// The `data` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map with `kind: cifar10` or `kind: synthetic`")]
pub(super) struct RawData {
    /// Which data set.
    pub kind: DataKind,
    /// Synthetic training images.
    pub train: Option<usize>,
    /// Synthetic test images.
    pub test: Option<usize>,
    /// Synthetic generator seed.
    pub seed: Option<u64>,
}

/// `data.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum DataKind {
    /// The real CIFAR-10.
    Cifar10,
    /// `worker data synth`'s set.
    Synthetic,
}

/// The `analysis` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map with when, batch_size, bn_train_mode, at_epochs")]
pub(super) struct RawAnalysis {
    /// Setting -> list of values; empty selects every job.
    #[serde(default)]
    pub when: Option<Mapping>,
    /// `AnalysisConfig::batch_size`.
    #[serde(default = "default_grad_batch")]
    pub batch_size: i64,
    /// `AnalysisConfig::bn_train_mode`.
    #[serde(default)]
    pub bn_train_mode: bool,
    /// `AnalysisConfig::at_epochs`, checked entry by entry (so that an error has a line).
    #[serde(default)]
    pub at_epochs: Option<Yaml>,
}

/// The `retry` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map with max_attempts")]
pub(super) struct RawRetry {
    /// Attempts per job, at least 1.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

impl Default for RawRetry {
    fn default() -> Self {
        RawRetry { max_attempts: DEFAULT_MAX_ATTEMPTS }
    }
}

fn one() -> u32 {
    1
}

fn default_lease_ttl_s() -> u64 {
    DEFAULT_LEASE_TTL_S
}

fn default_max_jobs() -> usize {
    DEFAULT_MAX_JOBS
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

fn default_grad_batch() -> i64 {
    gridsweep_proto::job::AnalysisConfig::default().batch_size
}
