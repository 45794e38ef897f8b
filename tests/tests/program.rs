//! `program:` sweeps with real processes: the coordinator and workers as binaries, the program a
//! small Python script (`tests/programs/toy.py`, no torch) speaking the protocol. A sweep
//! completes with its results table and a TensorBoard event file per job; a worker SIGKILLed mid-program has its job resumed on
//! another worker from the program's own checkpoint; a stopping worker leaves no process of the
//! program behind; a failing program uses its attempts and shows its stderr; a missing command
//! is the worker's fault, an out-of-memory message goes to the out-of-memory routing and exit 75
//! is not the job's fault.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gridsweep_e2e::{Proc, run_sweep, scratch, start_coordinator, start_coordinator_with_dashboard, start_worker};
use gridsweep_proto::v1::coordinator_client::CoordinatorClient;
use gridsweep_proto::v1::{FailureKind, GetStatusRequest, JobStatus};

/// The toy program.
fn toy() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("programs").join("toy.py").display().to_string()
}

/// Writes a program sweep of the toy named `name` with the given `train`, `axes` and `extra`
/// top-level lines.
fn sweep(dir: &Path, name: &str, train: &str, axes: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "name: {name}\ndata: {{kind: synthetic, train: 20, test: 10, seed: 1}}\n\
         program:\n  command: [python3, {toy}, --lr, \"{{lr}}\"]\n  env: {{PYTHONUNBUFFERED: \"1\"}}\n\
         \x20 metric: {{name: test_acc, goal: max}}\ntrain: {train}\naxes: {axes}\n{extra}",
        toy = toy()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// An include entry for a job that keeps a sweep open while a test reads the status: `run`
/// exits once every job has ended, and a job that fails at once would otherwise end the sweep
/// before the status poll sees it fail. Its single epoch makes it the cheapest job, granted
/// after the job under test (longest first); the test's end stops it with the worker.
const KEEP_OPEN: &str = "  - {lr: 0.9, epochs: 1, sleep: 300, fail: false, no_result: false}\n";

/// The coordinator's state folder in the test's scratch folder (never in the source tree).
fn state_in(dir: &Path) -> String {
    dir.join("state").display().to_string()
}

/// Polls the coordinator's status until `done` holds for its jobs, or panics after `limit`.
async fn wait_for(url: &str, limit: Duration, what: &str, done: impl Fn(&[JobStatus]) -> bool) -> Vec<JobStatus> {
    let mut client = CoordinatorClient::connect(url.to_owned()).await.unwrap();
    let start = Instant::now();
    loop {
        if let Ok(s) = client.get_status(GetStatusRequest {}).await {
            let jobs = s.into_inner().jobs;
            if done(&jobs) {
                return jobs;
            }
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `results.csv` as maps from column to cell, one per row.
fn results(out: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(out.join("results.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_owned)).collect()).collect()
}

#[test]
fn a_program_sweep_completes_with_its_results_table() {
    let dir = scratch("program-sweep");
    let path = sweep(&dir, "toy", "{epochs: 3}", "{lr: [0.1, 0.2], seed: [1, 2]}", "");
    let (state, out) = (dir.join("state"), dir.join("out"));
    let o = run_sweep(&path, &state, &out, 2, &[]);
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let rows = results(&out);
    assert_eq!(rows.len(), 2, "a row per lr: {rows:?}");
    // The toy's accuracy after 3 epochs is 50 + 100 lr + seed + 0.3: seeds 1 and 2 average 1.5.
    for (row, mean) in rows.iter().zip([61.8, 71.8]) {
        assert_eq!((row["runs"].as_str(), row["completed"].as_str(), row["test_acc_n"].as_str()), ("2", "2", "2"));
        let got: f64 = row["test_acc_mean"].parse().unwrap();
        assert!((got - mean).abs() < 1e-9, "{row:?}");
        assert_eq!(row["epochs_run_mean"], "3");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| lr | test_acc mean ± std [95% CI] | n |"), "{md}");
    // The epoch lines' curves, one per condition.
    for metric in ["test_acc", "train_loss"] {
        let svg = std::fs::read_to_string(out.join(format!("results_{metric}_vs_epoch.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("lr=0.1") && svg.contains("lr=0.2"), "{metric}");
    }
    // An event file per job, named by its condition and seed, with the lines' metrics as tags
    // (`coordinator/tests/tensorboard.rs` reads such files back with tbparse).
    let mut runs: Vec<String> = std::fs::read_dir(out.join("tensorboard"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    runs.sort();
    assert_eq!(runs, ["lr=0.1_seed=1", "lr=0.1_seed=2", "lr=0.2_seed=1", "lr=0.2_seed=2"]);
    let events = std::fs::read(out.join("tensorboard/lr=0.2_seed=2/events.out.tfevents.0.gridsweep")).unwrap();
    let holds = |tag: &[u8]| events.windows(tag.len()).any(|w| w == tag);
    assert!(holds(b"test_acc") && holds(b"train_loss"), "the epoch lines' metrics");
}

/// A diverging Python program writes its NaN loss as `json.dumps` does (the bare word `NaN`,
/// not JSON): its lines are still read, and its run ends diverged, counted apart from the
/// completed ones, not failed.
#[test]
fn a_python_program_whose_loss_goes_nan_ends_diverged() {
    let dir = scratch("program-nan");
    let path = sweep(&dir, "nan", "{epochs: 2, sleep: 0, lr: 0.1}", "{diverge: [0, 1], seed: [1, 2]}", "");
    let (state, out) = (dir.join("state"), dir.join("out"));
    let o = run_sweep(&path, &state, &out, 2, &[]);
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let rows = results(&out);
    let row = |d: &str| rows.iter().find(|r| r["diverge"] == d).unwrap_or_else(|| panic!("{rows:?}"));
    let counts = |r: &std::collections::HashMap<String, String>| {
        (r["completed"].clone(), r["diverged"].clone(), r["failed"].clone())
    };
    assert_eq!(counts(row("0")), ("2".into(), "0".into(), "0".into()), "{rows:?}");
    assert_eq!(counts(row("1")), ("0".into(), "2".into(), "0".into()), "{rows:?}");
    let runs = std::fs::read_to_string(out.join("results_runs.csv")).unwrap();
    assert_eq!(runs.matches(",diverged,").count(), 2, "{runs}");
    // The NaN epoch lines were kept, their loss as no figure.
    let epochs = std::fs::read_to_string(out.join("epochs.csv")).unwrap();
    assert_eq!(epochs.lines().count(), 1 + 4 * 2, "a row per job and epoch: {epochs}");
}

#[tokio::test]
async fn a_killed_workers_program_resumes_elsewhere_from_its_checkpoint() {
    let dir = scratch("program-killed");
    let path = sweep(&dir, "resume", "{epochs: 6, sleep: 0.7, lr: 0.1}", "{seed: [1]}", "lease_ttl_s: 5\n");
    let (state, out) = (dir.join("state"), dir.join("out"));
    let args = ["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (mut coordinator, url) = start_coordinator(&path, &args);
    let mut a = start_worker(&url, &dir.join("a"));
    wait_for(&url, Duration::from_secs(60), "two epochs", |j| j[0].epoch >= 2).await;
    a.child.kill().unwrap(); // SIGKILL: the program dies with it (PDEATHSIG), the lease expires
    let _ = a.child.wait();
    let _b = start_worker(&url, &dir.join("b"));
    let status = tokio::task::spawn_blocking(move || coordinator.child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let row = &results(&out)[0];
    let (from, ran): (f64, f64) = (row["resumed_from_mean"].parse().unwrap(), row["epochs_run_mean"].parse().unwrap());
    assert!(from >= 2.0, "resumed from the program's checkpoint of epoch {from}");
    assert_eq!(from + ran, 6.0, "every epoch once: {from} restored + {ran} run");
    let expected = 50.0 + 10.0 + 1.0 + 0.6;
    assert!((row["test_acc_mean"].parse::<f64>().unwrap() - expected).abs() < 1e-9, "{row:?}");
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet: it runs nothing).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn a_stopping_worker_leaves_no_process_of_the_program_behind() {
    let dir = scratch("program-stop");
    let pidfile = dir.join("pids");
    let train = format!("{{epochs: 100, sleep: 0.5, pidfile: \"{}\"}}", pidfile.display());
    let path = sweep(&dir, "stop", &train, "{lr: [0.1]}", "lease_ttl_s: 60\n");
    let (_coordinator, url) = start_coordinator(&path, &["--local-workers", "0", "--state", &state_in(&dir)]);
    let mut a = start_worker(&url, &dir.join("a"));
    wait_for(&url, Duration::from_secs(60), "an epoch", |j| j[0].epoch >= 1).await;
    let pids = std::fs::read_to_string(pidfile.with_extension("1")).unwrap();
    let pids: Vec<&str> = pids.split_whitespace().collect();
    assert_eq!(pids.len(), 2);
    assert!(!gone(pids[0]) && !gone(pids[1]), "the program and its grandchild run");
    assert!(Command::new("kill").args(["-TERM", &a.child.id().to_string()]).status().unwrap().success());
    let exited = tokio::task::spawn_blocking(move || (a.child.wait(), a));
    let (status, _a) = tokio::time::timeout(Duration::from_secs(30), exited).await.expect("worker exits").unwrap();
    assert!(status.unwrap().success(), "a drained worker exits 0");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(gone(pids[0]) && gone(pids[1])) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone(pids[0]), "the program ({}) is gone", pids[0]);
    assert!(gone(pids[1]), "its grandchild ({}) is gone", pids[1]);
    wait_for(&url, Duration::from_secs(5), "the released job", |j| j[0].state().name() == "pending").await;
}

#[tokio::test]
async fn a_lost_lease_kills_the_program_and_what_it_started() {
    let dir = scratch("program-lost-lease");
    let pidfile = dir.join("pids");
    let train = format!("{{epochs: 100, sleep: 0.5, pidfile: \"{}\"}}", pidfile.display());
    let path = sweep(&dir, "lost", &train, "{lr: [0.1]}", "lease_ttl_s: 5\n");
    let (_coordinator, url) = start_coordinator(&path, &["--local-workers", "0", "--state", &state_in(&dir)]);
    let a = start_worker(&url, &dir.join("a"));
    let first = wait_for(&url, Duration::from_secs(60), "an epoch", |j| j[0].epoch >= 1).await;
    let pids = std::fs::read_to_string(pidfile.with_extension("1")).unwrap();
    let pids: Vec<&str> = pids.split_whitespace().collect();
    // Worker a freezes (its program runs on): the lease expires and worker b takes the job.
    let a_pid = a.child.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &a_pid]).status().unwrap().success());
    let _b = start_worker(&url, &dir.join("b"));
    let holder = first[0].worker_id.clone();
    wait_for(&url, Duration::from_secs(60), "the job on b", |j| j[0].worker_id != holder && j[0].attempts == 2).await;
    assert!(!gone(pids[0]), "a's program still runs while a is frozen");
    assert!(Command::new("kill").args(["-CONT", &a_pid]).status().unwrap().success());
    // a's next heartbeat finds its lease stale: it stops the program's whole group.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(gone(pids[0]) && gone(pids[1])) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone(pids[0]), "a's program ({}) is gone", pids[0]);
    assert!(gone(pids[1]), "its grandchild ({}) is gone", pids[1]);
    let jobs = wait_for(&url, Duration::from_secs(5), "b still on it", |j| j[0].state().name() == "running").await;
    assert_ne!(jobs[0].worker_id, holder, "the job stays with b");
}

#[tokio::test]
async fn a_failing_program_uses_its_attempts_and_shows_its_stderr() {
    let dir = scratch("program-fail");
    let extra = format!("retry: {{max_attempts: 2}}\ninclude:\n{KEEP_OPEN}");
    let path = sweep(&dir, "fail", "{fail: true}", "{lr: [0.1]}", &extra);
    let (_coordinator, url) = start_coordinator(&path, &["--local-workers", "0", "--state", &state_in(&dir)]);
    let _a = start_worker(&url, &dir.join("a"));
    let jobs = wait_for(&url, Duration::from_secs(60), "the failed job", |j| j[0].state().name() == "failed").await;
    let job = &jobs[0];
    assert_eq!((job.attempts, job.failures), (2, 2), "both attempts used");
    assert_eq!(job.error_kind(), FailureKind::Job);
    assert!(job.error.contains("the program failed (exit code 1)"), "{}", job.error);
    assert!(job.error.contains("toy: deliberate failure in epoch 1"), "the stderr tail: {}", job.error);
}

#[tokio::test]
async fn whose_fault_a_program_failure_is() {
    let dir = scratch("program-blame");
    let include = "include:\n  - {lr: 0.2, tempfail: true}\n  - {lr: 0.3, program: \
                   {command: [/nonexistent/gridsweep-toy], metric: {name: test_acc, goal: max}}}\n";
    let path = sweep(&dir, "blame", "{epochs: 1}", "{lr: [0.1], oom: [true]}", include);
    let (_coordinator, url) = start_coordinator(&path, &["--local-workers", "0", "--state", &state_in(&dir)]);
    // One worker per job: a job that is not at fault goes back to the queue, and one worker
    // would lease it again before the others.
    let _workers: Vec<Proc> = ["a", "b", "c"].iter().map(|w| start_worker(&url, &dir.join(w))).collect();
    let jobs =
        wait_for(&url, Duration::from_secs(60), "a report on each job", |j| j.iter().all(|j| !j.error.is_empty()))
            .await;
    let by =
        |needle: &str| jobs.iter().find(|j| j.error.contains(needle)).unwrap_or_else(|| panic!("{needle}: {jobs:?}"));
    let oom = by("out of memory");
    assert_eq!(oom.error_kind(), FailureKind::OutOfMemory, "{}", oom.error);
    let temp = by("exited 75");
    assert_eq!(temp.error_kind(), FailureKind::Worker, "{}", temp.error);
    let missing = by("cannot start `/nonexistent/gridsweep-toy` on this worker: not found");
    assert_eq!(missing.error_kind(), FailureKind::Worker, "{}", missing.error);
    assert!(jobs.iter().all(|j| j.failures == 0), "none is the job's own failure: {jobs:?}");
}

/// The body of `GET url` (plain HTTP/1.1 on loopback).
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    if head.to_lowercase().contains("transfer-encoding: chunked") {
        // One chunk after another: size line, data, CRLF.
        let (mut out, mut rest) = (String::new(), body);
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        return out;
    }
    body.to_owned()
}

#[tokio::test]
async fn the_job_page_has_the_programs_curves_and_log() {
    let dir = scratch("program-page");
    let path = sweep(&dir, "page", "{epochs: 100, sleep: 0.2}", "{lr: [0.1]}", "");
    let state = state_in(&dir);
    let (_coordinator, url, http) =
        start_coordinator_with_dashboard(&path, "127.0.0.1:0", &["--local-workers", "0", "--state", &state]);
    let _a = start_worker(&url, &dir.join("a"));
    let jobs = wait_for(&url, Duration::from_secs(60), "three epochs", |j| j[0].epoch >= 3).await;
    assert_eq!((jobs[0].arch.as_str(), jobs[0].depth), ("program", 0), "no model named: shown as a program");
    assert_eq!(jobs[0].seed, None, "no seed setting: no seed, not the recipe's placeholder 0");
    let http = http.unwrap();
    let list: serde_json::Value = serde_json::from_str(&http_get(&format!("{http}/api/jobs"))).unwrap();
    assert_eq!(list["jobs"][0]["seed"], serde_json::Value::Null, "the board's list: {list}");
    let body = http_get(&format!("{}/api/jobs/{}", http.trim_end_matches('/'), jobs[0].job_id));
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    let program = &detail["program"];
    assert_eq!(program["metric"], "test_acc");
    let epochs = program["epochs"].as_array().unwrap();
    assert!(epochs.len() >= 3, "{program}");
    assert_eq!(epochs[0]["epoch"], 1);
    assert!(epochs[0]["test_acc"].as_f64().is_some_and(|a| (a - 60.1).abs() < 1e-9), "{}", epochs[0]);
    let tail = program["logs"][0]["tail"].as_str().unwrap();
    assert!(tail.starts_with("toy: job ") && tail.contains("attempt 1 from epoch 0"), "the log's tail: {tail}");
    // The tables page has the program's results table (the job still running, counted apart).
    let tables: serde_json::Value = serde_json::from_str(&http_get(&format!("{http}/api/tables"))).unwrap();
    assert_eq!((&tables["programs"], &tables["builtin"]), (&serde_json::json!(true), &serde_json::json!(false)));
    let results = tables["results"].as_str().unwrap();
    assert!(results.starts_with("# Results of page") && results.contains("| unfinished |"), "{results}");
}

#[test]
fn bad_program_keys_are_located() {
    let dir = scratch("program-bad");
    let path = sweep(&dir, "bad", "{epochs: 1}", "{learning_rate: [0.1]}", "");
    let o = gridsweep_e2e::run("coordinator", &["expand", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let line4 = std::fs::read_to_string(&path).unwrap().lines().nth(3).unwrap().to_owned();
    let col = line4.find("\"{lr}\"").unwrap() + 1;
    let expected = format!(
        "{}:4:{col}: program.command[3]: {{lr}} names no setting of the job (settings: epochs, learning_rate)",
        path.display()
    );
    assert!(err.contains(&expected), "{err}");
    let text = std::fs::read_to_string(&path).unwrap().replace("  metric:", "  metrc:");
    std::fs::write(&path, text).unwrap();
    let o = gridsweep_e2e::run("coordinator", &["expand", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:6:3: program: unknown field `metrc`", path.display())), "{err}");
}

#[tokio::test]
async fn a_program_that_exits_0_without_a_result_fails() {
    let dir = scratch("program-no-result");
    let extra = format!("retry: {{max_attempts: 1}}\ninclude:\n{KEEP_OPEN}");
    let path = sweep(&dir, "noresult", "{epochs: 2, no_result: true}", "{lr: [0.1]}", &extra);
    let (_coordinator, url) = start_coordinator(&path, &["--local-workers", "0", "--state", &state_in(&dir)]);
    let _a = start_worker(&url, &dir.join("a"));
    let jobs = wait_for(&url, Duration::from_secs(60), "the failed job", |j| j[0].state().name() == "failed").await;
    assert_eq!(jobs[0].error_kind(), FailureKind::Job);
    assert!(
        jobs[0].error.starts_with("the program exited 0 without a result line in $GRIDSWEEP_METRICS"),
        "{}",
        jobs[0].error
    );
    assert!(jobs[0].error.contains("toy: done"), "with the log's tail: {}", jobs[0].error);
}

#[tokio::test]
async fn a_program_sweep_without_data_runs_and_its_lines_give_its_total_and_epochs_csv() {
    let dir = scratch("program-no-data");
    let path = dir.join("nodata.yaml");
    let text = format!(
        "name: nodata\nprogram:\n  command: [python3, {toy}]\n  metric: {{name: test_acc, goal: max}}\n\
         train: {{length: 3, sleep: 0.5, report_data_dir: true}}\naxes: {{lr: [0.1]}}\n",
        toy = toy()
    );
    std::fs::write(&path, text).unwrap();
    let (state, out) = (dir.join("state"), dir.join("out"));
    // No `--data` and no `data:`: nothing to check or serve.
    let args = ["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (mut coordinator, url) = start_coordinator(&path, &args);
    let jobs = wait_for(&url, Duration::from_secs(20), "the status", |j| !j.is_empty()).await;
    assert_eq!(jobs[0].epochs_total, None, "no `epochs` setting and no line yet: unknown, not the recipe's 300");
    let _a = start_worker(&url, &dir.join("a"));
    let jobs = wait_for(&url, Duration::from_secs(60), "an epoch", |j| j[0].epoch >= 1).await;
    assert_eq!(jobs[0].epochs_total, Some(3), "the total the program's line gave");
    let status = tokio::task::spawn_blocking(move || coordinator.child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let row = &results(&out)[0];
    assert_eq!(row["data_dir_set_mean"], "0", "GRIDSWEEP_DATA_DIR unset without data: {row:?}");
    // epochs.csv has the program's epoch lines, its figures in the columns of the same names.
    let mut reader = csv::Reader::from_path(out.join("epochs.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows.len(), 3, "{header:?}");
    assert_eq!((&rows[0][at("arch")], &rows[0][at("epoch")], &rows[0][at("test_acc")]), ("program", "1", "60.1"));
    assert_eq!(&rows[2][at("epoch")], "3");
    assert_eq!(header.last().map(String::as_str), Some("attempt"), "the toy reports no other metric");
}
