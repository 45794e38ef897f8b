//! The coordinator's operating surfaces, served in-process on 127.0.0.1:0 over a temporary
//! state (no libtorch, no worker binary): gRPC health (no token; NOT_SERVING once draining),
//! reflection (behind the token), Prometheus `/metrics` (parsed, and moved by real rpcs), the
//! dashboard's token gate (401 page, bearer, login cookie), its 404s, its event stream, and
//! `coordinator dashboard` on a directory that is not a state.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coordinator::http::{self, Dashboard, HttpError};
use coordinator::server::Shared;
use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::result::EpochMetrics;
use gridsweep_proto::v1::{self as pb, pull_job_response::Outcome};
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckRequest as Hc};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

mod common;

const TOKEN: &str = "surface-test-token";

/// A fresh scratch directory for this test process.
fn scratch(name: &str) -> PathBuf {
    common::scratch("surfaces", name)
}

/// A served coordinator: its shared state, gRPC URL and dashboard address.
struct Served {
    shared: Arc<Shared>,
    grpc: String,
    http: SocketAddr,
    jobs: Vec<String>,
}

/// Serves a four-job synthetic sweep over a fresh state: gRPC on 127.0.0.1:0 with `token`, the
/// dashboard on `http_ip`:0 (requiring the token when that is not loopback).
async fn start(name: &str, token: Option<&str>, http_ip: &str) -> Served {
    let common::Grpc { shared, url: grpc, jobs, .. } = common::serve_sweep(&scratch(name), "surf", 3, token).await;
    let http_listener = http::bind(format!("{http_ip}:0").parse().unwrap(), token).await.unwrap();
    let http = http_listener.local_addr().unwrap();
    let dashboard = Dashboard::new(shared.clone(), http::required_token(http, token), true);
    tokio::spawn(http::serve(http_listener, dashboard, std::future::pending()));
    Served { shared, grpc, http: SocketAddr::from(([127, 0, 0, 1], http.port())), jobs }
}

/// An HTTP/1.1 answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP request over a fresh connection (plain std sockets, off the runtime).
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        text.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(body);
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(text.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
        let headers =
            lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
        Answer { status, headers, body: body.to_owned() }
    })
    .await
    .unwrap()
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    request(addr, "GET", path, headers, "").await
}

async fn client(url: &str, token: Option<&str>) -> gridsweep_proto::client::Client {
    gridsweep_proto::client::connect(url, None, token).await.unwrap()
}

/// Registers a worker and leases a job; returns (worker, lease).
async fn lease(c: &mut gridsweep_proto::client::Client) -> (String, pb::Lease) {
    let worker = c
        .register_worker(pb::RegisterWorkerRequest {
            name: "test".into(),
            device: "cpu".into(),
            protocol_version: PROTOCOL_VERSION,
            device_memory_bytes: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let pulled = c.pull_job(pb::PullJobRequest { worker_id: worker.clone(), wait_ms: 0 }).await.unwrap().into_inner();
    let Some(Outcome::Lease(l)) = pulled.outcome else { panic!("no lease: {pulled:?}") };
    (worker, l)
}

/// The next event read, within `within`.
async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
    within: Duration,
) -> Option<(u64, Instant)> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

/// A heartbeat reporting `epoch`.
fn beat(worker: &str, l: &pb::Lease, epoch: u32, token: u64) -> pb::HeartbeatRequest {
    let m = EpochMetrics {
        epoch,
        lr: 0.1,
        train_loss: Some(1.5),
        train_acc: 40.0,
        test_loss: Some(1.6),
        test_acc: 38.5,
        seconds: 2.0,
        images_per_s: 32.0,
    };
    pb::HeartbeatRequest {
        worker_id: worker.to_owned(),
        job_id: l.job_id.clone(),
        fencing_token: token,
        epochs: vec![pb::EpochReport { epoch, metrics_json: serde_json::to_string(&m).unwrap() }],
    }
}

/// The samples of an OpenMetrics text: `name{labels}` -> value. Checks the format line by line.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics ends with # EOF");
    let mut samples = HashMap::new();
    for line in &lines[..lines.len() - 1] {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.starts_with("# UNIT ") {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name_end = key.find('{').unwrap_or(key.len());
        assert!(key[..name_end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad metric name in {line:?}");
        if name_end < key.len() {
            assert!(key.ends_with('}'), "unclosed labels in {line:?}");
        }
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.insert(key.to_owned(), v);
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_without_a_token_and_turns_not_serving_when_draining() {
    let s = start("health", Some(TOKEN), "127.0.0.1").await;
    let channel = tonic::transport::Endpoint::from_shared(s.grpc.clone()).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "gridsweep.v1.Coordinator"] {
        let r = health.check(Hc { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "service {service:?}");
    }
    // Probes need no token; the coordinator's own rpcs still do.
    let mut anonymous = client(&s.grpc, None).await;
    let e = anonymous.get_status(pb::GetStatusRequest {}).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    s.shared.drain().await;
    for service in ["", "gridsweep.v1.Coordinator"] {
        let r = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), ServingStatus::NotServing, "service {service:?} while draining");
    }
    // Liveness stays SERVING while draining: a drain is not a reason to restart the process.
    let alive = health.check(HealthCheckRequest { service: "liveness".into() }).await.unwrap().into_inner();
    assert_eq!(alive.status(), ServingStatus::Serving);
    let unknown = health.check(HealthCheckRequest { service: "nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

/// Lists the services over reflection with `token`.
async fn list_services(url: &str, token: Option<&str>) -> Result<Vec<String>, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned()).unwrap().connect().await.unwrap();
    let header: Option<tonic::metadata::MetadataValue<_>> = token.map(|t| format!("Bearer {t}").parse().unwrap());
    let mut c = ServerReflectionClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        if let Some(h) = &header {
            r.metadata_mut().insert("authorization", h.clone());
        }
        Ok(r)
    });
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = c.server_reflection_info(tokio_stream::iter([ask])).await?.into_inner();
    let first: ServerReflectionResponse = answers.next().await.unwrap()?;
    match first.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => Ok(l.service.into_iter().map(|s| s.name).collect()),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_needs_the_token_and_lists_the_coordinator() {
    let s = start("reflection", Some(TOKEN), "127.0.0.1").await;
    let refused = list_services(&s.grpc, None).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let wrong = list_services(&s.grpc, Some("wrong")).await.unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    let services = list_services(&s.grpc, Some(TOKEN)).await.unwrap();
    for service in ["gridsweep.v1.Coordinator", "grpc.health.v1.Health"] {
        assert!(services.contains(&service.to_owned()), "{service} not in {services:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_store_and_the_rpcs() {
    let s = start("metrics", None, "127.0.0.1").await;
    let om = [("Accept", "application/openmetrics-text")];
    let read = || async { parse_metrics(&get(s.http, "/metrics", &om).await.body) };
    let m = read().await;
    assert_eq!(m["gridsweep_jobs{state=\"pending\"}"], s.jobs.len() as f64);
    assert_eq!(m["gridsweep_jobs{state=\"running\"}"], 0.0);
    assert_eq!(m["gridsweep_epochs_reported_total"], 0.0);

    let mut c = client(&s.grpc, None).await;
    let (worker, l) = lease(&mut c).await;
    c.heartbeat(beat(&worker, &l, 1, l.fencing_token)).await.unwrap();
    let stale = c.heartbeat(beat(&worker, &l, 2, l.fencing_token + 99)).await.unwrap_err();
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);

    let answer = get(s.http, "/metrics", &om).await;
    assert_eq!(answer.status, 200);
    assert!(answer.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let m = parse_metrics(&answer.body);
    assert_eq!(m["gridsweep_jobs{state=\"pending\"}"], (s.jobs.len() - 1) as f64);
    assert_eq!(m["gridsweep_jobs{state=\"running\"}"], 1.0);
    assert_eq!(m["gridsweep_workers{state=\"live\"}"], 1.0);
    assert_eq!(m["gridsweep_epochs_reported_total"], 1.0);
    let hb = "gridsweep_grpc_requests_total{method=\"gridsweep.v1.Coordinator/Heartbeat\"";
    assert_eq!(m[&format!("{hb},code=\"OK\"}}")], 1.0);
    assert_eq!(m[&format!("{hb},code=\"FAILED_PRECONDITION\"}}")], 1.0);
    let lat = "gridsweep_grpc_request_duration_seconds";
    let method = "method=\"gridsweep.v1.Coordinator/Heartbeat\"";
    assert_eq!(m[&format!("{lat}_count{{{method}}}")], 2.0);
    assert_eq!(m[&format!("{lat}_bucket{{le=\"+Inf\",{method}}}")], 2.0);
    // Register, lease, the good heartbeat: at least three commits, each timed.
    let commits = m["gridsweep_store_commit_duration_seconds_count"];
    assert!(commits >= 3.0, "{commits} commits");
    assert_eq!(m["gridsweep_store_commit_duration_seconds_bucket{le=\"+Inf\"}"], commits);
    assert!(m["gridsweep_store_commit_duration_seconds_sum"] > 0.0);

    // A failure of the job's own puts it back in the queue: a failure and a retry counted.
    c.fail_job(pb::FailJobRequest {
        worker_id: worker.clone(),
        job_id: l.job_id.clone(),
        fencing_token: l.fencing_token,
        error: "boom".into(),
        kind: pb::FailureKind::Job.into(),
    })
    .await
    .unwrap();
    let m = read().await;
    assert_eq!(m["gridsweep_job_failures_total{cause=\"job\"}"], 1.0);
    assert_eq!(m["gridsweep_job_retries_total{cause=\"failure\"}"], 1.0);
    assert_eq!(m["gridsweep_jobs{state=\"running\"}"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_off_loopback_needs_the_token() {
    let s = start("auth", Some(TOKEN), "0.0.0.0").await;
    let page = get(s.http, "/jobs", &[]).await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("needs the sweep&#39;s token"), "{}", page.body);
    assert!(page.body.contains("name=\"next\" value=\"/jobs\""), "{}", page.body);
    for path in ["/api/sweep", "/api/jobs", "/metrics", "/api/events", "/api/jobs/x"] {
        let a = get(s.http, path, &[]).await;
        assert_eq!(a.status, 401, "{path}");
        assert!(a.body.contains("needs the sweep's token"), "{path}: {}", a.body);
    }
    let wrong = get(s.http, "/api/sweep", &[("Authorization", "Bearer nope")]).await;
    assert_eq!(wrong.status, 401);
    // The token is never taken from the URL.
    assert_eq!(get(s.http, &format!("/api/sweep?token={TOKEN}"), &[]).await.status, 401);

    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(get(s.http, "/api/sweep", &[("Authorization", &bearer)]).await.status, 200);
    let ok = get(s.http, "/api/jobs", &[("Authorization", &bearer)]).await;
    assert_eq!(ok.status, 200);
    let v: serde_json::Value = serde_json::from_str(&ok.body).unwrap();
    let mut listed: Vec<String> =
        v["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect();
    let mut expected = s.jobs.clone();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);

    let refused = request(s.http, "POST", "/login", &[], "token=wrong&next=%2Fjobs").await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("Wrong token"), "{}", refused.body);
    assert!(refused.header("set-cookie").is_none());

    let login = request(s.http, "POST", "/login", &[], &format!("token={TOKEN}&next=%2Fjobs")).await;
    assert_eq!(login.status, 303);
    assert_eq!(login.header("location"), Some("/jobs"));
    let cookie = login.header("set-cookie").unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(TOKEN), "the cookie must not carry the token: {cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = get(s.http, "/jobs", &[("Cookie", &session)]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/app.js"));
    assert_eq!(get(s.http, "/metrics", &[("Cookie", &session)]).await.status, 200);

    // Going on elsewhere after a login is refused.
    let away = request(s.http, "POST", "/login", &[], &format!("token={TOKEN}&next=%2F%2Fevil.example")).await;
    assert_eq!(away.header("location"), Some("/"));
    // The assets load without the token (the login page uses the stylesheet).
    assert_eq!(get(s.http, "/assets/app.css", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_dashboard_without_a_token_is_refused() {
    match http::bind("0.0.0.0:0".parse().unwrap(), None).await {
        Err(e @ HttpError::NeedsToken(_)) => assert!(e.to_string().contains("token"), "{e}"),
        other => panic!("expected NeedsToken, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_jobs_and_pages_are_404_and_known_ones_are_served() {
    let s = start("notfound", None, "127.0.0.1").await;
    let page = get(s.http, "/jobs/0123456789ab", &[]).await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("There is no job 0123456789ab in sweep surf"), "{}", page.body);
    let api = get(s.http, "/api/jobs/0123456789ab", &[]).await;
    assert_eq!(api.status, 404);
    assert!(api.body.contains("no job 0123456789ab"), "{}", api.body);
    assert_eq!(get(s.http, "/nowhere", &[]).await.status, 404);
    assert_eq!(get(s.http, "/assets/nothing.js", &[]).await.status, 404);
    assert_eq!(get(s.http, "/plots/nothing.svg", &[]).await.status, 404);

    let known = &s.jobs[0];
    assert_eq!(get(s.http, &format!("/jobs/{known}"), &[]).await.status, 200);
    let detail = get(s.http, &format!("/api/jobs/{known}"), &[]).await;
    assert_eq!(detail.status, 200);
    let v: serde_json::Value = serde_json::from_str(&detail.body).unwrap();
    assert_eq!(v["job"]["id"], known.as_str());
    assert_eq!(v["job"]["state"], "pending");
    let tables = get(s.http, "/api/tables", &[]).await;
    assert_eq!(tables.status, 200);
    assert!(tables.body.contains("Table 1"), "{}", tables.body);
    let uplot = get(s.http, "/assets/uPlot.iife.min.js", &[]).await;
    assert_eq!(uplot.status, 200);
    assert!(uplot.body.contains("uPlot"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_announces_an_epoch_report_at_once() {
    let s = start("events", None, "127.0.0.1").await;
    let addr = s.http;
    // Read the stream on a thread: the first event (the current version), then the next ones.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    std::thread::spawn(move || {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let mut text = String::new();
        loop {
            let n = conn.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(i) = text.find("data: ") {
                let rest = &text[i + 6..];
                let Some(end) = rest.find('\n') else { break };
                let _ = tx.send((rest[..end].trim().parse().unwrap(), Instant::now()));
                text = rest[end..].to_owned();
            }
        }
    });
    let (first, _) = next(&mut rx, Duration::from_secs(5)).await.expect("a first event with the current version");
    let mut c = client(&s.grpc, None).await;
    let (worker, l) = lease(&mut c).await;
    let sent = Instant::now();
    c.heartbeat(beat(&worker, &l, 1, l.fencing_token)).await.unwrap();
    let after_epoch = *s.shared.changed.borrow();
    // The lease and the epoch may come as one event or two; the epoch's comes within 2 s.
    let mut last = first;
    let mut seen_after_epoch = false;
    while let Some((v, at)) =
        next(&mut rx, (sent + Duration::from_secs(2)).saturating_duration_since(Instant::now())).await
    {
        assert!(v > last, "versions only grow: {v} after {last}");
        last = v;
        if v >= after_epoch {
            assert!(at.duration_since(sent) < Duration::from_secs(2));
            seen_after_epoch = true;
            break;
        }
    }
    assert!(seen_after_epoch, "no event for the epoch report within 2 s");
}

#[test]
fn dashboard_command_refuses_a_directory_that_is_not_a_state() {
    let dir = scratch("notastate");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["dashboard", "--state", dir.to_str().unwrap(), "--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(dir.to_str().unwrap()), "{err}");
}

/// Out of memory over gRPC: the workers register their memory, a job that ran out of memory on a
/// 24 GiB worker is not given to another 24 GiB one but to an 80 GiB one, and while only small
/// workers are live the status names it.
#[tokio::test]
async fn an_out_of_memory_job_goes_to_a_worker_with_more_memory() {
    let s = start("oom", None, "127.0.0.1").await;
    let mut c = client(&s.grpc, None).await;
    let gib = 1u64 << 30;
    let register = |name: &str, bytes: u64| pb::RegisterWorkerRequest {
        protocol_version: PROTOCOL_VERSION,
        name: name.into(),
        device: "cuda:0".into(),
        device_memory_bytes: bytes,
    };
    let small = c.register_worker(register("small", 24 * gib)).await.unwrap().into_inner().worker_id;
    let pull = |w: &str| pb::PullJobRequest { worker_id: w.to_owned(), wait_ms: 0 };
    let Some(Outcome::Lease(l)) = c.pull_job(pull(&small)).await.unwrap().into_inner().outcome else {
        panic!("no lease")
    };
    let fail = pb::FailJobRequest {
        worker_id: small.clone(),
        job_id: l.job_id.clone(),
        fencing_token: l.fencing_token,
        error: "out of memory on cuda:0 (24.0 GiB); the job needs more: CUDA out of memory".into(),
        kind: pb::FailureKind::OutOfMemory.into(),
    };
    assert!(c.fail_job(fail).await.unwrap().into_inner().will_retry);
    // The small worker gets the other three jobs, never this one.
    for _ in 0..3 {
        let Some(Outcome::Lease(other)) = c.pull_job(pull(&small)).await.unwrap().into_inner().outcome else {
            panic!("no lease")
        };
        assert_ne!(other.job_id, l.job_id);
    }
    let nothing = c.pull_job(pull(&small)).await.unwrap().into_inner().outcome;
    assert!(matches!(nothing, Some(Outcome::NoJobYet(_))), "{nothing:?}");
    let status = s.shared.status_off_runtime().await.unwrap();
    assert!(
        status.stalled.contains(&format!("job {} ", l.job_id)) && status.stalled.contains("24.0 GiB"),
        "{}",
        status.stalled
    );
    assert_eq!(status.workers[0].device_memory_bytes, 24 * gib);
    let large = c.register_worker(register("large", 80 * gib)).await.unwrap().into_inner().worker_id;
    let Some(Outcome::Lease(again)) = c.pull_job(pull(&large)).await.unwrap().into_inner().outcome else {
        panic!("no lease for the large worker")
    };
    assert_eq!(again.job_id, l.job_id);
}
