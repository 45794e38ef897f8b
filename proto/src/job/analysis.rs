//! The settings of the gradient analysis (Table 2): [`AnalysisConfig`], when it runs and on how
//! many images, and its check against the epochs of a run.

use serde::{Deserialize, Serialize};

use super::defaults;
use super::error::ConfigError;

/// Settings of the gradient analysis (Table 2): after training, or at chosen epochs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Validation images per gradient (paper: 100, so 100 batches on the test set).
    #[serde(default = "defaults::grad_batch_size")]
    pub batch_size: i64,
    /// Batch norm in training mode (batch statistics) instead of evaluation mode. The analysis
    /// never moves the running statistics: training after it is as without it.
    #[serde(default)]
    pub bn_train_mode: bool,
    /// The epochs after which to analyse, increasing; 0 is at initialisation, before any step.
    /// Empty: once, after the last epoch (the paper's Table 2). Left out of the job's identity
    /// when empty, so existing jobs keep their ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_epochs: Vec<u32>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig { batch_size: 100, bn_train_mode: false, at_epochs: Vec::new() }
    }
}

impl AnalysisConfig {
    /// The epochs analysed in a run of `epochs` epochs, increasing: `at_epochs`, or the last.
    pub fn epochs(&self, epochs: u32) -> Vec<u32> {
        if self.at_epochs.is_empty() { vec![epochs] } else { self.at_epochs.clone() }
    }

    /// Checks `at_epochs` against a run of `epochs` epochs: increasing, none beyond the last.
    /// The error names the entry (`at_epochs[2]`).
    pub fn validate(&self, epochs: u32) -> Result<(), ConfigError> {
        if self.batch_size < 1 {
            return Err(ConfigError::Field {
                field: "analysis.batch_size".to_owned(),
                value: self.batch_size.to_string(),
                reason: "must be at least 1",
            });
        }
        for (i, &e) in self.at_epochs.iter().enumerate() {
            let reason = if e > epochs {
                "is beyond the job's last epoch (train.epochs)"
            } else if i > 0 && e == self.at_epochs[i - 1] {
                "appears twice"
            } else if i > 0 && e < self.at_epochs[i - 1] {
                "must be larger than the entry before it (epochs in increasing order)"
            } else {
                continue;
            };
            let value = if e > epochs { format!("{e} (epochs: {epochs})") } else { e.to_string() };
            return Err(ConfigError::AnalysisEpoch { index: i, value, reason });
        }
        Ok(())
    }
}
