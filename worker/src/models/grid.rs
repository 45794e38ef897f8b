//! The paper's grid: a stage's n = R x R residual blocks on a square grid. Node (0,0) takes the
//! stage input; node (i,j) takes the mean of its existing parents (i-1,j) and (i,j-1)
//! (bifurcation: every output feeds its right and lower neighbours; merge: eq. 7, a plain
//! average, so each parent gets half the gradient, eq. 8); the stage output is node.

use tch::Tensor;
use tch::nn;

use super::layers::{BasicBlock, Cost, Shape};

/// One grid stage; nodes named `node_{i}_{j}` under the stage's path.
#[derive(Debug)]
pub struct GridStage {
    /// Side of the grid.
    pub side: usize,
    /// The R x R blocks in row-major order, which is also a valid execution order.
    pub nodes: Vec<BasicBlock>,
}

impl GridStage {
    /// An R x R grid from `c_in` to `c_out` channels; node (0,0) carries the stride and width
    /// change, every other node keeps `c_out` channels.
    pub fn new(p: &nn::Path<'_>, c_in: i64, c_out: i64, stride: i64, side: usize) -> Self {
        let mut nodes = Vec::with_capacity(side * side);
        for i in 0..side {
            for j in 0..side {
                let (ci, s) = if i == 0 && j == 0 { (c_in, stride) } else { (c_out, 1) };
                nodes.push(BasicBlock::new(&(p / format!("node_{i}_{j}")), ci, c_out, s, true));
            }
        }
        GridStage { side, nodes }
    }

    /// The block at row `i`, column `j`.
    pub fn node(&self, i: usize, j: usize) -> &BasicBlock {
        &self.nodes[i * self.side + j]
    }

    /// The merge rule: the average of two parents.
    pub fn merge(a: &Tensor, b: &Tensor) -> Tensor {
        (a + b) * 0.5
    }

    /// Every node's output, row-major, executing node by node.
    pub fn forward_nodes(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let r = self.side;
        let mut outs: Vec<Tensor> = Vec::with_capacity(r * r);
        for i in 0..r {
            for j in 0..r {
                let y = match (i, j) {
                    (0, 0) => self.node(0, 0).forward_t(x, train),
                    (0, _) => self.node(i, j).forward_t(&outs[j - 1], train),
                    (_, 0) => self.node(i, j).forward_t(&outs[(i - 1) * r], train),
                    _ => {
                        let z = Self::merge(&outs[(i - 1) * r + j], &outs[i * r + j - 1]);
                        self.node(i, j).forward_t(&z, train)
                    }
                };
                outs.push(y);
            }
        }
        outs
    }

    /// The output of node.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut outs = self.forward_nodes(x, train);
        outs.pop().expect("a grid has at least one node")
    }

    /// Output shape and the sum of the nodes' costs (averaging costs nothing).
    pub fn cost(&self, input: Shape) -> (Shape, Cost) {
        let (s0, mut total) = self.nodes[0].cost(input);
        for n in &self.nodes[1..] {
            total += n.cost(s0).1;
        }
        (s0, total)
    }

    /// Fewest and most residual branches on an input-to-output path, by dynamic programming over
    /// the grid: a node's range is its parents' combined range plus its own block's.
    pub fn path_range(&self) -> (u64, u64) {
        let r = self.side;
        let mut range: Vec<(u64, u64)> = Vec::with_capacity(r * r);
        for i in 0..r {
            for j in 0..r {
                let parents: Vec<(u64, u64)> =
                    [(i > 0).then(|| range[(i - 1) * r + j]), (j > 0).then(|| range[i * r + j - 1])]
                        .into_iter()
                        .flatten()
                        .collect();
                let (lo, hi) = if parents.is_empty() {
                    (0, 0)
                } else {
                    (parents.iter().map(|p| p.0).min().unwrap_or(0), parents.iter().map(|p| p.1).max().unwrap_or(0))
                };
                let (blo, bhi) = self.node(i, j).path_range();
                range.push((lo + blo, hi + bhi));
            }
        }
        range[r * r - 1]
    }
}

/// A grid stage of side `side`.
pub fn stage(p: &nn::Path<'_>, c_in: i64, c_out: i64, stride: i64, side: usize) -> GridStage {
    GridStage::new(p, c_in, c_out, stride, side)
}
