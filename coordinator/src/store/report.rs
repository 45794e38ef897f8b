//! The reports that end an attempt (a result, a failure, a release) and what they do to the job
//! and the worker: a result ends the job, a job's own failure uses an attempt and counts towards
//! the worker's quarantine, any other failure or a release puts the job back at once. Also
//! `retry_failed`, which gives failed jobs a fresh attempt budget.

use gridsweep_proto::result::{RunStatus, TrainResult};
use gridsweep_proto::v1::{FailureKind, JobState};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Cached, DEVICE_LOST_CHARGED_FROM, QUARANTINE_AFTER, ReportOutcome, Result, RetryOutcome, Store, StoreError, now,
};

impl Store {
    /// The start of every report that ends an attempt (complete, fail, release): notes that
    /// `worker` was seen and ends its attempt `token` at `job` now as `outcome` (with `error`).
    /// `Ok(Err(earlier))` when the attempt had already ended (`earlier`: how), and nothing was
    /// written; else `Ok(Ok(now))`, the time written.
    pub(super) fn end_attempt(
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
        if let Some(program) = self.program_of(job)? {
            return self.complete_program(worker, job, token, result_json, &program);
        }
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
    /// worker's current problem; except that from the job's `DEVICE_LOST_CHARGED_FROM`th
    /// device-lost failure on, each one uses an attempt (quarantining no worker). Every failure
    /// is kept in `attempts` with its kind.
    pub fn fail(&self, worker: &str, job: &str, token: u64, error: &str, kind: FailureKind) -> Result<ReportOutcome> {
        let sql = self.sql();
        self.tx(|tx| {
            let t = match Self::end_attempt(tx, worker, job, token, "failed", Some((error, kind)), &sql)? {
                Ok(t) => t,
                Err(earlier) => return Ok(ReportOutcome::already_ended(&earlier)),
            };
            let lost = if kind == FailureKind::DeviceLost { Self::device_lost_count(tx, job, &sql)? } else { 0 };
            if kind.is_jobs_fault() {
                Self::fail_own(tx, worker, job, error, t, true, &sql)
            } else if lost >= DEVICE_LOST_CHARGED_FROM {
                let error = format!("{error} (this job has lost a device {lost} times; from {DEVICE_LOST_CHARGED_FROM} on, each uses an attempt)");
                Self::fail_own(tx, worker, job, &error, t, false, &sql)
            } else {
                Self::fail_elsewhere(tx, worker, job, error, kind, t, &sql)
            }
        })
    }

    /// A failure that is not the job's (`kind`), its attempt ended at `t`: the job is pending
    /// again with its attempts untouched (an out-of-memory one records the worker's memory as
    /// the job's need), and the failure becomes the worker's current problem.
    fn fail_elsewhere(
        tx: &Connection,
        worker: &str,
        job: &str,
        error: &str,
        kind: FailureKind,
        t: f64,
        sql: &dyn Fn(rusqlite::Error) -> StoreError,
    ) -> Result<ReportOutcome> {
        tx.execute_c(
            "UPDATE jobs SET state = 'pending', error = ?2, error_kind = ?3, worker = NULL, token = NULL,
             lease_expires = NULL, updated_at = ?4 WHERE id = ?1",
            params![job, error, kind.name(), t],
        )
        .map_err(sql)?;
        if kind == FailureKind::OutOfMemory {
            // The job needs more than this worker's memory: it goes next to a larger one.
            tx.execute_c(
                "UPDATE jobs SET memory_need = MAX(COALESCE(memory_need, 0),
                   (SELECT memory_bytes FROM workers WHERE id = ?2))
                 WHERE id = ?1 AND (SELECT memory_bytes FROM workers WHERE id = ?2) IS NOT NULL",
                params![job, worker],
            )
            .map_err(sql)?;
        }
        tx.execute_c(
            "UPDATE workers SET problem = ?2, problem_at = ?3 WHERE id = ?1",
            params![worker, format!("{}: {error}", kind.name()), t],
        )
        .map_err(sql)?;
        let reason = format!("{} failure, not the job's: pending again, no attempt used", kind.name());
        Ok(ReportOutcome { accepted: true, reason, will_retry: true, quarantined: false })
    }

    /// How many of `job`'s attempts (this one included) ended with its device lost.
    fn device_lost_count(tx: &Connection, job: &str, sql: &dyn Fn(rusqlite::Error) -> StoreError) -> Result<i64> {
        tx.query_row_c(
            "SELECT COUNT(*) FROM attempts WHERE job = ?1 AND kind = ?2",
            params![job, FailureKind::DeviceLost.name()],
            |r| r.get(0),
        )
        .map_err(sql)
    }

    /// A failure charged to the job, its attempt ended at `t`: it uses an attempt (pending again
    /// while some are left, else failed) and, when `quarantine` (the job's own failure, not a
    /// device it keeps breaking), counts towards the worker's quarantine.
    fn fail_own(
        tx: &Connection,
        worker: &str,
        job: &str,
        error: &str,
        t: f64,
        quarantine: bool,
        sql: &dyn Fn(rusqlite::Error) -> StoreError,
    ) -> Result<ReportOutcome> {
        let (failures, max): (i64, i64) = tx
            .query_row_c("SELECT failures + 1, max_attempts FROM jobs WHERE id = ?1", [job], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(sql)?;
        let retry = failures < max;
        tx.execute_c(
            "UPDATE jobs SET failures = ?2, state = ?3, error = ?4, error_kind = 'job',
             worker = CASE WHEN ?5 THEN NULL ELSE ?6 END, token = NULL, lease_expires = NULL, updated_at = ?7
             WHERE id = ?1",
            params![job, failures, if retry { "pending" } else { "failed" }, error, retry, worker, t],
        )
        .map_err(sql)?;
        let reason = if retry {
            format!("failure {failures} of {max}; will retry")
        } else {
            format!("failed after {failures} attempts")
        };
        if !quarantine {
            return Ok(ReportOutcome { accepted: true, reason, will_retry: retry, quarantined: false });
        }
        let was_quarantined: bool =
            tx.query_row_c("SELECT quarantined FROM workers WHERE id = ?1", [worker], |r| r.get(0)).map_err(sql)?;
        tx.execute_c(
            "UPDATE workers SET consecutive_failures = consecutive_failures + 1,
             quarantined = CASE WHEN consecutive_failures + 1 >= ?2 THEN 1 ELSE quarantined END WHERE id = ?1",
            params![worker, QUARANTINE_AFTER],
        )
        .map_err(sql)?;
        let quarantined: bool =
            tx.query_row_c("SELECT quarantined FROM workers WHERE id = ?1", [worker], |r| r.get(0)).map_err(sql)?;
        Ok(ReportOutcome { accepted: true, reason, will_retry: retry, quarantined: quarantined && !was_quarantined })
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
}
