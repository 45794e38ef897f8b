//! The sweep itself: adding a sweep's jobs (new ones inserted, known ones kept, dropped ones
//! made inactive) and naming the sweep last added.

use std::sync::atomic::Ordering;

use gridsweep_proto::job::JobSpec;
use rusqlite::{OptionalExtension, params};

use super::{Cached, Result, Store, StoreError, now};

impl Store {
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

    /// The name of the sweep last added.
    pub fn sweep_name(&self) -> Result<Option<String>> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let conn = &db.conn;
        conn.query_row_c("SELECT name FROM sweeps ORDER BY created_at DESC LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(self.sql())
    }
}
