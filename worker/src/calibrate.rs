//! `worker bench --calibrate`: how fast this device trains and evaluates each model a sweep uses,
//! written as a `Calibration` (proto) that `coordinator expand` and `plan` turn into expected
//! seconds. For each (architecture, depth, batch size, evaluation batch size): the model is built
//! with the worker's speed switches, takes a few untimed training steps and a few timed ones (the
//! step of `train::train`: batched augmentation, forward, backward, the packed SGD update), then
//! evaluates a few batches in evaluation mode as `train::evaluate` does. Images are random: speed
//! does not depend on what they show.

use std::path::Path;
use std::time::Instant;

use gridsweep_proto::calibration::{CALIBRATION_FORMAT, Calibration, CalibrationEntry, CalibrationError};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::data::Split;
use crate::data::augment::{Augment, Augmenter, Normalizer};
use crate::models::{Arch, ModelError, ModelSpec, Net};
use crate::optim::Sgd;
use crate::recipe::TrainConfig;
use crate::recipe::{ConvPrecision, Precision};
use crate::speed::Speed;

/// One model at one batch size: a calibration entry to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The validated model.
    pub spec: ModelSpec,
    /// Images per training step.
    pub batch_size: i64,
    /// Images per evaluation batch.
    pub eval_batch_size: i64,
}

/// How to measure.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The device measured.
    pub device: Device,
    /// Grid execution and memory layout, as jobs on this device would run.
    pub speed: Speed,
    /// The precision the jobs ask for (`TrainConfig::precision`).
    pub precision: Precision,
    /// Untimed training steps of each model first (and one untimed evaluation batch).
    pub warmup: u32,
    /// Timed training steps of each model.
    pub steps: u32,
    /// Timed evaluation batches of each model.
    pub eval_batches: u32,
}

/// Why a calibration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// The sweep file named.
    #[error(transparent)]
    Sweep(#[from] sweep::SweepError),
    /// An item of a model list is not `ARCH-DEPTH`.
    #[error("{item:?}: expected ARCH-DEPTH, e.g. resnet-26 or grid-98, in a comma-separated list")]
    Item {
        /// The item as given.
        item: String,
    },
    /// A model that cannot be built.
    #[error("{item}: {source}")]
    Model {
        /// The item as given.
        item: String,
        /// Why.
        source: ModelError,
    },
    /// Settings no measurement can be made with.
    #[error("{0}")]
    Settings(&'static str),
    /// libtorch failed or panicked on a model (e.g. out of memory on the device).
    #[error("measuring {model}: {message}")]
    Measurement {
        /// `arch-depth batch N`.
        model: String,
        /// libtorch's error or the panic's message.
        message: String,
    },
    /// The calibration file.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
}

/// The targets of `what`: a sweep file (its distinct models, batch sizes and evaluation batch
/// sizes, in sweep order) when it names a file or ends in `.yaml`/`.yml`, else a comma list of
/// `ARCH-DEPTH` at `batch_size` and `eval_batch_size`.
pub fn targets(what: &str, batch_size: i64, eval_batch_size: i64) -> Result<Vec<Target>, CalibrateError> {
    let path = Path::new(what);
    if path.is_file() || what.ends_with(".yaml") || what.ends_with(".yml") {
        let sweep = sweep::load(path)?;
        let mut out: Vec<Target> = Vec::new();
        for job in &sweep.jobs {
            let t = &job.train;
            let spec = t.model().map_err(|source| CalibrateError::Model { item: what.to_owned(), source })?;
            let target = Target { spec, batch_size: t.batch_size, eval_batch_size: t.eval_batch_size };
            if !out.contains(&target) {
                out.push(target);
            }
        }
        return Ok(out);
    }
    let mut out: Vec<Target> = Vec::new();
    for item in what.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || CalibrateError::Item { item: item.to_owned() };
        let (arch, depth) = item.rsplit_once('-').ok_or_else(bad)?;
        let arch: Arch = arch.parse().map_err(|source| CalibrateError::Model { item: item.to_owned(), source })?;
        let depth: u32 = depth.parse().map_err(|_| bad())?;
        let spec =
            ModelSpec::new(arch, depth).map_err(|source| CalibrateError::Model { item: item.to_owned(), source })?;
        let target = Target { spec, batch_size, eval_batch_size };
        if !out.contains(&target) {
            out.push(target);
        }
    }
    if out.is_empty() {
        return Err(CalibrateError::Item { item: what.to_owned() });
    }
    Ok(out)
}

/// Measures every target in turn, `on_entry` seeing each entry as it is measured, and returns
/// the calibration (not yet written).
pub fn calibrate(
    targets: &[Target],
    settings: Settings,
    on_entry: &mut dyn FnMut(&CalibrationEntry),
) -> Result<Calibration, CalibrateError> {
    if settings.steps == 0 || settings.eval_batches == 0 {
        return Err(CalibrateError::Settings("--steps and --eval-batches must be at least 1"));
    }
    if targets.iter().any(|t| t.batch_size < 2 || t.eval_batch_size < 1) {
        return Err(CalibrateError::Settings("batch sizes must be at least 2 (evaluation: 1)"));
    }
    crate::context::set_precision(settings.precision);
    if settings.device.is_cuda() {
        // As in training without --deterministic.
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut entries = Vec::with_capacity(targets.len());
    for t in targets {
        let model = format!("{}-{} batch {}", t.spec.arch, t.spec.depth, t.batch_size);
        // tch panics where libtorch fails in its non-`f_` calls (the nets' forward among them).
        let entry = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| measure(*t, settings)))
            .unwrap_or_else(|p| {
                let text =
                    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()));
                Err(tch::TchError::Torch(text.unwrap_or_else(|| "unknown panic".to_owned())))
            })
            .map_err(|e| CalibrateError::Measurement { model, message: e.to_string() })?;
        on_entry(&entry);
        entries.push(entry);
    }
    let (device, device_name, libtorch_version) = describe_device(settings.device);
    Ok(Calibration {
        format: CALIBRATION_FORMAT,
        device,
        device_name,
        libtorch_version,
        created_unix_s: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        grid_exec: settings.speed.grid_exec_label(),
        memory_format: settings.speed.memory_format.name().to_owned(),
        tf32: settings.device.is_cuda() && settings.precision.conv == ConvPrecision::Tf32,
        threads: tch::get_num_threads(),
        warmup_steps: settings.warmup,
        steps: settings.steps,
        eval_batches: settings.eval_batches,
        entries,
    })
}

/// Measures, then writes the calibration to `out` (atomically).
pub fn calibrate_to(
    targets: &[Target],
    settings: Settings,
    out: &Path,
    on_entry: &mut dyn FnMut(&CalibrationEntry),
) -> Result<Calibration, CalibrateError> {
    let cal = calibrate(targets, settings, on_entry)?;
    cal.save(out)?;
    Ok(cal)
}

/// The device's label (`cpu`, `cuda:N`), its name (the GPU's, or the CPU and its threads) and
/// the libtorch version, as a result's environment names them.
fn describe_device(device: Device) -> (String, String, String) {
    let report = crate::devices::DeviceReport::probe();
    let (label, name) = match device {
        Device::Cuda(i) => (
            format!("cuda:{i}"),
            report.cuda_devices.get(i).map_or_else(|| "unknown GPU".to_owned(), |d| d.name.clone()),
        ),
        _ => match tch::get_num_threads() {
            1 => ("cpu".to_owned(), "cpu, 1 thread".to_owned()),
            n => ("cpu".to_owned(), format!("cpu, {n} threads")),
        },
    };
    (label, name, report.libtorch_version)
}

/// Waits for the device's queued work, so that a timer sees it done.
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// One target's training and evaluation rates.
fn measure(t: Target, s: Settings) -> Result<CalibrationEntry, tch::TchError> {
    let device = s.device;
    let recipe = TrainConfig::paper(t.spec.arch, t.spec.depth, 0);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let mut net = Net::new(&vs.root(), t.spec);
    net.set_grid_exec(s.speed.grid_exec(t.spec));
    net.set_memory_format(&vs, s.speed.memory_format);
    let params = vs.variables().into_iter().filter(|(_, v)| v.requires_grad()).collect();
    let mut opt = Sgd::new(params, recipe.momentum, recipe.nesterov, recipe.weight_decay);
    let norm = Normalizer::new(device);
    let aug = Augmenter::new(Augment { crop_padding: recipe.crop_padding, flip: recipe.flip }, device);

    // A pool of random images that the steps draw their batches from, as an epoch does.
    let pool = random_split(t.batch_size * 4, device)?;
    let perm = Tensor::f_randperm(pool.len(), (Kind::Int64, device))?;
    let mut loss_sum = Tensor::f_zeros([], (Kind::Double, device))?;
    let mut correct = Tensor::f_zeros([], (Kind::Int64, device))?;
    let mut step = |k: u32| -> Result<(), tch::TchError> {
        let start = i64::from(k % 4) * t.batch_size;
        let idx = perm.f_narrow(0, start, t.batch_size)?;
        let x = aug.batch(&pool.images, &idx, &norm);
        let y = pool.labels.f_index_select(0, &idx)?;
        let logits = net.forward_t(&x, true);
        let loss = logits.cross_entropy_for_logits(&y);
        opt.f_backward(&loss)?;
        opt.step(recipe.lr);
        loss_sum += loss.detach().f_to_kind(Kind::Double)? * t.batch_size as f64;
        correct += logits.f_argmax(-1, false)?.f_eq_tensor(&y)?.f_sum(Kind::Int64)?;
        Ok(())
    };
    for k in 0..s.warmup {
        step(k)?;
    }
    sync(device);
    let started = Instant::now();
    for k in 0..s.steps {
        step(s.warmup + k)?;
    }
    // Reading the sums waits for the device, as the end of an epoch does.
    let _ = (loss_sum.f_double_value(&[])?, correct.f_int64_value(&[])?);
    sync(device);
    let train_seconds = started.elapsed().as_secs_f64();

    let eval_images = t.eval_batch_size * i64::from(s.eval_batches);
    let test = random_split(eval_images, device)?;
    if s.warmup > 0 {
        crate::train::evaluate(&net, &test.take(t.eval_batch_size), t.eval_batch_size, &norm);
    }
    sync(device);
    let started = Instant::now();
    crate::train::evaluate(&net, &test, t.eval_batch_size, &norm);
    sync(device);
    let eval_seconds = started.elapsed().as_secs_f64();
    Ok(CalibrationEntry {
        arch: t.spec.arch,
        depth: t.spec.depth,
        batch_size: t.batch_size,
        eval_batch_size: t.eval_batch_size,
        train_images_per_s: (t.batch_size * i64::from(s.steps)) as f64 / train_seconds,
        eval_images_per_s: eval_images as f64 / eval_seconds,
    })
}

/// `n` random u8 images with random labels on `device`.
fn random_split(n: i64, device: Device) -> Result<Split, tch::TchError> {
    Ok(Split {
        images: Tensor::f_randint(256, [n, 3, 32, 32], (Kind::Uint8, device))?,
        labels: Tensor::f_randint(10, [n], (Kind::Int64, device))?,
    })
}
