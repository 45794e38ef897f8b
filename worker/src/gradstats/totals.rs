//! The analysis's running totals on the host: batches' numbers merged as they come (moments by
//! Chan et al.'s pairwise merge, counts added, per-parameter sums added into their blocks), and
//! the report written from them at the end (the thresholds' ratios, mean and standard deviation,
//! each block's mean squared gradient).

use gridsweep_proto::job::AnalysisConfig as GradConfig;
use gridsweep_proto::result::{BlockGrad, EPSILONS, GradReport, Vanished};
use tch::Tensor;

use crate::models::BlockPosition;

use super::reduce::{BatchStats, HIST_BINS};

/// Streaming mean and M2 (Chan et al.'s pairwise merge).
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    /// Elements merged.
    n: f64,
    /// Their mean.
    mean: f64,
    /// Their sum of squared deviations from `mean`.
    m2: f64,
}

impl Moments {
    /// These moments merged with those of `n` more elements.
    fn merge(self, n: f64, mean: f64, m2: f64) -> Self {
        if self.n == 0.0 {
            return Moments { n, mean, m2 };
        }
        let total = self.n + n;
        let delta = mean - self.mean;
        Moments { n: total, mean: self.mean + delta * n / total, m2: self.m2 + m2 + delta * delta * self.n * n / total }
    }
}

/// The totals over the batches so far.
pub(super) struct Totals {
    /// Each block's sum of squared gradients.
    block_sums: Vec<f64>,
    /// Each block's gradient elements (over all batches).
    block_elems: Vec<u64>,
    /// Mean and M2 of the finite elements.
    moments: Moments,
    /// Elements below each of `EPSILONS`.
    below: [u64; 4],
    /// The |g| histogram.
    hist: Vec<u64>,
    /// Exact zeros.
    zeros: u64,
    /// Nonzero elements below the histogram's range.
    below_range: u64,
    /// Finite elements at or above the histogram's top.
    above_range: u64,
    /// Batches merged.
    batches: u64,
    /// NaN or infinite elements.
    nonfinite: u64,
    /// All elements.
    total: u64,
}

impl Totals {
    /// Nothing yet, for a network of `blocks` blocks.
    pub fn new(blocks: usize) -> Self {
        Totals {
            block_sums: vec![0.0f64; blocks],
            block_elems: vec![0u64; blocks],
            moments: Moments::default(),
            below: [0u64; 4],
            hist: vec![0u64; HIST_BINS as usize],
            zeros: 0,
            below_range: 0,
            above_range: 0,
            batches: 0,
            nonfinite: 0,
            total: 0,
        }
    }

    /// Merges one batch; `owner[k]` is the block of parameter `params[k]` (None for the stem and
    /// the head, whose sums go to no block).
    pub fn add(&mut self, b: &BatchStats, owner: &[Option<usize>], params: &[(String, Tensor)]) {
        self.nonfinite += (b.count - b.finite) as u64;
        self.total += b.count as u64;
        if b.finite > 0 {
            self.moments = self.moments.merge(b.finite as f64, b.mean, b.m2);
        }
        for k in 0..4 {
            self.below[k] += b.below[k];
        }
        for (h, c) in self.hist.iter_mut().zip(&b.histogram) {
            *h += c;
        }
        self.zeros += b.extra[0];
        self.below_range += b.extra[1];
        self.above_range += b.extra[2] - (b.count - b.finite) as u64;
        for (k, s) in b.sums.iter().enumerate() {
            if let Some(block) = owner[k] {
                self.block_sums[block] += s;
                self.block_elems[block] += params[k].1.numel() as u64;
            }
        }
        self.batches += 1;
    }

    /// The report of the analysis run with `cfg` over a network with blocks at `positions`.
    pub fn report(self, cfg: &GradConfig, positions: Vec<BlockPosition>) -> GradReport {
        let total = self.total;
        GradReport {
            config: cfg.clone(),
            epoch: None,
            batches: self.batches,
            total_gradients: total,
            nonfinite: self.nonfinite,
            mean: (self.moments.n > 0.0).then_some(self.moments.mean),
            std: (self.moments.n > 1.0).then(|| (self.moments.m2 / (self.moments.n - 1.0)).sqrt()),
            vanished: EPSILONS
                .iter()
                .zip(self.below)
                .map(|(&eps, count)| Vanished { eps, count, ratio: count as f64 / total.max(1) as f64 })
                .collect(),
            histogram: self.hist,
            zeros: self.zeros,
            below_range: self.below_range,
            above_range: self.above_range,
            blocks: positions
                .into_iter()
                .enumerate()
                .map(|(k, p)| BlockGrad {
                    name: p.name,
                    stage: p.stage,
                    row: p.row,
                    col: p.col,
                    distance: p.distance,
                    elements: self.block_elems[k],
                    mean_sq: self.block_sums[k] / self.block_elems[k].max(1) as f64,
                })
                .collect(),
        }
    }
}
