//! Workers attached from "another machine": no local workers, a worker process started by hand
//! with `--slots 2`, and a worker without data that streams CIFAR-10 from the coordinator.

use std::path::Path;
use std::process::{Command, Stdio};

use gridsweep_e2e::{Proc, bin, scratch, start_coordinator, tiny_sweep};

#[test]
fn a_worker_with_two_slots_runs_two_jobs_at_once() {
    let dir = scratch("slots");
    let sweep = tiny_sweep(&dir, "slots", "resnet, grid", "1, 2");
    let (state, out) = (dir.join("state"), dir.join("out"));
    let (mut coordinator, url) = start_coordinator(
        &sweep,
        &["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    let worker = Command::new(bin("worker"))
        .args(["--coordinator", &url, "--device", "cpu", "--threads", "1", "--slots", "2", "--work-dir"])
        .arg(dir.join("w"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut worker = Proc { child: worker };
    assert!(coordinator.child.wait().unwrap().success());
    assert!(worker.child.wait().unwrap().success(), "the slots exit 0 when the sweep is finished");
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(runs.as_bytes());
    let k = reader.headers().unwrap().iter().position(|h| h == "worker").unwrap();
    let workers: std::collections::BTreeSet<String> = reader.records().map(|r| r.unwrap()[k].to_owned()).collect();
    assert_eq!(workers.len(), 2, "two slots, two worker ids: {workers:?}");
}

#[test]
fn a_worker_without_data_streams_cifar10_from_the_coordinator() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    if !data.join("cifar-10-batches-bin/test_batch.bin").exists() {
        eprintln!(
            "SKIPPED a_worker_without_data_streams_cifar10_from_the_coordinator: no CIFAR-10 in {}",
            data.display()
        );
        return;
    }
    let dir = scratch("fetch");
    let sweep = dir.join("real.yaml");
    std::fs::write(
        &sweep,
        "name: real\ndata: {kind: cifar10}\ntrain: {epochs: 1, batch_size: 50, train_subset: 200, test_subset: 100}\n\
         axes: {arch: [grid], depth: [8], seed: [1]}\n",
    )
    .unwrap();
    let (state, out) = (dir.join("state"), dir.join("out"));
    let (mut coordinator, url) = start_coordinator(
        &sweep,
        &[
            "--local-workers",
            "0",
            "--state",
            state.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    );
    let work = dir.join("w");
    let worker = Command::new(bin("worker"))
        .args(["--coordinator", &url, "--device", "cpu", "--work-dir"])
        .arg(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _worker = Proc { child: worker };
    assert!(coordinator.child.wait().unwrap().success());
    // The worker's own copy, md5-verified against the official sums before use.
    let fetched = work.join("cifar10/cifar-10-batches-bin");
    for f in ["data_batch_1.bin", "test_batch.bin"] {
        assert_eq!(std::fs::metadata(fetched.join(f)).unwrap().len(), 30_730_000, "{f}");
    }
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert!(runs.contains(",completed,"), "{runs}");
    // 180 MB of CIFAR-10 copies: not left behind in the temp dir.
    let _ = std::fs::remove_dir_all(&dir);
}
