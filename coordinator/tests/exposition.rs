//! `/metrics` read by parsers that are not the project's: PyPI's `prometheus_client` (its classic
//! text parser and its OpenMetrics parser), installed by this test into a virtual environment
//! under the target directory, and Debian's `promtool check metrics` where it is installed. The
//! coordinator is served in-process over a temporary state, and real rpcs move its counters and
//! histograms first, so that every kind of family has samples.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use coordinator::http::{self, Dashboard};
use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::result::EpochMetrics;
use gridsweep_proto::v1::{self as pb, pull_job_response::Outcome};
use serde_json::Value;

mod common;

/// The parser's version, pinned.
const PROMETHEUS_CLIENT: &str = "prometheus_client==0.26.0";

/// What Prometheus 2.x sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Parses the classic text (argv 1) and the OpenMetrics text (argv 2) and prints each as JSON:
/// a list of families with their type, help and samples. A parse error raises: exit 1.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families as classic
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
def families(parse, path):
    with open(path) as f:
        return [{"name": m.name, "type": m.type, "help": m.documentation,
                 "samples": sorted([s.name, sorted(s.labels.items()), s.value] for s in m.samples)}
                for m in parse(f.read())]
print(json.dumps({"classic": families(classic, sys.argv[1]), "openmetrics": families(openmetrics, sys.argv[2])}))
"#;

/// GET /metrics from `addr` with `accept`: the content type and the body.
fn scrape(addr: SocketAddr, accept: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let kind = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned));
    (kind.unwrap_or_default(), body.to_owned())
}

/// A Python with `prometheus_client` in a virtual environment under the target directory, or why
/// there cannot be one here.
fn python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prometheus-client-venv");
    let py = venv.join("bin/python");
    let pins = venv.join(".pins");
    if std::fs::read_to_string(&pins).ok().as_deref() == Some(PROMETHEUS_CLIENT) {
        return Ok(py);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).output();
    match made {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(format!("python3 -m venv failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => return Err(format!("no python3 to make a virtual environment with: {e}")),
    }
    let pip = Command::new(&py)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", PROMETHEUS_CLIENT])
        .output()
        .map_err(|e| format!("running pip: {e}"))?;
    if !pip.status.success() {
        return Err(format!("pip install {PROMETHEUS_CLIENT} failed: {}", String::from_utf8_lossy(&pip.stderr).trim()));
    }
    std::fs::write(&pins, PROMETHEUS_CLIENT).unwrap();
    Ok(py)
}

/// Each family by name: its type, help, and samples (name, labels, value) as the parser gave them.
fn by_name(families: &Value) -> BTreeMap<String, (String, String, Value)> {
    let list = families.as_array().expect("a list of families");
    list.iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (s("name"), (s("type"), s("help"), f["samples"].clone()))
        })
        .collect()
}

/// Moves every kind of family: a registration, a lease, an epoch report, a stale report and a
/// failed job (counters with labels, the rpc histogram, the commit histogram, the gauges).
async fn exercise(url: &str) {
    let mut c = gridsweep_proto::client::connect(url, None, None).await.unwrap();
    let reg = pb::RegisterWorkerRequest {
        name: "exposition".into(),
        device: "cpu".into(),
        protocol_version: PROTOCOL_VERSION,
        device_memory_bytes: 0,
    };
    let worker = c.register_worker(reg).await.unwrap().into_inner().worker_id;
    let pull = pb::PullJobRequest { worker_id: worker.clone(), wait_ms: 0 };
    let Some(Outcome::Lease(l)) = c.pull_job(pull).await.unwrap().into_inner().outcome else { panic!("no lease") };
    let m = EpochMetrics {
        epoch: 1,
        lr: 0.1,
        train_loss: Some(1.5),
        train_acc: 40.0,
        test_loss: Some(1.6),
        test_acc: 38.5,
        seconds: 2.0,
        images_per_s: 32.0,
    };
    let beat = |token: u64| pb::HeartbeatRequest {
        worker_id: worker.clone(),
        job_id: l.job_id.clone(),
        fencing_token: token,
        epochs: vec![pb::EpochReport { epoch: 1, metrics_json: serde_json::to_string(&m).unwrap() }],
    };
    c.heartbeat(beat(l.fencing_token)).await.unwrap();
    assert!(c.heartbeat(beat(l.fencing_token + 9)).await.is_err(), "a stale token is refused");
    let fail = pb::FailJobRequest {
        worker_id: worker.clone(),
        job_id: l.job_id.clone(),
        fencing_token: l.fencing_token,
        error: "boom".into(),
        kind: pb::FailureKind::Job.into(),
    };
    c.fail_job(fail).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_formats_parse_with_independent_parsers_and_agree() {
    let dir = common::scratch("exposition", "formats");
    let g = common::serve_sweep(&dir, "expo", 3, None).await;
    let listener = http::bind("127.0.0.1:0".parse().unwrap(), None).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(http::serve(listener, Dashboard::new(g.shared.clone(), None, true), std::future::pending()));
    exercise(&g.url).await;

    let (classic, openmetrics, star) = tokio::task::spawn_blocking(move || {
        (scrape(addr, None), scrape(addr, Some(PROMETHEUS_ACCEPT)), scrape(addr, Some("*/*")))
    })
    .await
    .unwrap();
    assert_eq!(classic.0, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(star.0, classic.0, "a plain curl (*/*) gets the classic format");
    assert_eq!(openmetrics.0, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(openmetrics.1.ends_with("# EOF\n") && !classic.1.contains("# EOF"));
    let (classic_file, om_file) = (dir.join("classic.txt"), dir.join("openmetrics.txt"));
    std::fs::write(&classic_file, &classic.1).unwrap();
    std::fs::write(&om_file, &openmetrics.1).unwrap();

    let checked = tokio::task::spawn_blocking(move || {
        let promtool = promtool(&classic.1);
        let py = match python() {
            Ok(py) => py,
            Err(why) => return (promtool, Err(why)),
        };
        let out = Command::new(py).arg("-c").arg(PARSE).arg(&classic_file).arg(&om_file).output().unwrap();
        let parsed = if out.status.success() {
            Ok(serde_json::from_slice::<Value>(&out.stdout).unwrap())
        } else {
            panic!("prometheus_client could not parse /metrics: {}", String::from_utf8_lossy(&out.stderr))
        };
        (promtool, parsed)
    })
    .await
    .unwrap();
    let (promtool, parsed) = checked;
    match promtool {
        Some(report) => assert_eq!(report, "", "promtool check metrics finds problems"),
        None => eprintln!("promtool not installed (apt-get install prometheus): checked with prometheus_client only"),
    }
    let parsed = match parsed {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED both_formats_parse_with_independent_parsers_and_agree: {why}");
            return;
        }
    };
    let (c, o) = (by_name(&parsed["classic"]), by_name(&parsed["openmetrics"]));
    assert_eq!(c.keys().collect::<Vec<_>>(), o.keys().collect::<Vec<_>>(), "the same families in both");
    for (name, (kind, help, samples)) in &c {
        assert!(["counter", "gauge", "histogram"].contains(&kind.as_str()), "{name} is {kind}");
        assert!(!help.is_empty(), "{name} has no HELP");
        assert_eq!((kind, help, samples), (&o[name].0, &o[name].1, &o[name].2), "{name} differs between formats");
    }
    for family in ["jobs", "workers", "epochs_reported", "job_failures", "job_retries", "grpc_requests"] {
        assert!(c.contains_key(&format!("gridsweep_{family}")), "gridsweep_{family} missing: {:?}", c.keys());
    }
    for family in ["grpc_request_duration_seconds", "store_commit_duration_seconds"] {
        assert_eq!(c[&format!("gridsweep_{family}")].0, "histogram");
    }
    let epochs = &c["gridsweep_epochs_reported"];
    assert_eq!(epochs.0, "counter");
    let sample = &epochs.2[0];
    assert_eq!((sample[0].as_str(), sample[2].as_f64()), (Some("gridsweep_epochs_reported_total"), Some(1.0)));
}

/// `promtool check metrics` on the classic text: what it reports (empty when clean), or `None`
/// when promtool is not installed.
fn promtool(text: &str) -> Option<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some(if out.status.success() { report.trim().to_owned() } else { format!("exit {}: {report}", out.status) })
}
