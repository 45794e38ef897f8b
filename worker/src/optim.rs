//! SGD with (Nesterov) momentum and L2 weight decay, the update of `torch.optim.SGD`, written
//! out so that its momentum buffers are plain named tensors a checkpoint can hold.

use tch::Tensor;

/// The optimizer over a fixed, named list of parameters.
#[derive(Debug)]
pub struct Sgd {
    /// (name, parameter) in a fixed order.
    params: Vec<(String, Tensor)>,
    /// One momentum buffer per parameter, created on the first step like PyTorch's.
    momentum_buffers: Vec<Option<Tensor>>,
    /// Momentum factor.
    momentum: f64,
    /// Nesterov look-ahead.
    nesterov: bool,
    /// L2 penalty added to the gradient.
    weight_decay: f64,
}

impl Sgd {
    /// An optimizer over `params` (name, tensor), sorted by name for a stable order.
    pub fn new(mut params: Vec<(String, Tensor)>, momentum: f64, nesterov: bool, weight_decay: f64) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let momentum_buffers = params.iter().map(|_| None).collect();
        Sgd { params, momentum_buffers, momentum, nesterov, weight_decay }
    }

    /// Clears every gradient.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// One update with learning rate `lr`: d = g + wd p; buf = m buf + d (buf = d at first);
    /// d = d + m buf (Nesterov) or buf; p -= lr d.
    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter_mut().zip(&mut self.momentum_buffers) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let mut d = if self.weight_decay != 0.0 { g + &*p * self.weight_decay } else { g.shallow_clone() };
                if self.momentum != 0.0 {
                    match buf.as_mut() {
                        Some(b) => {
                            let _ = b.g_mul_scalar_(self.momentum).g_add_(&d);
                        }
                        None => *buf = Some(d.copy()),
                    }
                    if let Some(b) = buf.as_ref() {
                        d = if self.nesterov { d + b * self.momentum } else { b.shallow_clone() };
                    }
                }
                let _ = p.g_add_(&(d * -lr));
            }
        });
    }

    /// The momentum buffers that exist, by parameter name.
    pub fn buffers(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.momentum_buffers)
            .filter_map(|((n, _), b)| b.as_ref().map(|b| (n.clone(), b.shallow_clone())))
            .collect()
    }

    /// Installs buffers saved by `buffers` (copied onto each parameter's device).
    pub fn set_buffers(&mut self, saved: &[(String, Tensor)]) -> Result<(), String> {
        for (name, t) in saved {
            let k =
                self.params.iter().position(|(n, _)| n == name).ok_or_else(|| format!("unknown parameter {name}"))?;
            let p = &self.params[k].1;
            if t.size() != p.size() {
                return Err(format!("momentum buffer {name}: shape {:?}, parameter {:?}", t.size(), p.size()));
            }
            self.momentum_buffers[k] = Some(t.to_device(p.device()).copy());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
            opt.zero_grad();
            (&p * &p).sum(Kind::Float).backward(); // g = 2w
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
        let _ = Device::Cpu;
    }
}
