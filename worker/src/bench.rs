//! `worker bench`: training-step throughput (forward, backward, SGD update) on one pre-made
//! batch after warm-up: the bare libtorch loop an epoch of `worker train` is measured against.

use std::time::Instant;

use serde::Serialize;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::models::{ModelSpec, Net};
use crate::optim::Sgd;

/// The measurement.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Architecture.
    pub arch: String,
    /// Depth.
    pub depth: u32,
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

/// Times `steps` training steps of `spec` at `batch` on `device` after `warmup` steps.
pub fn run(spec: ModelSpec, batch: i64, steps: u32, warmup: u32, device: Device) -> BenchResult {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let net = Net::new(&vs.root(), spec);
    let params = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    let mut opt = Sgd::new(params, 0.9, true, 4e-4);
    let x = Tensor::randn([batch, 3, 32, 32], (Kind::Float, device));
    let y = Tensor::randint(10, [batch], (Kind::Int64, device));
    let mut step = || {
        let loss = net.forward_t(&x, true).cross_entropy_for_logits(&y);
        opt.zero_grad();
        loss.backward();
        opt.step(0.01);
    };
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    for _ in 0..warmup {
        step();
    }
    sync();
    let t = Instant::now();
    for _ in 0..steps {
        step();
    }
    sync();
    let seconds = t.elapsed().as_secs_f64();
    BenchResult {
        arch: spec.arch.name().to_owned(),
        depth: spec.depth,
        batch,
        steps,
        warmup,
        device: format!("{device:?}").to_lowercase(),
        threads: tch::get_num_threads(),
        seconds,
        images_per_s: batch as f64 * f64::from(steps) / seconds,
    }
}
