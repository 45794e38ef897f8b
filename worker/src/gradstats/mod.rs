//! The gradient analysis of Table 2 (the paper's eq. 9) and its sigma_g^2(d): after training,
//! the loss gradient of every trainable parameter on every validation batch, reduced on the
//! device to a few numbers per batch and merged on the host, so that the ~2.49e9 values of a
//! 1538-layer network are never held at once.
//!
//! This module runs the batches (`analyze`, and `analyze_at` around training); `reduce` turns
//! one batch's gradients into its numbers on the device, `totals` merges them on the host and
//! writes the report.

mod reduce;
mod totals;

use tch::Tensor;
use tch::nn::{self, ModuleT};

use crate::data::Split;
use crate::data::augment::Normalizer;
use crate::models::Net;

pub use gridsweep_proto::result::{
    BlockGrad, EPSILONS, GradReport, HIST_LOG10_HI as LOG10_HI, HIST_LOG10_LO as LOG10_LO, Vanished,
};

/// How to run the analysis (the job schema's settings).
pub use gridsweep_proto::job::AnalysisConfig as GradConfig;

use totals::Totals;

/// The analysis after epoch `epoch` (0: at initialisation). Training-mode batch norm updates
/// the running statistics as it goes; they are put back afterwards, so that the analysis leaves
/// the model as it found it and training after it is as without it.
pub fn analyze_at(
    net: &Net,
    vs: &nn::VarStore,
    split: &Split,
    norm: &Normalizer,
    cfg: &GradConfig,
    epoch: u32,
) -> Result<GradReport, tch::TchError> {
    let buffers: Vec<(Tensor, Tensor)> = vs
        .variables()
        .into_values()
        .filter(|t| !t.requires_grad())
        .map(|t| {
            let saved = t.f_detach_copy()?;
            Ok((t, saved))
        })
        .collect::<Result<_, tch::TchError>>()?;
    let t0 = std::time::Instant::now();
    let mut report = analyze(net, vs, split, norm, cfg);
    report.epoch = Some(epoch);
    tch::no_grad(|| buffers.into_iter().try_for_each(|(mut t, saved)| t.f_copy_(&saved)))?;
    tracing::info!(
        epoch,
        "gradient analysis at epoch {epoch}: {} batches, {} gradients, {:.1}s",
        report.batches,
        report.total_gradients,
        t0.elapsed().as_secs_f64()
    );
    Ok(report)
}

/// Runs the analysis of `net` over `split`.
pub fn analyze(net: &Net, vs: &nn::VarStore, split: &Split, norm: &Normalizer, cfg: &GradConfig) -> GradReport {
    let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let positions = net.block_positions();
    // Which block each parameter belongs to (None for stem and head).
    let owner: Vec<Option<usize>> = params
        .iter()
        .map(|(name, _)| positions.iter().position(|b| name.starts_with(&format!("{}.", b.name))))
        .collect();
    let mut totals = Totals::new(positions.len());
    let n = split.len();
    let mut start = 0;
    while start < n {
        let len = cfg.batch_size.min(n - start);
        let grads = batch_gradients(net, &params, split, norm, cfg.bn_train_mode, (start, len));
        totals.add(&reduce::reduce(grads), &owner, &params);
        start += len;
    }
    totals.report(cfg, positions)
}

/// The flattened loss gradient of each of `params` on the `(start, len)` batch of `split`
/// (batch norm in training mode when `bn_train`). Autograd hands them back without touching any
/// parameter's `.grad`, so the analysis leaves no gradient buffers behind (a model's size of
/// memory for the rest of training) and needs no zeroing between batches.
fn batch_gradients(
    net: &Net,
    params: &[(String, Tensor)],
    split: &Split,
    norm: &Normalizer,
    bn_train: bool,
    (start, len): (i64, i64),
) -> Vec<Tensor> {
    let x = norm.apply(&split.images.narrow(0, start, len));
    let y = split.labels.narrow(0, start, len);
    let loss = net.forward_t(&x, bn_train).cross_entropy_for_logits(&y);
    let inputs: Vec<&Tensor> = params.iter().map(|(_, p)| p).collect();
    Tensor::run_backward(&[loss], &inputs, false, false).into_iter().map(|g| g.flatten(0, -1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Arch, ModelSpec};
    use tch::{Device, Kind};

    /// The streamed statistics against all gradients held at once, on a tiny model.
    #[test]
    fn streamed_statistics_equal_brute_force() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), ModelSpec::new(Arch::Grid, 26).unwrap());
        let split = Split {
            images: Tensor::randint(256, [10, 3, 32, 32], (Kind::Uint8, Device::Cpu)),
            labels: Tensor::randint(10, [10], (Kind::Int64, Device::Cpu)),
        };
        let norm = Normalizer::new(Device::Cpu);
        let cfg = GradConfig { batch_size: 4, bn_train_mode: false, at_epochs: Vec::new() };
        let report = analyze(&net, &vs, &split, &norm, &cfg);

        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(params.iter().all(|(_, p)| !p.grad().defined()), "the analysis leaves no .grad behind");
        let mut all = Vec::new();
        let mut per_param: Vec<Vec<Tensor>> = params.iter().map(|_| Vec::new()).collect();
        for (start, len) in [(0, 4), (4, 4), (8, 2)] {
            for (_, p) in &params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            let x = norm.apply(&split.images.narrow(0, start, len));
            net.forward_t(&x, false).cross_entropy_for_logits(&split.labels.narrow(0, start, len)).backward();
            for (k, (_, p)) in params.iter().enumerate() {
                all.push(p.grad().flatten(0, -1).copy());
                per_param[k].push(p.grad().flatten(0, -1).copy());
            }
        }
        let all = Tensor::cat(&all, 0).to_kind(Kind::Double);
        let total = all.size()[0] as u64;
        assert_eq!(report.batches, 3);
        assert_eq!(report.total_gradients, total);
        assert_eq!(total, 3 * 369_690);
        let std = all.std(true).double_value(&[]);
        let (rstd, rmean) = (report.std.unwrap(), report.mean.unwrap());
        assert!((rstd / std - 1.0).abs() < 1e-9, "{rstd} vs {std}");
        assert!((rmean - all.mean(Kind::Double).double_value(&[])).abs() < 1e-12);
        let abs = all.abs();
        for v in &report.vanished {
            let expect = abs.lt(v.eps).sum(Kind::Int64).int64_value(&[]) as u64;
            assert_eq!(v.count, expect, "eps {}", v.eps);
        }
        assert_eq!(report.nonfinite, 0);
        let binned: u64 = report.histogram.iter().sum::<u64>() + report.zeros + report.below_range + report.above_range;
        assert_eq!(binned, total);
        // One block by hand: stage2.node_1_1.
        let b = report.blocks.iter().find(|b| b.name == "stage2.node_1_1").unwrap();
        assert_eq!((b.stage, b.row, b.col, b.distance), (2, 1, 1, 3 + 3));
        let (mut sq, mut el) = (0.0, 0u64);
        for (k, (name, _)) in params.iter().enumerate() {
            if name.starts_with("stage2.node_1_1.") {
                for g in &per_param[k] {
                    sq += g.to_kind(Kind::Double).square().sum(Kind::Double).double_value(&[]);
                    el += g.numel() as u64;
                }
            }
        }
        assert_eq!(b.elements, el);
        assert!((b.mean_sq / (sq / el as f64) - 1.0).abs() < 1e-9);
    }

    /// A network whose backward pass overflows: the NaN and infinite elements are counted apart,
    /// never below a threshold, and the report stays a valid result (no NaN in its numbers).
    #[test]
    fn non_finite_gradients_are_counted_apart() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), ModelSpec::new(Arch::Resnet, 8).unwrap());
        let split = Split {
            images: Tensor::randint(256, [6, 3, 32, 32], (Kind::Uint8, Device::Cpu)),
            labels: Tensor::randint(10, [6], (Kind::Int64, Device::Cpu)),
        };
        let norm = Normalizer::new(Device::Cpu);
        let cfg = GradConfig { batch_size: 3, bn_train_mode: true, at_epochs: Vec::new() };
        let clean = analyze(&net, &vs, &split, &norm, &cfg);
        // One NaN weight in the classifier: the loss and every gradient become NaN.
        let mut vars = vs.variables();
        let w = vars.get_mut("fc.weight").expect("the classifier's weight");
        tch::no_grad(|| {
            let _ = w.get(0).get(0).fill_(f64::NAN);
        });
        let broken = analyze(&net, &vs, &split, &norm, &cfg);
        assert_eq!(broken.total_gradients, clean.total_gradients);
        assert_eq!(broken.nonfinite, broken.total_gradients, "every element NaN");
        assert_eq!((broken.mean, broken.std), (None, None));
        assert!(broken.vanished.iter().all(|v| v.count == 0), "NaN is never below a threshold");
        let binned: u64 = broken.histogram.iter().sum::<u64>() + broken.zeros + broken.below_range + broken.above_range;
        assert_eq!(binned + broken.nonfinite, broken.total_gradients);
        assert!(broken.blocks.iter().all(|b| b.mean_sq == 0.0));
        // It serialises without a null where a number is required, and reads back.
        let json = serde_json::to_string(&broken).unwrap();
        let back: GradReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.nonfinite, broken.nonfinite);
        assert!(clean.nonfinite == 0 && clean.std.is_some());
    }
}
