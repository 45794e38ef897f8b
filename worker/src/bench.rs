//! `worker bench`: training-step throughput (forward, backward, SGD update) on one pre-made
//! batch after warm-up: the bare libtorch loop an epoch of `worker train` is measured against.
//! `--compare` times resnet, grid node by node and grid as a wavefront at one depth, interleaved
//! step by step in one process, so that the ratios see the same machine state.

use std::time::Instant;

use serde::Serialize;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::models::{Arch, GridExec, ModelError, ModelSpec, Net};
use crate::optim::Sgd;

/// The measurement.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Architecture.
    pub arch: String,
    /// Depth.
    pub depth: u32,
    /// How grid stages ran (no effect on vgg and resnet).
    pub grid_exec: GridExec,
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
}

/// One network with its optimiser and a fixed batch, ready to take training steps.
struct Runner {
    /// Keeps the variables alive.
    _vs: nn::VarStore,
    net: Net,
    opt: Sgd,
    x: Tensor,
    y: Tensor,
}

impl Runner {
    /// `spec` run as `exec`, seeded so that every runner of a spec starts alike.
    fn new(spec: ModelSpec, exec: GridExec, batch: i64, device: Device) -> Self {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(device);
        let mut net = Net::new(&vs.root(), spec);
        net.set_grid_exec(exec);
        let params = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        let opt = Sgd::new(params, 0.9, true, 4e-4);
        let x = Tensor::randn([batch, 3, 32, 32], (Kind::Float, device));
        let y = Tensor::randint(10, [batch], (Kind::Int64, device));
        Runner { _vs: vs, net, opt, x, y }
    }

    /// One forward, backward and SGD update.
    fn step(&mut self) {
        let loss = self.net.forward_t(&self.x, true).cross_entropy_for_logits(&self.y);
        self.opt.zero_grad();
        loss.backward();
        self.opt.step(0.01);
    }
}

/// Waits for the device's queued work.
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Times `steps` training steps of `spec` at `batch` on `device` after `warmup` steps, grid
/// stages run as `exec`.
pub fn run(spec: ModelSpec, batch: i64, steps: u32, warmup: u32, device: Device, exec: GridExec) -> BenchResult {
    let mut r = Runner::new(spec, exec, batch, device);
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
    BenchResult {
        arch: spec.arch.name().to_owned(),
        depth: spec.depth,
        grid_exec: exec,
        batch,
        steps,
        warmup,
        device: format!("{device:?}").to_lowercase(),
        threads: tch::get_num_threads(),
        seconds,
        images_per_s: batch as f64 * f64::from(steps) / seconds,
    }
}

/// `worker bench --compare`: the three ways to train one depth, side by side.
#[derive(Clone, Debug, Serialize)]
pub struct CompareResult {
    /// Depth of all three networks.
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
    /// resnet, images per second (batch / median step time: robust to other processes'
    /// bursts on a shared machine).
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
    /// Every timed step's seconds: resnet, grid-sequential, grid-wavefront.
    pub step_seconds: [Vec<f64>; 3],
}

/// Times resnet, grid-sequential and grid-wavefront at `depth`, interleaved step by step (A B C
/// A B C ...) after `warmup` steps of each; each network's figure is from its median step.
pub fn compare(depth: u32, batch: i64, steps: u32, warmup: u32, device: Device) -> Result<CompareResult, ModelError> {
    let resnet = ModelSpec::new(Arch::Resnet, depth)?;
    let grid = ModelSpec::new(Arch::Grid, depth)?;
    let mut runners = [
        Runner::new(resnet, GridExec::Sequential, batch, device),
        Runner::new(grid, GridExec::Sequential, batch, device),
        Runner::new(grid, GridExec::Wavefront, batch, device),
    ];
    for _ in 0..warmup {
        for r in &mut runners {
            r.step();
        }
    }
    let mut seconds: [Vec<f64>; 3] = Default::default();
    for _ in 0..steps {
        for (r, s) in runners.iter_mut().zip(&mut seconds) {
            sync(device);
            let t = Instant::now();
            r.step();
            sync(device);
            s.push(t.elapsed().as_secs_f64());
        }
    }
    let ips = [0, 1, 2].map(|k| batch as f64 / median(&seconds[k]));
    Ok(CompareResult {
        depth,
        batch,
        steps,
        warmup,
        device: format!("{device:?}").to_lowercase(),
        threads: tch::get_num_threads(),
        resnet_images_per_s: ips[0],
        grid_sequential_images_per_s: ips[1],
        grid_wavefront_images_per_s: ips[2],
        wavefront_over_sequential: ips[2] / ips[1],
        grid_sequential_over_resnet: ips[1] / ips[0],
        grid_wavefront_over_resnet: ips[2] / ips[0],
        step_seconds: seconds,
    })
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
