//! [`ConfigError`]: why a training recipe or gradient analysis cannot be run, naming the field.

use super::arch::ModelError;

/// A setting that cannot be trained with.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A field out of its range.
    #[error("{field} = {value}: {reason}")]
    Field {
        /// The setting's name (`epochs`, `analysis.at_epochs[1]`).
        field: String,
        /// Its value, printed.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// The architecture and depth do not fit.
    #[error(transparent)]
    Model(#[from] ModelError),
}
