//! The coordinator's state in SQLite (WAL mode, one file `state.db` under the state directory):
//! sweeps, jobs, attempts, epoch metrics, results, workers and checkpoints. Every transition runs
//! in its own savepoint inside a group commit (`commit`): the transitions that arrive together
//! share one transaction and one fsync, a failed transition rolls back to its savepoint alone,
//! and none returns before its batch is committed, so a coordinator killed at any point restarts
//! from a consistent state holding every acknowledged transition.
//!
//! Job states: `pending` -> `running` (under a lease) -> `completed` | `diverged` | `failed`;
//! an expired or released lease puts a running job back to `pending` without using an attempt.
//!
//! This file holds the `Store` itself (opening a state, its errors); the rest is one concern per
//! file: `schema` (the tables and their migration), `commit` (the group commit every transition
//! runs in), `rows` (what the store hands out), `sweeps` (adding a sweep's jobs), `lease`
//! (workers, grants, heartbeats, expiry), `report` (results, failures, releases, retries),
//! `checkpoints`, `program` (program jobs' epoch lines, results and logs), and the reads that
//! change nothing: `reads` (snapshots, counts, the epoch log) and `detail` (one job in full);
//! `handle` is the async door (`StoreHandle`) the server, the dashboard and `run` reach the store
//! through.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Condvar, Mutex, OnceLock};

use gridsweep_proto::job::JobSpec;
use prometheus_client::metrics::histogram::Histogram;
use rusqlite::Connection;

mod checkpoints;
mod commit;
mod detail;
mod handle;
mod lease;
mod program;
mod reads;
mod report;
mod rows;
mod schema;
mod sweeps;
#[cfg(test)]
mod tests;

use commit::{Cached, Db};
pub use detail::{AttemptRow, DetailEpoch, JobDetail};
pub use handle::{StoreHandle, TaskFailed, off_runtime};
pub use program::{AttemptLog, ProgramDetail, ProgramEpoch};
pub use reads::EpochRow;
pub use rows::{Grant, JobRow, LeaseInfo, ReportOutcome, RetryOutcome, StoredCheckpoint, WorkerRow};

/// A worker whose last this-many jobs failed gets no more.
pub const QUARANTINE_AFTER: i64 = 3;

/// A job whose attempts have broken a worker's CUDA context this many times (on any workers)
/// is taken to break it itself (a device-side assert from its own indices, say): this and every
/// later device-lost failure of it uses an attempt, so that such a job ends failed instead of
/// taking down worker after worker for ever. It still counts towards no worker's quarantine.
pub const DEVICE_LOST_CHARGED_FROM: i64 = 3;

/// What can go wrong with the state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database itself.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The state directory.
    #[error("state directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A directory given as a state that holds none (no `state.db`).
    #[error("{}: not a gridsweep state directory (no state.db)", .0.display())]
    NotAState(PathBuf),
    /// A worker id the coordinator does not know.
    #[error("unknown worker {0}: register again")]
    UnknownWorker(String),
    /// A job id the coordinator does not know.
    #[error("unknown job {0}")]
    UnknownJob(String),
    /// A report from a worker that does not hold the job's current lease.
    #[error("stale lease: job {job} is not held by worker {worker} with token {token}; drop it")]
    StaleLease {
        /// The job.
        job: String,
        /// The reporting worker.
        worker: String,
        /// The token it sent.
        token: u64,
    },
    /// A quarantined worker asked for work.
    #[error("worker {0} is quarantined after {QUARANTINE_AFTER} consecutive failed jobs")]
    Quarantined(String),
    /// A stored document or row that does not parse: the database was damaged or written by
    /// something else.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// A worker's report (a result, an epoch's metrics) that does not fit the schema or the job;
    /// nothing was changed, the lease included.
    #[error("bad report for job {job}: {message}")]
    BadReport {
        /// The job reported on.
        job: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The batch a transition was in could not be committed; the transition did not happen.
    #[error("state database {path}: commit failed: {message}")]
    Commit {
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

/// The state database. Transitions are group-committed: callers that arrive while one commit
/// is being prepared run their transition in the same transaction (each in its own savepoint)
/// and share its fsync, so durability costs one fsync per batch instead of one per call. Every
/// caller returns only after its batch is durably committed.
#[derive(Debug)]
pub struct Store {
    /// The connection and batch state.
    db: Mutex<Db>,
    /// Wakes the followers of a batch when it is committed.
    committed: Condvar,
    /// Callers waiting for the lock: the leader lets them join before committing.
    arriving: AtomicUsize,
    /// `state.db`, for messages.
    path: PathBuf,
    /// Where checkpoints are kept.
    checkpoint_dir: PathBuf,
    /// Where commit latencies go, once the metrics are attached.
    commit_latency: OnceLock<Histogram>,
    /// A second, read-only connection for the snapshots and the dashboard's reads: in WAL mode
    /// a reader sees the last commit and neither waits for the transitions nor holds them up.
    reader: Mutex<Connection>,
    /// Every job's spec, parsed once: snapshots then read the rest of each row only.
    specs: Mutex<HashMap<String, JobSpec>>,
    /// `specs` holds every active job's spec (cleared when jobs are added).
    specs_complete: AtomicBool,
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Store {
    /// Opens (creating if needed) the state under `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        let io = |source| StoreError::Io { path: dir.to_owned(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let checkpoint_dir = dir.join("checkpoints");
        std::fs::create_dir_all(&checkpoint_dir).map_err(io)?;
        let path = dir.join("state.db");
        let sql = |source| StoreError::Sqlite { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(sql)?;
        let mode: String = conn.query_row_c("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(sql)?;
        if mode != "wal" {
            return Err(StoreError::Corrupt(format!("{}: journal mode {mode}, expected wal", path.display())));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;")
            .map_err(sql)?;
        schema::apply(&conn).map_err(sql)?;
        conn.set_prepared_statement_cache_capacity(64);
        let reader = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql)?;
        reader.execute_batch("PRAGMA busy_timeout=5000;").map_err(sql)?;
        reader.set_prepared_statement_cache_capacity(16);
        Ok(Store {
            db: Mutex::new(Db::new(conn)),
            committed: Condvar::new(),
            arriving: AtomicUsize::new(0),
            path,
            checkpoint_dir,
            commit_latency: OnceLock::new(),
            reader: Mutex::new(reader),
            specs: Mutex::new(HashMap::new()),
            specs_complete: AtomicBool::new(false),
        })
    }

    /// Opens the state under `dir`, which must already hold one: for commands that read or
    /// mend a sweep's state, where a mistyped path must not become a new, empty state.
    pub fn open_existing(dir: &Path) -> Result<Store> {
        if !dir.join("state.db").is_file() {
            return Err(StoreError::NotAState(dir.to_owned()));
        }
        Store::open(dir)
    }

    /// Records the seconds each group commit takes in `histogram` from now on.
    pub fn record_commits(&self, histogram: Histogram) {
        let _ = self.commit_latency.set(histogram);
    }

    /// Where uploaded checkpoints go.
    pub fn checkpoint_dir(&self) -> &Path {
        &self.checkpoint_dir
    }

    /// The error of an SQLite call on this store's database file.
    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    /// A stored job spec.
    pub(super) fn parse_spec(id: &str, spec: &str) -> Result<JobSpec> {
        serde_json::from_str(spec).map_err(|e| StoreError::Corrupt(format!("spec of job {id}: {e}")))
    }
}
