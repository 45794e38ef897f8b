//! The small subcommands: `devices` (the probe), `inspect` (a model's size), `data fetch` and
//! `data synth`.

use std::path::Path;

use super::error::{CommandError, bad_input};
use super::output::print_report;
use crate::data::{fetch, synth};
use crate::devices::DeviceReport;
use crate::inspect::Inspection;
use crate::models::{Arch, ModelSpec};

/// `devices`: libtorch, CUDA and each device, as text or JSON.
pub fn devices(json: bool) -> Result<(), CommandError> {
    let report = DeviceReport::probe();
    print_report(json, &report, &report.to_text())
}

/// `inspect`: parameters, FLOPs, blocks and paths of one model, as text or JSON.
pub fn inspect(arch: Arch, depth: u32, json: bool) -> Result<(), CommandError> {
    let report = Inspection::build(ModelSpec::new(arch, depth).map_err(bad_input)?);
    print_report(json, &report, &report.to_text())
}

/// `data fetch`: the real CIFAR-10 into `dest`, progress in the log.
pub fn fetch(dest: &Path, source: fetch::Source) -> Result<(), CommandError> {
    fetch::fetch(dest, source, &mut |line| tracing::info!("{line}")).map(drop).map_err(bad_input)
}

/// `data synth`: a synthetic set of `train` and `test` images into `dest`.
pub fn synth(dest: &Path, train: usize, test: usize, seed: u64) -> Result<(), CommandError> {
    let dir = synth::write(dest, train, test, seed).map_err(bad_input)?;
    tracing::info!("{}: synthetic set, {train} training and {test} test images", dir.display());
    Ok(())
}
