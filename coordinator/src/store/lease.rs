//! Workers and their leases: registering a worker, noting it was heard from, granting it the
//! next job under a fencing token, renewing the lease with each heartbeat's epochs, checking
//! that a report comes from the lease's holder, and expiring leases whose holder went quiet.

use gridsweep_proto::result::EpochMetrics;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Cached, Grant, LeaseInfo, Result, Store, StoreError, now};

impl Store {
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
    pub(super) fn touch(tx: &Connection, worker: &str, sql: &dyn Fn(rusqlite::Error) -> StoreError) -> Result<bool> {
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
    pub(super) fn check_holder(
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
        let program = !epochs.is_empty() && self.program_of(job)?.is_some();
        self.tx(|tx| {
            Self::touch(tx, worker, &sql)?;
            Self::check_holder(tx, worker, job, token, &sql)?;
            let attempt: i64 =
                tx.query_row_c("SELECT attempt FROM attempts WHERE token = ?1", [token as i64], |r| r.get(0)).map_err(&sql)?;
            for (epoch, metrics) in epochs {
                if program {
                    Self::program_epoch(tx, job, *epoch, attempt, metrics, &sql)?;
                    continue;
                }
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
}
