//! Command-line pieces shared by the worker's subcommands: device parsing, the flags of a
//! training job (turned into a `TrainConfig`) and the log format. The binary's whole command
//! line (`Cli`, its subcommands and the sweep participant's flags) is in `commands`.

mod commands;

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tch::Device;

use crate::models::Arch;
use crate::recipe::{ConvPrecision, MatmulPrecision, Precision, TrainConfig};

pub use commands::{AgentArgs, BenchArgs, Cli, Command, DataCommand, TrainArgs};

/// `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available) to a device; the error says why.
pub fn parse_device(s: &str) -> Result<Device, String> {
    let cuda = |i: usize| {
        let n = if tch::Cuda::is_available() { tch::Cuda::device_count() as usize } else { 0 };
        if i < n {
            Ok(Device::Cuda(i))
        } else {
            Err(format!("device {s}: CUDA device {i} not available ({n} visible)"))
        }
    };
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" => cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => Err(format!("device {s}: expected cpu, cuda, cuda:N or auto")),
        },
    }
}

/// How log lines are written on stderr (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines: timestamp, level, the job's fields, the message (coloured on a
    /// terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, `target`, and the fields of
    /// the event and of the span it is in (a job's `job`, `attempt` and `worker`) side by side.
    Json,
}

impl LogFormat {
    /// The flag's value, to pass on to child processes.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The flags that make up a job's config; defaults are the paper's recipe.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// Architecture.
    #[arg(long, value_enum)]
    pub arch: Arch,
    /// Depth, 6n + 2 (grid: n a perfect square).
    #[arg(long)]
    pub depth: u32,
    /// Seeds initialisation, data order and augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Epochs.
    #[arg(long, default_value_t = 300)]
    pub epochs: u32,
    /// Images per SGD step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: i64,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Plain momentum instead of Nesterov's.
    #[arg(long)]
    pub no_nesterov: bool,
    /// L2 weight decay on every parameter.
    #[arg(long, default_value_t = 4e-4)]
    pub weight_decay: f64,
    /// Fractions of the epochs where the LR is multiplied by --lr-gamma.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.75")]
    pub lr_milestones: Vec<f64>,
    /// LR factor at each milestone.
    #[arg(long, default_value_t = 0.1)]
    pub lr_gamma: f64,
    /// Epochs of linear LR warm-up.
    #[arg(long, default_value_t = 0)]
    pub warmup_epochs: u32,
    /// Zero padding of the random crop (0: no crop).
    #[arg(long, default_value_t = 4)]
    pub crop_padding: i64,
    /// No random horizontal flip.
    #[arg(long)]
    pub no_flip: bool,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_subset: Option<i64>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_subset: Option<i64>,
    /// Evaluation batch size (speed only).
    #[arg(long, default_value_t = 500)]
    pub eval_batch_size: i64,
    #[command(flatten)]
    pub precision: PrecisionArgs,
}

/// The fp32 precision of CUDA work (no effect on a CPU); defaults are PyTorch's.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct PrecisionArgs {
    /// cuDNN's fp32 convolutions: tf32 (TF32 tensor cores allowed; PyTorch's default) or ieee.
    #[arg(long, value_enum, default_value_t = ConvPrecision::Tf32)]
    pub conv_precision: ConvPrecision,
    /// fp32 matrix products: highest (IEEE; PyTorch's default) or high (TF32 allowed).
    #[arg(long, value_enum, default_value_t = MatmulPrecision::Highest)]
    pub matmul_precision: MatmulPrecision,
}

impl PrecisionArgs {
    /// The precision these flags describe.
    pub fn precision(self) -> Precision {
        Precision { conv: self.conv_precision, matmul: self.matmul_precision }
    }
}

impl JobArgs {
    /// The config these flags describe (not yet validated).
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            arch: self.arch,
            depth: self.depth,
            seed: self.seed,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: !self.no_nesterov,
            weight_decay: self.weight_decay,
            lr_milestones: self.lr_milestones.clone(),
            lr_gamma: self.lr_gamma,
            warmup_epochs: self.warmup_epochs,
            crop_padding: self.crop_padding,
            flip: !self.no_flip,
            train_subset: self.train_subset,
            test_subset: self.test_subset,
            eval_batch_size: self.eval_batch_size,
            // `worker train --deterministic` sets it; other commands train as fast as they can.
            deterministic: false,
            precision: self.precision.precision(),
        }
    }
}

/// Where a job's data comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct DataArgs {
    /// A folder with (or holding) `cifar-10-batches-bin/`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A synthetic set made on the spot (512 training and 256 test images from the seed).
    #[arg(long)]
    pub synthetic: bool,
}
