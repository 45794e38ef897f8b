//! The dashboard's data, as JSON built from the store: the sweep (jobs and workers), one job in
//! full, the tables as they fill and the plots; and Prometheus `/metrics`. Store reads run on the
//! blocking pool, never on the runtime's threads.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridsweep_proto::job::JobSpec;
use gridsweep_proto::result::EpochMetrics;
use gridsweep_proto::v1::JobState;
use serde::Serialize;
use serde_json::Value;

use super::Dashboard;
use crate::condition::Varying;
use crate::plots::{PlotInfo, render_plots};
use crate::stall;
use crate::store::{AttemptRow, JobRow, Store, StoreError, now};
use crate::tables::render_markdown;

/// A failure to answer, as a response.
#[derive(Debug)]
pub enum ApiError {
    /// Nothing by that name.
    NotFound(String),
    /// The store or a drawing failed.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Runs `f` over the store on the blocking pool.
async fn read<T: Send + 'static>(
    d: &Arc<Dashboard>,
    f: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let shared = d.shared.clone();
    tokio::task::spawn_blocking(move || f(&shared.store))
        .await
        .map_err(|e| ApiError::Internal(format!("store read failed: {e}")))?
}

/// One job in the jobs list.
#[derive(Debug, Serialize)]
struct JobView {
    /// Its id.
    id: String,
    /// vgg, resnet or grid.
    arch: &'static str,
    /// Layers.
    depth: u32,
    /// Seed.
    seed: u64,
    /// Repeat of the same seed.
    repeat: u32,
    /// pending, running, completed, diverged, failed.
    state: &'static str,
    /// The worker holding it, or that ran it last.
    worker: Option<String>,
    /// Epochs reported.
    epoch: u32,
    /// Epochs it trains.
    epochs_total: u32,
    /// Latest test accuracy, percent.
    test_acc: Option<f64>,
    /// Seconds to its end, for a running job with an epoch behind it.
    eta_s: Option<f64>,
    /// Grants so far.
    attempts: u32,
    /// Failures that used an attempt.
    failures: u32,
    /// Attempts it may use.
    max_attempts: u32,
    /// Last error.
    error: Option<String>,
    /// Whose fault the last error was.
    error_kind: Option<&'static str>,
    /// Its values of the sweep's varying settings, in `SweepView::settings`' order.
    settings: Vec<String>,
}

impl JobView {
    /// The view of `j`, with its values of the varying settings.
    fn of(j: &JobRow, settings: Vec<String>) -> JobView {
        let t = &j.spec.train;
        JobView {
            id: j.id.clone(),
            arch: t.arch.name(),
            depth: t.depth,
            seed: t.seed,
            repeat: j.spec.repeat,
            state: j.state.name(),
            worker: j.worker.clone(),
            epoch: j.epoch,
            epochs_total: t.epochs,
            test_acc: j.test_acc,
            eta_s: match (j.state, j.secs_per_epoch) {
                (JobState::Running, Some(s)) => Some(s * f64::from(t.epochs.saturating_sub(j.epoch))),
                _ => None,
            },
            attempts: j.attempts,
            failures: j.failures,
            max_attempts: j.max_attempts,
            error: j.error.clone(),
            error_kind: j.error.is_some().then(|| j.error_kind.name()),
            settings,
        }
    }
}

/// The sweep's varying settings and each job's values of them, worked out once per set of jobs:
/// a job's settings never change, and reading them is the costly part of a large sweep's view.
#[derive(Debug, Default)]
pub struct SettingsCache {
    /// Which set of jobs (a hash of their ids in order).
    fingerprint: u64,
    /// The varying settings' names.
    names: Vec<String>,
    /// Each job's values, by job id.
    values: HashMap<String, Vec<String>>,
}

/// The varying settings of `jobs`, from the cache when the jobs are the same.
fn settings_of(d: &Dashboard, jobs: &[JobRow]) -> Arc<SettingsCache> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for j in jobs {
        j.id.hash(&mut h);
    }
    let fingerprint = h.finish();
    let mut cache = d.settings.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cache.as_ref()
        && c.fingerprint == fingerprint
    {
        return c.clone();
    }
    let varying = Varying::of(jobs.iter().map(|j| &j.spec), false);
    let values = match varying.is_empty() {
        true => HashMap::new(),
        false => jobs.iter().map(|j| (j.id.clone(), varying.key(&j.spec).iter().map(|v| v.text()).collect())).collect(),
    };
    let built = Arc::new(SettingsCache { fingerprint, names: varying.names, values });
    *cache = Some(built.clone());
    built
}

/// One worker.
#[derive(Debug, Serialize)]
struct WorkerView {
    /// Its id.
    id: String,
    /// Host and process.
    name: String,
    /// The device it trains on.
    device: String,
    /// Jobs it can hold at once (one per worker process).
    slots: u32,
    /// The jobs it holds now.
    jobs: Vec<String>,
    /// Seconds since its last heartbeat or call.
    last_seen_s: f64,
    /// live, quiet (not heard from lately) or quarantined.
    state: &'static str,
    /// Its recent failure that was not a job's, if any.
    problem: Option<String>,
}

/// The sweep page's data.
#[derive(Debug, Serialize)]
struct SweepView {
    /// The sweep's name.
    sweep: String,
    /// Serving a running sweep (`run`), or a stored one (`dashboard`).
    live: bool,
    /// The state version this was read at: the event stream announces newer ones.
    version: u64,
    /// Every job has ended.
    finished: bool,
    /// Why no pending job can be taken, when the sweep is stuck.
    stalled: String,
    /// Seconds to the end with the live workers, when known.
    eta_s: Option<f64>,
    /// The coordinator is shutting down.
    draining: bool,
    /// Jobs by state.
    counts: BTreeMap<&'static str, usize>,
    /// Epochs reported over every job.
    epochs_done: u64,
    /// Epochs the sweep trains in all.
    epochs_total: u64,
    /// The settings beyond architecture, depth and seed in which the jobs differ.
    settings: Vec<String>,
    /// Every job, in sweep order.
    jobs: Vec<JobView>,
    /// Every worker, oldest first.
    workers: Vec<WorkerView>,
}

/// Sweeps of more jobs than this have their `/api/sweep` built at most every `LARGE_EVERY`: a
/// snapshot of many thousands of jobs costs the scheduler's CPU, and every open page shares it.
const LARGE_SWEEP: usize = 1000;
/// How often a large sweep's data is built at most.
const LARGE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a build stays served while the version has not changed.
const SAME_VERSION_FOR: std::time::Duration = std::time::Duration::from_secs(2);

/// `/api/sweep` as last built: its version, when, for how many jobs, and the JSON.
#[derive(Debug)]
pub struct BuiltSweep {
    /// The state version it was read at.
    version: u64,
    /// When it was built.
    at: std::time::Instant,
    /// Its number of jobs.
    jobs: usize,
    /// The JSON.
    json: axum::body::Bytes,
}

/// `/api/sweep`: built again when the state changed (for a large sweep, at most every
/// `LARGE_EVERY`) or after `SAME_VERSION_FOR`, else the last one.
pub async fn sweep(State(d): State<Arc<Dashboard>>) -> Result<Response, ApiError> {
    let version = *d.shared.changed.borrow();
    let reusable = d.sweep.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|b| {
        // Same version: only the clocks moved (seconds since a heartbeat), so a little while.
        let age = b.at.elapsed();
        let fresh = (b.version == version && age < SAME_VERSION_FOR) || (b.jobs > LARGE_SWEEP && age < LARGE_EVERY);
        fresh.then(|| b.json.clone())
    });
    let json = match reusable {
        Some(json) => json,
        None => {
            let (json, jobs) = build_sweep(&d, version).await?;
            let json = axum::body::Bytes::from(json);
            let built = BuiltSweep { version, at: std::time::Instant::now(), jobs, json: json.clone() };
            *d.sweep.lock().unwrap_or_else(|e| e.into_inner()) = Some(built);
            json
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The sweep page's JSON at `version`, and its number of jobs.
async fn build_sweep(d: &Arc<Dashboard>, version: u64) -> Result<(Vec<u8>, usize), ApiError> {
    let (jobs, workers) = read(d, |s| Ok(s.snapshot()?)).await?;
    let t = now();
    let ttl = d.shared.lease_ttl.as_secs_f64();
    let settings = settings_of(d, &jobs);
    let mut counts = BTreeMap::new();
    for state in [JobState::Pending, JobState::Running, JobState::Completed, JobState::Diverged, JobState::Failed] {
        counts.insert(state.name(), jobs.iter().filter(|j| j.state == state).count());
    }
    let mut held: HashMap<&str, Vec<String>> = HashMap::new();
    for j in jobs.iter().filter(|j| j.state == JobState::Running) {
        if let Some(w) = &j.worker {
            held.entry(w.as_str()).or_default().push(j.id.clone());
        }
    }
    let live = workers.iter().filter(|w| stall::is_live(w, t, ttl)).count();
    let finished = jobs.iter().all(|j| !j.state.is_open());
    let worker_views = workers
        .iter()
        .map(|w| WorkerView {
            id: w.id.clone(),
            name: w.name.clone(),
            device: w.device.clone(),
            slots: 1,
            jobs: held.remove(w.id.as_str()).unwrap_or_default(),
            last_seen_s: (t - w.last_seen).max(0.0),
            state: match (w.quarantined, stall::is_live(w, t, ttl)) {
                (true, _) => "quarantined",
                (false, true) => "live",
                (false, false) => "quiet",
            },
            problem: stall::recent_problem(w, t, ttl),
        })
        .collect();
    let view = SweepView {
        sweep: d.shared.sweep_name.clone(),
        live: d.live,
        version,
        finished,
        stalled: stall::explain(&jobs, &workers, t, ttl),
        eta_s: if finished { None } else { crate::eta::sweep_eta(&jobs, live) },
        draining: d.shared.stopping.load(std::sync::atomic::Ordering::SeqCst),
        counts,
        epochs_done: jobs.iter().map(|j| u64::from(j.epoch.min(j.spec.train.epochs))).sum(),
        epochs_total: jobs.iter().map(|j| u64::from(j.spec.train.epochs)).sum(),
        jobs: jobs.iter().map(|j| JobView::of(j, settings.values.get(&j.id).cloned().unwrap_or_default())).collect(),
        settings: settings.names.clone(),
        workers: worker_views,
    };
    let n = view.jobs.len();
    serde_json::to_vec(&view).map(|json| (json, n)).map_err(|e| ApiError::Internal(e.to_string()))
}

/// One attempt.
#[derive(Debug, Serialize)]
struct AttemptView {
    /// 1, 2, ...
    attempt: u32,
    /// Its worker.
    worker: String,
    /// Unix seconds.
    started_at: f64,
    /// Unix seconds; none while running.
    ended_at: Option<f64>,
    /// How it ended.
    outcome: Option<String>,
    /// Whose fault a failure was.
    kind: Option<String>,
    /// The failure's message.
    error: Option<String>,
}

impl From<AttemptRow> for AttemptView {
    fn from(a: AttemptRow) -> Self {
        AttemptView {
            attempt: a.attempt,
            worker: a.worker,
            started_at: a.started_at,
            ended_at: a.ended_at,
            outcome: a.outcome,
            kind: a.kind,
            error: a.error,
        }
    }
}

/// One reported epoch.
#[derive(Debug, Serialize)]
struct EpochView {
    /// The worker's figures.
    #[serde(flatten)]
    metrics: EpochMetrics,
    /// The attempt that reported it.
    attempt: u32,
    /// When the coordinator stored it (Unix seconds).
    reported_at: Option<f64>,
}

/// The job page's data.
#[derive(Debug, Serialize)]
struct JobDetailView {
    /// The sweep's name.
    sweep: String,
    /// The state version this was read at.
    version: u64,
    /// The job as the jobs list shows it (its own settings as names and values).
    job: JobView,
    /// Every setting of the job.
    spec: JobSpec,
    /// Its attempts.
    attempts: Vec<AttemptView>,
    /// Its reported epochs.
    epochs: Vec<EpochView>,
    /// Its result without the epoch list (in `epochs`) and the gradient histogram and blocks
    /// (in the plots), once ended.
    result: Option<Value>,
}

/// `/api/jobs/{id}`.
pub async fn job(State(d): State<Arc<Dashboard>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let version = *d.shared.changed.borrow();
    let lookup = id.clone();
    let detail = read(&d, move |s| Ok(s.job_detail(&lookup)?)).await?;
    let detail = detail.ok_or_else(|| ApiError::NotFound(format!("no job {id} in sweep {}", d.shared.sweep_name)))?;
    let result = match &detail.job.result {
        Some(r) => {
            let mut v = serde_json::to_value(r).map_err(|e| ApiError::Internal(e.to_string()))?;
            if let Some(o) = v.as_object_mut() {
                o.remove("epochs");
                if let Some(g) = o.get_mut("grad_analysis").and_then(Value::as_object_mut) {
                    g.remove("histogram");
                    g.remove("blocks");
                }
            }
            Some(v)
        }
        None => None,
    };
    let view = JobDetailView {
        sweep: d.shared.sweep_name.clone(),
        version,
        job: JobView::of(&detail.job, Vec::new()),
        spec: detail.job.spec.clone(),
        attempts: detail.attempts.into_iter().map(AttemptView::from).collect(),
        epochs: detail
            .epochs
            .into_iter()
            .map(|e| EpochView { metrics: e.metrics, attempt: e.attempt, reported_at: e.reported_at })
            .collect(),
        result,
    };
    serde_json::to_value(view).map(Json).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The tables and plots drawn from one state version.
#[derive(Debug)]
pub struct Rendered {
    /// `table1.md` as `run` writes it, the paper's figures beside ours.
    table1: String,
    /// `table2.md`.
    table2: String,
    /// Each plot's description and SVG (none when skipped).
    plots: Vec<(PlotInfo, Option<String>)>,
}

/// The tables and plots at the current version, drawn again only when the state changed.
async fn rendered(d: &Arc<Dashboard>) -> Result<Arc<Rendered>, ApiError> {
    let version = *d.shared.changed.borrow();
    if let Some((v, r)) = d.rendered.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        && *v == version
    {
        return Ok(r.clone());
    }
    let name = d.shared.sweep_name.clone();
    let drawn = read(d, move |s| {
        let runs = crate::live::records(s)?;
        let (table1, table2) = render_markdown(&runs, &name).map_err(|e| ApiError::Internal(e.to_string()))?;
        let plots = render_plots(&runs).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Rendered { table1, table2, plots })
    })
    .await?;
    let drawn = Arc::new(drawn);
    *d.rendered.lock().unwrap_or_else(|e| e.into_inner()) = Some((version, drawn.clone()));
    Ok(drawn)
}

/// `/api/tables`: Table 1 and Table 2 in Markdown, as `run` writes them.
pub async fn tables(State(d): State<Arc<Dashboard>>) -> Result<Json<Value>, ApiError> {
    let r = rendered(&d).await?;
    Ok(Json(serde_json::json!({ "sweep": d.shared.sweep_name, "table1": r.table1, "table2": r.table2 })))
}

/// `/api/plots`: each plot's title, caption and note, or why it was skipped.
pub async fn plots(State(d): State<Arc<Dashboard>>) -> Result<Json<Value>, ApiError> {
    let r = rendered(&d).await?;
    let plots: Vec<Value> = r
        .plots
        .iter()
        .map(|(p, _)| {
            serde_json::json!({
                "file": p.file, "title": p.title, "caption": p.caption, "note": p.note, "skipped": p.skipped,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "sweep": d.shared.sweep_name, "plots": plots })))
}

/// `/plots/{file}`: one plot's SVG.
pub async fn plot_svg(State(d): State<Arc<Dashboard>>, Path(file): Path<String>) -> Result<Response, ApiError> {
    let r = rendered(&d).await?;
    match r.plots.iter().find(|(p, _)| p.file == file) {
        Some((_, Some(svg))) => {
            Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-cache")], svg.clone())
                .into_response())
        }
        Some((p, None)) => Err(ApiError::NotFound(format!(
            "plot {file} is not drawn: {}",
            p.skipped.as_deref().unwrap_or("no data yet")
        ))),
        None => Err(ApiError::NotFound(format!("there is no plot {file}"))),
    }
}

/// `/metrics`: Prometheus' text format (OpenMetrics).
pub async fn metrics(State(d): State<Arc<Dashboard>>) -> Result<Response, ApiError> {
    let (jobs, workers) = read(&d, |s| Ok(s.counts()?)).await?;
    let text = d
        .shared
        .metrics
        .encode(&jobs, &workers, d.shared.lease_ttl.as_secs_f64())
        .map_err(|e| ApiError::Internal(format!("encoding the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}
