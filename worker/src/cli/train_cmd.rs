//! `worker train`: one job from flags, on a data set from `--data` or made on the spot
//! (`--synthetic`), with progress lines on stderr and the JSON result on stdout or in `--out`.

use std::io::IsTerminal;

use super::error::{CommandError, bad_input, failed};
use super::output::print_json;
use super::{LogFormat, TrainArgs, parse_device};
use crate::data;
use crate::gradstats::GradConfig;
use crate::recipe::TrainConfig;
use crate::train::{self, Options, TrainError};

/// Trains the job `args` describe; bad flags or data are bad input, libtorch failures are
/// failures.
pub fn run(args: TrainArgs, log_format: LogFormat) -> Result<(), CommandError> {
    let cfg = TrainConfig { deterministic: args.deterministic, ..args.job.config() };
    cfg.validate().map_err(bad_input)?;
    let device = parse_device(&args.device).map_err(bad_input)?;
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let dir = match &args.data.data {
        Some(d) => d.clone(),
        None => {
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
        TrainError::Torch(t) => failed(format!("libtorch: {t}")),
        other => bad_input(other),
    })?;
    let accuracy = result.final_test_acc.map_or_else(|| "-".to_owned(), |a| format!("{a:.2}%"));
    tracing::info!("status: {:?}, final test accuracy {accuracy}", result.status);
    match &args.out {
        Some(path) => {
            let json = serde_json::to_string_pretty(&result).map_err(failed)?;
            std::fs::write(path, json + "\n").map_err(|e| failed(format!("{}: {e}", path.display())))
        }
        None => print_json(&result),
    }
}
