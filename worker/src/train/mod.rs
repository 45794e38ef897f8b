//! One training job: the paper's recipe on one device, epoch metrics through a callback,
//! checkpoints at epoch ends, resume, divergence, and the gradient analyses (after the last
//! epoch, or at the epochs `analysis.at_epochs` names, 0 being before any step).
//!
//! This module is the job's entry point and its order of steps (`train`); `run` holds the run's
//! state (set-up, restore, the analysis when due, epoch ends, the result), `epoch` the passes
//! over the data, `describe` what a run says of itself (environment, log line), `fault` the
//! typed libtorch errors (`TorchFault`), `inject` a test-only fault inside the step.
//!
//! Randomness: initialisation draws from libtorch's generator seeded with the job seed; each
//! epoch reseeds it from (seed, epoch) before drawing the order and augmentation, so resuming at
//! epoch e draws exactly what an uninterrupted run draws.

mod describe;
mod epoch;
pub mod fault;
pub mod inject;
mod run;

use std::path::PathBuf;
use std::time::Instant;

use tch::Device;

use crate::checkpoint::CheckpointError;
use crate::data::Dataset;
use crate::gradstats::GradConfig;
use crate::models::ModelError;
use crate::recipe::{ConfigError, TrainConfig};
use crate::speed::Speed;

pub use describe::{environment, progress_line};
pub use epoch::evaluate;
pub use fault::{FaultKind, TorchFault};
pub use gridsweep_proto::result::{DataInfo, Environment, EpochMetrics, RunStatus as Status, TrainResult};

use run::{EpochEnd, Run};

/// Run options that are not part of the job's identity.
#[derive(Clone, Debug)]
pub struct Options {
    /// Training device.
    pub device: Device,
    /// Where to write checkpoints; none when unset.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir` when there is one.
    pub resume: bool,
    /// Run the gradient analysis after training.
    pub grad_analysis: Option<GradConfig>,
    /// Deterministic algorithms (libtorch's switch; on CUDA also cuDNN benchmark off). CPU
    /// training is deterministic either way for a fixed thread count.
    pub deterministic: bool,
    /// Stop after this many epochs in this session (status `stopped`), e.g. to fit a time slot.
    pub stop_after: Option<u32>,
    /// Set from another thread to stop as soon as possible (status `stopped`); the partial
    /// epoch is dropped and the last epoch-end checkpoint stays the resume point.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// How grid stages run and the memory layout (see `speed`).
    pub speed: Speed,
}

/// Why a job could not run (a diverged job is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad setting.
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    /// A bad model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A checkpoint problem.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A libtorch failure, returned or panicked, with its kind (out of memory, a broken CUDA
    /// context, other) decided once (`fault::classify`).
    #[error("libtorch: {0}")]
    Torch(#[from] TorchFault),
}

impl From<tch::TchError> for TrainError {
    fn from(e: tch::TchError) -> Self {
        TrainError::Torch(e.into())
    }
}

/// Trains `cfg` on `data`; `on_epoch` sees each epoch's metrics as it ends.
pub fn train(
    cfg: &TrainConfig,
    data: &Dataset,
    opts: &Options,
    on_epoch: &mut dyn FnMut(&EpochMetrics),
) -> Result<TrainResult, TrainError> {
    let started = Instant::now();
    cfg.validate_with(opts.grad_analysis.as_ref())?;
    let mut run = Run::new(cfg, data, opts)?;
    run.restore()?;
    let start_epoch = run.epochs_done();
    // At initialisation, before any step (not repeated by a resumed run).
    if start_epoch == 0 && !run.has_analyses() {
        run.analyse_if_due(0)?;
    }
    let mut status = Status::Completed;
    for epoch in start_epoch..cfg.epochs {
        if let EpochEnd::Stop(why) = run.epoch(epoch, on_epoch)? {
            status = why;
            break;
        }
        if opts.stop_after.is_some_and(|k| epoch + 1 - start_epoch >= k) && epoch + 1 < cfg.epochs {
            status = Status::Stopped;
            break;
        }
    }
    Ok(run.finish(data, status, started))
}
