//! Scheduling load benchmark: N simulated workers pull 10,000 no-op jobs through the real gRPC
//! server and the SQLite store (WAL, synchronous=FULL: every transition a durable commit) on
//! loopback. A no-op job is an ordinary job that no worker trains: each simulated worker
//! completes it at once with a simulated one-epoch result
//! (`TrainResult::simulated`). Prints jobs/s, the p50 and
//! p99 latency of PullJob, and the coordinator's resident memory before and after, for
//! N = 1, 16, 64 (or the counts given as arguments).
//!
//!     cargo bench -p gridsweep-coordinator --bench scheduling [-- JOBS N1 N2 ...]

use std::sync::Arc;
use std::time::{Duration, Instant};

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
        })
        .collect()
}

async fn simulated_worker(url: String) -> Vec<Duration> {
    let mut c = CoordinatorClient::connect(url).await.expect("connect");
    let req = pb::RegisterWorkerRequest {
        protocol_version: PROTOCOL_VERSION,
        name: "sim".into(),
        device: "none".into(),
        slots: 1,
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

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let total = args.first().copied().unwrap_or(10_000);
    let counts: Vec<usize> = if args.len() > 1 { args[1..].to_vec() } else { vec![1, 16, 64] };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("scheduling benchmark: {total} no-op jobs, real gRPC on loopback, SQLite WAL synchronous=FULL");
    println!(
        "{:>8} {:>10} {:>12} {:>12} {:>12} {:>14}",
        "workers", "jobs/s", "pull p50 ms", "pull p99 ms", "pull max ms", "RSS MiB"
    );
    for n in counts {
        rt.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::open(dir.path()).expect("store");
            store.add_sweep("sched-bench", "bench", &jobs(total), 3).expect("add jobs");
            let shared =
                Arc::new(Shared::new(store, "sched-bench".into(), Duration::from_secs(600), false, None, None, None));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("addr"));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(listener, shared, async {
                let _ = stopped.await;
            }));
            let rss_before = rss_mib();
            let start = Instant::now();
            let workers: Vec<_> = (0..n).map(|_| tokio::spawn(simulated_worker(url.clone()))).collect();
            let mut lat = Vec::new();
            for w in workers {
                lat.extend(w.await.expect("worker"));
            }
            let wall = start.elapsed().as_secs_f64();
            lat.sort();
            let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3;
            println!(
                "{:>8} {:>10.0} {:>12.2} {:>12.2} {:>12.2} {:>6.0} -> {:<6.0}",
                n,
                total as f64 / wall,
                q(0.5),
                q(0.99),
                q(1.0),
                rss_before,
                rss_mib()
            );
            let _ = stop.send(());
            let _ = server.await;
        });
    }
}
