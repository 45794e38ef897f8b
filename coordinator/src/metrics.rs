//! The coordinator's Prometheus metrics, served at `/metrics` on the HTTP address in the
//! OpenMetrics text format (encoded by the `prometheus-client` crate), or in the classic text
//! format for scrapers that do not ask for OpenMetrics (`exposition.rs`). Counters and histograms
//! are updated where things happen (rpc handlers, the lease reaper, the store's group commit);
//! the jobs and workers by state are read from the store at each scrape (the job counts by one
//! query, not a whole snapshot) and tallied as the read model's `Counts` and `WorkerState`s (by
//! the dashboard's `/metrics` handler, which hands the tallies here by name), so that they are
//! always what the store holds, never a tally that could drift from it.

mod exposition;
mod grpc;

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use exposition::Format;
pub use grpc::RecordRpcs;

/// A label set with one `state` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    /// A job's or worker's state.
    state: String,
}

/// The labels of an rpc's request count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    /// `package.Service/Method`.
    method: String,
    /// The gRPC status code's name (`OK`, `NOT_FOUND`, ...).
    code: String,
}

/// The label of an rpc's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    /// `package.Service/Method`.
    method: String,
}

/// A label set with one `cause` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    /// Why it happened.
    cause: String,
}

/// Latency buckets from 0.5 ms to ~65 s: a long-polling pull waits up to 30 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Every metric, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    /// Encodes the metrics below; behind a lock because encoding takes `&Registry` while the
    /// state gauges are being set for the scrape.
    registry: Mutex<Registry>,
    /// Jobs by state, set from the store at each scrape.
    jobs: Family<StateLabel, Gauge>,
    /// Workers by state (live, quiet, quarantined), set from the store at each scrape.
    workers: Family<StateLabel, Gauge>,
    /// Epoch reports accepted (a re-sent epoch counts again).
    epochs_reported: Counter,
    /// Leases that ran out without a heartbeat.
    lease_expiries: Counter,
    /// Jobs put back in the queue: after a failure (`failure`) or by `coordinator retry` (`command`).
    retries: Family<CauseLabel, Counter>,
    /// Failures reported by workers, by kind.
    failures: Family<CauseLabel, Counter>,
    /// Workers quarantined after consecutive failed jobs.
    quarantines: Counter,
    /// gRPC requests by method and status code.
    rpc_requests: Family<RpcLabels, Counter>,
    /// gRPC latency by method, to the response's headers (a pull's long poll included).
    rpc_seconds: Family<MethodLabel, Histogram, fn() -> Histogram>,
    /// The store's group commits: seconds from COMMIT to durable (one fsync per batch).
    store_commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `gridsweep_` prefix.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("gridsweep")),
            jobs: Family::default(),
            workers: Family::default(),
            epochs_reported: Counter::default(),
            lease_expiries: Counter::default(),
            retries: Family::default(),
            failures: Family::default(),
            quarantines: Counter::default(),
            rpc_requests: Family::default(),
            rpc_seconds: Family::new_with_constructor(latency_histogram),
            store_commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register("jobs", "Jobs of the sweep by state", m.jobs.clone());
            r.register("workers", "Workers by state (live, quiet, quarantined)", m.workers.clone());
            r.register("epochs_reported", "Epoch reports accepted from workers", m.epochs_reported.clone());
            r.register("lease_expiries", "Leases that ran out without a heartbeat", m.lease_expiries.clone());
            r.register("job_retries", "Jobs put back in the queue, by cause", m.retries.clone());
            r.register("job_failures", "Failures reported by workers, by kind", m.failures.clone());
            r.register("worker_quarantines", "Workers quarantined after consecutive failures", m.quarantines.clone());
            r.register("grpc_requests", "gRPC requests by method and status code", m.rpc_requests.clone());
            r.register("grpc_request_duration_seconds", "gRPC latency by method", m.rpc_seconds.clone());
            r.register(
                "store_commit_duration_seconds",
                "Group commits of the state database, COMMIT to durable",
                m.store_commit_seconds.clone(),
            );
        }
        m
    }

    /// The histogram the store records its commits in.
    pub fn store_commits(&self) -> Histogram {
        self.store_commit_seconds.clone()
    }

    /// `n` epoch reports accepted.
    pub fn epochs_reported(&self, n: usize) {
        self.epochs_reported.inc_by(n as u64);
    }

    /// `n` leases expired.
    pub fn leases_expired(&self, n: usize) {
        self.lease_expiries.inc_by(n as u64);
    }

    /// `n` jobs put back in the queue for `cause` (`failure`, `command`).
    pub fn retried(&self, cause: &str, n: usize) {
        self.retries.get_or_create(&CauseLabel { cause: cause.to_owned() }).inc_by(n as u64);
    }

    /// A failure of `kind` reported.
    pub fn failed(&self, kind: &str) {
        self.failures.get_or_create(&CauseLabel { cause: kind.to_owned() }).inc();
    }

    /// A worker quarantined.
    pub fn quarantined(&self) {
        self.quarantines.inc();
    }

    /// One rpc to `method` answered with `code` after `elapsed`.
    pub fn rpc(&self, method: &str, code: &str, elapsed: Duration) {
        self.rpc_requests.get_or_create(&RpcLabels { method: method.to_owned(), code: code.to_owned() }).inc();
        self.rpc_seconds.get_or_create(&MethodLabel { method: method.to_owned() }).observe(elapsed.as_secs_f64());
    }

    /// The text exposition, with the state gauges set: `jobs` and `workers` name each state
    /// (`pending`, `live`, ...) with its count, as the read model tallies them (`http/api.rs`).
    pub fn encode(&self, jobs: &[(&str, usize)], workers: &[(&str, usize)]) -> Result<String, std::fmt::Error> {
        for (state, n) in jobs {
            self.jobs.get_or_create(&StateLabel { state: (*state).to_owned() }).set(*n as i64);
        }
        for (state, n) in workers {
            self.workers.get_or_create(&StateLabel { state: (*state).to_owned() }).set(*n as i64);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().unwrap_or_else(|e| e.into_inner()))?;
        Ok(out)
    }
}
