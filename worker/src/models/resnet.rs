//! The sequential residual network (ResNet, He et al. 2016): each stage's blocks in a chain.

use tch::Tensor;
use tch::nn;

use super::layers::{BasicBlock, Cost, Shape};

/// A chain of blocks, named `block_0`, `block_1`, ... under the stage's path.
#[derive(Debug)]
pub struct SequentialStage {
    /// The blocks in order; the first carries the stage's stride and width change.
    pub blocks: Vec<BasicBlock>,
}

impl SequentialStage {
    /// `n` blocks from `c_in` to `c_out` channels, the first with `stride`; `residual = false`
    /// drops every shortcut (the plain network).
    pub fn new(p: &nn::Path<'_>, c_in: i64, c_out: i64, stride: i64, n: usize, residual: bool) -> Self {
        let blocks = (0..n)
            .map(|k| {
                let (ci, s) = if k == 0 { (c_in, stride) } else { (c_out, 1) };
                BasicBlock::new(&(p / format!("block_{k}")), ci, c_out, s, residual)
            })
            .collect();
        SequentialStage { blocks }
    }

    /// The blocks applied in turn.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = self.blocks[0].forward_t(x, train);
        for b in &self.blocks[1..] {
            h = b.forward_t(&h, train);
        }
        h
    }

    /// Output shape and the sum of the blocks' costs.
    pub fn cost(&self, input: Shape) -> (Shape, Cost) {
        self.blocks.iter().fold((input, Cost::default()), |(s, c), b| {
            let (s, cb) = b.cost(s);
            (s, c + cb)
        })
    }

    /// Path lengths add up along a chain.
    pub fn path_range(&self) -> (u64, u64) {
        self.blocks.iter().map(BasicBlock::path_range).fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
    }
}

/// A ResNet stage: `n` residual blocks in sequence.
pub fn stage(p: &nn::Path<'_>, c_in: i64, c_out: i64, stride: i64, n: usize) -> SequentialStage {
    SequentialStage::new(p, c_in, c_out, stride, n, true)
}
