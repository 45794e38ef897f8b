//! A training run's state and its steps: set-up (libtorch switches, the splits on the device,
//! the seeded model and its optimiser), restore from a checkpoint, the gradient analysis when
//! one is due, the end of an epoch (metrics, analysis, checkpoint, callback) and the result.

use std::time::Instant;

use tch::nn;
use tch::{Device, Tensor};

use crate::checkpoint::{self, CheckpointError, Meta};
use crate::data::augment::Normalizer;
use crate::data::{Dataset, Split};
use crate::gradstats::{self, GradReport};
use crate::models::{Cost, Net};
use crate::optim::Sgd;
use crate::recipe::TrainConfig;

use super::epoch::{self, evaluate};
use super::{DataInfo, EpochMetrics, Options, Status, TrainError, TrainResult, environment};

/// How an epoch ended.
pub(super) enum EpochEnd {
    /// Go on with the next epoch (unless the session's limit says otherwise).
    Continue,
    /// The run ends with this status: `Stopped` when cancelled (the partial epoch dropped),
    /// `Diverged` when the loss stopped being finite.
    Stop(Status),
}

/// One job being trained: what it was asked, the model and optimiser on the device, and what
/// a checkpoint keeps of it.
pub(super) struct Run<'a> {
    /// The job's recipe.
    cfg: &'a TrainConfig,
    /// The caller's run options (device, checkpoints, analysis, stop and cancel).
    opts: &'a Options,
    /// The model's variables: parameters and batch-norm statistics.
    vs: nn::VarStore,
    /// The model.
    net: Net,
    /// The SGD optimiser over the trainable variables, with its momentum buffers.
    opt: Sgd,
    /// The model's parameters and FLOPs, for the result.
    cost: Cost,
    /// The training images on the device (the job's subset).
    train_set: Split,
    /// The test images on the device (the job's subset): evaluation and the analyses.
    test_set: Split,
    /// Normalisation constants on the device.
    norm: Normalizer,
    /// Deterministic algorithms, the job's setting or the caller's; recorded in the result.
    deterministic: bool,
    /// The epochs after which a gradient analysis is due (0: before any step).
    analysed: Vec<u32>,
    /// Metrics of the finished epochs, restored ones included.
    history: Vec<EpochMetrics>,
    /// Gradient analyses taken so far, restored ones included.
    analyses: Vec<GradReport>,
    /// Training seconds of all sessions so far.
    train_seconds: f64,
    /// The epoch a restored checkpoint had reached.
    resumed_from_epoch: Option<u32>,
}

/// Whether the caller asked the run to stop.
fn cancelled(opts: &Options) -> bool {
    opts.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
}

/// A split on `device` (a no-op when it is there already).
fn to(split: &Split, device: Device) -> Result<Split, tch::TchError> {
    Ok(Split { images: split.images.f_to_device(device)?, labels: split.labels.f_to_device(device)? })
}

/// Sets libtorch's switches for the job: deterministic algorithms (the job's setting, or the
/// caller's, `worker train --deterministic`), precision, and on CUDA cuDNN's benchmark. Returns
/// whether the run is deterministic.
fn set_switches(cfg: &TrainConfig, opts: &Options) -> bool {
    let deterministic = opts.deterministic || cfg.deterministic;
    crate::context::set_deterministic(deterministic);
    crate::context::set_precision(cfg.precision);
    if opts.device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(!deterministic);
    }
    deterministic
}

impl<'a> Run<'a> {
    /// Sets the job up on its device: switches, the splits, the model initialised from the job
    /// seed, and the optimiser.
    pub fn new(cfg: &'a TrainConfig, data: &Dataset, opts: &'a Options) -> Result<Self, TrainError> {
        let analysed: Vec<u32> = opts.grad_analysis.as_ref().map(|g| g.epochs(cfg.epochs)).unwrap_or_default();
        let device = opts.device;
        let deterministic = set_switches(cfg, opts);
        let train_set = cfg.train_subset.map_or_else(|| data.train.take(i64::MAX), |n| data.train.take(n));
        let test_set = cfg.test_subset.map_or_else(|| data.test.take(i64::MAX), |n| data.test.take(n));
        let (train_set, test_set) = (to(&train_set, device)?, to(&test_set, device)?);

        tch::manual_seed(cfg.seed as i64);
        let vs = nn::VarStore::new(device);
        let mut net = Net::new(&vs.root(), cfg.model()?);
        net.set_grid_exec(opts.speed.grid_exec(net.spec));
        net.set_memory_format(&vs, opts.speed.memory_format);
        let cost = net.cost();
        let trainable: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        let opt = Sgd::new(trainable, cfg.momentum, cfg.nesterov, cfg.weight_decay);
        Ok(Run {
            cfg,
            opts,
            vs,
            net,
            opt,
            cost,
            train_set,
            test_set,
            norm: Normalizer::new(device),
            deterministic,
            analysed,
            history: Vec::new(),
            analyses: Vec::new(),
            train_seconds: 0.0,
            resumed_from_epoch: None,
        })
    }

    /// Continues from the checkpoint when the caller asks to resume and there is one: the
    /// variables, the momentum buffers and the history. A checkpoint of another config is
    /// refused.
    pub fn restore(&mut self) -> Result<(), TrainError> {
        let (true, Some(dir)) = (self.opts.resume, &self.opts.checkpoint_dir) else {
            return Ok(());
        };
        let Some(ck) = checkpoint::load(dir)? else {
            return Ok(());
        };
        let path = dir.join(checkpoint::FILE);
        if let Some(field) = ck.meta.config.first_difference(self.cfg) {
            return Err(CheckpointError::ConfigMismatch { path, field }.into());
        }
        let mut vars = self.vs.variables();
        for (name, t) in &ck.model {
            let Some(v) = vars.get_mut(name) else {
                return Err(CheckpointError::Corrupt { path, reason: format!("unknown variable {name}") }.into());
            };
            tch::no_grad(|| v.f_copy_(t))?;
        }
        self.opt.set_buffers(&ck.momentum).map_err(|reason| CheckpointError::Corrupt { path, reason })?;
        self.history = ck.meta.history;
        self.analyses = ck.meta.analyses;
        self.train_seconds = ck.meta.train_seconds;
        self.resumed_from_epoch = Some(ck.meta.epochs_done);
        Ok(())
    }

    /// Epochs finished (restored ones included); training goes on at this (0-based) epoch.
    pub fn epochs_done(&self) -> u32 {
        self.history.len() as u32
    }

    /// Whether an analysis was taken already (by this session or a restored one).
    pub fn has_analyses(&self) -> bool {
        !self.analyses.is_empty()
    }

    /// Takes the gradient analysis after `epoch` (0: before any step) when one is asked for then.
    pub fn analyse_if_due(&mut self, epoch: u32) -> Result<(), TrainError> {
        if let Some(g) = &self.opts.grad_analysis
            && self.analysed.contains(&epoch)
        {
            let report = gradstats::analyze_at(&self.net, &self.vs, &self.test_set, &self.norm, g, epoch)?;
            self.analyses.push(report);
        }
        Ok(())
    }

    /// Trains epoch `epoch` (0-based) and ends it: evaluation, metrics, the analysis when due and
    /// the checkpoint (unless diverged), then `on_epoch`, told after the checkpoint so that
    /// whoever hears of the epoch finds its checkpoint.
    pub fn epoch(&mut self, epoch: u32, on_epoch: &mut dyn FnMut(&EpochMetrics)) -> Result<EpochEnd, TrainError> {
        let t0 = Instant::now();
        let opts = self.opts;
        let pass = epoch::train_pass(&self.net, &mut self.opt, &self.train_set, &self.norm, self.cfg, epoch, &|| {
            cancelled(opts)
        });
        if cancelled(opts) {
            return Ok(EpochEnd::Stop(Status::Stopped));
        }
        let train_loss = pass.loss();
        let train_acc = pass.accuracy();
        let train_time = t0.elapsed().as_secs_f64();
        let diverged = !train_loss.is_finite();
        let (test_loss, test_acc) = evaluate(&self.net, &self.test_set, self.cfg.eval_batch_size, &self.norm);
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr: pass.lr,
            train_loss: (!diverged).then_some(train_loss),
            train_acc,
            test_loss,
            test_acc,
            seconds: t0.elapsed().as_secs_f64(),
            images_per_s: pass.seen as f64 / train_time,
        };
        self.train_seconds += m.seconds;
        self.history.push(m);
        if !diverged {
            self.analyse_if_due(epoch + 1)?;
            self.save_checkpoint(epoch + 1)?;
        }
        if let Some(m) = self.history.last() {
            on_epoch(m);
        }
        Ok(if diverged { EpochEnd::Stop(Status::Diverged) } else { EpochEnd::Continue })
    }

    /// Writes the checkpoint after `epochs_done` epochs when the caller gave a directory.
    fn save_checkpoint(&self, epochs_done: u32) -> Result<(), TrainError> {
        let Some(dir) = &self.opts.checkpoint_dir else {
            return Ok(());
        };
        let meta = Meta {
            config: self.cfg.clone(),
            epochs_done,
            history: self.history.clone(),
            analyses: self.analyses.clone(),
            train_seconds: self.train_seconds,
        };
        let model: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        checkpoint::save(dir, &meta, &model, &self.opt.buffers())?;
        Ok(())
    }

    /// The run's result: its history, best and final accuracy, the analyses (Table 2 reads the
    /// latest; the earlier ones are kept beside it), the data and the environment.
    pub fn finish(mut self, data: &Dataset, status: Status, started: Instant) -> TrainResult {
        let grad_analysis = self.analyses.pop();
        self.vs.freeze();
        let history = self.history;
        let best = history
            .iter()
            .filter(|m| m.test_loss.is_some())
            .max_by(|a, b| a.test_acc.total_cmp(&b.test_acc).then(b.epoch.cmp(&a.epoch)));
        TrainResult {
            config: self.cfg.clone(),
            params: self.cost.params,
            flops: self.cost.flops,
            status,
            final_test_acc: history.last().filter(|_| status == Status::Completed).map(|m| m.test_acc),
            best_test_acc: best.map(|m| m.test_acc),
            best_epoch: best.map(|m| m.epoch),
            epochs: history,
            wall_seconds: started.elapsed().as_secs_f64(),
            train_seconds: self.train_seconds,
            resumed_from_epoch: self.resumed_from_epoch,
            data: DataInfo {
                dir: data.dir.clone(),
                synthetic: data.synthetic,
                train_images: self.train_set.len(),
                test_images: self.test_set.len(),
            },
            environment: environment(
                self.opts.device,
                self.deterministic,
                self.net.grid_exec,
                self.net.memory_format,
                self.cfg.precision,
            ),
            grad_analysis,
            earlier_grad_analyses: self.analyses,
        }
    }
}
