//! `worker`: the command-line entry point. Parses flags (`cli`), sets up logging and calls the
//! library; bad input exits with status 2 and a message, never a panic. Results (JSON, reports)
//! go to stdout; progress and diagnostics are log lines on stderr (`--log-format`).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use worker::agent::{AgentConfig, AgentError};
use worker::calibrate::{self, Settings};
use worker::cli::{AgentArgs, BenchArgs, Cli, Command, DataCommand, LogFormat, TrainArgs, parse_device};
use worker::data::{self, fetch};
use worker::devices::DeviceReport;
use worker::gradstats::GradConfig;
use worker::inspect::Inspection;
use worker::layout::MemoryFormat;
use worker::models::ModelSpec;
use worker::slots::{EXIT_DEVICE_LOST, STOP_GRACE, Slots, wait_for_signal};
use worker::train::{self, Options};

/// Exit status of a worker whose token the coordinator refused (sysexits' EX_NOPERM): not a
/// transient fault, so nothing restarts it.
const EXIT_BAD_TOKEN: u8 = 77;

/// A failure and its exit status: 2 for bad input, 1 for the rest.
struct Failure(u8, String);

fn bad_input(e: impl std::fmt::Display) -> Failure {
    Failure(2, e.to_string())
}

fn main() -> ExitCode {
    worker::alloc::tune_for_training();
    worker::context::prepare_cublas_determinism();
    let cli = Cli::parse_checked();
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
        Command::Bench(args) => bench_cmd(*args),
    }
}

/// `bench`: one model's throughput, the optimizer alone, a comparison of executions and
/// layouts, or (`--calibrate`) a device's calibration.
fn bench_cmd(args: BenchArgs) -> Result<(), Failure> {
    let BenchArgs {
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
    } = args;
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
        return slots_cmd(&args, log_format);
    }
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "host".to_owned(), |h| h.trim().to_owned());
    let cfg = AgentConfig {
        coordinator: url,
        device,
        data_dir: args.data.clone(),
        work_dir: args.work_dir.clone(),
        name: format!("{host}/pid {}", std::process::id()),
        token: args.client.token().map_err(bad_input)?,
        speed: args.speed.resolve(device),
        tls: args.client.tls().map_err(bad_input)?,
    };
    run_agent(cfg)
}

/// Runs the sweep participant until the sweep finishes or SIGTERM/SIGINT; its errors become exit
/// statuses (`EXIT_DEVICE_LOST`, `EXIT_BAD_TOKEN`, 1).
fn run_agent(cfg: AgentConfig) -> Result<(), Failure> {
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
            AgentError::DeviceLost(_) => Failure(EXIT_DEVICE_LOST, e.to_string()),
            AgentError::Unauthenticated { .. } => Failure(EXIT_BAD_TOKEN, e.to_string()),
            _ => Failure(1, e.to_string()),
        })
    })
}

/// `--slots K`: K child workers of this binary with one slot each, under `worker::slots`.
fn slots_cmd(args: &AgentArgs, log_format: LogFormat) -> Result<(), Failure> {
    let program = std::env::current_exe().map_err(|e| Failure(1, format!("locating this binary: {e}")))?;
    let slot_args = |k: u32| {
        let mut a: Vec<OsString> = vec!["--log-format".into(), log_format.name().into()];
        a.extend(["--coordinator".into(), args.coordinator.as_deref().unwrap_or_default().into()]);
        a.extend(["--device".into(), args.device.clone().into()]);
        a.extend(["--work-dir".into(), args.work_dir.join(format!("slot-{k}")).into()]);
        if let Some(d) = &args.data {
            a.extend(["--data".into(), d.clone().into()]);
        }
        if let Some(t) = args.threads {
            a.extend(["--threads".into(), t.to_string().into()]);
        }
        a.extend(args.client.to_args());
        a.extend(args.speed.to_args().into_iter().map(OsString::from));
        a
    };
    let slots = Slots { program, args: (0..args.slots).map(slot_args).collect(), grace: STOP_GRACE };
    slots.run().map_err(|e| Failure(1, e.to_string()))
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
