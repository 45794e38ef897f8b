//! The coordinator's state in SQLite (WAL mode, one file `state.db` under the state directory):
//! sweeps, jobs, attempts, epoch metrics, results, workers and checkpoints. Every transition is
//! one transaction, so a coordinator killed at any point restarts from a consistent state.
//!
//! Job states: `pending` -> `running` (under a lease) -> `completed` | `diverged` | `failed`;
//! an expired or released lease puts a running job back to `pending` without using an attempt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use gridsweep_proto::job::JobSpec;
use gridsweep_proto::result::{EpochMetrics, RunStatus, TrainResult};
use gridsweep_proto::v1::{FailureKind, JobState};
use prometheus_client::metrics::histogram::Histogram;
use rusqlite::{Connection, OptionalExtension, params};

/// A worker whose last this-many jobs failed gets no more.
pub const QUARANTINE_AFTER: i64 = 3;

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

/// A job granted to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseInfo {
    /// The job.
    pub job_id: String,
    /// Grant number of this job.
    pub attempt: u32,
    /// Fencing token.
    pub token: u64,
    /// The job's spec, JSON.
    pub spec_json: String,
    /// Epoch of the latest stored checkpoint (0: none).
    pub checkpoint_epoch: u32,
}

/// The answer to a pull.
#[derive(Clone, Debug, PartialEq)]
pub enum Grant {
    /// A job.
    Lease(LeaseInfo),
    /// Nothing pending now, but jobs are still running.
    NothingYet,
    /// Every job has ended.
    Finished,
}

/// How a completion or failure report was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportOutcome {
    /// False when the attempt had already ended: nothing changed.
    pub accepted: bool,
    /// Why not, or what happened.
    pub reason: String,
    /// For failures: the job is pending again.
    pub will_retry: bool,
    /// For failures: this one put the worker in quarantine.
    pub quarantined: bool,
}

/// A checkpoint file kept for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The epoch it ends.
    pub epoch: u32,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// What [`Store::retry_failed`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryOutcome {
    /// The jobs put back in the queue.
    pub retried: Vec<String>,
    /// The jobs named that were not failed, with their state: left as they were.
    pub not_failed: Vec<(String, String)>,
}

impl ReportOutcome {
    /// The answer to a report for an attempt that has already ended: nothing changes.
    fn already_ended(outcome: &str) -> Self {
        ReportOutcome {
            accepted: false,
            reason: format!("attempt already ended ({outcome}); nothing changed"),
            will_retry: false,
            quarantined: false,
        }
    }
}

/// One job in a status snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// The spec.
    pub spec: JobSpec,
    /// Where it stands.
    pub state: JobState,
    /// Worker holding it.
    pub worker: Option<String>,
    /// Epochs reported.
    pub epoch: u32,
    /// Latest test accuracy.
    pub test_acc: Option<f64>,
    /// Mean seconds per reported epoch.
    pub secs_per_epoch: Option<f64>,
    /// Seconds of reported epochs (training and evaluation) over all attempts.
    pub epoch_seconds: f64,
    /// Wall seconds workers have held the job, over all attempts (a running one up to now):
    /// epochs plus per-job overhead (data loading, checkpoints, the gradient analysis).
    pub busy_seconds: f64,
    /// For a running job: seconds since its current attempt last made progress (its last
    /// reported epoch, or its start).
    pub since_progress: Option<f64>,
    /// Grants so far.
    pub attempts: u32,
    /// Last error.
    pub error: Option<String>,
    /// Whose fault the last error was.
    pub error_kind: FailureKind,
    /// Failures that used an attempt (since the last retry).
    pub failures: u32,
    /// The attempts the job may use on failures of its own.
    pub max_attempts: u32,
    /// The result, once ended (completed or diverged).
    pub result: Option<TrainResult>,
    /// It ran out of memory on a worker with this many bytes of device memory: it needs more,
    /// and goes only to a worker that has more.
    pub memory_need: Option<u64>,
}

impl JobRow {
    /// Seconds to a running job's end at its mean epoch time so far; none before its first
    /// epoch or when it is not running.
    pub fn eta_s(&self) -> Option<f64> {
        match (self.state, self.secs_per_epoch) {
            (JobState::Running, Some(s)) => Some(s * f64::from(self.spec.train.epochs.saturating_sub(self.epoch))),
            _ => None,
        }
    }
}

/// One worker in a status snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRow {
    /// Id.
    pub id: String,
    /// Host/process.
    pub name: String,
    /// Device.
    pub device: String,
    /// Unix seconds last heard from.
    pub last_seen: f64,
    /// Quarantined.
    pub quarantined: bool,
    /// Its device memory in bytes, as it registered it (None: unknown).
    pub memory_bytes: Option<u64>,
    /// Its last failure that was not the job's (kind: message), and when (Unix seconds).
    pub problem: Option<(String, f64)>,
}

/// The connection and the group commit in progress on it.
#[derive(Debug)]
struct Db {
    /// The one connection; never held across an `.await`.
    conn: Connection,
    /// A transaction is open and collecting transitions.
    open: bool,
    /// Number of the open (or last) batch.
    batch: u64,
    /// A caller is leading the open batch to its commit.
    leading: bool,
    /// The last batch whose COMMIT has finished.
    committed: u64,
    /// The last batch whose COMMIT failed, and why.
    failed: Option<(u64, String)>,
}

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

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_token', 1);
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT PRIMARY KEY, source TEXT NOT NULL, max_attempts INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, sweep TEXT NOT NULL, seq INTEGER NOT NULL, spec TEXT NOT NULL, cost REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL, token INTEGER, worker TEXT, lease_expires REAL,
    epoch INTEGER NOT NULL DEFAULT 0, epoch_seconds REAL NOT NULL DEFAULT 0, test_acc REAL,
    checkpoint_epoch INTEGER NOT NULL DEFAULT 0, error TEXT, result TEXT, updated_at REAL NOT NULL,
    active INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (state, active, cost DESC, seq);
CREATE TABLE IF NOT EXISTS attempts (
    job TEXT NOT NULL, attempt INTEGER NOT NULL, token INTEGER NOT NULL UNIQUE, worker TEXT NOT NULL,
    started_at REAL NOT NULL, ended_at REAL, outcome TEXT, error TEXT, PRIMARY KEY (job, attempt));
CREATE TABLE IF NOT EXISTS epochs (
    job TEXT NOT NULL, epoch INTEGER NOT NULL, attempt INTEGER NOT NULL, metrics TEXT NOT NULL,
    PRIMARY KEY (job, epoch));
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, device TEXT NOT NULL, registered_at REAL NOT NULL,
    last_seen REAL NOT NULL, consecutive_failures INTEGER NOT NULL DEFAULT 0, quarantined INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS artifacts (
    job TEXT PRIMARY KEY, epoch INTEGER NOT NULL, sha256 TEXT NOT NULL, path TEXT NOT NULL, bytes INTEGER NOT NULL);
"#;

/// Columns added after the first release, for state databases created before them: (table,
/// column, definition). `Store::open` adds the missing ones.
const ADDED_COLUMNS: [(&str, &str, &str); 7] = [
    ("attempts", "kind", "TEXT"),
    ("jobs", "error_kind", "TEXT"),
    ("workers", "problem", "TEXT"),
    ("workers", "problem_at", "REAL"),
    ("epochs", "reported_at", "REAL"),
    // The worker's device memory in bytes (NULL: unknown).
    ("workers", "memory_bytes", "INTEGER"),
    // The most device memory a worker had when the job ran out of it there: the job needs more.
    ("jobs", "memory_need", "INTEGER"),
];

/// Adds the columns of `ADDED_COLUMNS` that an older database lacks.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, definition) in ADDED_COLUMNS {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let names = stmt.query_map([], |r| r.get::<_, String>(1))?.collect::<rusqlite::Result<Vec<_>>>()?;
        if !names.iter().any(|n| n == column) {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"))?;
        }
    }
    Ok(())
}

/// Statements through the connection's prepared-statement cache: the transitions run the same
/// few SQL texts thousands of times, and parsing each anew costs more than running it.
trait Cached {
    /// `Connection::execute`, cached.
    fn execute_c<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// `Connection::query_row`, cached.
    fn query_row_c<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_c<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_c<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
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
        conn.execute_batch(SCHEMA).map_err(sql)?;
        migrate(&conn).map_err(sql)?;
        conn.set_prepared_statement_cache_capacity(64);
        let reader = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql)?;
        reader.execute_batch("PRAGMA busy_timeout=5000;").map_err(sql)?;
        reader.set_prepared_statement_cache_capacity(16);
        let db = Db { conn, open: false, batch: 0, leading: false, committed: 0, failed: None };
        Ok(Store {
            db: Mutex::new(db),
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

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    /// Runs `f` as one atomic, durable transition (a savepoint in the current batch) and returns
    /// once the batch is committed.
    fn tx<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let sql = self.sql();
        self.arriving.fetch_add(1, Ordering::SeqCst);
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        self.arriving.fetch_sub(1, Ordering::SeqCst);
        if !db.open {
            db.conn.execute_batch("BEGIN IMMEDIATE").map_err(&sql)?;
            db.open = true;
            db.batch += 1;
        }
        let batch = db.batch;
        db.conn.execute_batch("SAVEPOINT transition").map_err(&sql)?;
        let out = f(&db.conn);
        let end = if out.is_ok() { "RELEASE transition" } else { "ROLLBACK TO transition; RELEASE transition" };
        db.conn.execute_batch(end).map_err(&sql)?;
        if db.leading {
            // Follower: the leader commits this batch.
            while db.committed < batch {
                db = self.committed.wait(db).unwrap_or_else(|e| e.into_inner());
            }
        } else {
            // Leader: let the callers already at the door join, briefly, then commit for all.
            db.leading = true;
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2);
            while self.arriving.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
                drop(db);
                std::thread::yield_now();
                db = self.db.lock().unwrap_or_else(|e| e.into_inner());
            }
            let started = std::time::Instant::now();
            let commit = db.conn.execute_batch("COMMIT");
            if let Some(h) = self.commit_latency.get() {
                h.observe(started.elapsed().as_secs_f64());
            }
            if let Err(e) = &commit {
                let _ = db.conn.execute_batch("ROLLBACK");
                db.failed = Some((batch, e.to_string()));
            }
            db.open = false;
            db.leading = false;
            db.committed = batch;
            self.committed.notify_all();
        }
        match &db.failed {
            Some((b, e)) if *b == batch => Err(StoreError::Commit { path: self.path.clone(), message: e.clone() }),
            _ => out,
        }
    }

    /// Records a sweep and inserts its jobs; jobs already known (same id) are left as they are,
    /// so a finished job is never run again. Jobs of an earlier version of the sweep that are
    /// not in `jobs` stay in the database but inactive: not scheduled, not shown, not tabled.
    /// Returns (new jobs, jobs already known).
    pub fn add_sweep(&self, name: &str, source: &str, jobs: &[JobSpec], max_attempts: u32) -> Result<(usize, usize)> {
        let sql = self.sql();
        self.specs_complete.store(false, Ordering::SeqCst);
        self.tx(|tx| {
            let t = now();
            tx.execute_c(
                "INSERT INTO sweeps (name, source, max_attempts, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET source = excluded.source, max_attempts = excluded.max_attempts",
                params![name, source, max_attempts, t],
            )
            .map_err(&sql)?;
            tx.execute_c("UPDATE jobs SET active = 0", []).map_err(&sql)?;
            let mut added = 0;
            for (seq, job) in jobs.iter().enumerate() {
                let spec = serde_json::to_string(job).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                added += tx
                    .execute_c(
                        "INSERT OR IGNORE INTO jobs (id, sweep, seq, spec, cost, max_attempts, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![job.id(), name, seq as i64, spec, job.cost(), max_attempts, t],
                    )
                    .map_err(&sql)?;
                // A failed job stays failed with the budget it failed under, whatever this run's
                // budget: `coordinator retry` or `run --retry-failed` gives it a fresh one.
                tx.execute_c(
                    "UPDATE jobs SET active = 1, seq = ?3, max_attempts = CASE WHEN state = 'failed' THEN max_attempts
                     ELSE ?2 END WHERE id = ?1",
                    params![job.id(), max_attempts, seq as i64],
                )
                .map_err(&sql)?;
            }
            Ok((added, jobs.len() - added))
        })
    }

    /// A new worker id, for a worker on `device` with `memory_bytes` of device memory (None:
    /// unknown).
    pub fn register_worker(&self, name: &str, device: &str, memory_bytes: Option<u64>) -> Result<String> {
        let sql = self.sql();
        self.tx(|tx| {
            let n: i64 = tx.query_row_c("SELECT COUNT(*) FROM workers", [], |r| r.get(0)).map_err(&sql)?;
            let id = format!("w{}-{:04x}", n + 1, (now().fract() * 65536.0) as u32);
            let t = now();
            let memory = memory_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
            tx.execute_c(
                "INSERT INTO workers (id, name, device, registered_at, last_seen, memory_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                params![id, name, device, t, memory],
            )
            .map_err(&sql)?;
            Ok(id)
        })
    }

    /// Marks `worker` as heard from; errors when unknown.
    fn touch(tx: &Connection, worker: &str, sql: &dyn Fn(rusqlite::Error) -> StoreError) -> Result<bool> {
        let q: Option<i64> = tx
            .query_row_c("SELECT quarantined FROM workers WHERE id = ?1", [worker], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        let Some(q) = q else { return Err(StoreError::UnknownWorker(worker.to_owned())) };
        tx.execute_c("UPDATE workers SET last_seen = ?2 WHERE id = ?1", params![worker, now()]).map_err(sql)?;
        Ok(q != 0)
    }

    /// Puts running jobs whose lease ran out back to pending (their attempts are not counted as
    /// failures). Returns them as (job id, worker that held it), in sweep order.
    pub fn expire_leases(&self) -> Result<Vec<(String, String)>> {
        let sql = self.sql();
        self.tx(|tx| {
            let t = now();
            let expired: Vec<(String, String)> = tx
                .prepare_cached(
                    "SELECT id, worker FROM jobs WHERE state = 'running' AND lease_expires < ?1 ORDER BY seq",
                )
                .and_then(|mut st| {
                    st.query_map([t], |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default())))?
                        .collect()
                })
                .map_err(&sql)?;
            if expired.is_empty() {
                return Ok(expired);
            }
            tx.execute_c(
                "UPDATE attempts SET ended_at = ?1, outcome = 'expired'
                 WHERE outcome IS NULL AND token IN
                   (SELECT token FROM jobs WHERE state = 'running' AND lease_expires < ?1)",
                [t],
            )
            .map_err(&sql)?;
            tx.execute_c(
                "UPDATE jobs SET state = 'pending', worker = NULL, token = NULL, lease_expires = NULL, updated_at = ?1
                 WHERE state = 'running' AND lease_expires < ?1",
                [t],
            )
            .map_err(&sql)?;
            Ok(expired)
        })
    }

    /// Grants the next pending job to `worker` for `ttl_s` seconds: longest expected first, or
    /// in sweep order when `fifo`. A job that ran out of memory on a worker with M bytes goes
    /// only to a worker with more than M (or one whose memory is unknown).
    pub fn grant(&self, worker: &str, ttl_s: f64, fifo: bool) -> Result<Grant> {
        let sql = self.sql();
        self.tx(|tx| {
            if Self::touch(tx, worker, &sql)? {
                return Err(StoreError::Quarantined(worker.to_owned()));
            }
            let order = if fifo { "seq" } else { "cost DESC, seq" };
            let next: Option<(String, String, i64, i64)> = tx
                .query_row_c(
                    &format!(
                        "SELECT id, spec, attempts, checkpoint_epoch FROM jobs WHERE state = 'pending' AND active = 1
                         AND (memory_need IS NULL
                              OR COALESCE((SELECT memory_bytes FROM workers WHERE id = ?1), memory_need + 1)
                                 > memory_need)
                         ORDER BY {order} LIMIT 1"
                    ),
                    [worker],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(&sql)?;
            let Some((id, spec, attempts, checkpoint_epoch)) = next else {
                let open: i64 = tx
                    .query_row_c(
                        "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running') AND active = 1",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(&sql)?;
                return Ok(if open == 0 { Grant::Finished } else { Grant::NothingYet });
            };
            let token: i64 =
                tx.query_row_c("SELECT value FROM meta WHERE key = 'next_token'", [], |r| r.get(0)).map_err(&sql)?;
            tx.execute_c("UPDATE meta SET value = value + 1 WHERE key = 'next_token'", []).map_err(&sql)?;
            let t = now();
            let attempt = attempts + 1;
            tx.execute_c(
                "UPDATE jobs SET state = 'running', attempts = ?2, token = ?3, worker = ?4, lease_expires = ?5,
                 updated_at = ?6 WHERE id = ?1",
                params![id, attempt, token, worker, t + ttl_s, t],
            )
            .map_err(&sql)?;
            tx.execute_c(
                "INSERT INTO attempts (job, attempt, token, worker, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, attempt, token, worker, t],
            )
            .map_err(&sql)?;
            Ok(Grant::Lease(LeaseInfo {
                job_id: id,
                attempt: attempt as u32,
                token: token as u64,
                spec_json: spec,
                checkpoint_epoch: checkpoint_epoch as u32,
            }))
        })
    }

    /// Checks that `worker` holds `job` with `token` right now.
    fn check_holder(
        tx: &Connection,
        worker: &str,
        job: &str,
        token: u64,
        sql: &dyn Fn(rusqlite::Error) -> StoreError,
    ) -> Result<()> {
        let row: Option<(String, Option<i64>, Option<String>)> = tx
            .query_row_c("SELECT state, token, worker FROM jobs WHERE id = ?1", [job], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(sql)?;
        match row {
            None => Err(StoreError::UnknownJob(job.to_owned())),
            Some((state, Some(t), Some(w))) if state == "running" && t as u64 == token && w == worker => Ok(()),
            Some(_) => Err(StoreError::StaleLease { job: job.to_owned(), worker: worker.to_owned(), token }),
        }
    }

    /// Records epochs and renews the lease. Errors with `StaleLease` when the worker does not
    /// hold the job.
    pub fn heartbeat(&self, worker: &str, job: &str, token: u64, epochs: &[(u32, String)], ttl_s: f64) -> Result<()> {
        let sql = self.sql();
        self.tx(|tx| {
            Self::touch(tx, worker, &sql)?;
            Self::check_holder(tx, worker, job, token, &sql)?;
            let attempt: i64 =
                tx.query_row_c("SELECT attempt FROM attempts WHERE token = ?1", [token as i64], |r| r.get(0)).map_err(&sql)?;
            for (epoch, metrics) in epochs {
                let bad = |message: String| StoreError::BadReport { job: job.to_owned(), message };
                let m = EpochMetrics::parse(metrics).map_err(|e| bad(format!("epoch {epoch} metrics: {e}")))?;
                if m.epoch != *epoch {
                    return Err(bad(format!("epoch {epoch} carries the metrics of epoch {}", m.epoch)));
                }
                tx.execute_c(
                    "INSERT OR REPLACE INTO epochs (job, epoch, attempt, metrics, reported_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![job, epoch, attempt, metrics, now()],
                )
                .map_err(&sql)?;
                tx.execute_c(
                    "UPDATE jobs SET epoch = MAX(epoch, ?2), test_acc = ?3, epoch_seconds = epoch_seconds + ?4 WHERE id = ?1",
                    params![job, epoch, m.test_acc, m.seconds],
                )
                .map_err(&sql)?;
            }
            tx.execute_c("UPDATE jobs SET lease_expires = ?2, updated_at = ?3 WHERE id = ?1", params![job, now() + ttl_s, now()])
                .map_err(&sql)?;
            Ok(())
        })
    }

    /// Records an uploaded checkpoint of `job` (already written to its path).
    pub fn store_checkpoint(&self, worker: &str, job: &str, token: u64, ck: &StoredCheckpoint) -> Result<()> {
        let StoredCheckpoint { epoch, sha256, path, bytes } = ck;
        let sql = self.sql();
        self.tx(|tx| {
            Self::check_holder(tx, worker, job, token, &sql)?;
            tx.execute_c(
                "INSERT OR REPLACE INTO artifacts (job, epoch, sha256, path, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job, epoch, sha256, path.to_string_lossy(), *bytes as i64],
            )
            .map_err(&sql)?;
            tx.execute_c("UPDATE jobs SET checkpoint_epoch = ?2 WHERE id = ?1", params![job, epoch]).map_err(&sql)?;
            Ok(())
        })
    }

    /// The stored checkpoint (path, sha256, epoch) of a job `worker` holds.
    pub fn checkpoint_for(&self, worker: &str, job: &str, token: u64) -> Result<Option<(PathBuf, String, u32)>> {
        let sql = self.sql();
        self.tx(|tx| {
            Self::check_holder(tx, worker, job, token, &sql)?;
            tx.query_row_c("SELECT path, sha256, epoch FROM artifacts WHERE job = ?1", [job], |r| {
                Ok((PathBuf::from(r.get::<_, String>(0)?), r.get(1)?, r.get::<_, i64>(2)? as u32))
            })
            .optional()
            .map_err(&sql)
        })
    }

    /// The start of every report that ends an attempt (complete, fail, release): notes that
    /// `worker` was seen and ends its attempt `token` at `job` now as `outcome` (with `error`).
    /// `Ok(Err(earlier))` when the attempt had already ended (`earlier`: how), and nothing was
    /// written; else `Ok(Ok(now))`, the time written.
    fn end_attempt(
        tx: &Connection,
        worker: &str,
        job: &str,
        token: u64,
        outcome: &str,
        error: Option<(&str, FailureKind)>,
        sql: &dyn Fn(rusqlite::Error) -> StoreError,
    ) -> Result<std::result::Result<f64, String>> {
        Self::touch(tx, worker, sql)?;
        if let Some(earlier) = Self::live_attempt(tx, worker, job, token, sql)? {
            return Ok(Err(earlier));
        }
        let t = now();
        tx.execute_c(
            "UPDATE attempts SET ended_at = ?2, outcome = ?3, error = ?4, kind = ?5 WHERE token = ?1",
            params![token as i64, t, outcome, error.map(|e| e.0), error.map(|e| e.1.name())],
        )
        .map_err(sql)?;
        Ok(Ok(t))
    }

    /// Looks up the attempt a report refers to: Ok(None) when it already ended (a duplicate or
    /// late report), an error when the token is unknown or belongs to another job or worker.
    fn live_attempt(
        tx: &Connection,
        worker: &str,
        job: &str,
        token: u64,
        sql: &dyn Fn(rusqlite::Error) -> StoreError,
    ) -> Result<Option<String>> {
        let row: Option<(String, String, Option<String>)> = tx
            .query_row_c("SELECT job, worker, outcome FROM attempts WHERE token = ?1", [token as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(sql)?;
        match row {
            Some((j, w, outcome)) if j == job && w == worker => match outcome {
                Some(o) => Ok(Some(o)),
                None => {
                    Self::check_holder(tx, worker, job, token, sql)?;
                    Ok(None)
                }
            },
            _ => {
                let known: Option<String> =
                    tx.query_row_c("SELECT id FROM jobs WHERE id = ?1", [job], |r| r.get(0)).optional().map_err(sql)?;
                match known {
                    None => Err(StoreError::UnknownJob(job.to_owned())),
                    Some(_) => Err(StoreError::StaleLease { job: job.to_owned(), worker: worker.to_owned(), token }),
                }
            }
        }
    }

    /// Takes a finished job's result (status completed or diverged). A result that does not
    /// parse, is not a finished run's, or was trained with another config than the job's is a
    /// `BadReport` naming the field, and changes nothing: the lease stays as it was.
    pub fn complete(&self, worker: &str, job: &str, token: u64, result_json: &str) -> Result<ReportOutcome> {
        let bad = |message: String| StoreError::BadReport { job: job.to_owned(), message };
        let result = TrainResult::parse(result_json).map_err(|e| bad(e.to_string()))?;
        let state = match result.status {
            RunStatus::Completed => JobState::Completed,
            RunStatus::Diverged => JobState::Diverged,
            RunStatus::Stopped => {
                return Err(bad("result field `status` is stopped: release the lease instead".to_owned()));
            }
        };
        let sql = self.sql();
        self.tx(|tx| {
            let spec: Option<String> =
                tx.query_row_c("SELECT spec FROM jobs WHERE id = ?1", [job], |r| r.get(0)).optional().map_err(&sql)?;
            let spec = Self::parse_spec(job, &spec.ok_or_else(|| StoreError::UnknownJob(job.to_owned()))?)?;
            if result.config != spec.train {
                let field = result.config.first_difference(&spec.train).unwrap_or_else(|| "?".to_owned());
                return Err(bad(format!("result field `config.{field}` differs from the job's settings")));
            }
            let t = match Self::end_attempt(tx, worker, job, token, state.name(), None, &sql)? {
                Ok(t) => t,
                Err(earlier) => return Ok(ReportOutcome::already_ended(&earlier)),
            };
            tx.execute_c(
                "UPDATE jobs SET state = ?2, result = ?3, worker = ?4, token = NULL, lease_expires = NULL,
                 test_acc = COALESCE(?5, test_acc), updated_at = ?6 WHERE id = ?1",
                params![job, state.name(), result_json, worker, result.final_test_acc, t],
            )
            .map_err(&sql)?;
            tx.execute_c("UPDATE workers SET consecutive_failures = 0, problem = NULL WHERE id = ?1", [worker])
                .map_err(&sql)?;
            Ok(ReportOutcome { accepted: true, reason: state.name().to_owned(), will_retry: false, quarantined: false })
        })
    }

    /// Takes a failure. One of the job's own (`FailureKind::Job`) uses one of its attempts (the
    /// job is pending again while attempts are left, else failed) and counts towards the
    /// worker's quarantine. Any other kind (no data to fetch, device lost, out of memory, the
    /// worker's machine) is not the job's fault: the job is pending again with its attempts
    /// untouched, the worker's failure streak is kept as it was, and the failure is noted as the
    /// worker's current problem. Every failure is kept in `attempts` with its kind.
    pub fn fail(&self, worker: &str, job: &str, token: u64, error: &str, kind: FailureKind) -> Result<ReportOutcome> {
        let sql = self.sql();
        self.tx(|tx| {
            let t = match Self::end_attempt(tx, worker, job, token, "failed", Some((error, kind)), &sql)? {
                Ok(t) => t,
                Err(earlier) => return Ok(ReportOutcome::already_ended(&earlier)),
            };
            if !kind.is_jobs_fault() {
                tx.execute_c(
                    "UPDATE jobs SET state = 'pending', error = ?2, error_kind = ?3, worker = NULL, token = NULL,
                     lease_expires = NULL, updated_at = ?4 WHERE id = ?1",
                    params![job, error, kind.name(), t],
                )
                .map_err(&sql)?;
                if kind == FailureKind::OutOfMemory {
                    // The job needs more than this worker's memory: it goes next to a larger one.
                    tx.execute_c(
                        "UPDATE jobs SET memory_need = MAX(COALESCE(memory_need, 0),
                           (SELECT memory_bytes FROM workers WHERE id = ?2))
                         WHERE id = ?1 AND (SELECT memory_bytes FROM workers WHERE id = ?2) IS NOT NULL",
                        params![job, worker],
                    )
                    .map_err(&sql)?;
                }
                tx.execute_c(
                    "UPDATE workers SET problem = ?2, problem_at = ?3 WHERE id = ?1",
                    params![worker, format!("{}: {error}", kind.name()), t],
                )
                .map_err(&sql)?;
                let reason = format!("{} failure, not the job's: pending again, no attempt used", kind.name());
                return Ok(ReportOutcome { accepted: true, reason, will_retry: true, quarantined: false });
            }
            let (failures, max): (i64, i64) = tx
                .query_row_c("SELECT failures + 1, max_attempts FROM jobs WHERE id = ?1", [job], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(&sql)?;
            let retry = failures < max;
            tx.execute_c(
                "UPDATE jobs SET failures = ?2, state = ?3, error = ?4, error_kind = 'job',
                 worker = CASE WHEN ?5 THEN NULL ELSE ?6 END, token = NULL, lease_expires = NULL, updated_at = ?7
                 WHERE id = ?1",
                params![job, failures, if retry { "pending" } else { "failed" }, error, retry, worker, t],
            )
            .map_err(&sql)?;
            let was_quarantined: bool = tx
                .query_row_c("SELECT quarantined FROM workers WHERE id = ?1", [worker], |r| r.get(0))
                .map_err(&sql)?;
            tx.execute_c(
                "UPDATE workers SET consecutive_failures = consecutive_failures + 1,
                 quarantined = CASE WHEN consecutive_failures + 1 >= ?2 THEN 1 ELSE quarantined END WHERE id = ?1",
                params![worker, QUARANTINE_AFTER],
            )
            .map_err(&sql)?;
            let quarantined: bool = tx
                .query_row_c("SELECT quarantined FROM workers WHERE id = ?1", [worker], |r| r.get(0))
                .map_err(&sql)?;
            let reason = if retry {
                format!("failure {failures} of {max}; will retry")
            } else {
                format!("failed after {failures} attempts")
            };
            Ok(ReportOutcome {
                accepted: true,
                reason,
                will_retry: retry,
                quarantined: quarantined && !was_quarantined,
            })
        })
    }

    /// Gives failed jobs a fresh attempt budget and puts them back in the queue: the jobs `ids`,
    /// or every failed job of the sweep when `ids` is empty. Their earlier attempts stay in
    /// `attempts`, and their last error stays shown until a new attempt ends. An unknown id is
    /// `UnknownJob` and nothing changes; a job that is not failed is left as it is.
    pub fn retry_failed(&self, ids: &[String]) -> Result<RetryOutcome> {
        let sql = self.sql();
        self.tx(|tx| {
            let mut targets: Vec<(String, String)> = Vec::new();
            if ids.is_empty() {
                let mut stmt = tx
                    .prepare_cached("SELECT id, state FROM jobs WHERE state = 'failed' AND active = 1 ORDER BY seq")
                    .map_err(&sql)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(&sql)?;
                targets = rows.collect::<rusqlite::Result<_>>().map_err(&sql)?;
            } else {
                for id in ids {
                    let state: Option<String> = tx
                        .query_row_c("SELECT state FROM jobs WHERE id = ?1", [id], |r| r.get(0))
                        .optional()
                        .map_err(&sql)?;
                    let state = state.ok_or_else(|| StoreError::UnknownJob(id.clone()))?;
                    targets.push((id.clone(), state));
                }
            }
            let mut out = RetryOutcome::default();
            for (id, state) in targets {
                if state != "failed" {
                    out.not_failed.push((id, state));
                    continue;
                }
                tx.execute_c(
                    "UPDATE jobs SET state = 'pending', failures = 0, worker = NULL, updated_at = ?2 WHERE id = ?1",
                    params![id, now()],
                )
                .map_err(&sql)?;
                out.retried.push(id);
            }
            Ok(out)
        })
    }

    /// Gives a job back at once without using an attempt. False when the lease had ended.
    pub fn release(&self, worker: &str, job: &str, token: u64) -> Result<bool> {
        let sql = self.sql();
        self.tx(|tx| {
            let Ok(t) = Self::end_attempt(tx, worker, job, token, "released", None, &sql)? else {
                return Ok(false);
            };
            tx.execute_c(
                "UPDATE jobs SET state = 'pending', worker = NULL, token = NULL, lease_expires = NULL, updated_at = ?2
                 WHERE id = ?1",
                params![job, t],
            )
            .map_err(&sql)?;
            Ok(true)
        })
    }

    /// A stored job spec.
    pub(super) fn parse_spec(id: &str, spec: &str) -> Result<JobSpec> {
        serde_json::from_str(spec).map_err(|e| StoreError::Corrupt(format!("spec of job {id}: {e}")))
    }

    /// The name of the sweep last added.
    pub fn sweep_name(&self) -> Result<Option<String>> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let conn = &db.conn;
        conn.query_row_c("SELECT name FROM sweeps ORDER BY created_at DESC LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(self.sql())
    }
}

mod detail;
mod reads;
#[cfg(test)]
mod tests;

pub use detail::{AttemptRow, DetailEpoch, JobDetail};
pub use reads::EpochRow;
