//! The models as the paper defines them: counts equal to thop's on PyTorch, the grid's merge
//! semantics (eq. 7, 8), initialisation, names, and a forward/backward pass on every device.

mod common;

use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use worker::inspect::Inspection;
use worker::models::grid::GridStage;
use worker::models::{Arch, ModelSpec, Net, Stage};

use common::devices;

/// (arch, depth, params, FLOPs) as thop 2.x reports them for bench/pytorch_reference.py's
/// networks (`python bench/pytorch_reference.py count`), the paper's Table 1 at full precision.
const THOP: [(Arch, u32, u64, u64); 12] = [
    (Arch::Vgg, 26, 366_938, 55_694_016),
    (Arch::Vgg, 98, 1_533_530, 228_315_840),
    (Arch::Vgg, 386, 6_199_898, 918_803_136),
    (Arch::Vgg, 1538, 24_865_370, 3_680_752_320),
    (Arch::Resnet, 26, 369_690, 56_005_312),
    (Arch::Resnet, 98, 1_536_282, 228_627_136),
    (Arch::Resnet, 386, 6_202_650, 919_114_432),
    (Arch::Resnet, 1538, 24_868_122, 3_681_063_616),
    (Arch::Grid, 26, 369_690, 56_005_312),
    (Arch::Grid, 98, 1_536_282, 228_627_136),
    (Arch::Grid, 386, 6_202_650, 919_114_432),
    (Arch::Grid, 1538, 24_868_122, 3_681_063_616),
];

fn build(arch: Arch, depth: u32, device: Device) -> (nn::VarStore, Net) {
    let vs = nn::VarStore::new(device);
    let net = Net::new(&vs.root(), ModelSpec::new(arch, depth).unwrap());
    (vs, net)
}

#[test]
fn counts_equal_thop_and_the_variable_store() {
    for (arch, depth, params, flops) in THOP {
        let (vs, net) = build(arch, depth, Device::Cpu);
        let got = Inspection::of(&net);
        assert_eq!((got.params, got.flops), (params, flops), "{arch}-{depth}");
        let stored: i64 = vs.trainable_variables().iter().map(Tensor::numel).map(|n| n as i64).sum();
        assert_eq!(stored as u64, params, "{arch}-{depth}: trainable variables in the store");
        let n = (depth as u64 - 2) / 6;
        assert_eq!(got.blocks as u64, 3 * n);
        let paths = (got.shortest_path_blocks, got.longest_path_blocks);
        match arch {
            Arch::Vgg => assert_eq!(paths, (3 * n, 3 * n)),
            Arch::Resnet => assert_eq!(paths, (0, 3 * n)),
            Arch::Grid => {
                let r = (n as f64).sqrt() as u64;
                assert_eq!(got.grid_side, Some(r as usize));
                assert_eq!(paths, (0, 3 * (2 * r - 1)));
            }
        }
    }
}

#[test]
fn parameter_names_are_stable_and_convs_have_no_bias() {
    let (vs, _) = build(Arch::Grid, 26, Device::Cpu);
    let names = vs.variables();
    for expected in [
        "stem.conv.weight",
        "stem.bn.weight",
        "stem.bn.running_mean",
        "stage1.node_0_0.conv1.weight",
        "stage2.node_0_0.shortcut.conv.weight",
        "stage2.node_0_0.shortcut.bn.bias",
        "stage2.node_1_1.conv2.weight",
        "stage3.node_1_0.bn1.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.contains_key(expected), "missing {expected}");
    }
    assert!(!names.keys().any(|k| k.contains("conv") && k.ends_with(".bias") && !k.contains("bn")));
    let (vs, _) = build(Arch::Resnet, 26, Device::Cpu);
    assert!(vs.variables().contains_key("stage3.block_3.conv2.weight"));
    assert!(vs.variables().contains_key("stage3.block_0.shortcut.conv.weight"));
    let (vs, _) = build(Arch::Vgg, 26, Device::Cpu);
    assert!(!vs.variables().keys().any(|k| k.contains("shortcut")));
}

#[test]
fn initialisation_follows_the_recipe() {
    tch::manual_seed(1);
    let (vs, _) = build(Arch::Resnet, 98, Device::Cpu);
    let vars = vs.variables();
    for (name, t) in &vars {
        if name.contains("bn") && name.ends_with(".weight") {
            assert_eq!(t.ne(1.0).sum(Kind::Int64).int64_value(&[]), 0, "{name}");
        }
        if name.contains("bn") && name.ends_with(".bias") {
            assert_eq!(t.ne(0.0).sum(Kind::Int64).int64_value(&[]), 0, "{name}");
        }
    }
    // Kaiming normal, fan-out, ReLU gain: std = sqrt(2 / (c_out * 3 * 3)).
    let all: Vec<Tensor> = (1..16).map(|k| vars[&format!("stage3.block_{k}.conv1.weight")].flatten(0, -1)).collect();
    let w = Tensor::cat(&all, 0);
    let expected = (2.0f64 / (64.0 * 9.0)).sqrt();
    let std = w.std(true).double_value(&[]);
    let mean = w.mean(Kind::Float).double_value(&[]);
    assert!((std / expected - 1.0).abs() < 0.01, "conv std {std} vs {expected}");
    assert!(mean.abs() < 0.01 * expected, "conv mean {mean}");
    // PyTorch's Linear default: U(-1/sqrt(64), 1/sqrt(64)) for weight and bias.
    for name in ["fc.weight", "fc.bias"] {
        let m = vars[name].abs().max().double_value(&[]);
        assert!(m <= 0.125 && m > 0.05, "{name} max |w| = {m}");
    }
}

/// Recomputes a 2x2 grid stage by hand from its nodes and checks the merge and its gradient.
#[test]
fn grid_merge_is_a_mean_and_halves_the_gradient() {
    tch::manual_seed(7);
    let (_vs, net) = build(Arch::Grid, 26, Device::Cpu);
    let Stage::Grid(stage) = &net.stages[1] else { panic!("grid stage expected") };
    assert_eq!(stage.side, 2);
    let x = Tensor::randn([3, 16, 16, 16], (Kind::Float, Device::Cpu));
    for train in [false, true] {
        let outs = stage.forward_nodes(&x, train);
        let y00 = stage.node(0, 0).forward_t(&x, train);
        let y01 = stage.node(0, 1).forward_t(&y00, train);
        let y10 = stage.node(1, 0).forward_t(&y00, train);
        let y11 = stage.node(1, 1).forward_t(&((&y01 + &y10) / 2.0), train);
        for (k, y) in [y00, y01, y10, y11].iter().enumerate() {
            assert!(outs[k].allclose(y, 1e-6, 1e-6, false), "node {k} in train={train}");
        }
        assert!(stage.forward_t(&x, train).allclose(&outs[3], 1e-6, 1e-6, false));
    }

    // Gradient through the merge: each parent receives exactly half of the merged input's.
    let p1 = Tensor::randn([3, 32, 8, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let p2 = Tensor::randn([3, 32, 8, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let merged = GridStage::merge(&p1, &p2);
    let z = merged.detach().set_requires_grad(true);
    stage.node(1, 1).forward_t(&merged, false).square().sum(Kind::Float).backward();
    stage.node(1, 1).forward_t(&z, false).square().sum(Kind::Float).backward();
    let g = z.grad();
    assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert!(p1.grad().equal(&(&g / 2.0)), "parent 1 gets g/2");
    assert!(p2.grad().equal(&(&g / 2.0)), "parent 2 gets g/2");
}

#[test]
fn forward_and_backward_of_every_architecture() {
    for device in devices() {
        for arch in Arch::ALL {
            tch::manual_seed(3);
            let (vs, net) = build(arch, 26, device);
            let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, device));
            let y = Tensor::from_slice(&[3i64, 7]).to(device);
            let mut opt = nn::Sgd::default().build(&vs, 0.1).unwrap();
            let logits = net.forward_t(&x, true);
            assert_eq!(logits.size(), [2, 10]);
            let loss = logits.cross_entropy_for_logits(&y);
            assert!(loss.double_value(&[]).is_finite());
            opt.zero_grad();
            loss.backward();
            for (name, v) in vs.variables() {
                if !v.requires_grad() {
                    continue;
                }
                let g = v.grad();
                assert!(g.defined(), "{arch} on {device:?}: {name} has no gradient");
                assert!(bool::try_from(g.isfinite().all()).unwrap(), "{arch}: {name} gradient not finite");
            }
            // Training mode moved the running statistics; evaluation mode uses them.
            let rm = &vs.variables()["stem.bn.running_mean"];
            assert!(rm.abs().sum(Kind::Float).double_value(&[]) > 0.0);
            let eval = tch::no_grad(|| net.forward_t(&x, false));
            assert_eq!(eval.size(), [2, 10]);
            assert!(bool::try_from(eval.isfinite().all()).unwrap());
        }
    }
}
