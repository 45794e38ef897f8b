//! One batch's gradients reduced on the device to the few numbers the analysis keeps: counts,
//! mean and M2 of the finite elements, counts below each threshold, the |g| histogram and its
//! out-of-range counts, and each parameter's sum of squares. Only these leave the device.

use gridsweep_proto::result::{EPSILONS, HIST_LOG10_HI as LOG10_HI, HIST_LOG10_LO as LOG10_LO};
use tch::{Kind, Tensor};

/// The histogram's bin count, as libtorch takes it.
pub(super) const HIST_BINS: i64 = gridsweep_proto::result::HIST_BINS as i64;

/// One batch's numbers, on the host.
pub(super) struct BatchStats {
    /// Gradient elements in the batch.
    pub count: i64,
    /// Finite ones among them; the rest (NaN, infinite) are counted apart.
    pub finite: i64,
    /// Mean of the finite elements (0 when there are none).
    pub mean: f64,
    /// Sum of squared deviations from `mean` of the finite elements.
    pub m2: f64,
    /// Elements with |g| below each of `EPSILONS`, in its order (non-finite ones never are).
    pub below: Vec<u64>,
    /// The |g| histogram's counts.
    pub histogram: Vec<u64>,
    /// Exact zeros, nonzero elements below the histogram's range, and elements at or above its
    /// top; the last includes the non-finite elements.
    pub extra: Vec<u64>,
    /// Each parameter's sum of squared gradients (non-finite elements as 0), in f64.
    pub sums: Vec<f64>,
}

/// Reduces one batch's flattened gradients (one tensor per parameter). A backward pass that
/// overflowed leaves NaN or infinite elements: counted apart, zeroed for the per-parameter sums,
/// left out of the moments and the histogram.
pub(super) fn reduce(mut grads: Vec<Tensor>) -> BatchStats {
    tch::no_grad(|| {
        let mut flat = Tensor::cat(&grads, 0);
        let count = flat.size()[0];
        let finite_mask = flat.isfinite();
        let nonfinite = count - finite_mask.sum(Kind::Int64).int64_value(&[]);
        let d = if nonfinite > 0 {
            grads = grads.iter().map(|g| g.nan_to_num(0.0, 0.0, 0.0)).collect();
            let kept = flat.masked_select(&finite_mask).to_kind(Kind::Double);
            let top = f64::from(f32::MAX);
            flat = flat.nan_to_num(top, top, top);
            kept
        } else {
            flat.to_kind(Kind::Double)
        };
        let finite = count - nonfinite;
        let mean = if finite > 0 { d.mean(Kind::Double) } else { Tensor::zeros([], (Kind::Double, d.device())) };
        let m2 = (&d - &mean).square().sum(Kind::Double);
        let (below, histogram, extra) = magnitudes(&flat.abs());
        // Squared in f64: a large fp32 gradient squared overflows fp32.
        let sums = Tensor::stack(
            &grads.iter().map(|g| g.to_kind(Kind::Double).square().sum(Kind::Double)).collect::<Vec<_>>(),
            0,
        );
        BatchStats {
            count,
            finite,
            mean: mean.double_value(&[]),
            m2: m2.double_value(&[]),
            below,
            histogram,
            extra,
            sums: to_f64(&sums),
        }
    })
}

/// Counts of `abs` (|g|, non-finite elements replaced by f32::MAX, so that they fall above
/// every threshold and the histogram's top): below each threshold, per histogram bin, and
/// (zero, below the range, at or above its top).
fn magnitudes(abs: &Tensor) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let lt = Tensor::stack(&EPSILONS.map(|e| abs.lt(e).sum(Kind::Int64)), 0);
    let log = abs.clamp_min(1e-45).log10();
    let in_range = abs.gt(0.0).logical_and(&log.ge(LOG10_LO)).logical_and(&log.lt(LOG10_HI));
    let scale = HIST_BINS as f64 / (LOG10_HI - LOG10_LO);
    let bin = ((log.masked_select(&in_range) - LOG10_LO) * scale).floor().to_kind(Kind::Int64);
    let h = bin.clamp(0, HIST_BINS - 1).bincount::<Tensor>(None, HIST_BINS);
    let extra = Tensor::stack(
        &[
            abs.eq(0.0).sum(Kind::Int64),
            abs.gt(0.0).logical_and(&log.lt(LOG10_LO)).sum(Kind::Int64),
            log.ge(LOG10_HI).sum(Kind::Int64),
        ],
        0,
    );
    (to_u64(&lt), to_u64(&h.to_kind(Kind::Int64)), to_u64(&extra))
}

/// An integer tensor's values on the host.
fn to_u64(t: &Tensor) -> Vec<u64> {
    Vec::<i64>::try_from(t.to_device(tch::Device::Cpu)).unwrap_or_default().into_iter().map(|v| v as u64).collect()
}

/// A double tensor's values on the host.
fn to_f64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_device(tch::Device::Cpu)).unwrap_or_default()
}
