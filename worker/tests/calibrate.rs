//! `worker bench --calibrate` on the CPU with depth-8 models: the file it writes parses back as
//! the proto's `Calibration` with one entry per model (and batch size) and positive rates, from a
//! model list and from a sweep file; bad lists exit with status 2.

mod common;

use std::process::{Command, Output};

use gridsweep_proto::calibration::Calibration;
use gridsweep_proto::job::Arch;

fn worker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_worker")).args(args).output().unwrap()
}

/// The quickest measurement: 1 warm-up and 2 timed steps, 1 evaluation batch, 1 thread.
const QUICK: [&str; 10] = ["--steps", "2", "--warmup", "1", "--eval-batches", "1", "--device", "cpu", "--threads", "1"];

fn calibrate(what: &str, extra: &[&str], out: &std::path::Path) -> Output {
    let mut args = vec!["bench", "--calibrate", what, "--out", out.to_str().unwrap()];
    args.extend_from_slice(&QUICK);
    args.extend_from_slice(extra);
    worker(&args)
}

fn positive(cal: &Calibration) {
    for e in &cal.entries {
        assert!(e.train_images_per_s > 0.0 && e.train_images_per_s.is_finite(), "{e:?}");
        assert!(e.eval_images_per_s > 0.0 && e.eval_images_per_s.is_finite(), "{e:?}");
    }
}

#[test]
fn a_model_list_round_trips_through_the_file() {
    let dir = common::tmp("calibrate-list");
    let file = dir.join("cal.json");
    let out = calibrate("resnet-8, grid-8,vgg-8", &["--batch", "8", "--eval-batch", "16"], &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.contains(" img/s")).count(), 3, "a line per model: {stderr}");
    let cal = Calibration::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let models: Vec<(Arch, u32, i64, i64)> =
        cal.entries.iter().map(|e| (e.arch, e.depth, e.batch_size, e.eval_batch_size)).collect();
    assert_eq!(models, [(Arch::Resnet, 8, 8, 16), (Arch::Grid, 8, 8, 16), (Arch::Vgg, 8, 8, 16)]);
    positive(&cal);
    assert_eq!((cal.device.as_str(), cal.steps, cal.warmup_steps, cal.eval_batches), ("cpu", 2, 1, 1));
    assert_eq!((cal.threads, cal.grid_exec.as_str(), cal.memory_format.as_str()), (1, "sequential", "contiguous"));
    assert!(cal.libtorch_version.starts_with("2.11"), "{}", cal.libtorch_version);
    assert!(cal.created_unix_s > 1_700_000_000);
    assert!(!dir.join("cal.json.tmp").exists());
}

#[test]
fn a_sweep_gives_an_entry_per_model_and_batch_size() {
    let dir = common::tmp("calibrate-sweep");
    let sweep = dir.join("tiny.yaml");
    std::fs::write(
        &sweep,
        "name: tiny\ndata: {kind: synthetic, train: 64, test: 32, seed: 0}\n\
         train: {epochs: 1, eval_batch_size: 16}\n\
         axes:\n  arch: [resnet, grid]\n  depth: [8]\n  seed: [1, 2]\n  batch_size: [4, 8]\n",
    )
    .unwrap();
    let file = dir.join("cal.json");
    let out = calibrate(sweep.to_str().unwrap(), &[], &file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cal = Calibration::load(&file).unwrap_or_else(|e| panic!("{e}"));
    // 2 archs x 2 batch sizes; the seeds do not change the speed.
    let models: Vec<(Arch, i64)> = cal.entries.iter().map(|e| (e.arch, e.batch_size)).collect();
    assert_eq!(models, [(Arch::Resnet, 4), (Arch::Resnet, 8), (Arch::Grid, 4), (Arch::Grid, 8)]);
    assert!(cal.entries.iter().all(|e| e.depth == 8 && e.eval_batch_size == 16));
    positive(&cal);
}

#[test]
fn bad_lists_exit_2() {
    let dir = common::tmp("calibrate-bad");
    let file = dir.join("cal.json");
    let cases: &[(&str, &str)] = &[
        ("resnet-25", "nearest valid depths: 20 or 26"),
        ("resnet26", "expected ARCH-DEPTH"),
        ("densenet-26", "unknown architecture 'densenet'"),
        (",", "expected ARCH-DEPTH"),
        ("/nonexistent/sweep.yaml", "/nonexistent/sweep.yaml: cannot read the sweep file"),
    ];
    for (what, message) in cases {
        let out = calibrate(what, &[], &file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.contains(message), "{what}: expected {message:?} in {stderr}");
        assert!(!file.exists(), "{what}: no file written");
    }
    let out = worker(&["bench", "--calibrate", "resnet-8", "--device", "cpu"]);
    assert_eq!(out.status.code(), Some(2), "--out is required");
}
