//! The architectures and the depths each can be built at: [`Arch`], the validated
//! (architecture, depth) pair [`ModelSpec`], and [`ModelError`] when a pair does not fit.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The deepest network accepted (a 64 x 64 grid per stage, ~400M parameters); deeper requests
/// are almost certainly typos and would exhaust memory.
pub const MAX_DEPTH: u32 = 6 * 64 * 64 + 2;

/// How a stage wires its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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
