//! The ways to run a network compute the same thing: wavefront execution of the grid equals
//! node-by-node execution (R = 2 and R = 4, depths 26 and 98), and channels-last equals the
//! contiguous layout (every architecture, both grid executions): outputs, every parameter's
//! gradient and the batch norms' running statistics, in training and evaluation mode, compared
//! in fp64, on the CPU and (when one is visible) the GPU.

mod common;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};
use worker::layout::{MemoryFormat, Relayout, is_channels_last};
use worker::models::{Arch, GridExec, ModelSpec, Net};

use common::devices;

/// Relative tolerance in fp64 (summation order is the only difference).
const RTOL: f64 = 1e-9;

/// max |a − b| / max(max |b|, 1e-12), as f64.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    (a - b).abs().max().double_value(&[]) / scale
}

/// How the second network of a pair runs: (grid execution, layout); the first runs node by
/// node, contiguous.
type Way = (GridExec, MemoryFormat);

/// The grid as a wavefront.
const WAVEFRONT: Way = (GridExec::Wavefront, MemoryFormat::Contiguous);

/// Two fp64 copies of the same network on `device`, the second run `way`.
fn pair(arch: Arch, depth: u32, way: Way, device: Device) -> (nn::VarStore, Net, nn::VarStore, Net) {
    let spec = ModelSpec::new(arch, depth).unwrap();
    tch::manual_seed(7);
    let mut vs_a = nn::VarStore::new(device);
    let net_a = Net::new(&vs_a.root(), spec);
    let mut vs_b = nn::VarStore::new(device);
    let mut net_b = Net::new(&vs_b.root(), spec);
    vs_b.copy(&vs_a).unwrap();
    vs_a.double();
    vs_b.double();
    net_b.set_grid_exec(way.0);
    net_b.set_memory_format(&vs_b, way.1);
    (vs_a, net_a, vs_b, net_b)
}

/// `check_on` every device.
fn check(arch: Arch, depth: u32, way: Way, train: bool) {
    for device in devices() {
        check_on(arch, depth, way, train, device);
    }
}

/// One forward and backward of both nets on the same input; checks outputs, gradients and
/// (all variables, running statistics included) the stores after the step.
fn check_on(arch: Arch, depth: u32, way: Way, train: bool, device: Device) {
    let (vs_a, net_a, vs_b, net_b) = pair(arch, depth, way, device);
    // 3x3 kernels (1x1 ones are stored the same way in both layouts).
    let convs = vs_b.variables().into_values().filter(|v| v.dim() == 4 && v.size()[2] > 1).collect::<Vec<_>>();
    assert!(!convs.is_empty());
    let want_cl = way.1 == MemoryFormat::ChannelsLast;
    assert!(convs.iter().all(|w| is_channels_last(w) == want_cl), "weights laid out as {:?}", way.1);
    tch::manual_seed(11);
    let x = Tensor::randn([3, 3, 32, 32], (Kind::Double, device));
    let probe = Tensor::randn([3, 10], (Kind::Double, device));
    // Run twice so that evaluation mode sees running statistics updated by a training step too.
    for step in 0..2 {
        let t = train || step == 0;
        let out_a = net_a.forward_t(&x, t);
        let out_b = net_b.forward_t(&x, t);
        let d = rel_diff(&out_b, &out_a);
        assert!(d < RTOL, "{arch:?}-{depth} {way:?} {device:?} train {t}: outputs differ by {d:e}");
        for vs in [&vs_a, &vs_b] {
            for mut v in vs.trainable_variables() {
                v.zero_grad();
            }
        }
        (&out_a * &probe).sum(Kind::Double).backward();
        (&out_b * &probe).sum(Kind::Double).backward();
        let vars_a = vs_a.variables();
        let vars_b = vs_b.variables();
        assert_eq!(vars_a.len(), vars_b.len());
        for (name, a) in &vars_a {
            let b = &vars_b[name];
            if a.requires_grad() {
                let d = rel_diff(&b.grad(), &a.grad());
                assert!(d < RTOL, "{arch:?}-{depth} {way:?} {device:?} train {t}: gradient of {name} differs by {d:e}");
            } else {
                let d = rel_diff(b, a);
                assert!(
                    d < RTOL,
                    "{arch:?}-{depth} {way:?} {device:?} train {t}: {name} differs by {d:e} after the step"
                );
            }
        }
    }
}

#[test]
fn wavefront_equals_node_by_node_r2_train() {
    check(Arch::Grid, 26, WAVEFRONT, true);
}

#[test]
fn wavefront_equals_node_by_node_r2_eval() {
    check(Arch::Grid, 26, WAVEFRONT, false);
}

#[test]
fn wavefront_equals_node_by_node_r4_train() {
    check(Arch::Grid, 98, WAVEFRONT, true);
}

#[test]
fn wavefront_equals_node_by_node_r4_eval() {
    check(Arch::Grid, 98, WAVEFRONT, false);
}

#[test]
fn wavefront_updates_running_statistics_of_every_node() {
    let (vs_a, net_a, vs_b, net_b) = pair(Arch::Grid, 98, WAVEFRONT, Device::Cpu);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Double, Device::Cpu));
    let _ = tch::no_grad(|| (net_a.forward_t(&x, true), net_b.forward_t(&x, true)));
    let vars_a = vs_a.variables();
    let vars_b = vs_b.variables();
    let mut checked = 0;
    for (name, a) in &vars_a {
        if name.contains(".node_") && (name.ends_with("running_mean") || name.ends_with("running_var")) {
            // Moved away from the initial statistics, and equal to node-by-node's.
            let init = if name.ends_with("running_mean") { 0.0 } else { 1.0 };
            assert!((a - init).abs().max().double_value(&[]) > 0.0, "{name} not updated");
            let d = rel_diff(&vars_b[name], a);
            assert!(d < RTOL, "{name} differs by {d:e}");
            checked += 1;
        }
    }
    // 3 stages x 16 nodes x 2 batch norms x (mean, var), plus the projections of nodes (0,0).
    assert_eq!(checked, 3 * 16 * 2 * 2 + 2 * 2);
}

#[test]
fn wavefront_changes_no_names_or_counts() {
    let spec = ModelSpec::new(Arch::Grid, 98).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = Net::new(&vs.root(), spec);
    let before = (net.cost(), vs.variables().len());
    net.set_grid_exec(GridExec::Wavefront);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let _ = net.forward_t(&x, true);
    assert_eq!((net.cost(), vs.variables().len()), before);
    assert_eq!(serde_json::to_string(&GridExec::Wavefront).unwrap(), "\"wavefront\"");
}

#[test]
fn channels_last_equals_contiguous() {
    let cl = MemoryFormat::ChannelsLast;
    for train in [true, false] {
        check(Arch::Resnet, 26, (GridExec::Sequential, cl), train);
        check(Arch::Vgg, 26, (GridExec::Sequential, cl), train);
        check(Arch::Grid, 26, (GridExec::Sequential, cl), train);
        check(Arch::Grid, 26, (GridExec::Wavefront, cl), train);
    }
}

#[test]
fn channels_last_runs_channels_last_and_changes_no_names_or_counts() {
    let spec = ModelSpec::new(Arch::Resnet, 8).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = Net::new(&vs.root(), spec);
    let before = (net.cost(), vs.variables().len());
    net.set_memory_format(&vs, MemoryFormat::ChannelsLast);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    // The stem's output (what every later layer sees) comes out channels-last.
    let h = net.stem.forward_t(&MemoryFormat::ChannelsLast.apply(&x), true);
    assert!(is_channels_last(&h), "strides {:?}", h.stride());
    let _ = net.forward_t(&x, true);
    assert_eq!((net.cost(), vs.variables().len()), before);
}
