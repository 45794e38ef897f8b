//! Memory layout of activations and convolution weights: PyTorch's contiguous NCHW, or
//! channels-last (NHWC in memory, NCHW in shape), which cuDNN's tensor-core kernels and oneDNN
//! prefer. tch 0.24 has no `to(memory_format)`, so a tensor is made channels-last the way
//! libtorch stores one: permute to NHWC, make that contiguous, permute back. libtorch's
//! convolutions and batch norms choose their output layout from their inputs', so converting the
//! parameters once and each input batch is enough for the whole network to run channels-last.
//! The arithmetic is the same up to summation order; names, shapes and checkpoints are unchanged.

use tch::{Tensor, nn};

pub use gridsweep_proto::result::MemoryFormat;

/// Putting tensors and variables in a [`MemoryFormat`] (the enum lives in the result schema,
/// which has no libtorch).
pub trait Relayout {
    /// `t` in this layout (4-D tensors only; others are returned as they are).
    fn apply(self, t: &Tensor) -> Tensor;
    /// Re-lays every 4-D variable of `vs` (the convolution weights) in place: the variables keep
    /// their identity, so an optimiser built before or after sees the same tensors.
    fn apply_to_vars(self, vs: &nn::VarStore);
}

impl Relayout for MemoryFormat {
    fn apply(self, t: &Tensor) -> Tensor {
        match self {
            MemoryFormat::ChannelsLast if t.dim() == 4 => t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]),
            MemoryFormat::Contiguous if t.dim() == 4 => t.contiguous(),
            _ => t.shallow_clone(),
        }
    }

    fn apply_to_vars(self, vs: &nn::VarStore) {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let data = tch::no_grad(|| self.apply(&v.detach()));
                v.set_data(&data);
            }
        }
    }
}

/// Whether `t` is 4-D and stored channels-last: walking C, W, H, N, each dimension's stride is
/// the product of the sizes before it (dimensions of size 1 may have any stride, as in
/// libtorch). Some tensors are both this and contiguous, e.g. a batch of one 1x1 image or a
/// 1x1 kernel with one input channel; a 1x1 kernel counts as both either way.
pub fn is_channels_last(t: &Tensor) -> bool {
    if t.dim() != 4 {
        return false;
    }
    let (size, stride) = (t.size(), t.stride());
    let mut expected = 1;
    for d in [1, 3, 2, 0] {
        if size[d] != 1 {
            if stride[d] != expected {
                return false;
            }
            expected *= size[d];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn channels_last_keeps_values_and_shape() {
        let t = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        let c = MemoryFormat::ChannelsLast.apply(&t);
        assert_eq!(c.size(), t.size());
        assert!(is_channels_last(&c) && !is_channels_last(&t));
        let one_by_one = Tensor::zeros([8, 4, 1, 1], (Kind::Float, Device::Cpu));
        assert!(is_channels_last(&one_by_one) && is_channels_last(&MemoryFormat::ChannelsLast.apply(&one_by_one)));
        assert_eq!(c.stride(), [60, 1, 15, 3]);
        assert!(c.equal(&t));
        let back = MemoryFormat::Contiguous.apply(&c);
        assert!(back.is_contiguous() && back.equal(&t));
    }

    #[test]
    fn vars_are_relaid_in_place() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().randn("w", &[4, 3, 3, 3], 0.0, 1.0);
        let b = vs.root().zeros("b", &[4]);
        let before = w.detach().copy();
        MemoryFormat::ChannelsLast.apply_to_vars(&vs);
        let vars = vs.variables();
        assert!(is_channels_last(&vars["w"]) && vars["w"].requires_grad());
        assert!(vars["w"].equal(&before));
        // The handle taken before the switch is the same variable.
        assert!(is_channels_last(&w));
        assert_eq!(vars["b"].size(), b.size());
    }
}
