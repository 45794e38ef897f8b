//! The dashboard's data, as JSON built from the store: one job in full, the tables as they fill
//! and the plots (the sweep and the job list are in `sweep`); and Prometheus `/metrics`, its
//! gauges from the read model's `Counts` and `WorkerState`s. Store reads go through the store
//! handle, on the blocking pool, never on the runtime's threads.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use gridsweep_proto::job::JobSpec;
use gridsweep_proto::result::EpochMetrics;
use serde::Serialize;
use serde_json::Value;

use super::Dashboard;
use super::error::ApiError;
use super::sweep::JobView;
use crate::metrics::Format;
use crate::plots::{PlotInfo, render_plots};
use crate::store::{AttemptRow, now};
use crate::tables::render_markdown;
use crate::view::{Counts, WorkerCounts, WorkerState};

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
    /// A program job's epoch lines, log tails and result (none for a built-in job).
    program: Option<crate::store::ProgramDetail>,
}

/// `/api/jobs/{id}`.
pub async fn job(State(d): State<Arc<Dashboard>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let version = d.source.version();
    let lookup = id.clone();
    let read = d
        .source
        .store
        .call("reading a job", move |s| Ok::<_, ApiError>((s.job_detail(&lookup)?, s.program_detail(&lookup)?)));
    let (detail, program) = read.await?;
    let detail = detail.ok_or_else(|| ApiError::NotFound(format!("no job {id} in sweep {}", d.source.sweep_name)))?;
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
        sweep: d.source.sweep_name.clone(),
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
        program,
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
    /// `results.md`: any sweep's table by condition, program jobs included, with its comparisons.
    results: String,
    /// Whether the sweep has program jobs (the tables page then shows `results.md`).
    programs: bool,
    /// Whether it has built-in jobs (Table 1 and 2 are theirs).
    builtin: bool,
    /// Each plot's description and SVG (none when skipped).
    plots: Vec<(PlotInfo, Option<String>)>,
}

/// The tables and plots at the current version, drawn again only when the state changed.
async fn rendered(d: &Arc<Dashboard>) -> Result<Arc<Rendered>, ApiError> {
    let version = d.source.version();
    if let Some((v, r)) = d.rendered.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        && *v == version
    {
        return Ok(r.clone());
    }
    let name = d.source.sweep_name.clone();
    let drawn = d
        .source
        .store
        .call("drawing the tables and plots", move |s| -> Result<Rendered, ApiError> {
            // One read of every result serves both the paper's tables and results.md.
            let (jobs, _) = s.snapshot_with_results()?;
            let (all, metric) = crate::tables::results::runs_from(&jobs, &s.program_results()?);
            let runs = crate::live::records_from(jobs);
            let (table1, table2) = render_markdown(&runs, &name).map_err(|e| ApiError::Internal(e.to_string()))?;
            let plots = render_plots(&runs).map_err(|e| ApiError::Internal(e.to_string()))?;
            let results = crate::tables::results::results_md(&name, &metric, &all);
            let programs = all.iter().any(|r| r.implementation != crate::tables::results::BUILTIN);
            Ok(Rendered { table1, table2, results, programs, builtin: !runs.is_empty(), plots })
        })
        .await?;
    let drawn = Arc::new(drawn);
    *d.rendered.lock().unwrap_or_else(|e| e.into_inner()) = Some((version, drawn.clone()));
    Ok(drawn)
}

/// `/api/tables`: Table 1, Table 2 and `results.md` in Markdown, as `run` writes them, and
/// whether the sweep has program jobs and built-in ones.
pub async fn tables(State(d): State<Arc<Dashboard>>) -> Result<Json<Value>, ApiError> {
    let r = rendered(&d).await?;
    Ok(Json(serde_json::json!({
        "sweep": d.source.sweep_name, "table1": r.table1, "table2": r.table2,
        "results": r.results, "programs": r.programs, "builtin": r.builtin,
    })))
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
    Ok(Json(serde_json::json!({ "sweep": d.source.sweep_name, "plots": plots })))
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

/// `/metrics`: OpenMetrics text when the `Accept` header asks for it, else Prometheus' classic
/// text format 0.0.4 (`crate::metrics::Format`).
pub async fn metrics(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let (jobs, workers) = d.source.store.call("reading the counts", |s| Ok::<_, ApiError>(s.counts()?)).await?;
    let mut counts = Counts::default();
    for (state, n) in jobs {
        counts.add(state, n);
    }
    let (t, ttl) = (now(), d.source.lease_ttl.as_secs_f64());
    let workers = WorkerCounts::of(workers.iter().map(|w| WorkerState::of(w, t, ttl)));
    let jobs: Vec<(&str, usize)> = counts.by_state().map(|(s, n)| (s.name(), n)).collect();
    let workers: Vec<(&str, usize)> = WorkerState::ALL.iter().map(|&s| (s.name(), workers.get(s))).collect();
    let text = d
        .source
        .metrics
        .encode(&jobs, &workers)
        .map_err(|e| ApiError::Internal(format!("encoding the metrics: {e}")))?;
    let headers = [(header::CONTENT_TYPE, format.content_type()), (header::VARY, "Accept")];
    Ok((headers, format.render(text)).into_response())
}
