//! One training job: the paper's recipe on one device, epoch metrics through a callback,
//! checkpoints at epoch ends, resume, divergence, and the gradient analyses (after the last
//! epoch, or at the epochs `analysis.at_epochs` names, 0 being before any step).
//!
//! Randomness: initialisation draws from libtorch's generator seeded with the job seed; each
//! epoch reseeds it from (seed, epoch) before drawing the order and augmentation, so resuming at
//! epoch e draws exactly what an uninterrupted run draws.

use std::path::PathBuf;
use std::time::Instant;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, CheckpointError, Meta};
use crate::data::augment::{self, Augment, Normalizer};
use crate::data::{Dataset, Split};
use crate::gradstats::{self, GradConfig, GradReport};
use crate::models::{ModelError, Net};
use crate::optim::Sgd;
use crate::recipe::{ConfigError, ConvPrecision, Precision, TrainConfig, lr_at};
use crate::speed::Speed;

pub use gridsweep_proto::result::{DataInfo, Environment, EpochMetrics, RunStatus as Status, TrainResult};

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
    /// A libtorch failure (out of memory, device error).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The generator seed of an epoch.
fn epoch_seed(seed: u64, epoch: u32) -> i64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(u64::from(epoch) + 1);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// Loss and accuracy of `net` on `split` in evaluation mode.
pub fn evaluate(net: &Net, split: &Split, batch: i64, norm: &Normalizer) -> (Option<f64>, f64) {
    tch::no_grad(|| {
        let device = split.images.device();
        let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
        let mut correct = Tensor::zeros([], (Kind::Int64, device));
        let n = split.len();
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let x = norm.apply(&split.images.narrow(0, start, len));
            let y = split.labels.narrow(0, start, len);
            let logits = net.forward_t(&x, false);
            loss_sum += logits.cross_entropy_for_logits(&y).to_kind(Kind::Double) * len as f64;
            correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64);
            start += len;
        }
        let loss = loss_sum.double_value(&[]) / n as f64;
        (loss.is_finite().then_some(loss), 100.0 * correct.int64_value(&[]) as f64 / n as f64)
    })
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
    let analysed: Vec<u32> = opts.grad_analysis.as_ref().map(|g| g.epochs(cfg.epochs)).unwrap_or_default();
    let device = opts.device;
    // The job's setting, or the caller's (`worker train --deterministic`).
    let deterministic = opts.deterministic || cfg.deterministic;
    crate::context::set_deterministic(deterministic);
    crate::context::set_precision(cfg.precision);
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(!deterministic);
    }
    let train_set = cfg.train_subset.map_or_else(|| data.train.take(i64::MAX), |n| data.train.take(n));
    let test_set = cfg.test_subset.map_or_else(|| data.test.take(i64::MAX), |n| data.test.take(n));
    let (train_set, test_set) = (to(&train_set, device)?, to(&test_set, device)?);

    tch::manual_seed(cfg.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let mut net = Net::new(&vs.root(), cfg.model()?);
    net.set_grid_exec(opts.speed.grid_exec);
    net.set_memory_format(&vs, opts.speed.memory_format);
    let cost = net.cost();
    let trainable: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    let mut opt = Sgd::new(trainable, cfg.momentum, cfg.nesterov, cfg.weight_decay);

    let mut history = Vec::new();
    let mut analyses: Vec<GradReport> = Vec::new();
    let mut train_seconds = 0.0;
    let mut resumed_from_epoch = None;
    if let (true, Some(dir)) = (opts.resume, &opts.checkpoint_dir)
        && let Some(ck) = checkpoint::load(dir)?
    {
        let path = dir.join(checkpoint::FILE);
        if let Some(field) = ck.meta.config.first_difference(cfg) {
            return Err(CheckpointError::ConfigMismatch { path, field }.into());
        }
        let mut vars = vs.variables();
        for (name, t) in &ck.model {
            let Some(v) = vars.get_mut(name) else {
                return Err(CheckpointError::Corrupt { path, reason: format!("unknown variable {name}") }.into());
            };
            tch::no_grad(|| v.f_copy_(t))?;
        }
        opt.set_buffers(&ck.momentum).map_err(|reason| CheckpointError::Corrupt { path, reason })?;
        history = ck.meta.history;
        analyses = ck.meta.analyses;
        train_seconds = ck.meta.train_seconds;
        resumed_from_epoch = Some(ck.meta.epochs_done);
    }
    let start_epoch = history.len() as u32;

    let norm = Normalizer::new(device);
    let aug = Augment { crop_padding: cfg.crop_padding, flip: cfg.flip };
    let n = train_set.len();
    let mut status = Status::Completed;
    let cancelled = || opts.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed));
    // The analysis after `epoch` when one is asked for then.
    let analyse = |epoch: u32| match &opts.grad_analysis {
        Some(g) if analysed.contains(&epoch) => gradstats::analyze_at(&net, &vs, &test_set, &norm, g, epoch).map(Some),
        _ => Ok(None),
    };
    // At initialisation, before any step (not repeated by a resumed run).
    if start_epoch == 0 && analyses.is_empty() {
        analyses.extend(analyse(0)?);
    }
    for epoch in start_epoch..cfg.epochs {
        let t0 = Instant::now();
        tch::manual_seed(epoch_seed(cfg.seed, epoch));
        let lr = lr_at(cfg, epoch);
        let perm = Tensor::randperm(n, (Kind::Int64, device));
        let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
        let mut correct = Tensor::zeros([], (Kind::Int64, device));
        let mut seen = 0i64;
        let mut start = 0;
        // A last batch of one image cannot be batch-normalised in training mode: it is skipped.
        while n - start >= 2 {
            if cancelled() {
                break;
            }
            let len = cfg.batch_size.min(n - start);
            let idx = perm.narrow(0, start, len);
            let x = augment::train_batch(&train_set.images, &idx, aug, &norm);
            let y = train_set.labels.index_select(0, &idx);
            let logits = net.forward_t(&x, true);
            let loss = logits.cross_entropy_for_logits(&y);
            opt.zero_grad();
            loss.backward();
            opt.step(lr);
            loss_sum += loss.detach().to_kind(Kind::Double) * len as f64;
            correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64);
            seen += len;
            start += len;
            if (start / cfg.batch_size) % 20 == 0 && !loss_sum.double_value(&[]).is_finite() {
                break;
            }
        }
        if cancelled() {
            status = Status::Stopped;
            break;
        }
        let train_loss = loss_sum.double_value(&[]) / seen as f64;
        let train_acc = 100.0 * correct.int64_value(&[]) as f64 / seen as f64;
        let train_time = t0.elapsed().as_secs_f64();
        let diverged = !train_loss.is_finite();
        let (test_loss, test_acc) = evaluate(&net, &test_set, cfg.eval_batch_size, &norm);
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: (!diverged).then_some(train_loss),
            train_acc,
            test_loss,
            test_acc,
            seconds: t0.elapsed().as_secs_f64(),
            images_per_s: seen as f64 / train_time,
        };
        train_seconds += m.seconds;
        history.push(m);
        if !diverged {
            analyses.extend(analyse(epoch + 1)?);
        }
        if diverged {
            status = Status::Diverged;
        } else if let Some(dir) = &opts.checkpoint_dir {
            let meta = Meta {
                config: cfg.clone(),
                epochs_done: epoch + 1,
                history: history.clone(),
                analyses: analyses.clone(),
                train_seconds,
            };
            let model: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            checkpoint::save(dir, &meta, &model, &opt.buffers())?;
        }
        // After the checkpoint, so that whoever is told of the epoch finds its checkpoint.
        if let Some(m) = history.last() {
            on_epoch(m);
        }
        if diverged {
            break;
        }
        if opts.stop_after.is_some_and(|k| epoch + 1 - start_epoch >= k) && epoch + 1 < cfg.epochs {
            status = Status::Stopped;
            break;
        }
    }

    // Table 2 reads the latest analysis; the earlier ones are kept beside it.
    let grad_analysis = analyses.pop();
    vs.freeze();
    let best = history
        .iter()
        .filter(|m| m.test_loss.is_some())
        .max_by(|a, b| a.test_acc.total_cmp(&b.test_acc).then(b.epoch.cmp(&a.epoch)));
    Ok(TrainResult {
        config: cfg.clone(),
        params: cost.params,
        flops: cost.flops,
        status,
        final_test_acc: history.last().filter(|_| status == Status::Completed).map(|m| m.test_acc),
        best_test_acc: best.map(|m| m.test_acc),
        best_epoch: best.map(|m| m.epoch),
        epochs: history,
        wall_seconds: started.elapsed().as_secs_f64(),
        train_seconds,
        resumed_from_epoch,
        data: DataInfo {
            dir: data.dir.clone(),
            synthetic: data.synthetic,
            train_images: train_set.len(),
            test_images: test_set.len(),
        },
        environment: environment(device, deterministic, opts.speed, cfg.precision),
        grad_analysis,
        earlier_grad_analyses: analyses,
    })
}

/// A split on `device` (a no-op when it is there already).
fn to(split: &Split, device: Device) -> Result<Split, tch::TchError> {
    Ok(Split { images: split.images.f_to_device(device)?, labels: split.labels.f_to_device(device)? })
}

/// The device and software of this process, and the speed switches and precision the job ran
/// with.
pub fn environment(device: Device, deterministic: bool, speed: Speed, precision: Precision) -> Environment {
    let report = crate::devices::DeviceReport::probe();
    let (name, label) = match device {
        Device::Cuda(i) => (
            report.cuda_devices.get(i).map_or_else(|| "unknown GPU".to_owned(), |d| d.name.clone()),
            format!("cuda:{i}"),
        ),
        _ => (format!("cpu, {} threads", tch::get_num_threads()), "cpu".to_owned()),
    };
    Environment {
        device: label,
        device_name: name,
        libtorch_version: report.libtorch_version,
        cuda_version: device.is_cuda().then(tch::utils::version_cudart),
        cudnn_benchmark: device.is_cuda() && !deterministic,
        deterministic,
        grid_exec: Some(speed.grid_exec),
        memory_format: Some(speed.memory_format),
        tf32: Some(device.is_cuda() && precision.conv == ConvPrecision::Tf32),
    }
}

/// An epoch's metrics on one line, in aligned columns, for the log: `epoch    3/300  lr 0.1000
/// train loss 1.2345 acc  55.10%  test loss 1.3456 acc  52.30%    12.3s     4200 img/s`.
pub fn progress_line(m: &EpochMetrics, epochs: u32) -> String {
    let loss = |l: Option<f64>| l.map_or_else(|| "   nan".to_owned(), |l| format!("{l:.4}"));
    format!(
        "epoch {:>4}/{epochs}  lr {:.4}  train loss {} acc {:6.2}%  test loss {} acc {:6.2}%  {:6.1}s  {:7.0} img/s",
        m.epoch,
        m.lr,
        loss(m.train_loss),
        m.train_acc,
        loss(m.test_loss),
        m.test_acc,
        m.seconds,
        m.images_per_s,
    )
}
