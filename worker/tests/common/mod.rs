//! Helpers shared by the worker's test binaries (each uses a part of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tch::Device;
use worker::models::Arch;
use worker::recipe::TrainConfig;
use worker::speed::Speed;
use worker::train::Options;

/// A fresh scratch directory for this process.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gridsweep-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The paper's recipe cut down for tests: `epochs` epochs, batch 32, lr 0.05.
pub fn small(arch: Arch, depth: u32, epochs: u32) -> TrainConfig {
    let mut cfg = TrainConfig::paper(arch, depth, 11);
    cfg.epochs = epochs;
    cfg.batch_size = 32;
    cfg.lr = 0.05;
    cfg
}

/// Run options on `device` with its default speed switches, not deterministic.
pub fn options(device: Device, checkpoint_dir: Option<&Path>, resume: bool, stop_after: Option<u32>) -> Options {
    Options {
        device,
        checkpoint_dir: checkpoint_dir.map(Path::to_owned),
        resume,
        grad_analysis: None,
        deterministic: false,
        stop_after,
        cancel: None,
        speed: Speed::default_for(device),
    }
}

/// The CPU, and the first GPU when one is visible.
pub fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        d.push(Device::Cuda(0));
    } else {
        eprintln!("note: CUDA not available, CUDA variants of these tests skipped");
    }
    d
}
