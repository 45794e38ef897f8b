//! The paper's three architectures over one CIFAR ResNet skeleton (depth L = 6n + 2: a stem,
//! three stages of n BasicBlocks at widths 16/32/64, stages 2 and 3 starting with stride 2,
//! global pooling and a linear classifier). They differ only in how a stage wires its blocks:
//! `vgg` chains them without shortcuts, `resnet` chains them with shortcuts, `grid` places them
//! on an R x R grid (n = R^2).

pub mod grid;
pub mod layers;
pub mod resnet;
pub mod vgg;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn;

pub use layers::{Cost, Shape};

/// Stage widths of the CIFAR ResNet family.
pub const WIDTHS: [i64; 3] = [16, 32, 64];
/// CIFAR-10 classes.
pub const CLASSES: i64 = 10;
/// The input every cost is counted for: one 3x32x32 image.
pub const INPUT: Shape = Shape { c: 3, h: 32, w: 32 };
/// The deepest network accepted (a 64 x 64 grid per stage, ~400M parameters); deeper requests
/// are almost certainly typos and would exhaust memory.
pub const MAX_DEPTH: u32 = 6 * 64 * 64 + 2;

/// How a stage wires its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Plain network: blocks in sequence, no shortcuts.
    Vgg,
    /// Sequential residual network.
    Resnet,
    /// Residual blocks on an R x R grid with bifurcation and averaging merges.
    Grid,
}

impl Arch {
    /// Every architecture, in the tables' order.
    pub const ALL: [Arch; 3] = [Arch::Vgg, Arch::Resnet, Arch::Grid];

    /// The lowercase name used on the command line, in sweeps and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Vgg => "vgg",
            Arch::Resnet => "resnet",
            Arch::Grid => "grid",
        }
    }

    /// Whether `depth` builds this architecture.
    pub fn is_valid_depth(self, depth: u32) -> bool {
        depth <= MAX_DEPTH && self.valid_depths().any(|d| d == depth)
    }

    /// The valid depths in increasing order, up to MAX_DEPTH.
    fn valid_depths(self) -> impl Iterator<Item = u32> {
        (1u32..)
            .map(move |k| match self {
                Arch::Vgg | Arch::Resnet => 6 * k + 2,
                Arch::Grid => 6 * k * k + 2,
            })
            .take_while(|&d| d <= MAX_DEPTH)
    }

    /// The valid depths just below and above `depth` (either may be missing).
    pub fn nearest_valid_depths(self, depth: u32) -> (Option<u32>, Option<u32>) {
        let below = self.valid_depths().take_while(|&d| d < depth).last();
        let above = self.valid_depths().find(|&d| d > depth);
        (below, above)
    }

    /// The rule valid depths follow, for error messages.
    fn depth_rule(self) -> &'static str {
        match self {
            Arch::Vgg | Arch::Resnet => "6n + 2 (8, 14, 20, 26, ...)",
            Arch::Grid => "6R^2 + 2 (8, 26, 56, 98, ..., 386, ..., 1538)",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        Arch::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| ModelError::UnknownArch(s.to_owned()))
    }
}

/// Why a model cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    /// The architecture name is not one of ours.
    #[error("unknown architecture '{0}': expected one of vgg, resnet, grid")]
    UnknownArch(String),
    /// The depth does not fit the architecture.
    #[error("depth {depth} is not valid for {arch}: {arch} depths are {rule}; nearest valid depths: {nearest}")]
    InvalidDepth {
        /// The architecture asked for.
        arch: Arch,
        /// The depth asked for.
        depth: u32,
        /// The rule, spelled out.
        rule: &'static str,
        /// The valid neighbours, "8 or 26".
        nearest: String,
    },
}

/// A validated (architecture, depth) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// How stages wire their blocks.
    pub arch: Arch,
    /// Layers with weights: 6n + 2.
    pub depth: u32,
}

impl ModelSpec {
    /// Checks that `depth` fits `arch`; the error names the nearest valid depths.
    pub fn new(arch: Arch, depth: u32) -> Result<Self, ModelError> {
        if arch.is_valid_depth(depth) {
            return Ok(ModelSpec { arch, depth });
        }
        let nearest = match arch.nearest_valid_depths(depth) {
            (Some(a), Some(b)) => format!("{a} or {b}"),
            (Some(a), None) | (None, Some(a)) => a.to_string(),
            (None, None) => "none".to_owned(),
        };
        Err(ModelError::InvalidDepth { arch, depth, rule: arch.depth_rule(), nearest })
    }

    /// Blocks per stage, n = (L - 2) / 6.
    pub fn blocks_per_stage(&self) -> usize {
        ((self.depth - 2) / 6) as usize
    }

    /// R for the grid (n = R^2); None for the sequential architectures.
    pub fn grid_side(&self) -> Option<usize> {
        (self.arch == Arch::Grid).then(|| (self.blocks_per_stage() as f64).sqrt().round() as usize)
    }
}

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
        Net { spec, stem, stages, head }
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
        let mut h = self.stem.forward_t(xs, train);
        for s in &self.stages {
            h = s.forward_t(&h, train);
        }
        self.head.forward(&h)
    }
}
