//! The database schema: the tables a state file holds, created when missing, and the columns
//! added since the first release, added to an older file when it is opened.

use rusqlite::Connection;

/// The tables and the pending-jobs index, created when missing; `meta.next_token` is the next
/// lease's fencing token.
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
CREATE TABLE IF NOT EXISTS program_epochs (
    job TEXT NOT NULL, epoch INTEGER NOT NULL, attempt INTEGER NOT NULL, metrics TEXT NOT NULL, reported_at REAL,
    PRIMARY KEY (job, epoch));
CREATE TABLE IF NOT EXISTS program_results (job TEXT PRIMARY KEY, result TEXT NOT NULL, reported_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS program_logs (
    job TEXT NOT NULL, attempt INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (job, attempt));
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

/// Creates what `conn`'s database lacks of the schema: tables, index and added columns.
pub(super) fn apply(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    migrate(conn)
}
