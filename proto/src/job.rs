//! The job schema shared by the coordinator and the worker, with no libtorch in it: the
//! architectures and their valid depths, the training recipe with the paper's defaults and its
//! validation, the learning-rate schedule (a pure function), and the gradient-analysis settings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The deepest network accepted (a 64 x 64 grid per stage, ~400M parameters); deeper requests
/// are almost certainly typos and would exhaust memory.
pub const MAX_DEPTH: u32 = 6 * 64 * 64 + 2;

/// How a stage wires its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Plain network: blocks in sequence, no shortcuts.
    Vgg,
    /// Sequential residual network.
    Resnet,
    /// Residual blocks on an R x R grid with bifurcation and averaging merges.
    Grid,
}

impl Arch {
    /// Every architecture, in the tables' order.
    pub const ALL: [Arch; 3] = [Arch::Vgg, Arch::Resnet, Arch::Grid];

    /// The lowercase name used on the command line, in sweeps and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Vgg => "vgg",
            Arch::Resnet => "resnet",
            Arch::Grid => "grid",
        }
    }

    /// Whether `depth` builds this architecture.
    pub fn is_valid_depth(self, depth: u32) -> bool {
        depth <= MAX_DEPTH && self.valid_depths().any(|d| d == depth)
    }

    /// The valid depths in increasing order, up to MAX_DEPTH.
    fn valid_depths(self) -> impl Iterator<Item = u32> {
        (1u32..)
            .map(move |k| match self {
                Arch::Vgg | Arch::Resnet => 6 * k + 2,
                Arch::Grid => 6 * k * k + 2,
            })
            .take_while(|&d| d <= MAX_DEPTH)
    }

    /// The valid depths just below and above `depth` (either may be missing).
    pub fn nearest_valid_depths(self, depth: u32) -> (Option<u32>, Option<u32>) {
        let below = self.valid_depths().take_while(|&d| d < depth).last();
        let above = self.valid_depths().find(|&d| d > depth);
        (below, above)
    }

    /// The rule valid depths follow, for error messages.
    fn depth_rule(self) -> &'static str {
        match self {
            Arch::Vgg | Arch::Resnet => "6n + 2 (8, 14, 20, 26, ...)",
            Arch::Grid => "6R^2 + 2 (8, 26, 56, 98, ..., 386, ..., 1538)",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        Arch::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| ModelError::UnknownArch(s.to_owned()))
    }
}

/// Why a model cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    /// The architecture name is not one of ours.
    #[error("unknown architecture '{0}': expected one of vgg, resnet, grid")]
    UnknownArch(String),
    /// The depth does not fit the architecture.
    #[error("depth {depth} is not valid for {arch}: {arch} depths are {rule}; nearest valid depths: {nearest}")]
    InvalidDepth {
        /// The architecture asked for.
        arch: Arch,
        /// The depth asked for.
        depth: u32,
        /// The rule, spelled out.
        rule: &'static str,
        /// The valid neighbours, "8 or 26".
        nearest: String,
    },
}

/// A validated (architecture, depth) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// How stages wire their blocks.
    pub arch: Arch,
    /// Layers with weights: 6n + 2.
    pub depth: u32,
}

impl ModelSpec {
    /// Checks that `depth` fits `arch`; the error names the nearest valid depths.
    pub fn new(arch: Arch, depth: u32) -> Result<Self, ModelError> {
        if arch.is_valid_depth(depth) {
            return Ok(ModelSpec { arch, depth });
        }
        let nearest = match arch.nearest_valid_depths(depth) {
            (Some(a), Some(b)) => format!("{a} or {b}"),
            (Some(a), None) | (None, Some(a)) => a.to_string(),
            (None, None) => "none".to_owned(),
        };
        Err(ModelError::InvalidDepth { arch, depth, rule: arch.depth_rule(), nearest })
    }

    /// Blocks per stage, n = (L - 2) / 6.
    pub fn blocks_per_stage(&self) -> usize {
        ((self.depth - 2) / 6) as usize
    }

    /// R for the grid (n = R^2); None for the sequential architectures.
    pub fn grid_side(&self) -> Option<usize> {
        (self.arch == Arch::Grid).then(|| (self.blocks_per_stage() as f64).sqrt().round() as usize)
    }
}

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

/// The fp32 precision of CUDA work: what libtorch's TF32 switches are set to for a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precision {
    /// cuDNN's fp32 convolutions.
    #[serde(default)]
    pub conv: ConvPrecision,
    /// fp32 matrix products (cuBLAS: the classifier).
    #[serde(default)]
    pub matmul: MatmulPrecision,
}

impl Precision {
    /// `conv=tf32 matmul=highest`, for reports.
    pub fn describe(&self) -> String {
        format!("conv={} matmul={}", self.conv.name(), self.matmul.name())
    }
}

/// cuDNN's fp32 convolutions: TF32 tensor cores allowed, or IEEE fp32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ConvPrecision {
    /// TF32 allowed (10-bit mantissa products, fp32 sums): PyTorch's default.
    #[default]
    Tf32,
    /// IEEE fp32 throughout.
    Ieee,
}

impl ConvPrecision {
    /// `tf32` or `ieee`.
    pub fn name(self) -> &'static str {
        match self {
            ConvPrecision::Tf32 => "tf32",
            ConvPrecision::Ieee => "ieee",
        }
    }
}

/// fp32 matrix products, in PyTorch's `set_float32_matmul_precision` words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum MatmulPrecision {
    /// IEEE fp32: PyTorch's default.
    #[default]
    Highest,
    /// TF32 allowed.
    High,
}

impl MatmulPrecision {
    /// `highest` or `high`.
    pub fn name(self) -> &'static str {
        match self {
            MatmulPrecision::Highest => "highest",
            MatmulPrecision::High => "high",
        }
    }
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
    pub fn grad_batch_size() -> i64 {
        100
    }
}

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
            return Err(ConfigError::Field { field: format!("analysis.at_epochs[{i}]"), value, reason });
        }
        Ok(())
    }
}

/// Which data a job trains on. The folder is each worker's own business; only what the data
/// is belongs to the job's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataSpec {
    /// The real CIFAR-10 binary set (md5-verified files).
    Cifar10,
    /// A synthetic set as `worker data synth` writes it.
    Synthetic {
        /// Training images.
        train: usize,
        /// Test images.
        test: usize,
        /// Generator seed.
        seed: u64,
    },
}

/// One job of a sweep, fully resolved: what a worker needs to run it, and (hashed) its identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The training run.
    pub train: TrainConfig,
    /// The gradient analysis after training, when asked for.
    #[serde(default)]
    pub analysis: Option<AnalysisConfig>,
    /// The data set.
    pub data: DataSpec,
    /// Repetition index (0 unless the sweep repeats jobs); part of the identity.
    #[serde(default)]
    pub repeat: u32,
}

impl JobSpec {
    /// Checks the training settings and, with them, the analysis (`TrainConfig::validate_with`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.train.validate_with(self.analysis.as_ref())
    }

    /// The job id: the first 12 hex digits of the SHA-256 of the spec's canonical JSON (fields
    /// in declaration order, shortest round-trip floats), the same on every machine and run.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut json = serde_json::to_string(self).unwrap_or_default();
        // Settings added after the first release are hashed only when they differ from their
        // default, so that the jobs of existing sweeps keep their ids (and their results).
        for default in ADDED_AT_DEFAULT {
            json = json.replacen(default, "", 1);
        }
        let digest = Sha256::digest(json.as_bytes());
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// Expected cost, for scheduling longest-first: proportional to FLOPs per image (linear in
    /// the blocks per stage, n = (depth - 2) / 6, plus the stem and head) x images passed
    /// forward and backward (epochs x training images, plus the test images of each analysis).
    pub fn cost(&self) -> f64 {
        self.training_cost() + self.analysis_cost()
    }

    /// The training part of `cost`: the epochs over the training images.
    pub fn training_cost(&self) -> f64 {
        self.units_per_image() * f64::from(self.train.epochs) * self.train_images() as f64
    }

    /// The gradient analyses' part of `cost`: each takes a forward and backward pass per test
    /// image, as training does (0 without an analysis).
    pub fn analysis_cost(&self) -> f64 {
        let analyses = self.analysis.as_ref().map_or(0, |a| a.epochs(self.train.epochs).len());
        self.units_per_image() * analyses as f64 * self.test_images() as f64
    }

    /// The cost model's work for one image through the network (forward and backward): the
    /// blocks per stage, n = (depth - 2) / 6, plus 0.5 for the stem and head.
    pub fn units_per_image(&self) -> f64 {
        f64::from(self.train.depth.saturating_sub(2)) / 6.0 + 0.5
    }

    /// Training images per epoch: the data set's training split (CIFAR-10: 50,000), capped by
    /// `train_subset`, as the worker takes them. What `cost` and the calibrated estimate count.
    pub fn train_images(&self) -> u64 {
        let full = match &self.data {
            DataSpec::Cifar10 => CIFAR10_TRAIN,
            DataSpec::Synthetic { train, .. } => *train as u64,
        };
        cap(full, self.train.train_subset)
    }

    /// Test images evaluated per epoch: the test split (CIFAR-10: 10,000), capped by
    /// `test_subset`.
    pub fn test_images(&self) -> u64 {
        let full = match &self.data {
            DataSpec::Cifar10 => CIFAR10_TEST,
            DataSpec::Synthetic { test, .. } => *test as u64,
        };
        cap(full, self.train.test_subset)
    }
}

/// Settings added to `TrainConfig` after the first release, as they serialise at their default
/// (`serde_json`'s compact form): left out of the text a job id hashes.
const ADDED_AT_DEFAULT: [&str; 2] =
    [",\"deterministic\":false", ",\"precision\":{\"conv\":\"tf32\",\"matmul\":\"highest\"}"];

/// Images in CIFAR-10's training split.
pub const CIFAR10_TRAIN: u64 = 50_000;
/// Images in CIFAR-10's test split.
pub const CIFAR10_TEST: u64 = 10_000;

/// `full` images, or the first `subset` of them when that is fewer (a subset larger than the
/// split takes the whole split, as the worker does).
fn cap(full: u64, subset: Option<i64>) -> u64 {
    subset.map_or(full, |k| full.min(u64::try_from(k).unwrap_or(0)))
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
    fn images_follow_the_data_and_the_subsets() {
        let mut job = JobSpec {
            train: TrainConfig::paper(Arch::Resnet, 26, 1),
            analysis: None,
            data: DataSpec::Cifar10,
            repeat: 0,
        };
        assert_eq!((job.train_images(), job.test_images()), (50_000, 10_000));
        // (4 blocks per stage + 0.5) x 300 epochs x 50,000 images.
        assert_eq!(job.cost(), 4.5 * 300.0 * 50_000.0);
        job.train.train_subset = Some(2_000);
        job.train.test_subset = Some(20_000);
        assert_eq!((job.train_images(), job.test_images()), (2_000, 10_000));
        job.data = DataSpec::Synthetic { train: 512, test: 256, seed: 0 };
        assert_eq!((job.train_images(), job.test_images()), (512, 256));
        assert_eq!(job.cost(), 4.5 * 300.0 * 512.0);
    }

    #[test]
    fn a_later_setting_at_its_default_keeps_the_jobs_id() {
        let job = JobSpec {
            train: TrainConfig::paper(Arch::Grid, 26, 42),
            analysis: None,
            data: DataSpec::Cifar10,
            repeat: 0,
        };
        // The id as hashed before `deterministic` existed (the spec's JSON without it).
        let before = {
            use sha2::{Digest, Sha256};
            let json = serde_json::to_string(&job)
                .unwrap_or_default()
                .replace(",\"deterministic\":false", "")
                .replace(",\"precision\":{\"conv\":\"tf32\",\"matmul\":\"highest\"}", "");
            assert!(!json.contains("deterministic") && !json.contains("precision"), "{json}");
            Sha256::digest(json.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()
        };
        assert_eq!(job.id(), before);
        let strict = JobSpec { train: TrainConfig { deterministic: true, ..job.train.clone() }, ..job.clone() };
        assert_ne!(strict.id(), job.id(), "a deterministic job is another job");
        let ieee = Precision { conv: ConvPrecision::Ieee, ..Precision::default() };
        let exact = JobSpec { train: TrainConfig { precision: ieee, ..job.train.clone() }, ..job.clone() };
        assert_ne!(exact.id(), job.id(), "another precision is another job");
    }

    #[test]
    fn validation_names_the_field() {
        let mut cfg = TrainConfig::paper(Arch::Grid, 26, 1);
        assert_eq!(cfg.validate(), Ok(()));
        cfg.epochs = 0;
        let mut job = JobSpec { train: cfg.clone(), analysis: None, data: DataSpec::Cifar10, repeat: 0 };
        assert!(job.validate().unwrap_err().to_string().starts_with("epochs = 0"));
        job.analysis = Some(AnalysisConfig { at_epochs: vec![0], ..AnalysisConfig::default() });
        assert_eq!(job.validate(), Ok(()), "analysis only");
        job.train.epochs = 4;
        job.analysis = Some(AnalysisConfig { at_epochs: vec![0, 2, 2], ..AnalysisConfig::default() });
        assert_eq!(job.validate().unwrap_err().to_string(), "analysis.at_epochs[2] = 2: appears twice");
        job.analysis = Some(AnalysisConfig { at_epochs: vec![0, 5], ..AnalysisConfig::default() });
        assert!(
            job.validate().unwrap_err().to_string().starts_with("analysis.at_epochs[1] = 5 (epochs: 4): is beyond")
        );
        job.analysis = Some(AnalysisConfig { at_epochs: vec![3, 1], ..AnalysisConfig::default() });
        assert!(job.validate().unwrap_err().to_string().contains("increasing"));
        cfg.epochs = 10;
        cfg.batch_size = 1;
        assert!(cfg.validate().unwrap_err().to_string().starts_with("batch_size = 1"));
        cfg.batch_size = 128;
        cfg.depth = 20;
        assert!(cfg.validate().unwrap_err().to_string().contains("8 or 26"));
    }
}
