//! The result schema shared by the worker (which writes it) and the coordinator (which stores,
//! tables and plots it): one epoch's metrics, a finished job's `TrainResult`, its gradient
//! analysis, the environment it ran in, the execution switches, and the constants both sides
//! must agree on (Table 2's thresholds, the gradient histogram's bins).
//!
//! Results travel as JSON inside the gRPC messages. [`TrainResult::parse`] and
//! [`EpochMetrics::parse`] (in `validate`) are the only way in on the coordinator's side: a
//! document that does not deserialise, or holds a figure out of its range, is a [`ResultError`]
//! naming the field's path (`grad_analysis.vanished[2].ratio`), never a silent default.
//! `simulated` builds a well-formed result without training, for tests and benchmarks.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::job::{AnalysisConfig, TrainConfig};

/// Table 2's thresholds: a gradient element has vanished below each.
pub const EPSILONS: [f64; 4] = [1e-4, 1e-5, 1e-6, 1e-7];
/// The thresholds as column suffixes, in `EPSILONS`' order.
pub const EPSILON_NAMES: [&str; 4] = ["1e-4", "1e-5", "1e-6", "1e-7"];
/// The |g| histogram covers 10^HIST_LOG10_LO .. 10^HIST_LOG10_HI in `HIST_BINS` log-spaced bins.
pub const HIST_LOG10_LO: f64 = -12.0;
/// See [`HIST_LOG10_LO`].
pub const HIST_LOG10_HI: f64 = 0.0;
/// See [`HIST_LOG10_LO`].
pub const HIST_BINS: usize = 120;

/// How a grid stage is executed; the results are the same up to floating-point summation order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum GridExec {
    /// Node by node, in row-major order (R² steps per stage).
    #[default]
    Sequential,
    /// One batched step per anti-diagonal (2R − 1 steps per stage).
    Wavefront,
}

impl GridExec {
    /// `sequential` or `wavefront`.
    pub fn name(self) -> &'static str {
        match self {
            GridExec::Sequential => "sequential",
            GridExec::Wavefront => "wavefront",
        }
    }
}

impl fmt::Display for GridExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How 4-D tensors (images, activations, convolution weights) are laid out in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum MemoryFormat {
    /// NCHW, libtorch's default.
    #[default]
    Contiguous,
    /// NHWC in memory.
    ChannelsLast,
}

impl MemoryFormat {
    /// `contiguous` or `channels-last`.
    pub fn name(self) -> &'static str {
        match self {
            MemoryFormat::Contiguous => "contiguous",
            MemoryFormat::ChannelsLast => "channels-last",
        }
    }
}

impl fmt::Display for MemoryFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One epoch's figures (accuracies in percent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: u32,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss over the epoch's (augmented) batches; null when not finite.
    pub train_loss: Option<f64>,
    /// Training accuracy on those batches.
    pub train_acc: f64,
    /// Test loss (evaluation mode); null when not finite or skipped.
    pub test_loss: Option<f64>,
    /// Test accuracy.
    pub test_acc: f64,
    /// Wall seconds for the epoch's training and evaluation.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every epoch ran.
    Completed,
    /// The loss became non-finite; the metrics so far are kept.
    Diverged,
    /// This session stopped early as asked, leaving a checkpoint to resume from. Never delivered
    /// to a coordinator as a result (the lease is released instead).
    Stopped,
}

impl RunStatus {
    /// The lowercase name used in results and messages.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Diverged => "diverged",
            RunStatus::Stopped => "stopped",
        }
    }
}

/// A finished job, as `worker train` prints it and `CompleteJob` carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainResult {
    /// The resolved config.
    pub config: TrainConfig,
    /// Trainable parameters.
    pub params: u64,
    /// FLOPs per image (thop convention).
    pub flops: u64,
    /// Completed, diverged or stopped.
    pub status: RunStatus,
    /// Per-epoch metrics, including epochs run before a resume.
    pub epochs: Vec<EpochMetrics>,
    /// Test accuracy after the last epoch (what the tables report); completed runs only.
    pub final_test_acc: Option<f64>,
    /// Best test accuracy over the epochs (reported beside, never instead).
    pub best_test_acc: Option<f64>,
    /// Its epoch.
    pub best_epoch: Option<u32>,
    /// Seconds of this process, from start to result.
    pub wall_seconds: f64,
    /// Training seconds over all sessions of the job.
    pub train_seconds: f64,
    /// The epoch this session resumed after, when it did.
    pub resumed_from_epoch: Option<u32>,
    /// Where the data came from and how much was used.
    pub data: DataInfo,
    /// The device and software.
    pub environment: Environment,
    /// Table 2's statistics, when asked for: the analysis of the latest analysed epoch (after
    /// the last epoch, unless `analysis.at_epochs` says otherwise).
    pub grad_analysis: Option<GradReport>,
    /// The analyses of earlier epochs (`analysis.at_epochs`), in increasing epoch order; empty
    /// when one epoch is analysed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_grad_analyses: Vec<GradReport>,
}

/// What the job trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// The data folder (on the worker).
    pub dir: PathBuf,
    /// Synthetic (never the real CIFAR-10).
    pub synthetic: bool,
    /// Training images used.
    pub train_images: i64,
    /// Test images used.
    pub test_images: i64,
}

/// Where the job ran, and with which execution switches (they change speed, not the experiment).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The GPU's name, or the CPU thread count.
    pub device_name: String,
    /// libtorch version loaded.
    pub libtorch_version: String,
    /// CUDA runtime version as libtorch reports it, on CUDA.
    pub cuda_version: Option<i64>,
    /// cuDNN benchmark mode.
    pub cudnn_benchmark: bool,
    /// Deterministic algorithms requested.
    pub deterministic: bool,
    /// How grid stages were executed (none in results from before the switch existed).
    #[serde(default)]
    pub grid_exec: Option<GridExec>,
    /// Memory layout of activations and convolution weights (none in results from before the
    /// switch existed).
    #[serde(default)]
    pub memory_format: Option<MemoryFormat>,
    /// Whether fp32 convolutions on CUDA were allowed TF32, reduced precision (none in results
    /// from before the switch existed).
    #[serde(default)]
    pub tf32: Option<bool>,
}

/// The fraction of gradient elements below one threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vanished {
    /// The threshold.
    pub eps: f64,
    /// Elements with |g| < eps.
    pub count: u64,
    /// count / total.
    pub ratio: f64,
}

/// Mean squared gradient of one block, with its position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockGrad {
    /// `stage2.node_1_3` or `stage2.block_5`.
    pub name: String,
    /// 1-based stage.
    pub stage: u32,
    /// Grid row, or the block's index in a chain.
    pub row: u32,
    /// Grid column, 0 in a chain.
    pub col: u32,
    /// Blocks on the longest path from the input up to and including this one.
    pub distance: u32,
    /// Gradient elements counted (parameters x batches).
    pub elements: u64,
    /// Their mean square.
    pub mean_sq: f64,
}

/// The gradient analysis of Table 2 and its sigma_g^2(d).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradReport {
    /// The settings used.
    pub config: AnalysisConfig,
    /// The epoch after which the gradients were taken; 0 at initialisation. Missing in results
    /// from before `at_epochs`, which were all taken after the last epoch.
    #[serde(default)]
    pub epoch: Option<u32>,
    /// Validation batches.
    pub batches: u64,
    /// Gradient elements: parameters x batches.
    pub total_gradients: u64,
    /// Elements that were NaN or infinite (a network whose backward pass overflowed); counted in
    /// the total, never below a threshold, left out of the mean, std and histogram.
    #[serde(default)]
    pub nonfinite: u64,
    /// The mean of the finite elements; None when there are none.
    pub mean: Option<f64>,
    /// Their sample standard deviation; None when there are none.
    pub std: Option<f64>,
    /// Ratios at the thresholds, one entry per `EPSILONS` value.
    pub vanished: Vec<Vanished>,
    /// Counts of |g| in `HIST_BINS` log-spaced bins from 10^HIST_LOG10_LO to 10^HIST_LOG10_HI
    /// (empty in results that carry none).
    #[serde(default)]
    pub histogram: Vec<u64>,
    /// Elements exactly zero.
    #[serde(default)]
    pub zeros: u64,
    /// Non-zero elements below the histogram's range.
    #[serde(default)]
    pub below_range: u64,
    /// Elements at or above its top.
    #[serde(default)]
    pub above_range: u64,
    /// sigma_g^2 per block (empty in results that carry none).
    #[serde(default)]
    pub blocks: Vec<BlockGrad>,
}

impl GradReport {
    /// The epoch analysed, in a run that trained `epochs_run` epochs (old reports: the last).
    pub fn epoch_or(&self, epochs_run: usize) -> u32 {
        self.epoch.unwrap_or(epochs_run as u32)
    }

    /// The vanished fractions at `EPSILONS`, in their order (validated results have them all).
    pub fn vanished_ratios(&self) -> [f64; 4] {
        EPSILONS.map(|target| self.vanished.iter().find(|v| same_eps(v.eps, target)).map_or(f64::NAN, |v| v.ratio))
    }
}

/// Whether a reported threshold is one of ours (a JSON round trip may perturb the last bit).
fn same_eps(eps: f64, target: f64) -> bool {
    (eps - target).abs() <= target * 1e-9
}

/// Why a result or epoch report is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResultError {
    /// The document does not deserialise into the schema.
    #[error("result field `{field}`: {message}")]
    Parse {
        /// The path of the offending field (`.` for the document itself).
        field: String,
        /// serde's message.
        message: String,
    },
    /// A field holds a value out of its range, or the fields contradict each other.
    #[error("result field `{field}` {problem}")]
    Invalid {
        /// The path of the offending field.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl TrainResult {
    /// Every gradient analysis of the run, in increasing epoch order.
    pub fn grad_reports(&self) -> impl Iterator<Item = &GradReport> {
        self.earlier_grad_analyses.iter().chain(&self.grad_analysis)
    }
}

mod simulated;
mod validate;

#[cfg(test)]
mod tests;
