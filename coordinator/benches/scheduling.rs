//! Scheduling load benchmark: N simulated workers pull 10,000 no-op jobs through the real gRPC
//! server and the SQLite store (WAL, synchronous=FULL: every transition a durable commit) on
//! loopback. A no-op job is an ordinary job that no worker trains: each simulated worker
//! completes it at once with a simulated one-epoch result
//! (`TrainResult::simulated`). Prints jobs/s, the p50 and
//! p99 latency of PullJob, and the coordinator's resident memory before and after, for
//! N = 1, 16, 64 (or the counts given as arguments).
//!
//! With `--http`, each count runs three times in alternation, side by side (off, on, off, on, ...):
//! without the dashboard, then with it served and busy, a client on its own thread polling
//! `/api/sweep` every 250 ms (what an open page does at most, the event stream's throttle),
//! `/metrics` every second, and holding the event stream open; then the ratio of the medians.
//!
//!     cargo bench -p gridsweep-coordinator --bench scheduling [-- [--http] JOBS N1 N2 ...]

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use coordinator::http::{self, Dashboard};
use coordinator::server::{Shared, serve};
use coordinator::store::Store;
use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::job::{Arch, DataSpec, JobSpec, TrainConfig};
use gridsweep_proto::result::{RunStatus, TrainResult};
use gridsweep_proto::v1::coordinator_client::CoordinatorClient;
use gridsweep_proto::v1::{self as pb, pull_job_response::Outcome};

/// A well-formed result for the job of `spec_json`, as a worker that trains nothing delivers.
fn noop_result(spec_json: &str) -> String {
    let spec: JobSpec = serde_json::from_str(spec_json).expect("spec");
    serde_json::to_string(&TrainResult::simulated(spec.train, RunStatus::Completed, &[10.0])).expect("json")
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn jobs(n: usize) -> Vec<JobSpec> {
    (0..n)
        .map(|k| JobSpec {
            train: TrainConfig::paper(Arch::Resnet, 26, k as u64),
            analysis: None,
            data: DataSpec::Synthetic { train: 10, test: 10, seed: 0 },
            repeat: 0,
            program: None,
        })
        .collect()
}

async fn simulated_worker(url: String) -> Vec<Duration> {
    let mut c = CoordinatorClient::connect(url).await.expect("connect");
    let req = pb::RegisterWorkerRequest {
        protocol_version: PROTOCOL_VERSION,
        name: "sim".into(),
        device: "none".into(),
        device_memory_bytes: 0,
    };
    let id = c.register_worker(req).await.expect("register").into_inner().worker_id;
    let mut latencies = Vec::new();
    loop {
        let t = Instant::now();
        let outcome = c.pull_job(pb::PullJobRequest { worker_id: id.clone(), wait_ms: 2000 }).await.expect("pull");
        latencies.push(t.elapsed());
        match outcome.into_inner().outcome {
            Some(Outcome::Lease(l)) => {
                let done = pb::CompleteJobRequest {
                    worker_id: id.clone(),
                    job_id: l.job_id,
                    fencing_token: l.fencing_token,
                    result_json: noop_result(&l.spec_json),
                };
                assert!(c.complete_job(done).await.expect("complete").into_inner().accepted);
            }
            Some(Outcome::SweepFinished(_)) => return latencies,
            _ => {}
        }
    }
}

/// One GET over a fresh connection; the bytes of the answer.
fn get(addr: SocketAddr, path: &str) -> usize {
    let Ok(mut s) = TcpStream::connect(addr) else { return 0 };
    let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes());
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    body.len()
}

/// A dashboard user on its own thread until `stop`: polls the sweep's data every 250 ms and the
/// metrics every second, with the event stream held open. Returns the requests made.
fn poll_dashboard(addr: SocketAddr, stop: Arc<AtomicBool>, requests: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let events = TcpStream::connect(addr).ok().map(|mut s| {
            let _ = s.write_all(format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes());
            s
        });
        let mut k = 0u64;
        while !stop.load(Ordering::SeqCst) {
            assert!(get(addr, "/api/sweep") > 0, "no answer from the dashboard");
            if k.is_multiple_of(4) {
                assert!(get(addr, "/metrics") > 0, "no answer from /metrics");
                requests.fetch_add(1, Ordering::SeqCst);
            }
            requests.fetch_add(1, Ordering::SeqCst);
            k += 1;
            std::thread::sleep(Duration::from_millis(250));
        }
        drop(events);
    })
}

/// One figure row: jobs/s, pull p50, p99 and max (ms), RSS before and after (MiB), and the
/// dashboard requests served during the run.
struct Row {
    jobs_per_s: f64,
    p50: f64,
    p99: f64,
    max: f64,
    rss: (f64, f64),
    http_requests: Option<u64>,
}

/// `total` no-op jobs through `n` simulated workers, with the dashboard busy when `with_http`.
async fn run_once(total: usize, n: usize, with_http: bool) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    store.add_sweep("sched-bench", "bench", &jobs(total), 3).expect("add jobs");
    let shared = Arc::new(Shared::new(store, "sched-bench".into(), Duration::from_secs(600), false, None, None, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, shared.clone(), async {
        let _ = stopped.await;
    }));
    let (poll_stop, requests) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let mut poller = None;
    let mut http_server = None;
    if with_http {
        let l = http::bind("127.0.0.1:0".parse().expect("addr"), None).await.expect("bind http");
        let addr = l.local_addr().expect("http addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(l, Dashboard::new(shared.clone(), None, true), async {
            let _ = rx.await;
        }));
        http_server = Some((tx, task));
        poller = Some(poll_dashboard(addr, poll_stop.clone(), requests.clone()));
    }
    let rss_before = rss_mib();
    let start = Instant::now();
    let workers: Vec<_> = (0..n).map(|_| tokio::spawn(simulated_worker(url.clone()))).collect();
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await.expect("worker"));
    }
    let wall = start.elapsed().as_secs_f64();
    poll_stop.store(true, Ordering::SeqCst);
    if let Some(p) = poller {
        let _ = tokio::task::spawn_blocking(move || p.join()).await;
    }
    if let Some((tx, task)) = http_server {
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    }
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3;
    let row = Row {
        jobs_per_s: total as f64 / wall,
        p50: q(0.5),
        p99: q(0.99),
        max: q(1.0),
        rss: (rss_before, rss_mib()),
        http_requests: with_http.then(|| requests.load(Ordering::SeqCst)),
    };
    let _ = stop.send(());
    let _ = server.await;
    row
}

fn print_row(n: usize, label: &str, r: &Row) {
    println!(
        "{:>8} {:>6} {:>10.0} {:>12.2} {:>12.2} {:>12.2} {:>6.0} -> {:<6.0} {:>9}",
        n,
        label,
        r.jobs_per_s,
        r.p50,
        r.p99,
        r.max,
        r.rss.0,
        r.rss.1,
        r.http_requests.map_or_else(|| "-".to_owned(), |k| k.to_string())
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

fn main() {
    let compare_http = std::env::args().any(|a| a == "--http");
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let total = args.first().copied().unwrap_or(10_000);
    let default_counts = if compare_http { vec![64] } else { vec![1, 16, 64] };
    let counts: Vec<usize> = if args.len() > 1 { args[1..].to_vec() } else { default_counts };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("scheduling benchmark: {total} no-op jobs, real gRPC on loopback, SQLite WAL synchronous=FULL");
    println!(
        "{:>8} {:>6} {:>10} {:>12} {:>12} {:>12} {:>14} {:>9}",
        "workers", "http", "jobs/s", "pull p50 ms", "pull p99 ms", "pull max ms", "RSS MiB", "http reqs"
    );
    for n in counts {
        if !compare_http {
            print_row(n, "off", &rt.block_on(run_once(total, n, false)));
            continue;
        }
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let r = rt.block_on(run_once(total, n, false));
            print_row(n, "off", &r);
            off.push(r.jobs_per_s);
            let r = rt.block_on(run_once(total, n, true));
            print_row(n, "on", &r);
            on.push(r.jobs_per_s);
        }
        let (off, on) = (median(off), median(on));
        println!("{n} workers: dashboard on / off = {:.3} (median jobs/s {on:.0} / {off:.0})", on / off);
    }
}
