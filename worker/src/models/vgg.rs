//! The plain network ("VGG" in the paper's tables): the ResNet's blocks with no shortcut at all,
//! so the only path from input to output passes every block.

use tch::nn;

use super::resnet::SequentialStage;

/// A plain stage: `n` blocks in sequence without shortcuts.
pub fn stage(p: &nn::Path<'_>, c_in: i64, c_out: i64, stride: i64, n: usize) -> SequentialStage {
    SequentialStage::new(p, c_in, c_out, stride, n, false)
}
