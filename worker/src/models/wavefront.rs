//! Wavefront execution of a grid stage: the k nodes of one anti-diagonal i + j = d are
//! independent, so they run as one batched step. Their inputs are concatenated along channels
//! (nodes by ascending row i), the convolutions are grouped (k groups) with the nodes' own
//! weights concatenated, and one batch norm runs over the k·C channels with the nodes' affine
//! parameters and running statistics concatenated (the updated statistics are copied back into
//! each node's buffers). A stage of R² blocks takes 2R − 1 steps instead of R².
//!
//! The weights are concatenated at every forward from the nodes' own variables, so gradients
//! reach each node's parameters and names, checkpoints and counts are those of node-by-node
//! execution. The running statistics are packed instead (`pack_running_stats`): each node's
//! running mean and variance become views into one buffer per diagonal and layer, which batch
//! norm updates in place, so no statistics are concatenated or copied back (at depth 1538 that
//! saves ~3,400 small operations per training step). Unpacked statistics (e.g. after the
//! variables were converted to another kind) are concatenated and copied back instead. Node
//! (0,0), which may change stride and width, runs alone as a normal block.

use tch::{Tensor, nn};

use super::grid::GridStage;
use super::layers::{BasicBlock, ConvBn};

pub use gridsweep_proto::result::GridExec;

/// conv (grouped, `k` groups of the pairs' convolutions) then batch norm over the `k` pairs'
/// concatenated channels; in training mode the pairs' running statistics are updated.
fn conv_bn_grouped(pairs: &[&ConvBn], x: &Tensor, train: bool) -> Tensor {
    let k = pairs.len() as i64;
    let ws: Vec<&Tensor> = pairs.iter().map(|p| &p.conv.ws).collect();
    let w = Tensor::cat(&ws, 0);
    let pad = w.size()[2] / 2;
    let h = x.conv2d(&w, None::<&Tensor>, [1, 1], [pad, pad], [1, 1], k);
    let cat_opt = |f: &dyn Fn(&nn::BatchNorm) -> Option<&Tensor>| -> Option<Tensor> {
        let ts: Option<Vec<&Tensor>> = pairs.iter().map(|p| f(&p.bn)).collect();
        ts.map(|ts| Tensor::cat(&ts, 0))
    };
    let weight = cat_opt(&|b| b.ws.as_ref());
    let bias = cat_opt(&|b| b.bs.as_ref());
    let means: Vec<&Tensor> = pairs.iter().map(|p| &p.bn.running_mean).collect();
    let vars: Vec<&Tensor> = pairs.iter().map(|p| &p.bn.running_var).collect();
    let packed = packed_view(&means).zip(packed_view(&vars));
    let (mean, var) = packed.as_ref().map_or_else(
        || tch::no_grad(|| (Tensor::cat(&means, 0), Tensor::cat(&vars, 0))),
        |(m, v)| (m.shallow_clone(), v.shallow_clone()),
    );
    // The layers are built with the default batch-norm config (see `ConvBn::new`).
    let cfg = nn::BatchNormConfig::default();
    let y = Tensor::batch_norm(
        &h,
        weight.as_ref(),
        bias.as_ref(),
        Some(&mean),
        Some(&var),
        train,
        cfg.momentum,
        cfg.eps,
        cfg.cudnn_enabled,
    );
    if train && packed.is_none() {
        tch::no_grad(|| {
            let mut off = 0;
            for p in pairs {
                let c = p.bn.running_mean.size()[0];
                p.bn.running_mean.shallow_clone().copy_(&mean.narrow(0, off, c));
                p.bn.running_var.shallow_clone().copy_(&var.narrow(0, off, c));
                off += c;
            }
        });
    }
    y
}

/// The tensors `ts` (1-D, same kind and device) as one tensor, when they lie back to back in one
/// storage in this order (as `pack_running_stats` leaves them): a view, no copy.
fn packed_view(ts: &[&Tensor]) -> Option<Tensor> {
    let first = ts.first()?;
    let elem = first.kind().elt_size_in_bytes() as i64;
    let base = first.data_ptr() as i64;
    let mut at = 0i64;
    for t in ts {
        if t.dim() != 1 || t.stride() != [1] || t.kind() != first.kind() || t.data_ptr() as i64 != base + at * elem {
            return None;
        }
        at += t.size()[0];
    }
    // Contiguity in memory does not prove one storage (two allocations may abut): as_strided
    // checks the bounds of `first`'s storage.
    first.f_as_strided([at], [1], None).ok()
}

/// The nodes of the anti-diagonals d = 1 ..= 2(R − 1) of `stage` (all but node (0,0)), each
/// diagonal in ascending row order.
fn diagonals(stage: &GridStage) -> impl Iterator<Item = Vec<&BasicBlock>> {
    let r = stage.side;
    (1..=2 * r.saturating_sub(1)).map(move |d| {
        let (lo, hi) = (d.saturating_sub(r - 1), d.min(r - 1));
        (lo..=hi).map(|i| stage.node(i, d - i)).collect()
    })
}

/// A node's running statistics: conv1's mean and variance, conv2's mean and variance.
fn running_stats(n: &BasicBlock) -> [&Tensor; 4] {
    [&n.conv1.bn.running_mean, &n.conv1.bn.running_var, &n.conv2.bn.running_mean, &n.conv2.bn.running_var]
}

/// Makes every diagonal's running statistics (per layer: the means, and the variances, of its
/// nodes in ascending row order) views into one buffer, keeping their values, so that the
/// wavefront's batch norms update them in place. The node (0,0) is left alone.
pub fn pack_running_stats(stage: &GridStage) {
    for nodes in diagonals(stage) {
        for k in 0..4 {
            let ts: Vec<&Tensor> = nodes.iter().map(|n| running_stats(n)[k]).collect();
            if packed_view(&ts).is_some() {
                continue;
            }
            let buffer = tch::no_grad(|| Tensor::cat(&ts, 0));
            let mut off = 0;
            for t in ts {
                let c = t.size()[0];
                // Shares the variable's TensorImpl: the store's entry moves too.
                t.shallow_clone().set_data(&buffer.narrow(0, off, c));
                off += c;
            }
        }
    }
}

/// The blocks `nodes` (identity shortcuts, stride 1) on `z`, their inputs concatenated along
/// channels: relu(bn2(conv2(relu(bn1(conv1(z))))) + z), each conv grouped by node.
pub fn blocks_grouped(nodes: &[&BasicBlock], z: &Tensor, train: bool) -> Tensor {
    let c1: Vec<&ConvBn> = nodes.iter().map(|n| &n.conv1).collect();
    let c2: Vec<&ConvBn> = nodes.iter().map(|n| &n.conv2).collect();
    let h = conv_bn_grouped(&c1, z, train).relu();
    (conv_bn_grouped(&c2, &h, train) + z).relu()
}

/// The stage's output (node (R−1, R−1)), one batched step per anti-diagonal.
pub fn forward(stage: &GridStage, x: &Tensor, train: bool) -> Tensor {
    let r = stage.side;
    let mut y = stage.node(0, 0).forward_t(x, train);
    if r <= 1 {
        return y;
    }
    let c = y.size()[1];
    for (d, nodes) in (1..).zip(diagonals(stage)) {
        let width = y.size()[1];
        // Node i's parents are (i−1, j) = up and (i, j−1) = left: neighbouring channel groups.
        let z = if width == c {
            // d = 1: both nodes take (0,0)'s output.
            Tensor::cat(&[&y, &y], 1)
        } else {
            let up = y.narrow(1, 0, width - c);
            let left = y.narrow(1, c, width - c);
            let pair = GridStage::merge(&up, &left);
            if d < r { Tensor::cat(&[&y.narrow(1, 0, c), &pair, &y.narrow(1, width - c, c)], 1) } else { pair }
        };
        y = blocks_grouped(&nodes, &z, train);
    }
    y
}
