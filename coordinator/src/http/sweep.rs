//! `/api/sweep` (the sweep page: progress, counts, ETA, workers, running jobs) and `/api/jobs`
//! (every job, for the jobs page), both rendered from one read model (`view::SweepView`) per
//! state version. A
//! snapshot of a large sweep costs the scheduler's CPU, so it is taken once per change, at most
//! every `LARGE_EVERY` for a sweep of more than `LARGE_SWEEP` jobs, and shared by every open
//! page; the full job list is only serialised when a jobs page asks for it.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gridsweep_proto::v1::JobState;
use serde::Serialize;

use super::Dashboard;
use super::error::ApiError;
use crate::condition::Varying;
use crate::store::{JobRow, off_runtime};
use crate::view::{SweepView, job_status, model_of};

/// Sweeps of more jobs than this are read at most every `LARGE_EVERY`.
const LARGE_SWEEP: usize = 1000;
/// How often a large sweep is read at most.
const LARGE_EVERY: Duration = Duration::from_secs(1);
/// How long a snapshot stays served while the version has not changed (only the clocks moved:
/// seconds since each heartbeat).
const SAME_VERSION_FOR: Duration = Duration::from_secs(2);

/// One job in the jobs list.
#[derive(Debug, Serialize)]
pub(super) struct JobView {
    /// Its id.
    id: String,
    /// vgg, resnet or grid.
    arch: &'static str,
    /// Layers.
    depth: u32,
    /// Seed; none (null) for a program job whose settings give no non-negative integer seed.
    seed: Option<u64>,
    /// Repeat of the same seed.
    repeat: u32,
    /// pending, running, completed, diverged, failed.
    state: &'static str,
    /// The worker holding it, or that ran it last.
    worker: Option<String>,
    /// Epochs reported.
    epoch: u32,
    /// Epochs it trains, when known (null: a program job that has not said yet).
    epochs_total: Option<u32>,
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
    /// Its values of the sweep's varying settings, in `SweepPage::settings`' order.
    settings: Vec<String>,
}

impl JobView {
    /// The view of `j`, with its values of the varying settings: its line of the status message
    /// (`view::job_status`, what `status --json` shows too) with the repeat and the settings.
    pub(super) fn of(j: &JobRow, settings: Vec<String>) -> JobView {
        let s = job_status(j);
        let (state, error_kind) = (s.state().name(), (!s.error.is_empty()).then(|| s.error_kind().name()));
        let (arch, _) = model_of(j);
        JobView {
            id: s.job_id,
            arch,
            depth: s.depth,
            seed: s.seed,
            repeat: j.spec.repeat,
            state,
            worker: (!s.worker_id.is_empty()).then_some(s.worker_id),
            epoch: s.epoch,
            epochs_total: s.epochs_total,
            test_acc: s.test_acc,
            eta_s: s.eta_s,
            attempts: s.attempts,
            failures: s.failures,
            max_attempts: s.max_attempts,
            error: (!s.error.is_empty()).then_some(s.error),
            error_kind,
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

impl SettingsCache {
    /// Job `id`'s values, in `names`' order (empty when nothing varies).
    fn of(&self, id: &str) -> Vec<String> {
        self.values.get(id).cloned().unwrap_or_default()
    }
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
struct SweepPage {
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
    /// The running jobs, in sweep order (`/api/jobs` lists them all).
    running: Vec<JobView>,
    /// Every worker, oldest first.
    workers: Vec<WorkerView>,
    /// The command that attaches a worker from another machine (a running sweep only).
    attach: Option<String>,
}

/// Every job, for the jobs page.
#[derive(Debug, Serialize)]
struct JobsView<'a> {
    /// The sweep's name.
    sweep: &'a str,
    /// The state version this was read at.
    version: u64,
    /// The varying settings' names, the order of each job's `settings`.
    settings: &'a [String],
    /// Every job, in sweep order.
    jobs: Vec<JobView>,
}

/// One snapshot of the store and what has been built from it.
#[derive(Debug)]
pub struct Snapshot {
    /// The state version it was read at.
    version: u64,
    /// When it was read.
    at: Instant,
    /// The read model of the snapshot.
    view: SweepView,
    /// The varying settings.
    settings: Arc<SettingsCache>,
    /// `/api/sweep`'s JSON.
    summary: Bytes,
    /// `/api/jobs`'s JSON, once asked for.
    list: OnceLock<Bytes>,
}

/// The current snapshot: the last one while it is fresh enough, else a new one.
async fn snapshot(d: &Arc<Dashboard>) -> Result<Arc<Snapshot>, ApiError> {
    let version = d.source.version();
    if let Some(s) = d.snapshot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let age = s.at.elapsed();
        if (s.version == version && age < SAME_VERSION_FOR) || (s.view.jobs.len() > LARGE_SWEEP && age < LARGE_EVERY) {
            return Ok(s.clone());
        }
    }
    let view = d.source.view_async::<ApiError>("reading the sweep").await?;
    let built = {
        let d = d.clone();
        off_runtime("building the sweep's data", move || summarise(&d, version, view)).await?
    };
    let built = Arc::new(built);
    *d.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(built.clone());
    Ok(built)
}

/// The snapshot of `view` with its summary built.
fn summarise(d: &Dashboard, version: u64, view: SweepView) -> Result<Snapshot, ApiError> {
    let settings = settings_of(d, &view.jobs);
    let counts: BTreeMap<&'static str, usize> = view.counts.by_state().map(|(s, n)| (s.name(), n)).collect();
    let running: Vec<&JobRow> = view.jobs.iter().filter(|j| j.state == JobState::Running).collect();
    let mut held: HashMap<&str, Vec<String>> = HashMap::new();
    for j in &running {
        if let Some(w) = &j.worker {
            held.entry(w.as_str()).or_default().push(j.id.clone());
        }
    }
    let page = SweepPage {
        sweep: view.sweep_name.clone(),
        live: d.live,
        version,
        finished: view.finished(),
        stalled: view.stalled.clone(),
        eta_s: view.eta_s,
        draining: d.source.stopping.load(std::sync::atomic::Ordering::SeqCst),
        counts,
        epochs_done: view.epochs_done(),
        epochs_total: view.epochs_total(),
        settings: settings.names.clone(),
        running: running.iter().map(|j| JobView::of(j, settings.of(&j.id))).collect(),
        workers: view
            .workers
            .iter()
            .map(|w| WorkerView {
                id: w.row.id.clone(),
                name: w.row.name.clone(),
                device: w.row.device.clone(),
                slots: 1,
                jobs: held.remove(w.row.id.as_str()).unwrap_or_default(),
                last_seen_s: w.last_seen_s,
                state: w.state.name(),
                problem: w.problem.clone(),
            })
            .collect(),
        attach: d.source.attach.get().cloned(),
    };
    let summary = serde_json::to_vec(&page).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Snapshot { version, at: Instant::now(), view, settings, summary: summary.into(), list: OnceLock::new() })
}

/// A JSON answer.
fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `/api/sweep`.
pub async fn sweep(State(d): State<Arc<Dashboard>>) -> Result<Response, ApiError> {
    Ok(json(snapshot(&d).await?.summary.clone()))
}

/// `/api/jobs`.
pub async fn jobs(State(d): State<Arc<Dashboard>>) -> Result<Response, ApiError> {
    let s = snapshot(&d).await?;
    if let Some(list) = s.list.get() {
        return Ok(json(list.clone()));
    }
    let s2 = s.clone();
    let list = off_runtime("building the job list", move || {
        let view = JobsView {
            sweep: &s2.view.sweep_name,
            version: s2.version,
            settings: &s2.settings.names,
            jobs: s2.view.jobs.iter().map(|j| JobView::of(j, s2.settings.of(&j.id))).collect(),
        };
        serde_json::to_vec(&view).map(Bytes::from).map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    Ok(json(s.list.get_or_init(|| list).clone()))
}
