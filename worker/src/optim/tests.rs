//! Tests of the SGD optimizer: the packed update against the per-parameter one, gradients
//! replaced rather than accumulated, and the flat buffer's layout.
use super::*;
use tch::{Device, Kind};

/// Two steps by hand against the formula PyTorch documents.
#[test]
fn matches_the_nesterov_update() {
    let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
    let mut opt = Sgd::new(vec![("w".into(), p.shallow_clone())], 0.9, true, 0.1);
    let (lr, m, wd) = (0.5f64, 0.9f64, 0.1f64);
    let (mut w, mut buf) = ([1.0f64, -2.0], [0.0f64; 2]);
    for step in 0..2 {
        opt.backward(&(&p * &p).sum(Kind::Float)); // g = 2w
        opt.step(lr);
        for k in 0..2 {
            let d = 2.0 * w[k] + wd * w[k];
            buf[k] = if step == 0 { d } else { m * buf[k] + d };
            w[k] -= lr * (d + m * buf[k]);
        }
        for (k, want) in w.iter().enumerate() {
            let got = p.double_value(&[k as i64]);
            assert!((got - want).abs() < 1e-5, "step {step}: {got} vs {want}");
        }
    }
    assert_eq!(opt.buffers().len(), 1);
    assert!(opt.is_packed());
}

/// A small conv net's (name, variable) list, seeded, optionally channels-last.
fn net(channels_last: bool) -> (tch::nn::VarStore, Vec<(String, Tensor)>) {
    tch::manual_seed(3);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let _ = root.randn("a_conv", &[8, 3, 3, 3], 0.0, 0.3);
    let _ = root.randn("b_conv", &[4, 8, 3, 3], 0.0, 0.3);
    let _ = root.randn("b_proj", &[4, 8, 1, 1], 0.0, 0.3);
    let _ = root.randn("c_bias", &[4], 0.0, 0.3);
    if channels_last {
        crate::layout::Relayout::apply_to_vars(crate::layout::MemoryFormat::ChannelsLast, &vs);
    }
    let params = vs.variables().into_iter().collect();
    (vs, params)
}

/// A loss that reaches every variable.
fn loss(v: &std::collections::HashMap<String, Tensor>, x: &Tensor) -> Tensor {
    let h = x.conv2d(&v["a_conv"], None::<&Tensor>, [1, 1], [1, 1], [1, 1], 1).relu();
    let y = h.conv2d(&v["b_conv"], None::<&Tensor>, [1, 1], [1, 1], [1, 1], 1)
        + h.conv2d(&v["b_proj"], None::<&Tensor>, [1, 1], [0, 0], [1, 1], 1);
    (y + v["c_bias"].view([1, 4, 1, 1])).tanh().square().mean(Kind::Float)
}

#[test]
fn packed_updates_equal_per_parameter_updates() {
    for channels_last in [false, true] {
        let (vs_a, pa) = net(channels_last);
        let (mut vs_b, pb) = net(channels_last);
        // The same start by copy, not by seed: the generator is global, and a test running
        // beside this one may draw from it between the two nets' draws.
        vs_b.copy(&vs_a).unwrap();
        let mut a = Sgd::new(pa, 0.9, true, 5e-4);
        let mut b = Sgd::new(pb, 0.9, true, 5e-4).unpacked();
        tch::manual_seed(4);
        for step in 0..4 {
            let x = Tensor::randn([2, 3, 6, 6], (Kind::Float, Device::Cpu));
            for (opt, vs) in [(&mut a, &vs_a), (&mut b, &vs_b)] {
                opt.backward(&loss(&vs.variables(), &x));
                opt.step(0.1 * f64::from(step + 1));
            }
        }
        assert!(a.is_packed() && !b.is_packed());
        let (va, vb) = (vs_a.variables(), vs_b.variables());
        for (name, t) in &va {
            // Elementwise arithmetic in the same order: equal to the bit.
            assert!(t.equal(&vb[name]), "{name} differs (channels-last {channels_last})");
            assert_eq!(t.stride(), vb[name].stride(), "{name}: packing changed the layout");
        }
        for ((n, x), (_, y)) in a.buffers().iter().zip(&b.buffers()) {
            assert!(x.equal(y), "momentum of {n} differs");
        }
    }
}

#[test]
fn packed_gradients_are_written_not_accumulated() {
    let (vs, params) = net(true);
    let mut opt = Sgd::new(params, 0.9, false, 0.0);
    let x = Tensor::randn([2, 3, 6, 6], (Kind::Float, Device::Cpu));
    opt.backward(&loss(&vs.variables(), &x));
    opt.step(0.1);
    assert!(opt.is_packed());
    let flat = opt.flat.as_ref().map(|f| f.grads.shallow_clone()).unwrap();
    // A new batch, handed over twice: the second replaces the first, nothing adds up.
    let x2 = Tensor::randn([2, 3, 6, 6], (Kind::Float, Device::Cpu));
    opt.backward(&loss(&vs.variables(), &x2));
    opt.backward(&loss(&vs.variables(), &x2));
    let inputs: Vec<&Tensor> = opt.params.iter().map(|(_, p)| p).collect();
    let want = Tensor::run_backward(&[loss(&vs.variables(), &x2)], &inputs, false, false);
    let mut seen = 0;
    for ((name, p), w) in opt.params.iter().zip(&want) {
        assert!(!p.grad().defined(), "{name}: a .grad was accumulated");
        assert!(w.abs().sum(Kind::Double).double_value(&[]) > 0.0, "{name}: no gradient");
        // The parameter's slice of the flat tensor, in its layout, is its gradient.
        assert!(view_at(&flat, p, seen).equal(w), "{name}: flat gradient differs");
        seen += p.numel() as i64;
    }
    assert_eq!(seen, flat.numel() as i64);
    // Checkpoint-style saved buffers come back into the packed state.
    let saved: Vec<(String, Tensor)> = opt.buffers().iter().map(|(n, t)| (n.clone(), t.ones_like())).collect();
    opt.set_buffers(&saved).unwrap();
    let m = opt.flat.as_ref().and_then(|f| f.momentum.as_ref().map(Tensor::shallow_clone)).unwrap();
    assert_eq!(m.sum(Kind::Double).double_value(&[]), flat.numel() as f64);
}

#[test]
fn gradients_line_up_with_their_parameter_in_any_layout() {
    use crate::layout::{MemoryFormat, Relayout};
    let opts = (Kind::Float, Device::Cpu);
    // A channels-last parameter (strides of NHWC), and gradients in either layout.
    let p = MemoryFormat::ChannelsLast.apply(&Tensor::randn([4, 8, 3, 3], opts));
    let flat = Tensor::zeros([p.numel() as i64], opts);
    for g in [Tensor::randn([4, 8, 3, 3], opts), MemoryFormat::ChannelsLast.apply(&Tensor::randn([4, 8, 3, 3], opts))] {
        let same_layout = g.stride() == p.stride();
        let part = in_flat_order(&p, g.shallow_clone()).unwrap();
        // Laid out like the parameter: a view, no copy.
        assert_eq!(part.data_ptr() == g.data_ptr(), same_layout);
        flat.shallow_clone().copy_(&part);
        assert!(view_at(&flat, &p, 0).equal(&g), "layout-matching {same_layout}");
    }
    let none = in_flat_order(&p, Tensor::new()).unwrap();
    assert_eq!(none.size(), [p.numel() as i64]);
    assert_eq!(none.abs().sum(Kind::Double).double_value(&[]), 0.0);
}
