//! Wavefront execution of the grid equals node-by-node execution: outputs, every parameter's
//! gradient and the batch norms' running statistics, in training and evaluation mode, for
//! R = 2 and R = 4 (depths 26 and 98), compared in fp64.

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};
use worker::models::{Arch, GridExec, ModelSpec, Net};

/// Relative tolerance in fp64 (summation order is the only difference).
const RTOL: f64 = 1e-9;

/// max |a − b| / max(max |b|, 1e-12), as f64.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    (a - b).abs().max().double_value(&[]) / scale
}

/// Two fp64 copies of the same grid network, the second executed as a wavefront.
fn pair(depth: u32) -> (nn::VarStore, Net, nn::VarStore, Net) {
    let spec = ModelSpec::new(Arch::Grid, depth).unwrap();
    tch::manual_seed(7);
    let mut vs_a = nn::VarStore::new(Device::Cpu);
    let net_a = Net::new(&vs_a.root(), spec);
    let mut vs_b = nn::VarStore::new(Device::Cpu);
    let mut net_b = Net::new(&vs_b.root(), spec);
    vs_b.copy(&vs_a).unwrap();
    vs_a.double();
    vs_b.double();
    net_b.set_grid_exec(GridExec::Wavefront);
    (vs_a, net_a, vs_b, net_b)
}

/// One forward and backward of both nets on the same input; checks outputs, gradients and
/// (all variables, running statistics included) the stores after the step.
fn check(depth: u32, train: bool) {
    let (vs_a, net_a, vs_b, net_b) = pair(depth);
    tch::manual_seed(11);
    let x = Tensor::randn([3, 3, 32, 32], (Kind::Double, Device::Cpu));
    let probe = Tensor::randn([3, 10], (Kind::Double, Device::Cpu));
    // Run twice so that evaluation mode sees running statistics updated by a training step too.
    for step in 0..2 {
        let t = train || step == 0;
        let out_a = net_a.forward_t(&x, t);
        let out_b = net_b.forward_t(&x, t);
        let d = rel_diff(&out_b, &out_a);
        assert!(d < RTOL, "depth {depth} train {t}: outputs differ by {d:e}");
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
                assert!(d < RTOL, "depth {depth} train {t}: gradient of {name} differs by {d:e}");
            } else {
                let d = rel_diff(b, a);
                assert!(d < RTOL, "depth {depth} train {t}: {name} differs by {d:e} after the step");
            }
        }
    }
}

#[test]
fn wavefront_equals_node_by_node_r2_train() {
    check(26, true);
}

#[test]
fn wavefront_equals_node_by_node_r2_eval() {
    check(26, false);
}

#[test]
fn wavefront_equals_node_by_node_r4_train() {
    check(98, true);
}

#[test]
fn wavefront_equals_node_by_node_r4_eval() {
    check(98, false);
}

#[test]
fn wavefront_updates_running_statistics_of_every_node() {
    let (vs_a, net_a, vs_b, net_b) = pair(98);
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
