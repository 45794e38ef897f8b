//! A libtorch error raised inside the training step, end to end: a real coordinator and one real
//! worker process, whose test-only switch (`GRIDSWEEP_FAULT_INJECT`) makes one job's step call
//! tch with an impossible shape, which panics with libtorch's error as a real device error does.
//! The job fails as its own fault with libtorch's message, and the next job trains to completion
//! in the same worker process. And a real allocation failure: a worker whose address space is
//! capped (`ulimit -v`) runs out of memory on a big batch, reports `out-of-memory` (no attempt
//! used), and trains the next job.

use std::time::{Duration, Instant};

use gridsweep_e2e::{Proc, scratch, start_coordinator, worker_command};
use gridsweep_proto::v1::coordinator_client::CoordinatorClient;
use gridsweep_proto::v1::{FailureKind, GetStatusRequest, JobState};

#[tokio::test]
async fn a_libtorch_error_in_the_step_fails_its_job_and_the_next_job_trains_in_the_same_process() {
    let dir = scratch("torch-fault");
    let sweep = dir.join("fault.yaml");
    std::fs::write(
        &sweep,
        "name: fault\ndata: {kind: synthetic, train: 160, test: 80, seed: 1}\n\
         train: {epochs: 2, batch_size: 32}\naxes: {arch: [resnet], depth: [8], seed: [1, 2]}\n\
         retry: {max_attempts: 1}\nlease_ttl_s: 30\n",
    )
    .unwrap();
    let (state, out) = (dir.join("state"), dir.join("out"));
    let (mut coordinator, url) = start_coordinator(
        &sweep,
        &["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    let log_path = dir.join("worker.log");
    let child = worker_command(&url, &dir.join("worker"), &log_path, &[])
        // The first job to reach its second epoch fails there (once in this process).
        .env("GRIDSWEEP_FAULT_INJECT", "step-shape:2")
        .spawn()
        .unwrap();
    let mut worker = Proc { child };
    let ended = tokio::task::spawn_blocking(move || {
        let status = coordinator.child.wait();
        (status, coordinator)
    });
    let (status, _coordinator) = ended.await.unwrap();
    status.unwrap();
    let worker_status = tokio::task::spawn_blocking(move || {
        let s = worker.child.wait();
        (s, worker)
    });
    let (worker_status, _worker) = worker_status.await.unwrap();
    let worker_log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        worker_status.unwrap().success(),
        "the worker survived the fault and left when the sweep ended:\n{worker_log}"
    );

    let text = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2, "{text}");
    let failed: Vec<_> = records.iter().filter(|r| r["state"] == "failed").collect();
    let completed: Vec<_> = records.iter().filter(|r| r["state"] == "completed").collect();
    assert_eq!((failed.len(), completed.len()), (1, 1), "one job faulted, the other trained:\n{text}");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("mat1 and mat2 shapes cannot be multiplied"), "libtorch's message: {error}");
    assert!(!error.contains("panicked") && !error.contains("unwrap"), "classified, not a raw panic: {error}");
    assert_eq!(failed[0]["error_kind"], "job", "the job's own failure: {text}");
    // The panic's log line is libtorch's message, without the C++ frame list it carries.
    assert!(worker_log.contains("libtorch error: mat1 and mat2 shapes cannot be multiplied"), "{worker_log}");
    assert!(!worker_log.contains("frame #") && !worker_log.contains("Exception raised from"), "{worker_log}");
    // The faulted job's first epoch, then both epochs of the other.
    assert_eq!(worker_log.matches("/2  lr ").count(), 3, "{worker_log}");
    let result = &completed[0]["result"];
    assert_eq!(result["epochs"].as_array().unwrap().len(), 2, "{text}");
    assert!(result["resumed_from_epoch"].is_null(), "trained from the start: {text}");
    // Both jobs ran on the one registration of the one worker process started above.
    assert_eq!(failed[0]["worker"], completed[0]["worker"], "{text}");
    assert_eq!(worker_log.matches("registered with").count(), 1, "{worker_log}");
}

#[tokio::test]
async fn a_real_allocation_failure_is_out_of_memory_and_the_next_job_trains_in_the_same_process() {
    let dir = scratch("cpu-oom");
    let sweep = dir.join("oom.yaml");
    // resnet-56 at a batch of 1024 needs well over 6 GiB of activations; resnet-8 at 32 does not.
    std::fs::write(
        &sweep,
        "name: oom\ndata: {kind: synthetic, train: 1024, test: 64, seed: 3}\n\
         train: {epochs: 1, batch_size: 32}\naxes: {arch: [resnet], depth: [8], seed: [1]}\n\
         include:\n  - {arch: resnet, depth: 56, seed: 1, batch_size: 1024}\n\
         retry: {max_attempts: 1}\nlease_ttl_s: 30\n",
    )
    .unwrap();
    let (state, out) = (dir.join("state"), dir.join("out"));
    let (_coordinator, url) = start_coordinator(
        &sweep,
        &["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    let log_path = dir.join("worker.log");
    // 6 GiB of address space: libtorch and the small job fit, the big batch does not.
    let capped = ["sh", "-c", "ulimit -v 6291456 && exec \"$0\" \"$@\""];
    let child = worker_command(&url, &dir.join("worker"), &log_path, &capped).spawn().unwrap();
    let mut worker = Proc { child };
    let mut client = CoordinatorClient::connect(url.clone()).await.unwrap();
    let started = Instant::now();
    let jobs = loop {
        let jobs = client.get_status(GetStatusRequest {}).await.unwrap().into_inner().jobs;
        let big = jobs.iter().find(|j| j.depth == 56).unwrap();
        let small = jobs.iter().find(|j| j.depth == 8).unwrap();
        if big.error_kind() == FailureKind::OutOfMemory && small.state() == JobState::Completed {
            break jobs;
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        assert!(worker.child.try_wait().unwrap().is_none(), "the worker exited:\n{log}");
        assert!(started.elapsed() < Duration::from_secs(240), "timed out: {jobs:?}\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let big = jobs.iter().find(|j| j.depth == 56).unwrap();
    assert!(big.error.contains("DefaultCPUAllocator: can't allocate memory"), "libtorch's message: {}", big.error);
    assert!(big.error.starts_with("out of memory on cpu ("), "{}", big.error);
    // Waiting for a worker with more memory, its attempt not used.
    assert_eq!((big.state(), big.failures), (JobState::Pending, 0), "{big:?}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(worker.child.try_wait().unwrap().is_none(), "the same worker process is still running");
    assert_eq!(log.matches("registered with").count(), 1, "{log}");
    assert!(!log.contains("training panicked"), "{log}");
}

/// A job that breaks the CUDA context every time (here a simulated device-side assert: no CPU
/// can raise a real CUDA error) ends each worker process it meets with status 75, each one
/// reporting `device-lost` first. The first two losses use no attempt; from the third on each
/// uses one, so with two attempts the fourth loss ends the job failed and the sweep ends,
/// rather than taking down workers for ever.
#[tokio::test]
async fn a_job_that_breaks_every_context_ends_failed_after_its_attempts() {
    let dir = scratch("context-broken");
    let sweep = dir.join("lost.yaml");
    std::fs::write(
        &sweep,
        "name: lost\ndata: {kind: synthetic, train: 96, test: 32, seed: 1}\n\
         train: {epochs: 1, batch_size: 32}\naxes: {arch: [resnet], depth: [8], seed: [1]}\n\
         retry: {max_attempts: 2}\nlease_ttl_s: 30\n",
    )
    .unwrap();
    let (state, out) = (dir.join("state"), dir.join("out"));
    let (mut coordinator, url) = start_coordinator(
        &sweep,
        &["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    // Worker processes one after another, as a restart policy would start them.
    let mut exits = Vec::new();
    while coordinator.child.try_wait().unwrap().is_none() {
        assert!(exits.len() < 6, "the job should have ended after 4 losses: exits {exits:?}");
        let work = dir.join(format!("worker{}", exits.len()));
        let child = worker_command(&url, &work, &work.join("worker.log"), &[])
            .env("GRIDSWEEP_FAULT_INJECT", "step-cuda-error:1")
            .spawn()
            .unwrap();
        let mut worker = Proc { child };
        let status = tokio::task::spawn_blocking(move || worker.child.wait()).await.unwrap().unwrap();
        exits.push(status.code());
        // The coordinator ends the sweep once the job has failed.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let logs: Vec<String> =
        (0..exits.len()).map(|i| std::fs::read_to_string(dir.join(format!("worker{i}/worker.log"))).unwrap()).collect();
    assert_eq!(exits[..4], [Some(75); 4], "each worker that met the job exited 75: {exits:?}\n{}", logs.join("\n"));
    for log in &logs[..4] {
        assert!(log.contains("failed (device-lost): libtorch: CUDA error: device-side assert triggered"), "{log}");
    }
    let text = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(record["state"], "failed", "{text}");
    assert_eq!(record["error_kind"], "job", "charged to the job: {text}");
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("device-side assert triggered") && error.contains("lost a device 4 times"), "{error}");
}
