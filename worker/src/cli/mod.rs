//! The `worker` binary's command line and command bodies. Here: pieces shared by the
//! subcommands (device parsing, the flags of a training job turned into a `TrainConfig`, the log
//! format). The whole command line (`Cli`, its subcommands and the sweep participant's flags) is
//! in `commands`; each command's body in its own module (`agent_cmd`, `train_cmd`, `bench_cmd`,
//! `tools_cmd`), failing with a `CommandError` (`error`) and printing through `output`.
//!
//! A job's flags default to the recipe's defaults (`gridsweep_proto::job::defaults`, the ones a
//! sweep file's job gets), read from there rather than repeated; a test holds them equal.

pub mod agent_cmd;
pub mod bench_cmd;
mod commands;
mod error;
pub mod output;
pub mod tools_cmd;
pub mod train_cmd;

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gridsweep_proto::job::defaults;
use tch::Device;

use crate::models::Arch;
use crate::recipe::{ConvPrecision, MatmulPrecision, Precision, TrainConfig};

pub use commands::{AgentArgs, BenchArgs, Cli, Command, DataCommand, TrainArgs};
pub use error::{CommandError, EXIT_BAD_TOKEN, bad_input, failed};

/// `worker train`'s seed when `--seed` is not given. The recipe has no default seed (a sweep
/// names its seeds), so this one is the command line's own.
pub const DEFAULT_SEED: u64 = 42;

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

/// The flags that make up a job's config; defaults are the recipe's (`defaults`), as a sweep's
/// job gets them.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// Architecture.
    #[arg(long, value_enum)]
    pub arch: Arch,
    /// Depth, 6n + 2 (grid: n a perfect square).
    #[arg(long)]
    pub depth: u32,
    /// Seeds initialisation, data order and augmentation.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Epochs.
    #[arg(long, default_value_t = defaults::epochs())]
    pub epochs: u32,
    /// Images per SGD step.
    #[arg(long, default_value_t = defaults::batch_size())]
    pub batch_size: i64,
    /// Initial learning rate.
    #[arg(long, default_value_t = defaults::lr())]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = defaults::momentum())]
    pub momentum: f64,
    /// Plain momentum instead of Nesterov's (the recipe's default, `defaults::yes`).
    #[arg(long)]
    pub no_nesterov: bool,
    /// L2 weight decay on every parameter.
    #[arg(long, default_value_t = defaults::weight_decay())]
    pub weight_decay: f64,
    /// Fractions of the epochs where the LR is multiplied by --lr-gamma.
    #[arg(long, value_delimiter = ',', default_values_t = defaults::milestones())]
    pub lr_milestones: Vec<f64>,
    /// LR factor at each milestone.
    #[arg(long, default_value_t = defaults::gamma())]
    pub lr_gamma: f64,
    /// Epochs of linear LR warm-up (the recipe's default: none).
    #[arg(long, default_value_t)]
    pub warmup_epochs: u32,
    /// Zero padding of the random crop (0: no crop).
    #[arg(long, default_value_t = defaults::crop_padding())]
    pub crop_padding: i64,
    /// No random horizontal flip (flipping is the recipe's default, `defaults::yes`).
    #[arg(long)]
    pub no_flip: bool,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_subset: Option<i64>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_subset: Option<i64>,
    /// Evaluation batch size (speed only).
    #[arg(long, default_value_t = defaults::eval_batch_size())]
    pub eval_batch_size: i64,
    #[command(flatten)]
    pub precision: PrecisionArgs,
}

/// The fp32 precision of CUDA work (no effect on a CPU); defaults are PyTorch's.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct PrecisionArgs {
    /// cuDNN's fp32 convolutions: tf32 (TF32 tensor cores allowed; PyTorch's default) or ieee.
    #[arg(long, value_enum, default_value_t = Precision::default().conv)]
    pub conv_precision: ConvPrecision,
    /// fp32 matrix products: highest (IEEE; PyTorch's default) or high (TF32 allowed).
    #[arg(long, value_enum, default_value_t = Precision::default().matmul)]
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `worker train` with only what has no default: the job's flags at their defaults.
    fn parsed(extra: &[&str]) -> TrainArgs {
        let args = ["worker", "train", "--arch", "grid", "--depth", "26", "--synthetic"];
        match Cli::try_parse_from(args.iter().chain(extra)).unwrap().command {
            Some(Command::Train(t)) => *t,
            other => panic!("not a train command: {other:?}"),
        }
    }

    #[test]
    fn the_job_flags_default_to_the_recipe() {
        let cli = parsed(&[]).job.config();
        // A sweep's job with nothing but its model and seed: every other field from serde's
        // defaults, which are `defaults`'.
        let json = format!(r#"{{"arch": "grid", "depth": 26, "seed": {DEFAULT_SEED}}}"#);
        let recipe: TrainConfig = serde_json::from_str(&json).unwrap();
        let fields = |c: &TrainConfig| match serde_json::to_value(c).unwrap() {
            serde_json::Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        };
        let (got, want) = (fields(&cli), fields(&recipe));
        assert_eq!(got.len(), want.len());
        for (name, value) in &want {
            assert_eq!(got.get(name), Some(value), "--{} differs from the recipe's default", name.replace('_', "-"));
        }
        assert_eq!(cli, recipe);
        assert_eq!(cli, TrainConfig::paper(Arch::Grid, 26, DEFAULT_SEED));
        // A flag given still wins.
        let changed = parsed(&["--lr", "0.05", "--lr-milestones", "0.3", "--no-flip"]).job.config();
        assert_eq!((changed.lr, changed.lr_milestones, changed.flip), (0.05, vec![0.3], false));
    }

    #[test]
    fn the_analysis_batch_defaults_to_the_recipe() {
        assert_eq!(parsed(&[]).grad_batch_size, defaults::grad_batch_size());
    }
}
