//! Sweep files (`sweeps/*.yaml`): a name, a data set, base training settings and axes whose
//! cartesian product (plus `include`, minus `exclude`, times `repeats`) makes the jobs. Loading a
//! sweep checks everything a worker would trip over later (unknown keys, wrong types, settings out
//! of range, architectures at depths they cannot be built at) and reports the first problem with
//! the file, line, column and key path, before anything runs.
//!
//! A crate of its own (package `gridsweep-sweep`) because both sides read sweeps: the coordinator
//! runs them (and re-exports this crate as `coordinator::sweep`), and the worker expands one to
//! calibrate for the models it uses. It needs neither libtorch nor the coordinator's server.
//!
//! The format is in `sweeps/README.md`. `raw` holds its serde shape, `settings` the training
//! settings as JSON values, `check` the checks of each block, `expand` the expansion into jobs,
//! `locate` the line finder, `program` the `program:` jobs, `error` the errors and `describe` the listing that
//! `coordinator expand` prints.

mod check;
mod describe;
mod error;
mod expand;
mod locate;
mod program;
mod raw;
mod settings;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use gridsweep_proto::job::{DataSpec, JobSpec, TrainConfig};

pub use describe::{describe, describe_with, expansion_text, header, legend};
pub use error::{Location, SweepError};

/// A sweep, expanded and checked: every job is valid and distinct.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    /// The sweep's name (`[A-Za-z0-9_.-]+`), e.g. for its output folder.
    pub name: String,
    /// The data set every job trains on (`DataSpec::None` for a `program:` sweep without `data`).
    pub data: DataSpec,
    /// The base training settings: the paper's recipe with the file's `train` block applied. Its
    /// `arch`, `depth` and `seed` are those of the first job and mean nothing; `describe` shows
    /// each job's settings relative to this.
    pub base: TrainConfig,
    /// The jobs in expansion order: the axes' product in the order the file writes them (the last
    /// axis varying fastest), then the includes; each job's repeats follow it. A job equal to an
    /// earlier one (same `id()`) is dropped.
    pub jobs: Vec<JobSpec>,
    /// Attempts a job gets before it is marked failed (`retry.max_attempts`, at least 1).
    pub max_attempts: u32,
    /// Seconds a lease lives without a heartbeat (`lease_ttl_s`, 5 to 86400).
    pub lease_ttl_s: u64,
    /// The file the sweep came from (as given to `load`/`parse`).
    pub source: PathBuf,
}

/// Reads and expands the sweep file at `path`.
pub fn load(path: &Path) -> Result<Sweep, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|source| SweepError::Read { file: path.to_path_buf(), source })?;
    parse(&text, path)
}

/// Expands the sweep in `text`; `origin` names the file in error messages and becomes
/// `Sweep::source`.
pub fn parse(text: &str, origin: &Path) -> Result<Sweep, SweepError> {
    expand::expand(text, origin)
}
