//! The worker's log lines, read from a real worker that ran a tiny synthetic sweep for a real
//! coordinator: with `--log-format json` every stderr line is a JSON object with a timestamp and
//! a level, and every line about a job carries the job's `job`, `attempt` and `worker` (the
//! coordinator's id for it); in text mode every line starts with a timestamp and a level, the
//! job's lines show the same fields, and RUST_LOG picks the lines.

use std::path::Path;
use std::process::{Command, Stdio};

use gridsweep_e2e::{Proc, bin, scratch, start_coordinator, tiny_sweep};

/// Runs `sweep` to its end with one CPU worker started with `worker_args` and `env`; returns the
/// worker's stderr and the coordinator's records of the jobs (`runs.jsonl`).
fn run_with_one_worker(
    dir: &Path,
    sweep: &Path,
    worker_args: &[&str],
    env: &[(&str, &str)],
) -> (String, Vec<serde_json::Value>) {
    let (state, out) = (dir.join("state"), dir.join("out"));
    let flags = ["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (mut coordinator, url) = start_coordinator(sweep, &flags);
    let log = dir.join("worker.log");
    let mut cmd = Command::new(bin("worker"));
    cmd.args(worker_args).args(["--coordinator", &url, "--device", "cpu", "--threads", "1", "--work-dir"]);
    cmd.arg(dir.join("w")).env_remove("RUST_LOG").envs(env.iter().copied());
    let child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let mut worker = Proc { child };
    assert!(coordinator.child.wait().unwrap().success(), "the sweep finished");
    assert!(worker.child.wait().unwrap().success(), "the worker left when the sweep finished");
    let runs = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let records = runs.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (std::fs::read_to_string(&log).unwrap(), records)
}

/// Whether `s` starts like `2026-05-01T12:34:56.123456Z`.
fn starts_with_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && (b[4], b[7], b[10], b[13], b[16]) == (b'-', b'-', b'T', b':', b':')
        && s.split_whitespace().next().is_some_and(|t| t.ends_with('Z'))
}

#[test]
fn json_logs_are_one_object_per_line_and_a_jobs_lines_carry_its_fields() {
    let dir = scratch("logs-json");
    let sweep = tiny_sweep(&dir, "logs", "resnet", "1, 2");
    let (stderr, records) = run_with_one_worker(&dir, &sweep, &["--log-format", "json"], &[]);
    assert_eq!(records.len(), 2);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{stderr}")))
        .collect();
    for line in &lines {
        let timestamp = line["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {line}"));
        assert!(starts_with_timestamp(timestamp), "{line}");
        assert!(matches!(line["level"].as_str(), Some("ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE")), "{line}");
        assert!(line["message"].is_string() && line["target"].is_string(), "{line}");
    }
    let message = |l: &serde_json::Value| l["message"].as_str().unwrap().to_owned();
    let registered = lines.iter().find(|l| message(l).starts_with("registered with")).expect("a registration line");
    let worker = registered["worker"].as_str().expect("the worker id").to_owned();
    assert!(registered["name"].as_str().is_some_and(|n| n.contains("/pid ")), "{registered}");

    // Every job's lines: leased, an info line per epoch, the result; each with the job's fields,
    // which are the coordinator's record of who ran which job.
    for record in &records {
        let job = record["job_id"].as_str().unwrap();
        assert_eq!(record["worker"].as_str(), Some(worker.as_str()), "{record}");
        assert_eq!(record["attempts"], 1, "{record}");
        let ours: Vec<&serde_json::Value> = lines.iter().filter(|l| l["job"] == job).collect();
        for l in &ours {
            assert_eq!((l["attempt"].as_u64(), l["worker"].as_str()), (Some(1), Some(worker.as_str())), "{l}");
        }
        let said = |what: &str| ours.iter().filter(|l| message(l).contains(what) && l["level"] == "INFO").count();
        assert_eq!(said("leased; starting at epoch 1"), 1, "{job}:\n{stderr}");
        assert_eq!(said("epoch    1/2  lr "), 1, "{job}:\n{stderr}");
        assert_eq!(said("epoch    2/2  lr "), 1, "{job}:\n{stderr}");
        assert_eq!(said("Completed (accepted: true)"), 1, "{job}:\n{stderr}");
    }
    // Apart from the worker's own lines, every line is about a job and carries its fields.
    for l in &lines {
        let m = message(l);
        if !(m.starts_with("registered with") || m == "sweep finished") {
            assert!(l["job"].is_string() && l["attempt"].is_u64() && l["worker"] == worker.as_str(), "{l}");
        }
    }
    assert!(lines.iter().any(|l| message(l) == "sweep finished" && l["worker"] == worker.as_str()), "{stderr}");
    assert!(!lines.iter().any(|l| l["level"] == "DEBUG"), "debug lines only when RUST_LOG asks");
}

#[test]
fn text_logs_have_a_timestamp_a_level_and_the_jobs_fields() {
    let dir = scratch("logs-text");
    let sweep = tiny_sweep(&dir, "logs", "resnet", "3");
    // The default format; RUST_LOG replaces the default filter (here: the worker's debug lines).
    let (stderr, records) = run_with_one_worker(&dir, &sweep, &[], &[("RUST_LOG", "worker=debug")]);
    let (job, worker) = (records[0]["job_id"].as_str().unwrap(), records[0]["worker"].as_str().unwrap());
    assert!(!stderr.is_empty() && !stderr.contains('\u{1b}'), "no colours in a file:\n{stderr}");
    for line in stderr.lines() {
        assert!(starts_with_timestamp(line), "{line}");
        let level = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(matches!(level, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE"), "{line}");
    }
    let context = format!(" job{{job={job} attempt=1 worker={worker}}}: ");
    let epoch = stderr.lines().find(|l| l.contains("epoch    2/2")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(epoch.contains(" INFO ") && epoch.contains(&format!("{context}epoch    2/2  lr ")), "{epoch}");
    assert!(stderr.lines().any(|l| l.contains(" DEBUG ") && l.contains("checkpoint of epoch 1 uploaded")), "{stderr}");
    assert!(stderr.contains(&format!("{context}Completed (accepted: true)")), "{stderr}");
}
