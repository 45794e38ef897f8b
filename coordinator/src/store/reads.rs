//! Reads of the state that change nothing: the status snapshot (every active job and worker),
//! the same with the jobs' results for the tables, the counts for the metrics, and the epoch
//! log for `epochs.csv`. They run on the store's read-only connection (WAL: they see the last
//! commit, and neither wait for the transitions nor hold them up); rows are copied out under
//! that connection's lock and parsed after it is released, and results are read only when
//! asked for.

use gridsweep_proto::result::{EpochMetrics, TrainResult};
use gridsweep_proto::v1::{FailureKind, JobState};

use gridsweep_proto::job::JobSpec;

use super::{Cached, JobRow, Result, Store, StoreError, WorkerRow, now};

/// The job columns of a snapshot, and what each job's attempts add: seconds held in all, and for
/// a running job the seconds since its current attempt last made progress; for a program job,
/// the total epochs its latest epoch line gave (`"epochs": N`). The result only
/// when `?2` is true, the spec only when `?3` is (the store keeps parsed specs: a job's spec
/// never changes, its id being a hash of it).
macro_rules! jobs_select {
    () => {
        "SELECT id, CASE WHEN ?3 THEN spec END, state, worker, epoch, test_acc, epoch_seconds, attempts, error,
     CASE WHEN ?2 THEN result END, error_kind, failures, max_attempts,
     (SELECT COALESCE(SUM(COALESCE(a.ended_at, ?1) - a.started_at), 0) FROM attempts a WHERE a.job = jobs.id),
     (SELECT ?1 - MAX(a.started_at, COALESCE(
        (SELECT MAX(e.reported_at) FROM epochs e WHERE e.job = a.job AND e.attempt = a.attempt), 0))
      FROM attempts a WHERE a.token = jobs.token AND jobs.state = 'running'),
     memory_need,
     (SELECT json_extract(p.metrics, '$.epochs') FROM program_epochs p
      WHERE p.job = jobs.id AND json_type(p.metrics, '$.epochs') = 'integer' ORDER BY p.epoch DESC LIMIT 1)
     FROM jobs"
    };
}

/// Every active job, in scheduling order.
const JOBS_SQL: &str = concat!(jobs_select!(), " WHERE active = 1 ORDER BY seq");

/// One job by id (`?4`), active or not.
pub(super) const JOB_SQL: &str = concat!(jobs_select!(), " WHERE id = ?4");

/// Active jobs by state.
pub type JobCounts = Vec<(JobState, usize)>;

/// Every worker, oldest first.
const WORKERS_SQL: &str =
    "SELECT id, name, device, last_seen, quarantined, problem, problem_at, memory_bytes FROM workers
     ORDER BY registered_at";

/// Reads a row of `WORKERS_SQL`.
fn read_worker(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkerRow> {
    Ok(WorkerRow {
        id: r.get(0)?,
        name: r.get(1)?,
        device: r.get(2)?,
        last_seen: r.get(3)?,
        quarantined: r.get::<_, i64>(4)? != 0,
        problem: match (r.get::<_, Option<String>>(5)?, r.get::<_, Option<f64>>(6)?) {
            (Some(p), Some(at)) => Some((p, at)),
            _ => None,
        },
        memory_bytes: r.get::<_, Option<i64>>(7)?.map(|b| b.max(0) as u64),
    })
}

/// One job row as SQLite holds it, before parsing.
pub(super) struct RawJob {
    id: String,
    spec: Option<String>,
    state: String,
    worker: Option<String>,
    epoch: i64,
    test_acc: Option<f64>,
    epoch_seconds: f64,
    attempts: i64,
    error: Option<String>,
    result: Option<String>,
    error_kind: Option<String>,
    failures: i64,
    max_attempts: i64,
    busy_seconds: f64,
    since_progress: Option<f64>,
    memory_need: Option<i64>,
    epochs_reported: Option<i64>,
}

impl RawJob {
    /// Reads a row of `JOBS_SQL`.
    pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawJob {
            id: r.get(0)?,
            spec: r.get(1)?,
            state: r.get(2)?,
            worker: r.get(3)?,
            epoch: r.get(4)?,
            test_acc: r.get(5)?,
            epoch_seconds: r.get(6)?,
            attempts: r.get(7)?,
            error: r.get(8)?,
            result: r.get(9)?,
            error_kind: r.get(10)?,
            failures: r.get(11)?,
            max_attempts: r.get(12)?,
            busy_seconds: r.get(13)?,
            since_progress: r.get(14)?,
            memory_need: r.get(15)?,
            epochs_reported: r.get(16)?,
        })
    }

    /// Parses the stored documents; anything that does not parse is `Corrupt`, naming the job.
    pub(super) fn parse(self, store: &Store) -> Result<JobRow> {
        let spec = store.spec_of(&self.id, self.spec.as_deref())?;
        let id = self.id;
        let error_kind = match self.error_kind {
            None => FailureKind::Job,
            Some(k) => FailureKind::from_name(&k)
                .ok_or_else(|| StoreError::Corrupt(format!("job {id}: unknown failure kind {k:?}")))?,
        };
        let state = JobState::from_name(&self.state)
            .filter(|s| *s != JobState::Unspecified)
            .ok_or_else(|| StoreError::Corrupt(format!("job {id}: unknown state {:?}", self.state)))?;
        let result = match self.result {
            Some(r) => Some(
                TrainResult::parse(&r).map_err(|e| StoreError::Corrupt(format!("stored result of job {id}: {e}")))?,
            ),
            None => None,
        };
        let epoch = self.epoch as u32;
        Ok(JobRow {
            id,
            spec,
            state,
            worker: self.worker,
            epoch,
            test_acc: self.test_acc,
            secs_per_epoch: (epoch > 0).then(|| self.epoch_seconds / f64::from(epoch)),
            epoch_seconds: self.epoch_seconds,
            busy_seconds: self.busy_seconds,
            since_progress: self.since_progress,
            attempts: self.attempts as u32,
            error: self.error,
            error_kind,
            failures: self.failures as u32,
            max_attempts: self.max_attempts as u32,
            result,
            memory_need: self.memory_need.map(|b| b.max(0) as u64),
            epochs_reported: self.epochs_reported.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0),
        })
    }
}

impl Store {
    /// Every active job (scheduling order, without results) and every worker: the status.
    pub fn snapshot(&self) -> Result<(Vec<JobRow>, Vec<WorkerRow>)> {
        self.rows(false)
    }

    /// As [`Store::snapshot`], with each ended job's result: what the tables read.
    pub fn snapshot_with_results(&self) -> Result<(Vec<JobRow>, Vec<WorkerRow>)> {
        self.rows(true)
    }

    /// The snapshot, results included when `results`.
    fn rows(&self, results: bool) -> Result<(Vec<JobRow>, Vec<WorkerRow>)> {
        let sql = self.sql();
        let (raw, workers) = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            // One read transaction: jobs and workers as of the same commit.
            let read = conn.unchecked_transaction().map_err(&sql)?;
            let mut stmt = conn.prepare_cached(JOBS_SQL).map_err(&sql)?;
            let with_specs = !self.specs_complete.load(std::sync::atomic::Ordering::SeqCst);
            let raw = stmt
                .query_map(rusqlite::params![now(), results, with_specs], RawJob::read)
                .map_err(&sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(&sql)?;
            let mut stmt = conn.prepare_cached(WORKERS_SQL).map_err(&sql)?;
            let workers =
                stmt.query_map([], read_worker).map_err(&sql)?.collect::<rusqlite::Result<Vec<_>>>().map_err(&sql)?;
            drop(stmt);
            read.commit().map_err(&sql)?;
            (raw, workers)
        };
        let jobs = raw.into_iter().map(|r| r.parse(self)).collect::<Result<Vec<_>>>()?;
        // Every active job's spec is kept now (jobs come only from `add_sweep`, which clears this).
        self.specs_complete.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok((jobs, workers))
    }

    /// The spec of job `id`: parsed from `text` when read (and kept), else the kept one, else
    /// read from the database.
    pub(super) fn spec_of(&self, id: &str, text: Option<&str>) -> Result<JobSpec> {
        if let Some(text) = text {
            let spec = Store::parse_spec(id, text)?;
            self.specs.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), spec.clone());
            return Ok(spec);
        }
        if let Some(spec) = self.specs.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(spec.clone());
        }
        let sql = self.sql();
        let text: String = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            conn.query_row_c("SELECT spec FROM jobs WHERE id = ?1", [id], |r| r.get(0)).map_err(&sql)?
        };
        self.spec_of(id, Some(&text))
    }

    /// The active jobs by state (states without jobs left out) and every worker: what the
    /// metrics need, without reading each job.
    pub fn counts(&self) -> Result<(JobCounts, Vec<WorkerRow>)> {
        let sql = self.sql();
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let read = conn.unchecked_transaction().map_err(&sql)?;
        let raw = conn
            .prepare_cached("SELECT state, COUNT(*) FROM jobs WHERE active = 1 GROUP BY state")
            .map_err(&sql)?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(&sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&sql)?;
        let workers = conn
            .prepare_cached(WORKERS_SQL)
            .map_err(&sql)?
            .query_map([], read_worker)
            .map_err(&sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&sql)?;
        read.commit().map_err(&sql)?;
        let jobs = raw
            .into_iter()
            .map(|(state, n)| {
                JobState::from_name(&state)
                    .map(|s| (s, n as usize))
                    .ok_or_else(|| StoreError::Corrupt(format!("a job in unknown state {state:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((jobs, workers))
    }

    /// Every epoch reported for the sweep's active jobs, in sweep order then epoch order, with
    /// the worker of the attempt that reported it.
    pub fn epoch_log(&self) -> Result<Vec<EpochRow>> {
        let sql = self.sql();
        let raw = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            let mut stmt = conn
                .prepare_cached(
                    "SELECT e.job, e.attempt, e.metrics, e.reported_at, a.worker FROM epochs e
                     JOIN jobs j ON j.id = e.job LEFT JOIN attempts a ON a.job = e.job AND a.attempt = e.attempt
                     WHERE j.active = 1 ORDER BY j.seq, e.epoch",
                )
                .map_err(&sql)?;
            stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(&sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&sql)?
        };
        raw.into_iter()
            .map(|(job, attempt, metrics, reported_at, worker)| {
                let metrics = EpochMetrics::parse(&metrics)
                    .map_err(|e| StoreError::Corrupt(format!("stored epoch metrics of job {job}: {e}")))?;
                Ok(EpochRow { job, attempt: attempt as u32, worker, reported_at, metrics })
            })
            .collect()
    }
}

/// One reported epoch, as [`Store::epoch_log`] lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    /// The job.
    pub job: String,
    /// The attempt that reported it.
    pub attempt: u32,
    /// That attempt's worker.
    pub worker: Option<String>,
    /// When it was reported (Unix seconds; none in databases from before the column).
    pub reported_at: Option<f64>,
    /// The figures.
    pub metrics: EpochMetrics,
}
