//! The CUDA paths. Every test here is ignored by default, so that a machine without a GPU shows
//! them as ignored rather than passed; on a GPU machine `make test-gpu` (or `cargo test -p
//! gridsweep-worker --test cuda -- --ignored`) runs them, and there each fails without a device: training with both grid executions, the speed switches recorded, the packed
//! optimizer equal to the per-parameter one, a checkpoint written on the GPU resumed on the CPU,
//! `worker bench --compare` on the GPU, the caching allocator's peak in `worker bench`, and a
//! real out-of-memory error classified, the cache emptied and the device training on. (The fp64 equivalence of the wavefront and of
//! channels-last runs on the GPU too, in tests/equivalence.rs.)

mod common;

use std::process::Command;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};
use worker::data;
use worker::layout::MemoryFormat;
use worker::models::{Arch, GridExec, ModelSpec, Net};
use worker::optim::Sgd;
use worker::train::{self, Status};

use common::{options, small, tmp};

/// libtorch's generator is process-wide: these tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Why the tests are ignored unless asked for.
const NEEDS_GPU: &str = "needs a CUDA device: run `make test-gpu` on a GPU machine";

/// The worker binary: `GRIDSWEEP_WORKER_BIN` where this test binary was carried to a GPU
/// machine without the build tree (`scripts/gpu-check.sh` sets it), else the one cargo built.
fn worker_bin() -> std::path::PathBuf {
    std::env::var_os("GRIDSWEEP_WORKER_BIN").map_or_else(|| env!("CARGO_BIN_EXE_worker").into(), Into::into)
}

/// The GPU (and this test's turn); a test asked for without one fails, naming why.
fn gpu(test: &str) -> (std::sync::MutexGuard<'static, ()>, Device) {
    assert!(tch::Cuda::is_available(), "{test}: no CUDA device visible ({NEEDS_GPU})");
    (SERIAL.lock().unwrap_or_else(|e| e.into_inner()), Device::Cuda(0))
}

#[test]
#[ignore = "needs a CUDA device: run `make test-gpu` on a GPU machine"]
fn grid_trains_on_the_gpu_both_ways_and_records_how() {
    let (_serial, device) = gpu("grid_trains_on_the_gpu_both_ways_and_records_how");
    let dir = data::synth::write(&tmp("train"), 256, 128, 3).unwrap();
    let data = data::load(&dir, device).unwrap();
    let cfg = small(Arch::Grid, 26, 2);
    let mut losses = Vec::new();
    for exec in [GridExec::Sequential, GridExec::Wavefront] {
        for format in [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast] {
            let mut o = options(device, None, false, None);
            o.speed.grid_exec = Some(exec);
            o.speed.memory_format = format;
            let r = train::train(&cfg, &data, &o, &mut |_| {}).unwrap();
            assert_eq!(r.status, Status::Completed, "{exec} {format}");
            let env = &r.environment;
            assert_eq!((env.device.as_str(), env.grid_exec, env.memory_format), ("cuda:0", Some(exec), Some(format)));
            // PyTorch's default precision: cuDNN convolutions may use TF32.
            assert!(env.cudnn_benchmark && env.tf32 == Some(true), "{env:?}");
            assert!(!env.device_name.is_empty() && env.cuda_version.is_some(), "{env:?}");
            losses.push(r.epochs[0].train_loss.unwrap());
        }
    }
    // Same initialisation and data order; cuDNN's algorithms differ only in rounding.
    for l in &losses[1..] {
        assert!((l - losses[0]).abs() <= 1e-2 * losses[0].abs(), "first-epoch train losses {losses:?}");
    }
}

#[test]
#[ignore = "needs a CUDA device: run `make test-gpu` on a GPU machine"]
fn a_checkpoint_written_on_the_gpu_resumes_on_the_cpu() {
    let (_serial, device) = gpu("a_checkpoint_written_on_the_gpu_resumes_on_the_cpu");
    let dir = data::synth::write(&tmp("resume-data"), 128, 64, 3).unwrap();
    let ck = tmp("resume-ck");
    let cfg = small(Arch::Resnet, 8, 2);
    let on_gpu = data::load(&dir, device).unwrap();
    let first = train::train(&cfg, &on_gpu, &options(device, Some(&ck), false, Some(1)), &mut |_| {}).unwrap();
    assert_eq!(first.status, Status::Stopped);
    let on_cpu = data::load(&dir, Device::Cpu).unwrap();
    let rest = train::train(&cfg, &on_cpu, &options(Device::Cpu, Some(&ck), true, None), &mut |_| {}).unwrap();
    assert_eq!((rest.status, rest.resumed_from_epoch), (Status::Completed, Some(1)));
    assert_eq!(rest.epochs.len(), 2);
}

#[test]
#[ignore = "needs a CUDA device: run `make test-gpu` on a GPU machine"]
fn the_packed_update_equals_the_per_parameter_one_on_the_gpu() {
    let (_serial, device) = gpu("the_packed_update_equals_the_per_parameter_one_on_the_gpu");
    let spec = ModelSpec::new(Arch::Resnet, 8).unwrap();
    let make = || {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(device);
        let net = Net::new(&vs.root(), spec);
        let params = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        (vs, net, params)
    };
    let (vs_a, net_a, pa) = make();
    let (vs_b, net_b, pb) = make();
    let mut a = Sgd::new(pa, 0.9, true, 4e-4);
    let mut b = Sgd::new(pb, 0.9, true, 4e-4).unpacked();
    tch::manual_seed(2);
    for _ in 0..3 {
        let x = Tensor::randn([8, 3, 32, 32], (Kind::Float, device));
        let y = Tensor::randint(10, [8], (Kind::Int64, device));
        for (opt, net) in [(&mut a, &net_a), (&mut b, &net_b)] {
            opt.zero_grad();
            net.forward_t(&x, true).cross_entropy_for_logits(&y).backward();
            opt.step(0.1);
        }
    }
    assert!(a.is_packed() && !b.is_packed());
    let (va, vb) = (vs_a.variables(), vs_b.variables());
    for (name, t) in &va {
        // The forward passes may differ in rounding (cuDNN picks algorithms per call), so close,
        // not bitwise.
        let d = (t - &vb[name]).abs().max().double_value(&[]);
        assert!(d <= 1e-4 * (1.0 + vb[name].abs().max().double_value(&[])), "{name}: {d:e}");
    }
}

#[test]
#[ignore = "needs a CUDA device: run `make test-gpu` on a GPU machine"]
fn bench_compare_runs_on_the_gpu() {
    let (_serial, _) = gpu("bench_compare_runs_on_the_gpu");
    let out = Command::new(worker_bin())
        .args([
            "bench",
            "--compare",
            "--depth",
            "26",
            "--batch",
            "8",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--device",
            "cuda",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["device"], "cuda(0)");
    let variants = v["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 6);
    assert!(variants.iter().all(|x| x["images_per_s"].as_f64().is_some_and(|s| s > 0.0)), "{v}");
}

/// `worker bench` on the GPU reports the caching allocator's peak (through the C++ shim), and a
/// larger batch needs more.
#[test]
#[ignore = "needs a CUDA device: run `make test-gpu` on a GPU machine"]
fn bench_reports_the_allocators_peak() {
    let (_serial, device) = gpu("bench_reports_the_allocators_peak");
    let spec = ModelSpec::new(Arch::Resnet, 26).unwrap();
    let speed = worker::speed::Speed::default_for(device);
    let precision = worker::recipe::Precision::default();
    let small = worker::bench::run(spec, 32, 2, 1, device, speed, precision);
    let large = worker::bench::run(spec, 256, 2, 1, device, speed, precision);
    assert_eq!(small.peak_memory_kind, Some(worker::memory::PeakKind::CudaAllocated), "{small:?}");
    let (s, l) = (small.peak_memory_bytes.unwrap(), large.peak_memory_bytes.unwrap());
    assert!(s > 1 << 20 && l > s, "peaks {s} and {l} bytes");
}

/// A real CUDA out-of-memory error, returned and panicked, is classified out of memory; the
/// caching allocator's cache is then emptied through the shim (the reserve goes back to the
/// driver), and a job trains on the same device in the same process.
#[test]
#[ignore = "needs a CUDA device: run `make test-gpu` on a GPU machine"]
fn a_real_out_of_memory_error_is_classified_and_the_device_trains_on() {
    use worker::train::{FaultKind, TorchFault};
    let (_serial, device) = gpu("a_real_out_of_memory_error_is_classified_and_the_device_trains_on");
    // 2^40 floats (4 TiB): more than any GPU has.
    let huge = [1i64 << 40];
    let returned = Tensor::f_empty(huge, (Kind::Float, device)).map(|_| ()).unwrap_err();
    let fault = TorchFault::from(returned);
    assert_eq!(fault.kind, FaultKind::OutOfMemory, "{}", fault.message);
    let panic = std::panic::catch_unwind(|| Tensor::empty(huge, (Kind::Float, device))).unwrap_err();
    assert_eq!(TorchFault::from_panic(panic.as_ref()).kind, FaultKind::OutOfMemory);
    // Memory cached by freed tensors goes back to the driver.
    drop(Tensor::ones([64 << 20], (Kind::Float, device)));
    assert!(worker::memory::empty_cache(device), "emptyCache through the shim");
    let dir = data::synth::write(&tmp("oom-data"), 128, 64, 3).unwrap();
    let on_gpu = data::load(&dir, device).unwrap();
    let r =
        train::train(&small(Arch::Resnet, 8, 1), &on_gpu, &options(device, None, false, None), &mut |_| {}).unwrap();
    assert_eq!(r.status, Status::Completed);
}
