//! Running a `program:` job: the user's own training program as a child process under the same
//! lease, heartbeats, checkpoints and blame as the built-in trainer (declared inside `agent`,
//! whose report, heartbeat and checkpoint-upload helpers it uses).
//!
//! Each attempt gets a fresh folder `jobs/<id>/attempt-<token>/` holding `work/` (the child's
//! working folder), `checkpoint/` (restored from the coordinator's latest checkpoint when the
//! attempt resumes), `metrics.jsonl` and `log.txt` (stdout and stderr). The child's metrics
//! lines become heartbeats (epoch lines), checkpoint uploads (checkpoint lines: the folder
//! packed by `pack`) and the result; `log.txt` is forwarded to the coordinator (`log`) with
//! each heartbeat; and the result (`CompleteJob` with a `ProgramResult`). How it ends decides
//! whose fault a failure is: exit 0 with a result completes; 75 is not the job's fault; a missing
//! or non-executable command is this worker's; an out-of-memory message or a SIGKILL this worker
//! did not send (the kernel's OOM killer) goes through the out-of-memory routing; anything else,
//! and exit 0 without a result, is the job's failure with the log's last lines.

mod child;
mod lines;
mod log;
mod pack;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gridsweep_proto::job::ProgramResult;
use gridsweep_proto::job::program::env;
use gridsweep_proto::v1::{self as pb, FailureKind};
use serde_json::{Map, Value as Json};
use tch::Device;
use tokio::process::Child;

use super::AgentConfig;
use super::failure::Failure;
use super::job::{Beat, Held, JobEnd};
use super::prepare::Prepared;
use super::transfer::upload_checkpoint;
use crate::checkpoint;
use child::{Exit, Launch};
use lines::{Line, Tail};
use log::LogForward;

/// How often the metrics file is read while the program runs.
const POLL: Duration = Duration::from_millis(250);

/// The attempt's files.
struct Attempt {
    /// The child's working folder.
    work: PathBuf,
    /// The program's checkpoint folder.
    checkpoint: PathBuf,
    /// The metrics file.
    metrics: PathBuf,
    /// stdout and stderr.
    log: PathBuf,
    /// The packed checkpoint, where the upload helper reads it (`job_dir/checkpoint::FILE`).
    archive: PathBuf,
}

/// Runs the program job `prepared` to its end and reports it, as `run_job` does a built-in one.
pub(super) async fn run(
    cfg: &AgentConfig,
    held: &mut Held<'_>,
    prepared: &Prepared,
    lease: &pb::Lease,
    stop: &AtomicBool,
) -> JobEnd {
    let launch = match setup(cfg, prepared, lease).await {
        Ok(l) => l,
        Err(f) => return held.fail(f).await,
    };
    let (attempt, launch) = launch;
    let mut child = match child::start(&launch) {
        Ok(c) => c,
        Err(e) => return held.fail(Failure::new(FailureKind::Worker, e.to_string())).await,
    };
    let pgid = child.id();
    tracing::info!("program started (pid {}): {}", pgid.unwrap_or(0), launch.argv.join(" "));
    let started = Instant::now();
    let renew = Duration::from_millis((lease.ttl_ms / 3).max(500));
    let watched = watch(held, &mut child, &attempt, renew, stop).await;
    if let Some(pgid) = pgid {
        child::kill_group(pgid);
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    if watched.stale {
        return JobEnd::Done;
    }
    if let Some(by) = watched.cancelled_by {
        held.release().await;
        tracing::info!("stopped ({by}), lease released");
        return JobEnd::Done;
    }
    let tail = child::log_tail(&attempt.log);
    let status = match watched.status {
        Ok(s) => s,
        Err(e) => return held.fail(Failure::new(FailureKind::Worker, format!("waiting for the program: {e}"))).await,
    };
    let failure = match (child::classify(status), watched.result) {
        (Exit::Success, Some((result, diverged))) => {
            let doc = ProgramResult { result, diverged, last_epoch: watched.last_epoch, wall_seconds };
            let metric = prepared.spec.program.as_ref().map(|p| p.metric.name.as_str()).unwrap_or_default();
            let value = doc.metric(metric).map_or_else(|| "none".to_owned(), |v| v.to_string());
            let summary = if diverged { "Diverged" } else { "Completed" };
            let json = serde_json::to_string(&doc).unwrap_or_default();
            return held.deliver(json, summary, &format!("{metric} {value}")).await;
        }
        (Exit::Success, None) => {
            let bad = watched.bad.map(|b| format!(" (a line that was not understood: {b})")).unwrap_or_default();
            let msg = format!(
                "the program exited 0 without a result line in ${}{bad}; last lines of its log:\n{tail}",
                env::METRICS
            );
            Failure::new(FailureKind::Job, msg)
        }
        (Exit::TempFail, _) => Failure::new(
            FailureKind::Worker,
            format!("the program exited 75 (try again elsewhere): not the job's fault; last lines of its log:\n{tail}"),
        ),
        (Exit::Killed, _) => Failure::new(
            FailureKind::OutOfMemory,
            format!(
                "the program was killed by SIGKILL, which this worker did not send: out of memory (the kernel's OOM killer); last lines of its log:\n{tail}"
            ),
        ),
        (Exit::Failed(how), _) if child::says_out_of_memory(&tail) => Failure::new(
            FailureKind::OutOfMemory,
            format!(
                "out of memory on {}: the program failed ({how}); last lines of its log:\n{tail}",
                device_name(cfg.device)
            ),
        ),
        (Exit::Failed(how), _) => {
            Failure::new(FailureKind::Job, format!("the program failed ({how}); last lines of its log:\n{tail}"))
        }
    };
    held.fail(failure).await
}

/// `cpu` or `cuda:N`.
fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_owned(),
    }
}

/// Makes the attempt's fresh folder (restoring the checkpoint into it when the lease resumes)
/// and the child's command line and environment.
async fn setup(cfg: &AgentConfig, prepared: &Prepared, lease: &pb::Lease) -> Result<(Attempt, Launch), Failure> {
    let Some(program) = prepared.spec.program.clone() else {
        return Err(Failure::new(FailureKind::Worker, "not a program job"));
    };
    let argv = program.argv().map_err(|e| Failure::new(FailureKind::Job, format!("program: {e}")))?;
    let extra = program.env_vars().map_err(|e| Failure::new(FailureKind::Job, format!("program: {e}")))?;
    let dir = prepared.job_dir.join(format!("attempt-{}", lease.fencing_token));
    let attempt = Attempt {
        work: dir.join("work"),
        checkpoint: dir.join("checkpoint"),
        metrics: dir.join("metrics.jsonl"),
        log: dir.join("log.txt"),
        archive: prepared.job_dir.join(checkpoint::FILE),
    };
    let (job_dir, work, ck, archive) =
        (prepared.job_dir.clone(), attempt.work.clone(), attempt.checkpoint.clone(), attempt.archive.clone());
    let resume = lease.checkpoint_epoch > 0;
    let made = tokio::task::spawn_blocking(move || fresh_attempt(&job_dir, &work, &ck, resume.then_some(&archive)))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    made.map_err(|e| Failure::new(FailureKind::Worker, format!("preparing the program's folder: {e}")))?;
    let mut vars = vec![
        (env::JOB_ID.to_owned(), lease.job_id.clone()),
        (env::ATTEMPT.to_owned(), lease.attempt.to_string()),
        (env::SETTINGS.to_owned(), Json::Object(program.settings.clone()).to_string()),
        (env::METRICS.to_owned(), absolute(&attempt.metrics)),
        (env::CHECKPOINT_DIR.to_owned(), absolute(&attempt.checkpoint)),
        (env::CHECKPOINT_EPOCH.to_owned(), lease.checkpoint_epoch.to_string()),
    ];
    if let Some(data_dir) = &prepared.data_dir {
        vars.push((env::DATA_DIR.to_owned(), absolute(data_dir)));
    }
    let (device, visible) = match cfg.device {
        Device::Cuda(i) => ("cuda", visible_device(i, std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref())),
        _ => ("cpu", String::new()),
    };
    vars.push((env::DEVICE.to_owned(), device.to_owned()));
    vars.push(("CUDA_VISIBLE_DEVICES".to_owned(), visible));
    vars.extend(extra);
    let launch = Launch { argv, env: vars, cwd: attempt.work.clone(), log: attempt.log.clone() };
    Ok((attempt, launch))
}

/// The physical device behind the worker's `cuda:i`: the i-th entry of the worker's own
/// `CUDA_VISIBLE_DEVICES` when it has one, else `i`.
fn visible_device(i: usize, inherited: Option<&str>) -> String {
    inherited
        .and_then(|list| list.split(',').map(str::trim).filter(|s| !s.is_empty()).nth(i).map(str::to_owned))
        .unwrap_or_else(|| i.to_string())
}

/// `path` made absolute against the worker's working folder (the child runs elsewhere).
fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

/// Removes earlier attempts' folders of the job, makes this one's, and unpacks `archive` into
/// its checkpoint folder when the attempt resumes.
fn fresh_attempt(
    job_dir: &std::path::Path,
    work: &std::path::Path,
    checkpoint: &std::path::Path,
    archive: Option<&PathBuf>,
) -> Result<(), String> {
    if let Ok(entries) = std::fs::read_dir(job_dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("attempt-") {
                std::fs::remove_dir_all(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
            }
        }
    }
    for dir in [work, checkpoint] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if let Some(archive) = archive {
        pack::unpack(archive, checkpoint).map_err(|e| format!("restoring the checkpoint: {e}"))?;
    }
    Ok(())
}

/// How watching the child ended.
struct Watched {
    /// Its exit status.
    status: std::io::Result<std::process::ExitStatus>,
    /// The lease went to another worker: nothing more is reported.
    stale: bool,
    /// Why the child was stopped, if this worker stopped it.
    cancelled_by: Option<&'static str>,
    /// The result line's object and its `diverged` flag.
    result: Option<(Map<String, Json>, bool)>,
    /// The last epoch reported.
    last_epoch: u32,
    /// The first line that was not understood.
    bad: Option<String>,
}

/// Follows the child to its exit: reads its metrics lines (epochs into heartbeats, checkpoints
/// packed and uploaded, the result kept), heartbeats every `renew` at least, and stops the
/// child's group on `stop`, on the coordinator's word, or when the lease turned stale.
async fn watch(
    held: &mut Held<'_>,
    child: &mut Child,
    attempt: &Attempt,
    renew: Duration,
    stop: &AtomicBool,
) -> Watched {
    let mut tail = Some(Tail::new(attempt.metrics.clone()));
    let mut log = LogForward::new(attempt.log.clone());
    let mut w = Watched {
        status: Ok(Default::default()),
        stale: false,
        cancelled_by: None,
        result: None,
        last_epoch: 0,
        bad: None,
    };
    let mut last_beat = tokio::time::Instant::now();
    loop {
        let exited = tokio::select! {
            s = child.wait() => Some(s),
            () = tokio::time::sleep(POLL) => None,
        };
        let mut epochs = Vec::new();
        for line in read_lines(&mut tail, exited.is_some()).await {
            match line {
                Line::Epoch { epoch, metrics } => {
                    tracing::info!("epoch {epoch}: {}", Json::Object(metrics.clone()));
                    w.last_epoch = w.last_epoch.max(epoch);
                    epochs.push(pb::EpochReport { epoch, metrics_json: Json::Object(metrics).to_string() });
                }
                Line::Checkpoint { epoch } if !w.stale => {
                    upload(held, attempt, epoch.unwrap_or(w.last_epoch)).await;
                }
                Line::Checkpoint { .. } => {}
                Line::Result { result, diverged } => w.result = Some((result, diverged)),
                Line::Bad(m) => {
                    tracing::warn!("metrics line not understood: {m}");
                    w.bad.get_or_insert(m);
                }
            }
        }
        if stop.load(Ordering::SeqCst) && w.cancelled_by.is_none() && !w.stale {
            w.cancelled_by = Some("worker is shutting down");
        }
        if !w.stale && (!epochs.is_empty() || last_beat.elapsed() >= renew || exited.is_some()) {
            last_beat = tokio::time::Instant::now();
            log.send(held, exited.is_some()).await;
            match held.heartbeat(epochs).await {
                Beat::TrainOn => {}
                Beat::Cancel(reason) if w.cancelled_by.is_none() => {
                    tracing::info!("cancelled: {reason}");
                    w.cancelled_by = Some("cancelled by the coordinator");
                }
                Beat::Cancel(_) => {}
                Beat::Stale => w.stale = true,
            }
        }
        if let Some(status) = exited {
            w.status = status;
            return w;
        }
        if w.stale || w.cancelled_by.is_some() {
            tracing::info!(
                "stopping the program's process group (SIGTERM, then SIGKILL after {:?})",
                child::STOP_GRACE
            );
            w.status = child::stop(child, child::STOP_GRACE).await;
            return w;
        }
    }
}

/// The lines the metrics file gained, read on the blocking pool (`flush`: the child exited).
async fn read_lines(tail: &mut Option<Tail>, flush: bool) -> Vec<Line> {
    let Some(mut t) = tail.take() else { return Vec::new() };
    let joined = tokio::task::spawn_blocking(move || {
        let lines = t.read(flush);
        (t, lines)
    })
    .await;
    match joined {
        Ok((t, lines)) => {
            *tail = Some(t);
            lines.unwrap_or_else(|e| vec![Line::Bad(format!("reading the metrics file: {e}"))])
        }
        Err(e) => vec![Line::Bad(format!("reading the metrics file: {e}"))],
    }
}

/// Packs the checkpoint folder (on the blocking pool) and uploads it as the state after `epoch`.
async fn upload(held: &mut Held<'_>, attempt: &Attempt, epoch: u32) {
    if epoch == 0 {
        tracing::warn!("a checkpoint line before any epoch line names no epoch; not uploaded");
        return;
    }
    let (dir, dest) = (attempt.checkpoint.clone(), attempt.archive.clone());
    match tokio::task::spawn_blocking(move || pack::pack(&dir, &dest)).await {
        Ok(Ok(files)) => tracing::debug!("checkpoint of epoch {epoch} packed ({files} files)"),
        Ok(Err(e)) => return tracing::warn!("checkpoint of epoch {epoch} not uploaded: {e}"),
        Err(e) => return tracing::warn!("checkpoint of epoch {epoch} not uploaded: {e}"),
    }
    let job_dir = attempt.archive.parent().map(PathBuf::from).unwrap_or_default();
    upload_checkpoint(held.client, held.worker, &held.job, held.token, epoch, &job_dir).await;
}

#[cfg(test)]
mod tests {
    use super::visible_device;

    #[test]
    fn the_child_sees_the_workers_physical_device() {
        assert_eq!(visible_device(0, None), "0");
        assert_eq!(visible_device(1, Some("3,5")), "5");
        assert_eq!(visible_device(0, Some("GPU-abc")), "GPU-abc");
        assert_eq!(visible_device(2, Some("3")), "2");
    }
}
