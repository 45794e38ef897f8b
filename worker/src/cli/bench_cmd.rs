//! `worker bench`: one model's training-step throughput, the optimizer alone, a comparison of
//! grid executions and layouts (`--compare`), or a device's calibration for a sweep
//! (`--calibrate`), over the library's `bench` and `calibrate`.

use std::path::Path;

use super::BenchArgs;
use super::error::{CommandError, bad_input, failed};
use super::output::print_json;
use super::parse_device;
use crate::calibrate::{self, CalibrateError, Settings};
use crate::layout::MemoryFormat;
use crate::models::ModelSpec;

/// Runs `bench` with `args`; bad flags are bad input, measurement failures are failures.
pub fn run(args: BenchArgs) -> Result<(), CommandError> {
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
        return calibrate_to(&what, batch, eval_batch, settings, &out);
    }
    let (steps, warmup) = (steps.unwrap_or(20), warmup.unwrap_or(3));
    if batch < 2 || steps == 0 {
        return Err(bad_input("--batch must be at least 2 and --steps at least 1"));
    }
    let depth = depth.ok_or_else(|| bad_input("--depth is required"))?;
    match arch {
        Some(arch) if optimizer => {
            let spec = ModelSpec::new(arch, depth).map_err(bad_input)?;
            print_json(&crate::bench::optimizer(spec, steps, device))
        }
        Some(arch) if !compare => {
            let spec = ModelSpec::new(arch, depth).map_err(bad_input)?;
            let (speed, precision) = (speed.resolve(device), precision.precision());
            print_json(&crate::bench::run(spec, batch, steps, warmup, device, speed, precision))
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
            let r = crate::bench::compare(depth, batch, steps, warmup, device, &formats, precision);
            print_json(&r.map_err(bad_input)?)
        }
    }
}

/// `bench --calibrate`: measures the models of `what` (a sweep file or a comma list), logging a
/// line per model as it goes, and writes the calibration to `out`.
fn calibrate_to(what: &str, batch: i64, eval_batch: i64, settings: Settings, out: &Path) -> Result<(), CommandError> {
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
        CalibrateError::Measurement { .. } | CalibrateError::Calibration(_) => failed(e),
        other => bad_input(other),
    })?;
    tracing::info!("{}: {} entries ({}, {})", out.display(), cal.entries.len(), cal.device_name, cal.libtorch_version);
    Ok(())
}
