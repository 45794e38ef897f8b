//! [`ConfigError`]: why a training recipe or gradient analysis cannot be run, naming the field.

use super::arch::ModelError;

/// A setting that cannot be trained with.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A field out of its range.
    #[error("{field} = {value}: {reason}")]
    Field {
        /// The setting's name (`epochs`, `analysis.batch_size`).
        field: String,
        /// Its value, printed.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// An entry of the analysis' `at_epochs` out of place (beyond the last epoch, repeated, or
    /// out of order); the index is carried, so the sweep file's error points at the entry.
    #[error("analysis.at_epochs[{index}] = {value}: {reason}")]
    AnalysisEpoch {
        /// The entry's position in `at_epochs`.
        index: usize,
        /// Its value, printed (with the job's epochs when it is beyond them).
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// The architecture and depth do not fit.
    #[error(transparent)]
    Model(#[from] ModelError),
}
