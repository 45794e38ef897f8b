//! The fp32 precision of a job's CUDA work: [`Precision`], the pair of libtorch's TF32
//! switches for convolutions ([`ConvPrecision`]) and matrix products ([`MatmulPrecision`]).

use serde::{Deserialize, Serialize};

/// The fp32 precision of CUDA work: what libtorch's TF32 switches are set to for a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precision {
    /// cuDNN's fp32 convolutions.
    #[serde(default)]
    pub conv: ConvPrecision,
    /// fp32 matrix products (cuBLAS: the classifier).
    #[serde(default)]
    pub matmul: MatmulPrecision,
}

impl Precision {
    /// `conv=tf32 matmul=highest`, for reports.
    pub fn describe(&self) -> String {
        format!("conv={} matmul={}", self.conv.name(), self.matmul.name())
    }
}

/// cuDNN's fp32 convolutions: TF32 tensor cores allowed, or IEEE fp32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ConvPrecision {
    /// TF32 allowed (10-bit mantissa products, fp32 sums): PyTorch's default.
    #[default]
    Tf32,
    /// IEEE fp32 throughout.
    Ieee,
}

impl ConvPrecision {
    /// `tf32` or `ieee`.
    pub fn name(self) -> &'static str {
        match self {
            ConvPrecision::Tf32 => "tf32",
            ConvPrecision::Ieee => "ieee",
        }
    }
}

/// fp32 matrix products, in PyTorch's `set_float32_matmul_precision` words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum MatmulPrecision {
    /// IEEE fp32: PyTorch's default.
    #[default]
    Highest,
    /// TF32 allowed.
    High,
}

impl MatmulPrecision {
    /// `highest` or `high`.
    pub fn name(self) -> &'static str {
        match self {
            MatmulPrecision::Highest => "highest",
            MatmulPrecision::High => "high",
        }
    }
}
