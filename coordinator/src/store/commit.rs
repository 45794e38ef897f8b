//! The group commit behind every transition: one write connection, a batch (one transaction)
//! that callers arriving together join, each in its own savepoint, and one COMMIT (one fsync)
//! for the batch, after which every caller in it returns. Also the statement cache the
//! transitions run their SQL through.

use std::sync::atomic::Ordering;

use rusqlite::Connection;

use super::{Result, Store, StoreError};

/// The connection and the group commit in progress on it.
#[derive(Debug)]
pub(super) struct Db {
    /// The one connection; never held across an `.await`.
    pub(super) conn: Connection,
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

impl Db {
    /// No batch open yet on `conn`.
    pub(super) fn new(conn: Connection) -> Self {
        Db { conn, open: false, batch: 0, leading: false, committed: 0, failed: None }
    }
}

/// Statements through the connection's prepared-statement cache: the transitions run the same
/// few SQL texts thousands of times, and parsing each anew costs more than running it.
pub(super) trait Cached {
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

impl Store {
    /// Runs `f` as one atomic, durable transition (a savepoint in the current batch) and returns
    /// once the batch is committed.
    pub(super) fn tx<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
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
}
