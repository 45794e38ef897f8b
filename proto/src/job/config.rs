//! The training recipe: [`TrainConfig`] with the paper's defaults, its validation
//! ([`ConfigError`] names the field), and the learning-rate schedule [`lr_at`] (a pure function).

use serde::{Deserialize, Serialize};

use super::analysis::AnalysisConfig;
use super::arch::{Arch, ModelError, ModelSpec};
use super::defaults;
use super::error::ConfigError;
use super::precision::Precision;

/// Everything that determines a training run's numbers. Serialised into results and
/// checkpoints; a resumed run must have the same config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Architecture.
    pub arch: Arch,
    /// Depth, 6n + 2.
    pub depth: u32,
    /// Seeds initialisation, data order and augmentation.
    pub seed: u64,
    /// Passes over the training set (paper: 300).
    #[serde(default = "defaults::epochs")]
    pub epochs: u32,
    /// Images per SGD step (paper: 128).
    #[serde(default = "defaults::batch_size")]
    pub batch_size: i64,
    /// Initial learning rate (paper: 0.1).
    #[serde(default = "defaults::lr")]
    pub lr: f64,
    /// SGD momentum (paper: 0.9).
    #[serde(default = "defaults::momentum")]
    pub momentum: f64,
    /// Nesterov momentum (paper: yes).
    #[serde(default = "defaults::yes")]
    pub nesterov: bool,
    /// L2 weight decay on every parameter (paper: 4e-4).
    #[serde(default = "defaults::weight_decay")]
    pub weight_decay: f64,
    /// Fractions of the epochs after which the LR is multiplied by `lr_gamma` (paper: 0.5, 0.75).
    #[serde(default = "defaults::milestones")]
    pub lr_milestones: Vec<f64>,
    /// The LR factor at each milestone (paper: 0.1).
    #[serde(default = "defaults::gamma")]
    pub lr_gamma: f64,
    /// Epochs of linear LR warm-up (paper: none).
    #[serde(default)]
    pub warmup_epochs: u32,
    /// Zero padding of the random crop; 0 disables it (paper: 4).
    #[serde(default = "defaults::crop_padding")]
    pub crop_padding: i64,
    /// Random horizontal flip (paper: yes).
    #[serde(default = "defaults::yes")]
    pub flip: bool,
    /// Train on the first N training images only.
    #[serde(default)]
    pub train_subset: Option<i64>,
    /// Evaluate on the first N test images only.
    #[serde(default)]
    pub test_subset: Option<i64>,
    /// Batch size for evaluation (does not change the numbers, only speed and memory).
    #[serde(default = "defaults::eval_batch_size")]
    pub eval_batch_size: i64,
    /// Deterministic algorithms on CUDA (cuDNN's deterministic kernels, benchmark mode off,
    /// cuBLAS with a fixed workspace): the same seed gives the same bits on the same GPU model
    /// and software, at some cost in speed. CPU training is deterministic either way.
    #[serde(default)]
    pub deterministic: bool,
    /// How exact fp32 convolutions and matrix products are on CUDA (no effect on a CPU).
    /// Default: PyTorch's own, as the paper ran (cuDNN convolutions may use TF32, matrix
    /// products IEEE).
    #[serde(default)]
    pub precision: Precision,
}

impl TrainConfig {
    /// The paper's recipe for one model and seed.
    pub fn paper(arch: Arch, depth: u32, seed: u64) -> Self {
        TrainConfig {
            arch,
            depth,
            seed,
            epochs: defaults::epochs(),
            batch_size: defaults::batch_size(),
            lr: defaults::lr(),
            momentum: defaults::momentum(),
            nesterov: true,
            weight_decay: defaults::weight_decay(),
            lr_milestones: defaults::milestones(),
            lr_gamma: defaults::gamma(),
            warmup_epochs: 0,
            crop_padding: defaults::crop_padding(),
            flip: true,
            train_subset: None,
            test_subset: None,
            eval_batch_size: defaults::eval_batch_size(),
            deterministic: false,
            precision: Precision::default(),
        }
    }

    /// The validated model this config trains.
    pub fn model(&self) -> Result<ModelSpec, ModelError> {
        ModelSpec::new(self.arch, self.depth)
    }

    /// Checks every setting; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(field: &'static str, value: impl ToString, reason: &'static str) -> Result<(), ConfigError> {
            Err(ConfigError::Field { field: field.to_owned(), value: value.to_string(), reason })
        }
        self.model()?;
        if self.batch_size < 2 {
            return bad("batch_size", self.batch_size, "must be at least 2 (batch norm needs 2 images)");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr, "must be a positive number");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", self.momentum, "must be in [0, 1)");
        }
        if self.nesterov && self.momentum == 0.0 {
            return bad("nesterov", true, "needs a positive momentum");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", self.weight_decay, "must be >= 0");
        }
        if self.lr_milestones.iter().any(|m| !(0.0..=1.0).contains(m)) {
            return bad("lr_milestones", format!("{:?}", self.lr_milestones), "fractions of the epochs, in [0, 1]");
        }
        if !(self.lr_gamma.is_finite() && self.lr_gamma > 0.0) {
            return bad("lr_gamma", self.lr_gamma, "must be positive");
        }
        if self.warmup_epochs >= self.epochs && self.warmup_epochs > 0 {
            return bad("warmup_epochs", self.warmup_epochs, "must be fewer than the epochs");
        }
        if !(0..=16).contains(&self.crop_padding) {
            return bad("crop_padding", self.crop_padding, "must be in 0..=16");
        }
        if let Some(n) = self.train_subset.filter(|&n| n < 2) {
            return bad("train_subset", n, "must be at least 2");
        }
        if let Some(n) = self.test_subset.filter(|&n| n < 1) {
            return bad("test_subset", n, "must be at least 1");
        }
        if self.eval_batch_size < 1 {
            return bad("eval_batch_size", self.eval_batch_size, "must be at least 1");
        }
        Ok(())
    }

    /// Checks every setting and, with them, the gradient analysis a run of them gets:
    /// `epochs: 0` only with an analysis (an analysis-only job), `at_epochs` within the epochs.
    pub fn validate_with(&self, analysis: Option<&AnalysisConfig>) -> Result<(), ConfigError> {
        self.validate()?;
        match analysis {
            Some(a) => a.validate(self.epochs),
            None if self.epochs == 0 => Err(ConfigError::Field {
                field: "epochs".to_owned(),
                value: "0".to_owned(),
                reason: "trains nothing: 0 epochs is only for an analysis-only job (one with a gradient analysis)",
            }),
            None => Ok(()),
        }
    }

    /// The first setting (by its serialised name) in which `self` and `other` differ; None
    /// when they are equal. Names the field when a checkpoint or a result does not fit its job.
    pub fn first_difference(&self, other: &TrainConfig) -> Option<String> {
        let (a, b) = (serde_json::to_value(self).ok()?, serde_json::to_value(other).ok()?);
        let (a, b) = (a.as_object()?, b.as_object()?);
        a.iter().find(|(k, v)| b.get(*k) != Some(v)).map(|(k, _)| k.clone())
    }

    /// The epoch (0-based) at which each milestone takes effect: round(fraction x epochs).
    pub fn milestone_epochs(&self) -> Vec<u32> {
        self.lr_milestones.iter().map(|f| (f * f64::from(self.epochs)).round() as u32).collect()
    }
}

/// The learning rate for epoch `epoch` (0-based): linear warm-up over `warmup_epochs`, then
/// `lr x gamma^k` where k counts the milestones reached. For the paper's 300 epochs: 0.1 for
/// epochs 0..149, 0.01 for 150..224, 0.001 from 225 (PyTorch's MultiStepLR([150, 225])).
pub fn lr_at(cfg: &TrainConfig, epoch: u32) -> f64 {
    if epoch < cfg.warmup_epochs {
        return cfg.lr * f64::from(epoch + 1) / f64::from(cfg.warmup_epochs + 1);
    }
    let reached = cfg.milestone_epochs().iter().filter(|&&m| epoch >= m).count() as i32;
    cfg.lr * cfg.lr_gamma.powi(reached)
}
