//! The paper's three architectures over one CIFAR ResNet skeleton (depth L = 6n + 2: a stem,
//! three stages of n BasicBlocks at widths 16/32/64, stages 2 and 3 starting with stride 2,
//! global pooling and a linear classifier). They differ only in how a stage wires its blocks:
//! `vgg` chains them without shortcuts, `resnet` chains them with shortcuts, `grid` places them
//! on an R x R grid (n = R^2).

pub mod grid;
pub mod layers;
pub mod resnet;
pub mod vgg;
pub mod wavefront;

use tch::Tensor;
use tch::nn;

use crate::layout::{MemoryFormat, Relayout};

pub use gridsweep_proto::job::{Arch, MAX_DEPTH, ModelError, ModelSpec};
pub use layers::{Cost, Shape};
pub use wavefront::GridExec;

/// Stage widths of the CIFAR ResNet family.
pub const WIDTHS: [i64; 3] = [16, 32, 64];
/// CIFAR-10 classes.
pub const CLASSES: i64 = 10;
/// The input every cost is counted for: one 3x32x32 image.
pub const INPUT: Shape = Shape { c: 3, h: 32, w: 32 };
/// Where a block sits, for per-block gradient statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockPosition {
    /// Parameter-name prefix: `stage2.block_5` or `stage2.node_1_3`.
    pub name: String,
    /// 1-based stage.
    pub stage: u32,
    /// Grid row, or index in a chain.
    pub row: u32,
    /// Grid column, 0 in a chain.
    pub col: u32,
    /// Blocks on the longest path from the input up to and including this one.
    pub distance: u32,
}

/// One stage, wired by its architecture.
#[derive(Debug)]
pub enum Stage {
    /// vgg or resnet.
    Sequential(resnet::SequentialStage),
    /// grid.
    Grid(grid::GridStage),
}

impl Stage {
    /// The stage's output.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Stage::Sequential(s) => s.forward_t(x, train),
            Stage::Grid(g) => g.forward_t(x, train),
        }
    }

    /// The stage's output, a grid stage executed as `exec` says.
    pub fn forward_exec(&self, x: &Tensor, train: bool, exec: GridExec) -> Tensor {
        match (self, exec) {
            (Stage::Grid(g), GridExec::Wavefront) => wavefront::forward(g, x, train),
            _ => self.forward_t(x, train),
        }
    }

    /// Output shape and cost.
    pub fn cost(&self, input: Shape) -> (Shape, Cost) {
        match self {
            Stage::Sequential(s) => s.cost(input),
            Stage::Grid(g) => g.cost(input),
        }
    }

    /// Fewest and most residual branches on a path through the stage.
    pub fn path_range(&self) -> (u64, u64) {
        match self {
            Stage::Sequential(s) => s.path_range(),
            Stage::Grid(g) => g.path_range(),
        }
    }

    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        match self {
            Stage::Sequential(s) => s.blocks.len(),
            Stage::Grid(g) => g.nodes.len(),
        }
    }
}

/// A whole network. Parameter names: `stem.{conv,bn}.*`, `stage{1,2,3}.block_{k}.*` (vgg,
/// resnet) or `stage{1,2,3}.node_{i}_{j}.*` (grid), each block with `conv1`, `bn1`, `conv2`,
/// `bn2` and possibly `shortcut.{conv,bn}`, and `fc.{weight,bias}`.
#[derive(Debug)]
pub struct Net {
    /// What was built.
    pub spec: ModelSpec,
    /// conv-BN-ReLU on the image.
    pub stem: layers::Stem,
    /// The three stages.
    pub stages: Vec<Stage>,
    /// Pool and classifier.
    pub head: layers::Head,
    /// How grid stages run (no effect on vgg and resnet); sequential unless set.
    pub grid_exec: GridExec,
    /// Layout of the input batch and the convolution weights; contiguous unless set.
    pub memory_format: MemoryFormat,
}

impl Net {
    /// Builds `spec` with its variables under `p` (normally `vs.root()`).
    pub fn new(p: &nn::Path<'_>, spec: ModelSpec) -> Self {
        let n = spec.blocks_per_stage();
        let stem = layers::Stem::new(&(p / "stem"), WIDTHS[0]);
        let mut c_in = WIDTHS[0];
        let stages = WIDTHS
            .iter()
            .enumerate()
            .map(|(k, &c_out)| {
                let sp = p / format!("stage{}", k + 1);
                let stride = if k == 0 { 1 } else { 2 };
                let stage = match (spec.arch, spec.grid_side()) {
                    (Arch::Vgg, _) => Stage::Sequential(vgg::stage(&sp, c_in, c_out, stride, n)),
                    (Arch::Resnet, _) => Stage::Sequential(resnet::stage(&sp, c_in, c_out, stride, n)),
                    (Arch::Grid, side) => Stage::Grid(grid::stage(&sp, c_in, c_out, stride, side.unwrap_or(1))),
                };
                c_in = c_out;
                stage
            })
            .collect();
        let head = layers::Head::new(&(p / "fc"), c_in, CLASSES);
        Net { spec, stem, stages, head, grid_exec: GridExec::Sequential, memory_format: MemoryFormat::Contiguous }
    }

    /// Chooses how grid stages run; parameters and results do not change. The wavefront packs
    /// each diagonal's running statistics into one buffer (see `wavefront`).
    pub fn set_grid_exec(&mut self, exec: GridExec) {
        if exec == GridExec::Wavefront {
            for s in &self.stages {
                if let Stage::Grid(g) = s {
                    wavefront::pack_running_stats(g);
                }
            }
        }
        self.grid_exec = exec;
    }

    /// Lays out this net's convolution weights (the 4-D variables of `vs`, the store it was
    /// built in) and, at every forward, its input as `format`; parameters and results do not
    /// change beyond summation order.
    pub fn set_memory_format(&mut self, vs: &nn::VarStore, format: MemoryFormat) {
        format.apply_to_vars(vs);
        self.memory_format = format;
    }

    /// Parameters and FLOPs of one 3x32x32 image, summed from what each layer reports.
    pub fn cost(&self) -> Cost {
        let (mut s, mut total) = self.stem.cost(INPUT);
        for st in &self.stages {
            let (out, c) = st.cost(s);
            s = out;
            total += c;
        }
        total + self.head.cost(s)
    }

    /// Number of residual blocks.
    pub fn blocks(&self) -> usize {
        self.stages.iter().map(Stage::blocks).sum()
    }

    /// Every block with its position, stage by stage.
    pub fn block_positions(&self) -> Vec<BlockPosition> {
        let mut out = Vec::new();
        let mut offset = 0u32;
        for (s, st) in self.stages.iter().enumerate() {
            let stage = s as u32 + 1;
            match st {
                Stage::Sequential(q) => {
                    for k in 0..q.blocks.len() as u32 {
                        let name = format!("stage{stage}.block_{k}");
                        out.push(BlockPosition { name, stage, row: k, col: 0, distance: offset + k + 1 });
                    }
                    offset += q.blocks.len() as u32;
                }
                Stage::Grid(g) => {
                    let r = g.side as u32;
                    for i in 0..r {
                        for j in 0..r {
                            let name = format!("stage{stage}.node_{i}_{j}");
                            out.push(BlockPosition { name, stage, row: i, col: j, distance: offset + i + j + 1 });
                        }
                    }
                    offset += 2 * r - 1;
                }
            }
        }
        out
    }

    /// The fewest and most residual branches (blocks' bodies) on an input-to-output path.
    pub fn path_range(&self) -> (u64, u64) {
        self.stages.iter().map(Stage::path_range).fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
    }
}

impl nn::ModuleT for Net {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut h = self.stem.forward_t(&self.memory_format.apply(xs), train);
        for s in &self.stages {
            h = s.forward_exec(&h, train, self.grid_exec);
        }
        self.head.forward(&h)
    }
}
