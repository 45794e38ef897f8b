//! SGD with (Nesterov) momentum and L2 weight decay, the update of `torch.optim.SGD`, written
//! out so that its momentum buffers are plain named tensors a checkpoint can hold.
//!
//! At the first step the parameters and the momentum buffers are packed into one flat tensor
//! each (every parameter becomes a view into its flat tensor, keeping its shape and layout), and
//! the gradients get a flat tensor of their own. An update is then a handful of whole-buffer
//! operations whatever the parameter count: a depth-1538 grid has 4,619 parameter tensors, which
//! per-parameter updates would cost ~40,000 small kernel launches a step. The arithmetic is
//! elementwise and the same either way.
//!
//! Gradients reach the optimizer through [`Sgd::backward`], with PyTorch's
//! `zero_grad(set_to_none=True)` semantics: autograd returns each parameter's gradient as a new
//! tensor (nothing is accumulated into a `.grad`, so no buffer is zeroed and no add runs per
//! tensor), and one `cat` writes them all into the flat gradient tensor. Per-parameter mode
//! (`unpacked`, for comparisons) keeps the classic zero-then-accumulate `.grad`s.

use tch::{TchError, Tensor};

/// The optimizer over a fixed, named list of parameters.
#[derive(Debug)]
pub struct Sgd {
    /// (name, parameter) in a fixed order.
    params: Vec<(String, Tensor)>,
    /// One momentum buffer per parameter, created on the first step like PyTorch's (views into
    /// `flat.momentum` once packed).
    momentum_buffers: Vec<Option<Tensor>>,
    /// The packed state, from the first step on; `None` before it or when packing does not
    /// apply (parameters of mixed kinds or devices, or without gradients).
    flat: Option<Flat>,
    /// Gradients handed over by `backward` (in `params` order) while nothing is packed: the
    /// first step packs them, and a state that cannot be packed updates from them directly.
    pending: Option<Vec<Tensor>>,
    /// Whether to pack at the first step (and take gradients from autograd rather than `.grad`).
    pack: bool,
    /// Momentum factor.
    momentum: f64,
    /// Nesterov look-ahead.
    nesterov: bool,
    /// L2 penalty added to the gradient.
    weight_decay: f64,
}

/// Parameters, gradients and momentum buffers, each one tensor; parameter k occupies
/// `offsets[k]..offsets[k] + numel` of each, in the memory order of its layout.
#[derive(Debug)]
struct Flat {
    /// Every parameter's values.
    params: Tensor,
    /// Every parameter's gradient, rewritten by each `backward`.
    grads: Tensor,
    /// Every momentum buffer, once the first update made them.
    momentum: Option<Tensor>,
    /// Where each parameter starts.
    offsets: Vec<i64>,
}

/// `t`'s shape and strides as a view into `flat` at `offset`: the same layout, so a
/// channels-last weight stays channels-last.
fn view_at(flat: &Tensor, t: &Tensor, offset: i64) -> Tensor {
    flat.as_strided(t.size(), t.stride(), Some(offset))
}

/// Whether `t`'s strides cover exactly `numel` elements without overlap (contiguous,
/// channels-last, any dense permutation), so that it can be a view into a flat block.
fn is_dense(t: &Tensor) -> bool {
    let span: i64 = t.size().iter().zip(t.stride()).map(|(&n, s)| if n == 0 { 0 } else { (n - 1) * s }).sum();
    t.stride().iter().all(|&s| s >= 0) && span + 1 == t.numel() as i64
}

/// Gradient `g` of the dense parameter `p` as a 1-D tensor in the memory order of `p`'s layout
/// (its order in the flat buffers): a view when `g` is laid out like `p` (autograd's usual
/// case), a copy into `p`'s layout otherwise, zeros when `g` is undefined (the parameter took
/// no part in the loss; the packed update then decays it as it did with zeroed gradients).
fn in_flat_order(p: &Tensor, g: Tensor) -> Result<Tensor, TchError> {
    let numel = p.numel() as i64;
    if !g.defined() {
        return Tensor::f_zeros([numel], (p.kind(), p.device()));
    }
    // Strides of size-1 dimensions do not move any element, so they may differ.
    let like_p = g.size() == p.size()
        && is_dense(&g)
        && g.size().iter().zip(g.stride()).zip(p.stride()).all(|((&n, a), b)| n == 1 || a == b);
    let g = if like_p {
        g
    } else {
        let mut t = Tensor::f_empty_strided(p.size(), p.stride(), (p.kind(), p.device()))?;
        t.f_copy_(&g)?;
        t
    };
    g.f_as_strided([numel], [1], None::<i64>)
}

impl Sgd {
    /// An optimizer over `params` (name, tensor), sorted by name for a stable order.
    pub fn new(mut params: Vec<(String, Tensor)>, momentum: f64, nesterov: bool, weight_decay: f64) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let momentum_buffers = params.iter().map(|_| None).collect();
        Sgd { params, momentum_buffers, flat: None, pending: None, pack: true, momentum, nesterov, weight_decay }
    }

    /// Updates parameter by parameter instead of packing, from gradients accumulated into each
    /// parameter's `.grad` (for comparisons).
    pub fn unpacked(mut self) -> Self {
        self.pack = false;
        self
    }

    /// Whether the state is packed (after the first step, when packing applied).
    pub fn is_packed(&self) -> bool {
        self.flat.is_some()
    }

    /// Clears the gradients a step would use: the parameters' `.grad`s (per-parameter mode) and
    /// any handed-over gradients not yet used. Packed training need not call it: each
    /// `backward` replaces the gradients.
    pub fn zero_grad(&mut self) {
        self.pending = None;
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Back-propagates `loss` and hands its gradients to the next `step`; panics on a libtorch
    /// error, with libtorch's message, like tch's other infallible calls.
    pub fn backward(&mut self, loss: &Tensor) {
        self.f_backward(loss).unwrap()
    }

    /// Back-propagates `loss` and hands its gradients to the next `step`, replacing any handed
    /// over before (call it once per step). Packing (the default): autograd returns the
    /// gradients without touching any `.grad`, and once packed one `cat` writes them into the
    /// flat gradient tensor. Per-parameter mode: the `.grad`s are zeroed and `loss` accumulates
    /// into them, as `zero_grad` then `loss.backward()` would.
    pub fn f_backward(&mut self, loss: &Tensor) -> Result<(), TchError> {
        if !self.pack {
            self.zero_grad();
            return loss.f_backward();
        }
        let inputs: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::f_run_backward(&[loss], &inputs, false, false)?;
        match &self.flat {
            Some(f) => tch::no_grad(|| gather(&f.grads, &self.params, grads)),
            None => {
                self.pending = Some(grads);
                Ok(())
            }
        }
    }

    /// Packs parameters, the handed-over gradients and existing momentum buffers into flat
    /// tensors, when every parameter has a gradient, all share one kind and device and all are
    /// dense.
    fn try_pack(&mut self) {
        let Some((_, first)) = self.params.first() else { return };
        let (kind, device) = (first.kind(), first.device());
        let Some(grads) = &self.pending else { return };
        let packable = self.params.iter().zip(grads).all(|((_, p), g)| {
            g.defined() && p.kind() == kind && p.device() == device && is_dense(p) && g.size() == p.size()
        });
        // Momentum buffers for some parameters only (not something this optimizer makes):
        // leave them be.
        let some = self.momentum_buffers.iter().filter(|b| b.is_some()).count();
        if !packable || (some != 0 && some != self.params.len()) {
            return;
        }
        let mut offsets = Vec::with_capacity(self.params.len());
        let mut total = 0i64;
        for (_, p) in &self.params {
            offsets.push(total);
            total += p.numel() as i64;
        }
        let flat_params = Tensor::empty([total], (kind, device));
        let flat_grads = Tensor::empty([total], (kind, device));
        let Some(grads) = self.pending.take() else { return };
        tch::no_grad(|| {
            gather(&flat_grads, &self.params, grads).unwrap();
            for ((_, p), &off) in self.params.iter_mut().zip(&offsets) {
                let pv = view_at(&flat_params, p, off);
                pv.shallow_clone().copy_(p);
                p.set_data(&pv);
            }
        });
        let momentum = self.momentum_buffers.iter().all(Option::is_some).then(|| {
            let flat = Tensor::empty([total], (kind, device));
            for ((b, (_, p)), &off) in self.momentum_buffers.iter_mut().zip(&self.params).zip(&offsets) {
                let v = view_at(&flat, p, off);
                if let Some(old) = b.as_ref() {
                    v.shallow_clone().copy_(old);
                }
                *b = Some(v);
            }
            flat
        });
        self.flat = Some(Flat { params: flat_params, grads: flat_grads, momentum, offsets });
    }

    /// One update with learning rate `lr` from the gradients `backward` handed over (or, in
    /// per-parameter mode, the `.grad`s): d = g + wd p; buf = m buf + d (buf = d at first);
    /// d = d + m buf (Nesterov) or buf; p -= lr d.
    pub fn step(&mut self, lr: f64) {
        if self.pack && self.flat.is_none() {
            self.try_pack();
        }
        let (momentum, nesterov, wd) = (self.momentum, self.nesterov, self.weight_decay);
        if let Some(f) = &mut self.flat {
            tch::no_grad(|| {
                let fresh = momentum != 0.0 && f.momentum.is_none();
                update(&mut f.params, &f.grads, &mut f.momentum, momentum, nesterov, wd, lr);
                if fresh && let Some(m) = &f.momentum {
                    for ((b, (_, p)), &off) in self.momentum_buffers.iter_mut().zip(&self.params).zip(&f.offsets) {
                        *b = Some(view_at(m, p, off));
                    }
                }
            });
            return;
        }
        // Not packed: handed-over gradients when packing was tried and did not apply, else the
        // `.grad`s.
        let grads = self.pending.take().unwrap_or_else(|| self.params.iter().map(|(_, p)| p.grad()).collect());
        tch::no_grad(|| {
            for (((_, p), buf), g) in self.params.iter_mut().zip(&mut self.momentum_buffers).zip(&grads) {
                if g.defined() {
                    update(p, g, buf, momentum, nesterov, wd, lr);
                }
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
            match &mut self.momentum_buffers[k] {
                // Packed: into the flat buffer's view.
                Some(b) if self.flat.is_some() => {
                    tch::no_grad(|| b.copy_(t));
                }
                b => *b = Some(t.to_device(p.device()).to_kind(p.kind()).copy()),
            }
        }
        Ok(())
    }
}

/// Writes `grads` (one per parameter of `params`, in order) into the flat gradient tensor
/// `flat` with one `cat`: each in its parameter's memory order, so that it lines up with the
/// parameter's view into the flat parameters.
fn gather(flat: &Tensor, params: &[(String, Tensor)], grads: Vec<Tensor>) -> Result<(), TchError> {
    let parts =
        params.iter().zip(grads).map(|((_, p), g)| in_flat_order(p, g)).collect::<Result<Vec<Tensor>, TchError>>()?;
    Tensor::f_cat_out(flat, &parts, 0).map(drop)
}

/// The SGD update of one parameter (or of all, packed): d = g + wd p; buf = m buf + d (buf = d
/// at first); d = d + m buf (Nesterov) or buf; p -= lr d.
fn update(p: &mut Tensor, g: &Tensor, buf: &mut Option<Tensor>, m: f64, nesterov: bool, wd: f64, lr: f64) {
    let mut d = if wd != 0.0 { g + &*p * wd } else { g.shallow_clone() };
    if m != 0.0 {
        match buf.as_mut() {
            Some(b) => {
                let _ = b.g_mul_scalar_(m).g_add_(&d);
            }
            None => *buf = Some(d.copy()),
        }
        if let Some(b) = buf.as_ref() {
            d = if nesterov { d + b * m } else { b.shallow_clone() };
        }
    }
    let _ = p.g_add_(&(d * -lr));
}

#[cfg(test)]
mod tests;
