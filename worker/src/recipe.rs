//! The training recipe: every setting of a job, the paper's values as defaults (section IV), its
//! validation, and the learning-rate schedule as a pure function.

use serde::{Deserialize, Serialize};

use crate::models::{Arch, ModelError, ModelSpec};

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
}

/// Default values, for serde.
mod defaults {
    pub fn epochs() -> u32 {
        300
    }
    pub fn batch_size() -> i64 {
        128
    }
    pub fn lr() -> f64 {
        0.1
    }
    pub fn momentum() -> f64 {
        0.9
    }
    pub fn yes() -> bool {
        true
    }
    pub fn weight_decay() -> f64 {
        4e-4
    }
    pub fn milestones() -> Vec<f64> {
        vec![0.5, 0.75]
    }
    pub fn gamma() -> f64 {
        0.1
    }
    pub fn crop_padding() -> i64 {
        4
    }
    pub fn eval_batch_size() -> i64 {
        500
    }
}

/// A setting that cannot be trained with.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A field out of its range.
    #[error("{field} = {value}: {reason}")]
    Field {
        /// The setting's name.
        field: &'static str,
        /// Its value, printed.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// The architecture and depth do not fit.
    #[error(transparent)]
    Model(#[from] ModelError),
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
        }
    }

    /// The validated model this config trains.
    pub fn model(&self) -> Result<ModelSpec, ModelError> {
        ModelSpec::new(self.arch, self.depth)
    }

    /// Checks every setting; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(field: &'static str, value: impl ToString, reason: &'static str) -> Result<(), ConfigError> {
            Err(ConfigError::Field { field, value: value.to_string(), reason })
        }
        self.model()?;
        if self.epochs == 0 {
            return bad("epochs", self.epochs, "must be at least 1");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_schedule_drops_at_150_and_225() {
        let cfg = TrainConfig::paper(Arch::Resnet, 26, 42);
        assert_eq!(cfg.milestone_epochs(), [150, 225]);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(lr_at(&cfg, 0), 0.1));
        assert!(close(lr_at(&cfg, 149), 0.1));
        assert!(close(lr_at(&cfg, 150), 0.01));
        assert!(close(lr_at(&cfg, 224), 0.01));
        assert!(close(lr_at(&cfg, 225), 0.001));
        assert!(close(lr_at(&cfg, 299), 0.001));
    }

    #[test]
    fn short_runs_scale_the_milestones() {
        let mut cfg = TrainConfig::paper(Arch::Resnet, 26, 42);
        cfg.epochs = 4;
        let lrs: Vec<f64> = (0..4).map(|e| lr_at(&cfg, e)).collect();
        assert_eq!(cfg.milestone_epochs(), [2, 3]);
        assert!((lrs[0] - 0.1).abs() < 1e-12 && (lrs[1] - 0.1).abs() < 1e-12);
        assert!((lrs[2] - 0.01).abs() < 1e-12 && (lrs[3] - 0.001).abs() < 1e-12);
    }

    #[test]
    fn warmup_ramps_linearly_then_follows_the_steps() {
        let mut cfg = TrainConfig::paper(Arch::Resnet, 26, 42);
        cfg.warmup_epochs = 4;
        assert!((lr_at(&cfg, 0) - 0.02).abs() < 1e-12);
        assert!((lr_at(&cfg, 3) - 0.08).abs() < 1e-12);
        assert!((lr_at(&cfg, 4) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn validation_names_the_field() {
        let mut cfg = TrainConfig::paper(Arch::Grid, 26, 1);
        assert_eq!(cfg.validate(), Ok(()));
        cfg.epochs = 0;
        assert!(cfg.validate().unwrap_err().to_string().starts_with("epochs = 0"));
        cfg.epochs = 10;
        cfg.batch_size = 1;
        assert!(cfg.validate().unwrap_err().to_string().starts_with("batch_size = 1"));
        cfg.batch_size = 128;
        cfg.depth = 20;
        assert!(cfg.validate().unwrap_err().to_string().contains("8 or 26"));
    }
}
