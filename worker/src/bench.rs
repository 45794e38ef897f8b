//! `worker bench`: training-step throughput (forward, backward, SGD update) on one pre-made
//! batch after warm-up: the bare libtorch loop an epoch of `worker train` is measured against.
//! `--compare` times resnet, grid node by node and grid as a wavefront at one depth, interleaved
//! step by step in one process, so that the ratios see the same machine state.

use std::time::Instant;

use serde::Serialize;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::layout::MemoryFormat;
use crate::memory::PeakKind;
use crate::models::{Arch, GridExec, ModelError, ModelSpec, Net};
use crate::optim::Sgd;
use crate::recipe::{ConvPrecision, Precision};
use crate::speed::Speed;

/// The measurement.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Architecture.
    pub arch: String,
    /// Depth.
    pub depth: u32,
    /// How grid stages ran (no effect on vgg and resnet).
    pub grid_exec: GridExec,
    /// Layout of images, activations and convolution weights.
    pub memory_format: MemoryFormat,
    /// cuDNN convolutions allowed TF32 (CUDA and `--conv-precision tf32`).
    pub tf32: bool,
    /// Images per step.
    pub batch: i64,
    /// Timed steps.
    pub steps: u32,
    /// Untimed steps before.
    pub warmup: u32,
    /// Device.
    pub device: String,
    /// CPU threads libtorch used.
    pub threads: i32,
    /// Seconds for the timed steps.
    pub seconds: f64,
    /// batch x steps / seconds.
    pub images_per_s: f64,
    /// Peak memory of the run in bytes (see `peak_memory_kind`); None when it cannot be read.
    pub peak_memory_bytes: Option<u64>,
    /// What the peak counts: `cuda-allocated` (the caching allocator's peak of tensor bytes,
    /// PyTorch's `max_memory_allocated`) or `cpu-max-rss` (the process's peak resident set).
    pub peak_memory_kind: Option<PeakKind>,
}

/// One network with its optimiser and a fixed batch, ready to take training steps.
struct Runner {
    /// The variables.
    vs: nn::VarStore,
    net: Net,
    opt: Sgd,
    x: Tensor,
    y: Tensor,
}

impl Runner {
    /// `spec` run as `exec`, seeded so that every runner of a spec starts alike.
    fn new(spec: ModelSpec, exec: GridExec, format: MemoryFormat, batch: i64, device: Device) -> Self {
        if device.is_cuda() {
            // As in training without --deterministic.
            tch::Cuda::cudnn_set_benchmark(true);
        }
        tch::manual_seed(0);
        let vs = nn::VarStore::new(device);
        let mut net = Net::new(&vs.root(), spec);
        net.set_grid_exec(exec);
        net.set_memory_format(&vs, format);
        let params = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        let opt = Sgd::new(params, 0.9, true, 4e-4);
        // Contiguous like a batch from the data pipeline: the net lays it out as it runs.
        let x = Tensor::randn([batch, 3, 32, 32], (Kind::Float, device));
        let y = Tensor::randint(10, [batch], (Kind::Int64, device));
        Runner { vs, net, opt, x, y }
    }

    /// The same with the optimizer updating parameter by parameter.
    fn unpacked(mut self) -> Self {
        self.opt = self.opt.unpacked();
        self
    }

    /// One forward, backward and SGD update.
    fn step(&mut self) {
        let loss = self.net.forward_t(&self.x, true).cross_entropy_for_logits(&self.y);
        self.opt.backward(&loss);
        self.opt.step(0.01);
    }
}

/// Waits for the device's queued work.
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Times `steps` training steps of `spec` at `batch` on `device` after `warmup` steps, with
/// the speed switches `speed`.
pub fn run(
    spec: ModelSpec,
    batch: i64,
    steps: u32,
    warmup: u32,
    device: Device,
    speed: Speed,
    precision: Precision,
) -> BenchResult {
    crate::context::set_precision(precision);
    let (exec, format) = (speed.grid_exec(spec), speed.memory_format);
    crate::memory::reset_peak(device);
    let mut r = Runner::new(spec, exec, format, batch, device);
    for _ in 0..warmup {
        r.step();
    }
    sync(device);
    let t = Instant::now();
    for _ in 0..steps {
        r.step();
    }
    sync(device);
    let seconds = t.elapsed().as_secs_f64();
    let peak = crate::memory::peak(device);
    BenchResult {
        arch: spec.arch.name().to_owned(),
        depth: spec.depth,
        grid_exec: exec,
        memory_format: format,
        tf32: device.is_cuda() && precision.conv == ConvPrecision::Tf32,
        batch,
        steps,
        warmup,
        device: format!("{device:?}").to_lowercase(),
        threads: tch::get_num_threads(),
        seconds,
        images_per_s: batch as f64 * f64::from(steps) / seconds,
        peak_memory_bytes: peak.map(|p| p.0),
        peak_memory_kind: peak.map(|p| p.1),
    }
}

/// One network of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Variant {
    /// `resnet` or `grid`.
    pub arch: String,
    /// How its grid stages ran (`sequential` for resnet).
    pub grid_exec: GridExec,
    /// Its memory layout.
    pub memory_format: MemoryFormat,
    /// batch / median step time: robust to other processes' bursts on a shared machine.
    pub images_per_s: f64,
    /// Every timed step's seconds.
    pub step_seconds: Vec<f64>,
}

/// The three networks in one memory layout and their ratios.
#[derive(Clone, Debug, Serialize)]
pub struct FormatSummary {
    /// The layout.
    pub memory_format: MemoryFormat,
    /// resnet, images per second.
    pub resnet_images_per_s: f64,
    /// grid run node by node, images per second.
    pub grid_sequential_images_per_s: f64,
    /// grid run as a wavefront, images per second.
    pub grid_wavefront_images_per_s: f64,
    /// grid-wavefront / grid-sequential.
    pub wavefront_over_sequential: f64,
    /// grid-sequential / resnet.
    pub grid_sequential_over_resnet: f64,
    /// grid-wavefront / resnet.
    pub grid_wavefront_over_resnet: f64,
}

/// `worker bench --compare`: the three ways to train one depth, in one or both memory layouts,
/// side by side.
#[derive(Clone, Debug, Serialize)]
pub struct CompareResult {
    /// Depth of all networks.
    pub depth: u32,
    /// Images per step.
    pub batch: i64,
    /// Timed steps of each network.
    pub steps: u32,
    /// Untimed steps of each network before.
    pub warmup: u32,
    /// Device.
    pub device: String,
    /// CPU threads libtorch used.
    pub threads: i32,
    /// cuDNN convolutions allowed TF32 (CUDA and `--conv-precision tf32`).
    pub tf32: bool,
    /// Every network, in the order they stepped.
    pub variants: Vec<Variant>,
    /// Per layout: the three networks and their ratios.
    pub summaries: Vec<FormatSummary>,
    /// channels-last / contiguous images/s of resnet, grid-sequential and grid-wavefront, when
    /// both layouts ran.
    pub channels_last_over_contiguous: Option<[f64; 3]>,
}

/// Times resnet, grid-sequential and grid-wavefront at `depth` in each of `formats`,
/// interleaved step by step (A B C D ... A B C D ...) after `warmup` steps of each, at
/// `precision` on CUDA; each network's figure is from its median step.
pub fn compare(
    depth: u32,
    batch: i64,
    steps: u32,
    warmup: u32,
    device: Device,
    formats: &[MemoryFormat],
    precision: Precision,
) -> Result<CompareResult, ModelError> {
    crate::context::set_precision(precision);
    let resnet = ModelSpec::new(Arch::Resnet, depth)?;
    let grid = ModelSpec::new(Arch::Grid, depth)?;
    let kinds = [(resnet, GridExec::Sequential), (grid, GridExec::Sequential), (grid, GridExec::Wavefront)];
    let mut runners: Vec<Runner> =
        formats.iter().flat_map(|&f| kinds.map(|(spec, exec)| Runner::new(spec, exec, f, batch, device))).collect();
    for _ in 0..warmup {
        for r in &mut runners {
            r.step();
        }
    }
    let mut seconds = vec![Vec::new(); runners.len()];
    for _ in 0..steps {
        for (r, s) in runners.iter_mut().zip(&mut seconds) {
            sync(device);
            let t = Instant::now();
            r.step();
            sync(device);
            s.push(t.elapsed().as_secs_f64());
        }
    }
    let variants: Vec<Variant> = runners
        .iter()
        .zip(seconds)
        .map(|(r, s)| Variant {
            arch: r.net.spec.arch.name().to_owned(),
            grid_exec: r.net.grid_exec,
            memory_format: r.net.memory_format,
            images_per_s: batch as f64 / median(&s),
            step_seconds: s,
        })
        .collect();
    let summaries: Vec<FormatSummary> = variants
        .chunks(3)
        .map(|v| FormatSummary {
            memory_format: v[0].memory_format,
            resnet_images_per_s: v[0].images_per_s,
            grid_sequential_images_per_s: v[1].images_per_s,
            grid_wavefront_images_per_s: v[2].images_per_s,
            wavefront_over_sequential: v[2].images_per_s / v[1].images_per_s,
            grid_sequential_over_resnet: v[1].images_per_s / v[0].images_per_s,
            grid_wavefront_over_resnet: v[2].images_per_s / v[0].images_per_s,
        })
        .collect();
    let of = |f: MemoryFormat| summaries.iter().find(|s| s.memory_format == f);
    let channels_last_over_contiguous = match (of(MemoryFormat::ChannelsLast), of(MemoryFormat::Contiguous)) {
        (Some(cl), Some(c)) => Some([
            cl.resnet_images_per_s / c.resnet_images_per_s,
            cl.grid_sequential_images_per_s / c.grid_sequential_images_per_s,
            cl.grid_wavefront_images_per_s / c.grid_wavefront_images_per_s,
        ]),
        _ => None,
    };
    Ok(CompareResult {
        depth,
        batch,
        steps,
        warmup,
        device: format!("{device:?}").to_lowercase(),
        threads: tch::get_num_threads(),
        tf32: device.is_cuda() && precision.conv == ConvPrecision::Tf32,
        variants,
        summaries,
        channels_last_over_contiguous,
    })
}

/// `worker bench --optimizer`: the SGD update alone, packed against per-parameter.
#[derive(Clone, Debug, Serialize)]
pub struct OptimizerResult {
    /// Architecture.
    pub arch: String,
    /// Depth.
    pub depth: u32,
    /// Trainable parameter tensors.
    pub tensors: usize,
    /// Their elements.
    pub elements: i64,
    /// Device.
    pub device: String,
    /// Timed updates of each.
    pub steps: u32,
    /// Median seconds of a step, packed into flat tensors.
    pub packed_seconds: f64,
    /// Median seconds of a step, parameter by parameter.
    pub per_parameter_seconds: f64,
    /// per_parameter_seconds / packed_seconds.
    pub speedup: f64,
}

/// Times the optimizer's update alone (`step`; handing the gradients over is part of
/// `backward`) on `spec`'s parameters (gradients from one backward of a batch of 2), packed and
/// per-parameter, interleaved, `steps` times each after one untimed update.
pub fn optimizer(spec: ModelSpec, steps: u32, device: Device) -> OptimizerResult {
    let runner = || Runner::new(spec, GridExec::Sequential, MemoryFormat::Contiguous, 2, device);
    let mut runners = [runner(), runner().unpacked()];
    let vars = runners[0].vs.trainable_variables();
    let mut seconds = [Vec::new(), Vec::new()];
    for r in &mut runners {
        r.step();
    }
    for _ in 0..steps {
        for (r, s) in runners.iter_mut().zip(&mut seconds) {
            sync(device);
            let t = Instant::now();
            r.opt.step(0.01);
            sync(device);
            s.push(t.elapsed().as_secs_f64());
        }
    }
    let [packed, per] = seconds.map(|s| median(&s));
    OptimizerResult {
        arch: spec.arch.name().to_owned(),
        depth: spec.depth,
        tensors: vars.len(),
        elements: vars.iter().map(|v| v.numel() as i64).sum(),
        device: format!("{device:?}").to_lowercase(),
        steps,
        packed_seconds: packed,
        per_parameter_seconds: per,
        speedup: per / packed,
    }
}

/// The median of a non-empty sample (the mean of the middle two for an even count).
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}
