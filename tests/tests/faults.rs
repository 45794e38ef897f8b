//! Faults with real processes: a worker killed mid-job loses its lease after the TTL, and the
//! next worker resumes the job from its last uploaded checkpoint; a worker told to stop (SIGTERM)
//! gives its job back at once.

use std::process::Command;
use std::time::{Duration, Instant};

use gridsweep_e2e::{bin, free_port, proxy, scratch, start_coordinator, start_coordinator_on, start_worker};
use gridsweep_proto::v1::GetStatusRequest;
use gridsweep_proto::v1::coordinator_client::CoordinatorClient;

fn long_sweep(dir: &std::path::Path, ttl_s: u32) -> std::path::PathBuf {
    long_sweep_seeds(dir, ttl_s, "5", 8)
}

fn long_sweep_seeds(dir: &std::path::Path, ttl_s: u32, seeds: &str, epochs: u32) -> std::path::PathBuf {
    let path = dir.join("long.yaml");
    let text = format!(
        "name: long\ndata: {{kind: synthetic, train: 1200, test: 100, seed: 2}}\n\
         train: {{epochs: {epochs}, batch_size: 32}}\naxes: {{arch: [resnet], depth: [8], seed: [{seeds}]}}\n\
         lease_ttl_s: {ttl_s}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The job results in `out/runs.jsonl`.
fn results(out: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn epochs_of(record: &serde_json::Value) -> Vec<u64> {
    record["result"]["epochs"].as_array().unwrap().iter().map(|m| m["epoch"].as_u64().unwrap()).collect()
}

/// Polls the coordinator until `done` holds for the only job, or panics after `limit`.
async fn wait_for(url: &str, limit: Duration, what: &str, done: impl Fn(&str, u32) -> bool) -> (String, u32) {
    let mut client = CoordinatorClient::connect(url.to_owned()).await.unwrap();
    let start = Instant::now();
    loop {
        if let Ok(s) = client.get_status(GetStatusRequest {}).await {
            let j = &s.into_inner().jobs[0];
            if done(j.state().name(), j.epoch) {
                return (j.state().name().to_owned(), j.epoch);
            }
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_workers_job_resumes_elsewhere_from_its_checkpoint() {
    let dir = scratch("killed");
    let sweep = long_sweep(&dir, 5);
    let (state, out) = (dir.join("state"), dir.join("out"));
    let (mut coordinator, url) = start_coordinator(
        &sweep,
        &["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    let mut a = start_worker(&url, &dir.join("a"));
    let (_, epoch) = wait_for(&url, Duration::from_secs(120), "two epochs", |s, e| s == "running" && e >= 2).await;
    a.child.kill().unwrap(); // SIGKILL: no goodbye, the lease must expire
    let _ = a.child.wait();
    let _b = start_worker(&url, &dir.join("b"));
    let status = tokio::task::spawn_blocking(move || coordinator.child.wait()).await.unwrap().unwrap();
    assert!(status.success());

    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 2, "one result for the one job:\n{runs}");
    assert!(runs.contains(",completed,2,"), "completed on the second attempt:\n{runs}");
    let db = only_result(&state);
    let result: serde_json::Value = serde_json::from_str(&db).unwrap();
    let resumed = result["resumed_from_epoch"].as_u64().unwrap();
    assert!(resumed >= epoch as u64, "resumed after epoch {resumed}, the checkpoint was at least {epoch}");
    let epochs: Vec<u64> = result["epochs"].as_array().unwrap().iter().map(|m| m["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, (1..=8).collect::<Vec<_>>(), "every epoch once, the history carried over");
}

/// The result JSON of the only job, from the coordinator's `tables` output (`runs.jsonl`).
fn only_result(state: &std::path::Path) -> String {
    let out = state.join("check");
    let o = Command::new(bin("coordinator"))
        .args(["tables", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let line = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    record["result"].to_string()
}

#[tokio::test]
async fn sigterm_drains_a_worker_and_releases_its_lease_at_once() {
    let dir = scratch("drain");
    let sweep = long_sweep(&dir, 60);
    let (state, out) = (dir.join("state"), dir.join("out"));
    let (mut coordinator, url) = start_coordinator(
        &sweep,
        &["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    let mut a = start_worker(&url, &dir.join("a"));
    wait_for(&url, Duration::from_secs(120), "an epoch", |s, e| s == "running" && e >= 1).await;
    let pid = a.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exited = tokio::task::spawn_blocking(move || {
        let status = a.child.wait();
        (status, a)
    });
    let (status, _a) = tokio::time::timeout(Duration::from_secs(20), exited).await.expect("worker exits").unwrap();
    assert!(status.unwrap().success(), "a drained worker exits 0");
    // Pending again well before the 60 s lease could have expired.
    wait_for(&url, Duration::from_secs(5), "the released job", |s, _| s == "pending").await;
    let _b = start_worker(&url, &dir.join("b"));
    let status = tokio::task::spawn_blocking(move || coordinator.child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert!(runs.contains(",completed,2,"), "completed on the second attempt:\n{runs}");
}

#[tokio::test]
async fn a_killed_coordinator_restarts_on_its_state_and_the_sweep_completes_once() {
    let dir = scratch("coordinator-killed");
    let sweep = long_sweep_seeds(&dir, 20, "5, 6", 8);
    let (state, out) = (dir.join("state"), dir.join("out"));
    let listen = format!("127.0.0.1:{}", free_port());
    let flags = ["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (mut first, url) = start_coordinator_on(&sweep, &listen, &flags);
    let mut worker = start_worker(&url, &dir.join("w"));
    wait_for(&url, Duration::from_secs(120), "two epochs", |s, e| s == "running" && e >= 2).await;
    first.child.kill().unwrap(); // SIGKILL mid-sweep
    let _ = first.child.wait();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut second, _) = start_coordinator_on(&sweep, &listen, &flags);
    let status = tokio::task::spawn_blocking(move || second.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the restarted coordinator finishes the sweep");
    let code = tokio::task::spawn_blocking(move || worker.child.wait()).await.unwrap().unwrap();
    assert!(code.success(), "the worker reconnected by itself and exited when the sweep finished");
    let records = results(&out);
    assert_eq!(records.len(), 2, "one result per job");
    for r in &records {
        assert_eq!(r["state"], "completed");
        assert_eq!(epochs_of(r), (1..=8).collect::<Vec<_>>(), "no epoch lost or repeated");
    }
}

#[tokio::test]
async fn a_partitioned_worker_is_fenced_off_and_moves_on() {
    let dir = scratch("partition");
    let sweep = long_sweep_seeds(&dir, 5, "5", 20);
    let (state, out) = (dir.join("state"), dir.join("out"));
    let (mut coordinator, url) = start_coordinator(
        &sweep,
        &["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    let upstream: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let net = proxy(upstream);
    let mut a = start_worker(&format!("http://{}", net.addr), &dir.join("a"));
    wait_for(&url, Duration::from_secs(120), "two epochs", |s, e| s == "running" && e >= 2).await;
    net.cut.store(true, std::sync::atomic::Ordering::SeqCst); // partition A from the coordinator
    // After the TTL the job is free again; B (on the right side of the partition) takes it.
    wait_for(&url, Duration::from_secs(30), "the lease to expire", |s, _| s == "pending").await;
    let _b = start_worker(&url, &dir.join("b"));
    wait_for(&url, Duration::from_secs(30), "B to take the job", |s, _| s == "running").await;
    net.cut.store(false, std::sync::atomic::Ordering::SeqCst); // heal
    let status = tokio::task::spawn_blocking(move || coordinator.child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let code = tokio::task::spawn_blocking(move || a.child.wait()).await.unwrap().unwrap();
    assert!(code.success(), "A dropped the job and left when the sweep finished");
    let log = std::fs::read_to_string(dir.join("a.log")).unwrap();
    assert!(log.contains("training on"), "A kept training while cut off:\n{log}");
    // A's late report is fenced off: a heartbeat answered "stale lease", or (when A finished
    // while cut off) a completion answered "attempt already ended".
    assert!(
        log.contains("stale lease") || log.contains("accepted: false"),
        "A's reports were rejected as stale:\n{log}"
    );
    let records = results(&out);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["state"], "completed");
    assert_eq!(records[0]["attempts"], 2);
    assert_eq!(epochs_of(&records[0]), (1..=20).collect::<Vec<_>>());
    assert!(!log.contains("Completed (accepted: true)"), "the fenced-off worker delivered nothing:\n{log}");
}

#[tokio::test]
async fn sigterm_to_the_coordinator_stops_cleanly_and_resumes() {
    let dir = scratch("coordinator-term");
    let sweep = long_sweep_seeds(&dir, 15, "5", 12);
    let (state, out) = (dir.join("state"), dir.join("out"));
    let listen = format!("127.0.0.1:{}", free_port());
    let flags = ["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (mut first, url) = start_coordinator_on(&sweep, &listen, &flags);
    let mut worker = start_worker(&url, &dir.join("w"));
    wait_for(&url, Duration::from_secs(120), "an epoch", |s, e| s == "running" && e >= 1).await;
    let pid = first.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let code = tokio::task::spawn_blocking(move || first.child.wait()).await.unwrap().unwrap();
    assert_eq!(code.code(), Some(130), "interrupted, state saved");
    // The worker was told to stop and gave the job back before the coordinator left.
    let log = std::fs::read_to_string(dir.join("w.log")).unwrap();
    assert!(log.contains("coordinator is shutting down"), "{log}");
    assert!(log.contains("lease released"), "{log}");
    let _ = worker.child.kill();
    let _ = worker.child.wait();
    // Started again on the same state, the sweep finishes with one result.
    let (mut second, url) = start_coordinator_on(&sweep, &listen, &flags);
    let _w2 = start_worker(&url, &dir.join("w2"));
    assert!(tokio::task::spawn_blocking(move || second.child.wait()).await.unwrap().unwrap().success());
    let records = results(&out);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["state"], "completed");
    assert_eq!(epochs_of(&records[0]), (1..=12).collect::<Vec<_>>());
}
