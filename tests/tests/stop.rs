//! Stopping `coordinator run` with SIGTERM while its local worker trains: the running job is
//! released (pending again, no attempt used), the local worker is stopped with SIGTERM (it logs
//! that it got the signal and exits; it is not killed), and the same command resumes the sweep.

use std::time::{Duration, Instant};

use gridsweep_e2e::{scratch, start_coordinator_with_dashboard};

#[test]
fn an_interrupted_run_releases_its_job_and_stops_its_worker_with_sigterm() {
    let dir = scratch("stop");
    let sweep = dir.join("stop.yaml");
    // Epochs of a few seconds, so that the job is mid-run when the coordinator is stopped.
    std::fs::write(
        &sweep,
        "name: stop\ndata: {kind: synthetic, train: 1200, test: 100, seed: 1}\ntrain: {epochs: 20, batch_size: 64}\n\
         axes:\n  arch: [resnet]\n  depth: [8]\n  seed: [1]\nlease_ttl_s: 6\n",
    )
    .unwrap();
    let state = dir.join("state");
    let (mut coordinator, _grpc, dashboard) = start_coordinator_with_dashboard(
        &sweep,
        "127.0.0.1:0",
        &["--state", state.to_str().unwrap(), "--local-workers", "1", "--worker-device", "cpu"],
    );
    let dashboard = dashboard.unwrap();
    // Wait until the job has reported an epoch.
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(120), "the job never reported an epoch");
        let body = http_get(&dashboard, "/api/sweep");
        if body.contains("\"state\":\"running\"") && !body.contains("\"epoch\":0,") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = coordinator.child.id() as i32;
    // SAFETY: kill(2) on the coordinator child this test spawned and has not reaped.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = coordinator.child.try_wait().unwrap() {
            break s;
        }
        assert!(stopped.elapsed() < Duration::from_secs(60), "coordinator did not stop within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130), "an interrupted run exits 130");
    let log = std::fs::read_to_string(state.join("workers/local-0.log")).unwrap();
    assert!(log.contains("signal received"), "the local worker was not stopped by SIGTERM:\n{log}");
    assert!(log.contains("released"), "the worker did not give its lease back:\n{log}");

    // The state says the job is pending again, with its attempt not used up.
    let out = gridsweep_e2e::run("coordinator", &["retry", "--state", state.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no failed job to retry"));
}

/// GET `path` from the dashboard at `base` (`http://127.0.0.1:PORT`); the body.
fn http_get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}
