//! Checkpoints: recording one a lease holder uploaded (the file is already in place) and finding
//! the stored one for the job's next holder.

use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};

use super::{Cached, Result, Store, StoredCheckpoint};

impl Store {
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
}
