//! Results and blame with real processes: failed jobs re-run (`coordinator retry` on a stopped
//! state and through a running coordinator, `run --retry-failed`), a sweep on CIFAR-10 without
//! data refused before anything runs, workers that cannot get the data charged with nothing,
//! a wrong token ending a worker, and `epochs.csv`, the tables and the ETA while a sweep runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gridsweep_e2e::{Proc, bin, run, run_sweep, scratch, start_coordinator};
use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::v1::coordinator_client::CoordinatorClient;
use gridsweep_proto::v1::{self as pb, pull_job_response::Outcome};

type Client = CoordinatorClient<tonic::transport::Channel>;

/// A sweep of `seeds` (resnet, depth 8, synthetic data) with one attempt per job.
fn sweep(dir: &Path, name: &str, seeds: &str, epochs: u32, train: u32) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "name: {name}\ndata: {{kind: synthetic, train: {train}, test: 64, seed: 3}}\n\
         train: {{epochs: {epochs}, batch_size: 32}}\naxes: {{arch: [resnet], depth: [8], seed: [{seeds}]}}\n\
         retry: {{max_attempts: 1}}\nlease_ttl_s: 30\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A simulated worker: registers under `name`.
async fn register(url: &str, name: &str) -> (Client, String) {
    let mut c = CoordinatorClient::connect(url.to_owned()).await.unwrap();
    let req = pb::RegisterWorkerRequest {
        protocol_version: PROTOCOL_VERSION,
        name: name.into(),
        device: "cpu".into(),
        device_memory_bytes: 0,
    };
    let id = c.register_worker(req).await.unwrap().into_inner().worker_id;
    (c, id)
}

/// Pulls one job and reports it failed, by its own fault; returns its id.
async fn fail_one(c: &mut Client, worker: &str, error: &str) -> String {
    let pulled = c.pull_job(pb::PullJobRequest { worker_id: worker.into(), wait_ms: 5000 }).await.unwrap();
    let Some(Outcome::Lease(l)) = pulled.into_inner().outcome else { panic!("expected a lease") };
    let req = pb::FailJobRequest {
        worker_id: worker.into(),
        job_id: l.job_id.clone(),
        fencing_token: l.fencing_token,
        error: error.into(),
        kind: pb::FailureKind::Job.into(),
    };
    assert!(!c.fail_job(req).await.unwrap().into_inner().will_retry, "one attempt only");
    l.job_id
}

async fn status(c: &mut Client) -> pb::SweepStatus {
    c.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner()
}

/// `runs.csv` as (job id -> column -> value).
fn runs_csv(out: &Path) -> std::collections::HashMap<String, std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(out.join("runs.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader
        .records()
        .map(|r| {
            let row: std::collections::HashMap<String, String> =
                header.iter().cloned().zip(r.unwrap().iter().map(String::from)).collect();
            (row["job_id"].clone(), row)
        })
        .collect()
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test]
async fn failed_jobs_rerun_on_a_stopped_state_and_with_retry_failed() {
    let dir = scratch("retry-stopped");
    let file = sweep(&dir, "rs", "1, 2", 1, 64);
    let (state, out) = (dir.join("state"), dir.join("out"));
    let args = ["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (mut coordinator, url) = start_coordinator(&file, &args);
    let (mut c, w) = register(&url, "flaky").await;
    let a = fail_one(&mut c, &w, "boom A").await;
    let b = fail_one(&mut c, &w, "boom B").await;
    // Every job has ended (both failed): the coordinator writes the tables and exits.
    assert!(coordinator.child.wait().unwrap().success());
    assert_eq!(runs_csv(&out)[&a]["state"], "failed");

    let s = state.to_str().unwrap();
    let unknown = run("coordinator", &["retry", "--state", s, "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(text(&unknown).contains("unknown job nope"), "{}", text(&unknown));
    let named = run("coordinator", &["retry", "--state", s, &a]);
    assert!(named.status.success(), "{}", text(&named));
    assert!(text(&named).contains(&format!("1 failed jobs back in the queue with a fresh attempt budget: {a}")));
    let again = run("coordinator", &["retry", "--state", s, &a]);
    assert!(text(&again).contains(&format!("left alone, not failed: {a} (pending)")), "{}", text(&again));
    let not_state = run("coordinator", &["retry", "--state", dir.to_str().unwrap()]);
    assert_eq!(not_state.status.code(), Some(2), "{}", text(&not_state));
    let typo = dir.join("no-such-state");
    let tables = run("coordinator", &["tables", "--state", typo.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(tables.status.code(), Some(2), "{}", text(&tables));
    assert!(!typo.exists(), "nothing created where the state was expected");

    // B is still failed; --retry-failed takes it too, and a real worker runs both.
    let done = run_sweep(&file, &state, &out, 1, &["--retry-failed"]);
    assert!(done.status.success(), "{}", text(&done));
    assert!(text(&done).contains("--retry-failed: 1 failed jobs back in the queue"), "{}", text(&done));
    let runs = runs_csv(&out);
    for (id, error) in [(&a, "boom A"), (&b, "boom B")] {
        let row = &runs[id];
        assert_eq!((row["state"].as_str(), row["attempts"].as_str()), ("completed", "2"), "{row:?}");
        assert_eq!(row["error"], error, "the earlier error stays in the record");
    }
}

#[tokio::test]
async fn failed_jobs_rerun_through_a_running_coordinator() {
    let dir = scratch("retry-live");
    let file = sweep(&dir, "rl", "1, 2", 1, 64);
    let (state, out) = (dir.join("state"), dir.join("out"));
    let args = ["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (mut coordinator, url) = start_coordinator(&file, &args);
    let (mut c, w) = register(&url, "flaky").await;
    let a = fail_one(&mut c, &w, "boom").await;
    let job = |s: &pb::SweepStatus, id: &str| s.jobs.iter().find(|j| j.job_id == id).cloned().unwrap();
    let failed = job(&status(&mut c).await, &a);
    assert_eq!((failed.state(), failed.failures, failed.max_attempts), (pb::JobState::Failed, 1, 1));

    let unknown = run("coordinator", &["retry", "--connect", &url, "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(text(&unknown).contains("nope"));
    let all = run("coordinator", &["retry", "--connect", &url]);
    assert!(all.status.success() && text(&all).contains(&a), "{}", text(&all));
    let retried = job(&status(&mut c).await, &a);
    assert_eq!((retried.state(), retried.failures, retried.attempts), (pb::JobState::Pending, 0, 1));
    assert_eq!(retried.error, "boom", "the last error stays shown");

    let work = dir.join("w");
    let worker = Command::new(bin("worker"))
        .args(["--coordinator", &url, "--device", "cpu", "--threads", "1", "--work-dir"])
        .arg(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _worker = Proc { child: worker };
    assert!(coordinator.child.wait().unwrap().success());
    assert_eq!(runs_csv(&out)[&a]["attempts"], "2");
    assert!(runs_csv(&out).values().all(|r| r["state"] == "completed"));
}

#[test]
fn a_cifar_sweep_without_data_is_refused_before_anything_runs() {
    let dir = scratch("no-data");
    let file = dir.join("real.yaml");
    std::fs::write(&file, "name: real\ndata: {kind: cifar10}\naxes: {arch: [vgg], depth: [8], seed: [1]}\n").unwrap();
    let state = dir.join("state");
    let started = Instant::now();
    // Run from the scratch directory, which has no data/.
    let out = Command::new(bin("coordinator"))
        .current_dir(&dir)
        .args(["run", "real.yaml", "--listen", "127.0.0.1:0", "--state", "state", "--local-workers", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("--data") && msg.contains("worker data fetch"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(10), "at once");
    assert!(!state.exists(), "no state written, no job touched");
    // A --data folder that is not the set is refused the same way.
    let bad = Command::new(bin("coordinator"))
        .current_dir(&dir)
        .args(["run", "real.yaml", "--listen", "127.0.0.1:0", "--data", ".", "--local-workers", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("not a verified CIFAR-10 set"), "{}", text(&bad));
}

#[tokio::test]
async fn workers_that_cannot_get_the_data_fail_no_job_and_are_not_quarantined() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/cifar-10-batches-bin");
    if !data.join("test_batch.bin").exists() {
        eprintln!("SKIPPED workers_that_cannot_get_the_data_...: no CIFAR-10 in {}", data.display());
        return;
    }
    let dir = scratch("data-gone");
    let shared = dir.join("cifar");
    std::fs::create_dir_all(&shared).unwrap();
    for (name, _) in gridsweep_proto::cifar::MD5 {
        std::os::unix::fs::symlink(data.join(name), shared.join(name)).unwrap();
    }
    let file = dir.join("real.yaml");
    std::fs::write(
        &file,
        "name: real\ndata: {kind: cifar10}\ntrain: {epochs: 1, train_subset: 100, test_subset: 50}\n\
         axes: {arch: [vgg], depth: [8], seed: [1, 2]}\nretry: {max_attempts: 1}\nlease_ttl_s: 10\n",
    )
    .unwrap();
    let state = dir.join("state");
    let args = ["--local-workers", "0", "--state", state.to_str().unwrap(), "--data", shared.to_str().unwrap()];
    let (_coordinator, url) = start_coordinator(&file, &args);
    // The set vanishes after the coordinator checked it: nothing to serve.
    std::fs::remove_dir_all(&shared).unwrap();
    let workers: Vec<Proc> = (0..2)
        .map(|k| {
            let child = Command::new(bin("worker"))
                .args(["--coordinator", &url, "--device", "cpu", "--threads", "1", "--work-dir"])
                .arg(dir.join(format!("w{k}")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            Proc { child }
        })
        .collect();
    let mut c = CoordinatorClient::connect(url.clone()).await.unwrap();
    let started = Instant::now();
    let s = loop {
        let s = status(&mut c).await;
        let tried = s.jobs.iter().any(|j| j.attempts >= 3);
        if tried && !s.stalled.is_empty() && s.workers.iter().all(|w| !w.problem.is_empty()) {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "workers never failed on the data: {s:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for j in &s.jobs {
        assert_eq!((j.state(), j.failures), (pb::JobState::Pending, 0), "{j:?}");
        if j.attempts > 0 {
            assert_eq!(j.error_kind(), pb::FailureKind::Transfer, "{j:?}");
        }
    }
    for w in &s.workers {
        assert!(!w.quarantined, "{w:?}");
        assert!(w.problem.starts_with("transfer: "), "{w:?}");
    }
    assert!(s.stalled.contains("failing for reasons that are not the jobs'"), "{}", s.stalled);
    drop(workers);
}

#[test]
fn a_worker_with_a_wrong_token_stops_with_exit_77() {
    let dir = scratch("token");
    let file = sweep(&dir, "tok", "1", 1, 64);
    std::fs::write(dir.join("right"), "the-right-token\n").unwrap();
    std::fs::write(dir.join("wrong"), "not-the-token\n").unwrap();
    let state = dir.join("state");
    let right = dir.join("right");
    let args = ["--local-workers", "0", "--state", state.to_str().unwrap(), "--token-file", right.to_str().unwrap()];
    let (_coordinator, url) = start_coordinator(&file, &args);
    let started = Instant::now();
    let out = Command::new(bin("worker"))
        .args(["--coordinator", &url, "--device", "cpu", "--token-file"])
        .arg(dir.join("wrong"))
        .arg("--work-dir")
        .arg(dir.join("w"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{}", text(&out));
    assert!(text(&out).contains("refused this worker's token"), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(20), "no retrying");
}

#[tokio::test]
async fn epochs_csv_the_tables_and_the_eta_fill_while_the_sweep_runs() {
    let dir = scratch("live");
    let file = sweep(&dir, "live", "1, 2", 6, 640);
    let (state, out) = (dir.join("state"), dir.join("out"));
    let args = [
        "--local-workers",
        "1",
        "--worker-device",
        "cpu",
        "--state",
        state.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (mut coordinator, url) = start_coordinator(&file, &args);
    let mut counts = Vec::new();
    let (mut eta_seen, mut partial_tables) = (false, false);
    loop {
        if let Ok(text) = std::fs::read_to_string(out.join("epochs.csv")) {
            let rows = text.lines().count().saturating_sub(1);
            if counts.last() != Some(&rows) {
                counts.push(rows);
            }
        }
        let json = run("coordinator", &["status", "--connect", &url, "--json"]);
        if json.status.success() {
            let s: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status --json parses");
            eta_seen |= s["eta_s"].as_f64().is_some_and(|e| e > 0.0);
            let running = s["counts"]["running"].as_u64().unwrap_or(0) + s["counts"]["pending"].as_u64().unwrap_or(0);
            partial_tables |= running > 0 && s["counts"]["completed"] == 1 && out.join("table1.csv").exists();
        }
        if coordinator.child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(counts.iter().filter(|&&n| n > 0 && n < 12).count() >= 2, "epochs.csv grew while running: {counts:?}");
    let rows = std::fs::read_to_string(out.join("epochs.csv")).unwrap().lines().count() - 1;
    assert_eq!(rows, 12, "2 jobs x 6 epochs at the end");
    assert!(eta_seen, "status --json gave an ETA");
    assert!(partial_tables, "the tables were written with one job done and one still open");
    let header = std::fs::read_to_string(out.join("epochs.csv")).unwrap();
    assert!(header.starts_with("job_id,arch,depth,seed,repeat,epoch,epoch_lr,train_loss,train_acc,test_loss,test_acc"));
}
