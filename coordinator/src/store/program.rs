//! Program jobs' reports (`program:` sweeps): their epoch lines and results are free-form JSON
//! (any metric names), so they live in tables of their own, `program_epochs` and
//! `program_results`, and the built-in trainer's typed `epochs.metrics` and `jobs.result` never
//! hold them (every reader of those stays as it was). The heartbeat (`lease.rs`) and `complete`
//! (`report.rs`) hand a program job's reports to the functions here.

use std::collections::HashMap;

use gridsweep_proto::job::{ProgramResult, ProgramSpec};
use gridsweep_proto::v1::JobState;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value as Json};

use super::{Cached, ReportOutcome, Result, Store, StoreError, now};

/// One epoch line of a program job, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramEpoch {
    /// The job.
    pub job: String,
    /// The epoch (1-based).
    pub epoch: u32,
    /// The attempt that reported it.
    pub attempt: u32,
    /// The line's object (numbers or nulls, `epoch` among them).
    pub metrics: Map<String, Json>,
    /// The worker that held the attempt (for `epochs.csv`); none when the attempt is unknown.
    pub worker: Option<String>,
    /// When the coordinator took the line (Unix seconds): the TensorBoard event's wall time.
    pub reported_at: Option<f64>,
}

impl Store {
    /// The program of `job` when it is a program job; none for a built-in or unknown job.
    pub(super) fn program_of(&self, job: &str) -> Result<Option<ProgramSpec>> {
        if let Some(spec) = self.specs.lock().unwrap_or_else(|e| e.into_inner()).get(job) {
            return Ok(spec.program.clone());
        }
        let sql = self.sql();
        let text: Option<String> = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            conn.query_row_c("SELECT spec FROM jobs WHERE id = ?1", [job], |r| r.get(0)).optional().map_err(&sql)?
        };
        match text {
            Some(text) => Ok(self.spec_of(job, Some(&text))?.program),
            None => Ok(None),
        }
    }

    /// Records one epoch line of a program job in the heartbeat's transaction: a JSON object of
    /// numbers and nulls whose `epoch` is `epoch`; its `seconds`, when present, adds to the job's
    /// epoch time, and its `test_acc` shows in the status.
    pub(super) fn program_epoch(
        tx: &Connection,
        job: &str,
        epoch: u32,
        attempt: i64,
        metrics: &str,
        sql: &dyn Fn(rusqlite::Error) -> StoreError,
    ) -> Result<()> {
        let bad = |message: String| StoreError::BadReport { job: job.to_owned(), message };
        let object = match serde_json::from_str::<Json>(metrics) {
            Ok(Json::Object(o)) => o,
            Ok(_) => return Err(bad(format!("epoch {epoch} line: not a JSON object"))),
            Err(e) => return Err(bad(format!("epoch {epoch} line: {e}"))),
        };
        if object.get("epoch").and_then(Json::as_u64) != Some(u64::from(epoch)) {
            return Err(bad(format!("epoch {epoch} line: its `epoch` is not {epoch}")));
        }
        if let Some((key, _)) = object.iter().find(|(_, v)| !(v.is_number() || v.is_null())) {
            return Err(bad(format!("epoch {epoch} line: `{key}` is not a number or null")));
        }
        let number = |k: &str| object.get(k).and_then(Json::as_f64).filter(|v| v.is_finite());
        tx.execute_c(
            "INSERT OR REPLACE INTO program_epochs (job, epoch, attempt, metrics, reported_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![job, epoch, attempt, metrics, now()],
        )
        .map_err(sql)?;
        tx.execute_c(
            "UPDATE jobs SET epoch = MAX(epoch, ?2), test_acc = COALESCE(?3, test_acc),
             epoch_seconds = epoch_seconds + ?4 WHERE id = ?1",
            params![job, epoch, number("test_acc"), number("seconds").unwrap_or(0.0)],
        )
        .map_err(sql)?;
        Ok(())
    }

    /// Takes a program job's result: a `ProgramResult` document (a `BadReport` when it is not
    /// one, changing nothing). The job ends completed, or diverged when the program said so.
    pub(super) fn complete_program(
        &self,
        worker: &str,
        job: &str,
        token: u64,
        result_json: &str,
        program: &ProgramSpec,
    ) -> Result<ReportOutcome> {
        let result: ProgramResult = serde_json::from_str(result_json)
            .map_err(|e| StoreError::BadReport { job: job.to_owned(), message: format!("program result: {e}") })?;
        let state = if result.diverged { JobState::Diverged } else { JobState::Completed };
        let acc = (program.metric.name == "test_acc").then(|| result.metric("test_acc")).flatten();
        let sql = self.sql();
        self.tx(|tx| {
            let t = match Self::end_attempt(tx, worker, job, token, state.name(), None, &sql)? {
                Ok(t) => t,
                Err(earlier) => return Ok(ReportOutcome::already_ended(&earlier)),
            };
            tx.execute_c(
                "INSERT OR REPLACE INTO program_results (job, result, reported_at) VALUES (?1, ?2, ?3)",
                params![job, result_json, t],
            )
            .map_err(&sql)?;
            tx.execute_c(
                "UPDATE jobs SET state = ?2, worker = ?3, token = NULL, lease_expires = NULL,
                 test_acc = COALESCE(?4, test_acc), updated_at = ?5 WHERE id = ?1",
                params![job, state.name(), worker, acc, t],
            )
            .map_err(&sql)?;
            tx.execute_c("UPDATE workers SET consecutive_failures = 0, problem = NULL WHERE id = ?1", [worker])
                .map_err(&sql)?;
            Ok(ReportOutcome { accepted: true, reason: state.name().to_owned(), will_retry: false, quarantined: false })
        })
    }

    /// Every stored program result of an active job, by job id.
    pub fn program_results(&self) -> Result<HashMap<String, ProgramResult>> {
        let sql = self.sql();
        let raw: Vec<(String, String)> = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            let mut stmt = conn
                .prepare_cached(
                    "SELECT r.job, r.result FROM program_results r JOIN jobs j ON j.id = r.job WHERE j.active = 1",
                )
                .map_err(&sql)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(&sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(&sql)?
        };
        raw.into_iter()
            .map(|(job, text)| {
                let result = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("stored program result of job {job}: {e}")))?;
                Ok((job, result))
            })
            .collect()
    }

    /// Every epoch line of the active program jobs, in sweep order then epoch order.
    pub fn program_epochs(&self) -> Result<Vec<ProgramEpoch>> {
        let sql = self.sql();
        type Raw = (String, i64, i64, String, Option<String>, Option<f64>);
        let raw: Vec<Raw> = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            let mut stmt = conn
                .prepare_cached(
                    "SELECT e.job, e.epoch, e.attempt, e.metrics, a.worker, e.reported_at FROM program_epochs e
                     JOIN jobs j ON j.id = e.job LEFT JOIN attempts a ON a.job = e.job AND a.attempt = e.attempt
                     WHERE j.active = 1 ORDER BY j.seq, e.epoch",
                )
                .map_err(&sql)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
                .map_err(&sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(&sql)?
        };
        raw.into_iter()
            .map(|(job, epoch, attempt, text, worker, reported_at)| match serde_json::from_str(&text) {
                Ok(Json::Object(metrics)) => {
                    let (epoch, attempt) = (epoch as u32, attempt as u32);
                    Ok(ProgramEpoch { job, epoch, attempt, metrics, worker, reported_at })
                }
                _ => Err(StoreError::Corrupt(format!("stored epoch {epoch} line of program job {job}"))),
            })
            .collect()
    }
}

/// The most of an attempt's log the store keeps: its last this-many bytes.
pub const LOG_KEEP: usize = 1 << 20;

impl Store {
    /// Appends `text` to the log of the attempt that `token` names (the lease holder's only),
    /// keeping its last `LOG_KEEP` bytes.
    pub fn append_program_log(&self, worker: &str, job: &str, token: u64, text: &str) -> Result<()> {
        let sql = self.sql();
        self.tx(|tx| {
            Self::check_holder(tx, worker, job, token, &sql)?;
            let attempt: i64 = tx
                .query_row_c("SELECT attempt FROM attempts WHERE token = ?1", [token as i64], |r| r.get(0))
                .map_err(&sql)?;
            let old: Option<String> = tx
                .query_row_c(
                    "SELECT text FROM program_logs WHERE job = ?1 AND attempt = ?2",
                    params![job, attempt],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&sql)?;
            let mut all = old.unwrap_or_default();
            all.push_str(text);
            if all.len() > LOG_KEEP {
                let mut cut = all.len() - LOG_KEEP;
                while !all.is_char_boundary(cut) {
                    cut += 1;
                }
                all.drain(..cut);
            }
            tx.execute_c(
                "INSERT OR REPLACE INTO program_logs (job, attempt, text) VALUES (?1, ?2, ?3)",
                params![job, attempt, all],
            )
            .map_err(&sql)?;
            Ok(())
        })
    }

    /// The kept log of each attempt of `job` that wrote one, by attempt.
    pub fn program_logs(&self, job: &str) -> Result<Vec<(u32, String)>> {
        let sql = self.sql();
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn
            .prepare_cached("SELECT attempt, text FROM program_logs WHERE job = ?1 ORDER BY attempt")
            .map_err(&sql)?;
        stmt.query_map([job], |r| Ok((r.get::<_, i64>(0)? as u32, r.get(1)?)))
            .map_err(&sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&sql)
    }
}

/// A program job's own reports, for its dashboard page.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProgramDetail {
    /// The tables' metric (`metric.name`).
    pub metric: String,
    /// Its epoch lines, in epoch order.
    pub epochs: Vec<Map<String, Json>>,
    /// Each attempt's log, its last `LOG_TAIL_LINES` lines.
    pub logs: Vec<AttemptLog>,
    /// Its result, once it has one.
    pub result: Option<ProgramResult>,
}

/// The end of one attempt's log.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AttemptLog {
    /// The attempt.
    pub attempt: u32,
    /// Its last lines.
    pub tail: String,
}

/// Lines of each attempt's log on the job page.
pub const LOG_TAIL_LINES: usize = 200;

impl Store {
    /// What a program job reported: none for a built-in or unknown job.
    pub fn program_detail(&self, job: &str) -> Result<Option<ProgramDetail>> {
        let Some(program) = self.program_of(job)? else { return Ok(None) };
        let sql = self.sql();
        let (epochs, result): (Vec<String>, Option<String>) = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            let epochs = conn
                .prepare_cached("SELECT metrics FROM program_epochs WHERE job = ?1 ORDER BY epoch")
                .map_err(&sql)?
                .query_map([job], |r| r.get(0))
                .map_err(&sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(&sql)?;
            let result = conn
                .query_row_c("SELECT result FROM program_results WHERE job = ?1", [job], |r| r.get(0))
                .optional()
                .map_err(&sql)?;
            (epochs, result)
        };
        let corrupt = |what: &str| StoreError::Corrupt(format!("stored {what} of program job {job}"));
        let epochs = epochs
            .iter()
            .map(|t| match serde_json::from_str(t) {
                Ok(Json::Object(m)) => Ok(m),
                _ => Err(corrupt("epoch line")),
            })
            .collect::<Result<Vec<_>>>()?;
        let result = result.map(|t| serde_json::from_str(&t).map_err(|_| corrupt("result"))).transpose()?;
        let logs = self
            .program_logs(job)?
            .into_iter()
            .map(|(attempt, text)| {
                let lines: Vec<&str> = text.lines().collect();
                AttemptLog { attempt, tail: lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n") }
            })
            .collect();
        Ok(Some(ProgramDetail { metric: program.metric.name, epochs, logs, result }))
    }
}

#[cfg(test)]
mod tests {
    use gridsweep_proto::job::{Arch, DataSpec, Goal, JobSpec, Metric, TrainConfig};
    use gridsweep_proto::v1::JobState;

    use super::super::{Grant, LeaseInfo, Store};

    fn program_job() -> JobSpec {
        let settings = serde_json::json!({"lr": 0.1, "seed": 1});
        let program = gridsweep_proto::job::ProgramSpec {
            command: vec!["python3".into(), "t.py".into()],
            env: Default::default(),
            metric: Metric { name: "test_acc".into(), goal: Goal::Max },
            settings: settings.as_object().cloned().unwrap_or_default(),
        };
        let train = TrainConfig::paper(Arch::Vgg, 8, 0);
        let data = DataSpec::Synthetic { train: 10, test: 5, seed: 0 };
        JobSpec { train, analysis: None, data, repeat: 0, program: Some(program) }
    }

    /// A fresh state holding `program_job`, leased by a worker `w`: (its folder, the store, the
    /// worker's id, the job's id, the lease).
    fn leased() -> (tempfile::TempDir, Store, String, String, LeaseInfo) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let job = program_job();
        let id = job.id();
        store.add_sweep("s", "s.yaml", &[job], 3).unwrap();
        let w = store.register_worker("w", "cpu", None).unwrap();
        let Grant::Lease(l) = store.grant(&w, 60.0, false).unwrap() else { panic!("expected a lease") };
        (dir, store, w, id, l)
    }

    #[test]
    fn a_program_jobs_epochs_log_and_result() {
        let (_dir, store, w, id, l) = leased();
        let line = r#"{"epoch": 1, "test_acc": 12.5, "train_loss": null, "seconds": 2.0}"#.to_owned();
        store.heartbeat(&w, &id, l.token, &[(1, line)], 60.0).unwrap();
        let bad = r#"{"epoch": 2, "note": "text"}"#.to_owned();
        let e = store.heartbeat(&w, &id, l.token, &[(2, bad)], 60.0).unwrap_err().to_string();
        assert!(e.contains("`note` is not a number or null"), "{e}");
        store.append_program_log(&w, &id, l.token, "line 1\n").unwrap();
        store.append_program_log(&w, &id, l.token, "line 2\n").unwrap();
        let e = store.complete(&w, &id, l.token, r#"{"status": "completed"}"#).unwrap_err().to_string();
        assert!(e.contains("program result"), "a built-in result is refused: {e}");
        let result = r#"{"result": {"test_acc": 13.0}, "last_epoch": 1, "wall_seconds": 3.0}"#;
        assert!(store.complete(&w, &id, l.token, result).unwrap().accepted);
        let detail = store.program_detail(&id).unwrap().unwrap();
        assert_eq!(detail.epochs.len(), 1);
        assert_eq!(detail.logs[0].tail, "line 1\nline 2");
        assert_eq!(detail.result.unwrap().metric("test_acc"), Some(13.0));
        let (jobs, _) = store.snapshot_with_results().unwrap();
        assert_eq!((jobs[0].state, jobs[0].test_acc, jobs[0].epoch), (JobState::Completed, Some(13.0), 1));
        assert!(jobs[0].result.is_none(), "the typed result column stays empty");
        assert_eq!(store.program_results().unwrap()[&id].last_epoch, 1);
        assert!(store.append_program_log(&w, &id, l.token, "late").is_err(), "only the lease holder");
    }

    #[test]
    fn a_program_jobs_total_is_what_its_lines_say() {
        let (_dir, store, w, id, l) = leased();
        let total = |store: &Store| {
            let (jobs, _) = store.snapshot().unwrap();
            (jobs[0].epochs_reported, jobs[0].epochs_total(), crate::view::job_status(&jobs[0]).epochs_total)
        };
        // No setting `epochs` and no line yet: unknown, not the recipe's 300.
        assert_eq!(total(&store), (None, None, None));
        store.heartbeat(&w, &id, l.token, &[(1, r#"{"epoch": 1, "seconds": 1.0}"#.to_owned())], 60.0).unwrap();
        assert_eq!(total(&store), (None, None, None));
        store.heartbeat(&w, &id, l.token, &[(2, r#"{"epoch": 2, "epochs": 8}"#.to_owned())], 60.0).unwrap();
        assert_eq!(total(&store), (Some(8), Some(8), Some(8)));
        // A later line that leaves it out keeps the last total said; a new one replaces it.
        store.heartbeat(&w, &id, l.token, &[(3, r#"{"epoch": 3}"#.to_owned())], 60.0).unwrap();
        assert_eq!(total(&store), (Some(8), Some(8), Some(8)));
        store.heartbeat(&w, &id, l.token, &[(4, r#"{"epoch": 4, "epochs": 6}"#.to_owned())], 60.0).unwrap();
        assert_eq!(total(&store), (Some(6), Some(6), Some(6)));
    }
}
