//! One job in full, for the dashboard's job page: its row with the result, every attempt (who
//! ran it, when, how it ended, why it failed) and every reported epoch.

use gridsweep_proto::result::EpochMetrics;
use rusqlite::OptionalExtension;

use super::reads::{JOB_SQL, RawJob};
use super::{Cached, JobRow, Result, Store, StoreError, now};

/// One attempt at a job.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRow {
    /// 1, 2, ...
    pub attempt: u32,
    /// The worker that held it.
    pub worker: String,
    /// When it was granted (Unix seconds).
    pub started_at: f64,
    /// When it ended; none while running.
    pub ended_at: Option<f64>,
    /// How it ended (`completed`, `diverged`, `failed`, `released`, `expired`); none while running.
    pub outcome: Option<String>,
    /// Whose fault a failure was (`job`, `transfer`, ...).
    pub kind: Option<String>,
    /// The failure's message.
    pub error: Option<String>,
}

/// One reported epoch of a job.
#[derive(Clone, Debug, PartialEq)]
pub struct DetailEpoch {
    /// The attempt that reported it.
    pub attempt: u32,
    /// When the coordinator stored it (Unix seconds; none in databases from before the column).
    pub reported_at: Option<f64>,
    /// The figures.
    pub metrics: EpochMetrics,
}

/// A job with its attempts and epochs.
#[derive(Clone, Debug, PartialEq)]
pub struct JobDetail {
    /// The job, its result included once it has one.
    pub job: JobRow,
    /// Its attempts, oldest first.
    pub attempts: Vec<AttemptRow>,
    /// Its reported epochs in epoch order.
    pub epochs: Vec<DetailEpoch>,
}

impl Store {
    /// The job `id` in full; none when there is no such job.
    pub fn job_detail(&self, id: &str) -> Result<Option<JobDetail>> {
        let sql = self.sql();
        let (raw, attempts, epochs) = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            let raw = conn
                .prepare_cached(JOB_SQL)
                .map_err(&sql)?
                .query_row(rusqlite::params![now(), true, true, id], RawJob::read)
                .optional()
                .map_err(&sql)?;
            let Some(raw) = raw else { return Ok(None) };
            let attempts = conn
                .prepare_cached(
                    "SELECT attempt, worker, started_at, ended_at, outcome, kind, error FROM attempts
                     WHERE job = ?1 ORDER BY attempt",
                )
                .map_err(&sql)?
                .query_map([id], |r| {
                    Ok(AttemptRow {
                        attempt: r.get::<_, i64>(0)? as u32,
                        worker: r.get(1)?,
                        started_at: r.get(2)?,
                        ended_at: r.get(3)?,
                        outcome: r.get(4)?,
                        kind: r.get(5)?,
                        error: r.get(6)?,
                    })
                })
                .map_err(&sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(&sql)?;
            let epochs = conn
                .prepare_cached("SELECT attempt, reported_at, metrics FROM epochs WHERE job = ?1 ORDER BY epoch")
                .map_err(&sql)?
                .query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<f64>>(1)?, r.get::<_, String>(2)?)))
                .map_err(&sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(&sql)?;
            (raw, attempts, epochs)
        };
        let job = raw.parse(self)?;
        let epochs = epochs
            .into_iter()
            .map(|(attempt, reported_at, m)| {
                EpochMetrics::parse(&m)
                    .map(|metrics| DetailEpoch { attempt: attempt as u32, reported_at, metrics })
                    .map_err(|e| StoreError::Corrupt(format!("stored epoch metrics of job {id}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(JobDetail { job, attempts, epochs }))
    }
}

impl Store {
    /// Whether a job `id` exists (active or not).
    pub fn has_job(&self, id: &str) -> Result<bool> {
        let sql = self.sql();
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let found: Option<i64> =
            conn.query_row_c("SELECT 1 FROM jobs WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(&sql)?;
        Ok(found.is_some())
    }
}

impl Store {
    /// SQLite's `data_version`: changes when another connection (another process) commits to
    /// the database, so a read-only dashboard can tell that a sweep it shows has moved on.
    pub fn data_version(&self) -> Result<i64> {
        let sql = self.sql();
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(&sql)
    }
}
