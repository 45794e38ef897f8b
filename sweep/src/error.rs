//! Why a sweep file was rejected. Every message starts with `FILE:LINE:COLUMN:` (as much of it as
//! is known) and, after it, the key path of the offending setting (`axes.depth`, `include[1].lr`).

use std::fmt;
use std::path::PathBuf;

use gridsweep_proto::job::{Arch, ModelError};

/// A place in a sweep file: the file, and the 1-based line and column when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The sweep file, as given to `load` or `parse`.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// Why a sweep cannot be loaded. Each variant's message names the file, the line and column where
/// known, and the key path.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The file could not be read.
    #[error("{}: cannot read the sweep file: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Malformed YAML, or a part of the sweep of the wrong shape (serde_yaml's message, which
    /// starts with the key path when it is not the top level).
    #[error("{at}: {message}")]
    Yaml {
        /// Where the parser stopped.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// A key that is not a training setting, or a setting's value of the wrong type.
    #[error("{at}: {key}: {message}")]
    Setting {
        /// Where the key is.
        at: Location,
        /// The key path, e.g. `train.epochs`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An architecture at a depth it cannot be built at.
    #[error("{at}: {key}: {arch} at depth {depth} is invalid: {source}")]
    Model {
        /// Where the depth is.
        at: Location,
        /// The key path of the depth, e.g. `axes.depth`.
        key: String,
        /// The architecture.
        arch: Arch,
        /// The depth.
        depth: u32,
        /// The rule and the nearest valid depths.
        source: Box<ModelError>,
    },
    /// A training setting out of its range (from `TrainConfig::validate`).
    #[error("{at}: {key}: {reason} ({detail})")]
    Range {
        /// Where the setting is (or the block it would be in, for a default).
        at: Location,
        /// The key path, e.g. `train.epochs`.
        key: String,
        /// What the setting must be.
        reason: &'static str,
        /// The value found (`got 0`), and the job it was found in when the key does not say.
        detail: String,
    },
    /// Any other invalid part of the sweep: its name, data, axes, include, exclude, analysis,
    /// repeats, retry or lease settings.
    #[error("{at}: {key}: {message}")]
    Invalid {
        /// Where the key is.
        at: Location,
        /// The key path, e.g. `axes.seed`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The sweep expands to more jobs than `max_jobs` allows.
    #[error("{at}: max_jobs: the sweep expands to {count} jobs, more than max_jobs = {max}{note}")]
    TooManyJobs {
        /// Where `max_jobs` is (or the file, when it is left at its default).
        at: Location,
        /// The number of jobs (or of axis combinations before `exclude`, see `note`), saturated
        /// at `u64::MAX`.
        count: u64,
        /// The cap.
        max: usize,
        /// Empty, or what `count` counts when the expansion stopped early.
        note: &'static str,
    },
}
