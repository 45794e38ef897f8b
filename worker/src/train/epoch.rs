//! The passes of one epoch over the data: the training pass (the epoch's generator seed, the
//! shuffled order, augmentation, forward, backward, the SGD step) and the evaluation of a split
//! in evaluation mode. Sums stay on the device and are read once at the end.

use tch::nn::ModuleT;
use tch::{Kind, Tensor};

use crate::data::Split;
use crate::data::augment::{Augment, Augmenter, Normalizer};
use crate::models::Net;
use crate::optim::Sgd;
use crate::recipe::{TrainConfig, lr_at};

/// What one training pass summed.
pub(super) struct Pass {
    /// The epoch's learning rate.
    pub lr: f64,
    /// Sum over the images seen of their loss (f64 on the device).
    pub loss_sum: Tensor,
    /// Images classified correctly (i64 on the device).
    pub correct: Tensor,
    /// Images trained on; the pass stops early when cancelled or diverged, and a last batch of
    /// one image is skipped.
    pub seen: i64,
}

impl Pass {
    /// Mean training loss; not finite when the pass diverged.
    pub fn loss(&self) -> f64 {
        self.loss_sum.double_value(&[]) / self.seen as f64
    }

    /// Training accuracy in percent.
    pub fn accuracy(&self) -> f64 {
        100.0 * self.correct.int64_value(&[]) as f64 / self.seen as f64
    }
}

/// The generator seed of an epoch.
pub(super) fn epoch_seed(seed: u64, epoch: u32) -> i64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(u64::from(epoch) + 1);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// Trains `net` for epoch `epoch` (0-based) over `set`, reseeding libtorch's generator from
/// (seed, epoch) first. Stops between batches once `cancelled` says so, or when the loss sum
/// is no longer finite (checked every 20 batches).
pub(super) fn train_pass(
    net: &Net,
    opt: &mut Sgd,
    set: &Split,
    norm: &Normalizer,
    cfg: &TrainConfig,
    epoch: u32,
    cancelled: &dyn Fn() -> bool,
) -> Pass {
    let device = set.images.device();
    tch::manual_seed(epoch_seed(cfg.seed, epoch));
    let lr = lr_at(cfg, epoch);
    let aug = Augmenter::new(Augment { crop_padding: cfg.crop_padding, flip: cfg.flip }, device);
    let n = set.len();
    let perm = Tensor::randperm(n, (Kind::Int64, device));
    let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
    let mut correct = Tensor::zeros([], (Kind::Int64, device));
    let mut seen = 0i64;
    let mut start = 0;
    let inject = super::inject::step_fault_due(epoch);
    // A last batch of one image cannot be batch-normalised in training mode: it is skipped.
    while n - start >= 2 {
        if cancelled() {
            break;
        }
        let len = cfg.batch_size.min(n - start);
        let idx = perm.narrow(0, start, len);
        let x = aug.batch(&set.images, &idx, norm);
        let y = set.labels.index_select(0, &idx);
        let logits = net.forward_t(&x, true);
        if let Some(fault) = inject {
            super::inject::raise_in_step(fault, &logits);
        }
        let loss = logits.cross_entropy_for_logits(&y);
        opt.backward(&loss);
        opt.step(lr);
        loss_sum += loss.detach().to_kind(Kind::Double) * len as f64;
        correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64);
        seen += len;
        start += len;
        if (start / cfg.batch_size) % 20 == 0 && !loss_sum.double_value(&[]).is_finite() {
            break;
        }
    }
    Pass { lr, loss_sum, correct, seen }
}

/// Loss and accuracy of `net` on `split` in evaluation mode.
pub fn evaluate(net: &Net, split: &Split, batch: i64, norm: &Normalizer) -> (Option<f64>, f64) {
    tch::no_grad(|| {
        let device = split.images.device();
        let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
        let mut correct = Tensor::zeros([], (Kind::Int64, device));
        let n = split.len();
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let x = norm.apply(&split.images.narrow(0, start, len));
            let y = split.labels.narrow(0, start, len);
            let logits = net.forward_t(&x, false);
            loss_sum += logits.cross_entropy_for_logits(&y).to_kind(Kind::Double) * len as f64;
            correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64);
            start += len;
        }
        let loss = loss_sum.double_value(&[]) / n as f64;
        (loss.is_finite().then_some(loss), 100.0 * correct.int64_value(&[]) as f64 / n as f64)
    })
}
