//! The job schema shared by the coordinator and the worker, with no libtorch in it: the
//! architectures and their valid depths (`arch`), the training recipe and its learning-rate
//! schedule (`config`) with the paper's defaults (`defaults`) and the error naming a bad setting
//! (`error`), the CUDA precision switches (`precision`) and the gradient-analysis settings
//! (`analysis`), the canonical form a job's id hashes (`canonical`); and here, the data a job
//! trains on and the fully resolved [`JobSpec`] with its id and expected cost. Every item is re-exported here, as `job::X`.

use serde::{Deserialize, Serialize};

mod analysis;
mod arch;
mod canonical;
mod config;
pub mod defaults;
mod error;
mod precision;
pub mod program;

pub use analysis::AnalysisConfig;
pub use arch::{Arch, MAX_DEPTH, ModelError, ModelSpec};
pub use canonical::{CANONICAL_VERSION, Canonical, Fields, object};
pub use config::{TrainConfig, lr_at};
pub use error::ConfigError;
pub use precision::{ConvPrecision, MatmulPrecision, Precision};
pub use program::{Goal, Metric, ProgramError, ProgramResult, ProgramSpec};

/// Which data a job trains on. The folder is each worker's own business; only what the data
/// is belongs to the job's identity. `None` is only for program jobs whose sweep names no data
/// set (the built-in trainer always needs one: `JobSpec::validate`).
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
    /// No data set: a `program:` sweep without `data:`. The worker fetches nothing and sets no
    /// `GRIDSWEEP_DATA_DIR`; the program finds its own data.
    None,
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
    /// The user's program that runs this job instead of the built-in trainer (`program.rs`).
    /// Absent, and left out of the JSON, for built-in jobs, so their ids stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramSpec>,
}

impl JobSpec {
    /// Checks the training settings and, with them, the analysis (`TrainConfig::validate_with`).
    /// A built-in job without a data set is refused here (only a program may bring its own).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.program.is_none() && self.data == DataSpec::None {
            let reason = "the built-in trainer needs a data set (cifar10 or synthetic)";
            return Err(ConfigError::Field { field: "data".to_owned(), value: "none".to_owned(), reason });
        }
        self.train.validate_with(self.analysis.as_ref())
    }

    /// The job id: the first 12 hex digits of the SHA-256 of the spec's canonical form
    /// (`canonical`: an ordered encoding written field by field, the settings added after the
    /// first release left out at their defaults by rule), the same on every machine and run.
    /// Writing the form cannot fail, so no id is ever the hash of nothing.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(canonical::canonical_text(self).as_bytes());
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// The canonical text the id hashes (version [`CANONICAL_VERSION`]).
    pub fn canonical_text(&self) -> String {
        canonical::canonical_text(self)
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
            DataSpec::None => 0,
        };
        cap(full, self.train.train_subset)
    }

    /// Test images evaluated per epoch: the test split (CIFAR-10: 10,000), capped by
    /// `test_subset`.
    pub fn test_images(&self) -> u64 {
        let full = match &self.data {
            DataSpec::Cifar10 => CIFAR10_TEST,
            DataSpec::Synthetic { test, .. } => *test as u64,
            DataSpec::None => 0,
        };
        cap(full, self.train.test_subset)
    }
}

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
mod tests;
