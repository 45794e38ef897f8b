//! Reading a worker's result JSON defensively: every field the tables use is looked up by name
//! and checked for type and range, and a missing or mistyped one is a
//! [`TablesError::BadResult`] naming the job and the field's path, never a panic.
//!
//! Required in a completed or diverged run's result: `status` (matching the run's state),
//! `params`, `flops`, `epochs` (an array), `train_seconds`, `environment.device` and
//! `environment.device_name`; `final_test_acc` too for a completed run. The optional fields
//! (`final_test_acc` of a diverged run, `best_test_acc`, `best_epoch`, `grad_analysis`) may be
//! null or absent, but when present they must be well-formed; a present `grad_analysis` needs
//! `total_gradients`, `std` and a `vanished` entry for each of Table 2's thresholds. Results of
//! pending, running and failed runs are not read.

use serde_json::Value;

use super::{RunRecord, RunState, TablesError};

/// Table 2's thresholds, in the order of its columns.
pub(crate) const EPSILONS: [f64; 4] = [1e-4, 1e-5, 1e-6, 1e-7];

/// How a run counts in the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Trained every epoch: its final accuracy is averaged.
    Completed,
    /// The loss became non-finite: counted, never averaged.
    Diverged,
    /// Failed: counted, never averaged.
    Failed,
    /// Pending or running: counted, never averaged.
    Unfinished,
}

/// One run's gradient analysis, as Table 2 uses it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GradFigures {
    /// Gradient elements (parameters x validation batches).
    pub total_gradients: u64,
    /// Their standard deviation.
    pub std: f64,
    /// Fractions with |g| below each of EPSILONS.
    pub vanished: [f64; 4],
}

/// What the tables read from one run; everything but the outcome is None without a result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Figures {
    /// How the run counts.
    pub outcome: Outcome,
    /// Trainable parameters.
    pub params: Option<u64>,
    /// FLOPs per image.
    pub flops: Option<u64>,
    /// Test accuracy after the last epoch, percent.
    pub final_test_acc: Option<f64>,
    /// Best test accuracy over the epochs, percent.
    pub best_test_acc: Option<f64>,
    /// Its (1-based) epoch.
    pub best_epoch: Option<u64>,
    /// Epochs the result has metrics for.
    pub epochs_run: Option<usize>,
    /// Training seconds over all sessions.
    pub train_seconds: Option<f64>,
    /// `cpu` or `cuda:N`.
    pub device: Option<String>,
    /// The GPU's name or the CPU thread count.
    pub device_name: Option<String>,
    /// The gradient analysis, when the result has one.
    pub grad: Option<GradFigures>,
}

impl Figures {
    /// A run without a (readable) result.
    fn bare(outcome: Outcome) -> Self {
        Figures {
            outcome,
            params: None,
            flops: None,
            final_test_acc: None,
            best_test_acc: None,
            best_epoch: None,
            epochs_run: None,
            train_seconds: None,
            device: None,
            device_name: None,
            grad: None,
        }
    }
}

/// Reads what the tables need from `run`: its outcome and, for completed and diverged runs,
/// the figures of its result.
pub(crate) fn figures(run: &RunRecord) -> Result<Figures, TablesError> {
    let outcome = match run.state {
        RunState::Pending | RunState::Running => return Ok(Figures::bare(Outcome::Unfinished)),
        RunState::Failed => return Ok(Figures::bare(Outcome::Failed)),
        RunState::Completed => Outcome::Completed,
        RunState::Diverged => Outcome::Diverged,
    };
    let Some(result) = run.result.as_ref() else {
        return Err(TablesError::MissingResult { job_id: run.job_id.clone(), state: run.state });
    };
    let r = Reader { job_id: &run.job_id };
    if !result.is_object() {
        return Err(r.bad("<root>", format!("is not a JSON object (found {})", kind(result))));
    }

    let status = r.str(r.req(result, "", "status")?, "status")?;
    let expected = if outcome == Outcome::Completed { "completed" } else { "diverged" };
    if status != expected {
        return Err(TablesError::Inconsistent {
            job_id: run.job_id.clone(),
            problem: format!("the run is {} but its result's status is '{status}'", run.state),
        });
    }

    let final_test_acc = match r.opt(result, "", "final_test_acc")? {
        Some(v) => Some(r.percent(v, "final_test_acc")?),
        None if outcome == Outcome::Completed => {
            return Err(r.bad("final_test_acc", "is missing or null in a completed run"));
        }
        None => None,
    };
    let best_test_acc = r.opt(result, "", "best_test_acc")?.map(|v| r.percent(v, "best_test_acc")).transpose()?;
    let best_epoch = r.opt(result, "", "best_epoch")?.map(|v| r.u64(v, "best_epoch")).transpose()?;
    let epochs = r.req(result, "", "epochs")?;
    let epochs_run = epochs.as_array().map(Vec::len).ok_or_else(|| r.mistyped("epochs", "an array", epochs))?;
    let environment = r.req(result, "", "environment")?;
    let grad = r.opt(result, "", "grad_analysis")?.map(|g| r.grad(g)).transpose()?;

    Ok(Figures {
        outcome,
        params: Some(r.u64(r.req(result, "", "params")?, "params")?),
        flops: Some(r.u64(r.req(result, "", "flops")?, "flops")?),
        final_test_acc,
        best_test_acc,
        best_epoch,
        epochs_run: Some(epochs_run),
        train_seconds: Some(r.f64(r.req(result, "", "train_seconds")?, "train_seconds")?),
        device: Some(r.str(r.req(environment, "environment", "device")?, "environment.device")?.to_owned()),
        device_name: Some(
            r.str(r.req(environment, "environment", "device_name")?, "environment.device_name")?.to_owned(),
        ),
        grad,
    })
}

/// The JSON type of `v`, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `at.key`, or `key` at the root.
fn join(at: &str, key: &str) -> String {
    if at.is_empty() { key.to_owned() } else { format!("{at}.{key}") }
}

/// Typed look-ups in one job's result, with errors naming the job and the field.
struct Reader<'a> {
    /// The job whose result this is.
    job_id: &'a str,
}

impl Reader<'_> {
    /// The error for `field`.
    fn bad(&self, field: &str, problem: impl Into<String>) -> TablesError {
        TablesError::BadResult { job_id: self.job_id.to_owned(), field: field.to_owned(), problem: problem.into() }
    }

    /// The error for `field` holding `found` where `wanted` was expected.
    fn mistyped(&self, field: &str, wanted: &str, found: &Value) -> TablesError {
        self.bad(field, format!("is not {wanted} (found {})", kind(found)))
    }

    /// `obj.key` (obj being at path `at`), None when absent or null.
    fn opt<'v>(&self, obj: &'v Value, at: &str, key: &str) -> Result<Option<&'v Value>, TablesError> {
        let map = obj
            .as_object()
            .ok_or_else(|| self.mistyped(if at.is_empty() { "<root>" } else { at }, "an object", obj))?;
        Ok(map.get(key).filter(|v| !v.is_null()))
    }

    /// `obj.key`, which must be present and not null.
    fn req<'v>(&self, obj: &'v Value, at: &str, key: &str) -> Result<&'v Value, TablesError> {
        self.opt(obj, at, key)?.ok_or_else(|| self.bad(&join(at, key), "is missing or null"))
    }

    /// A non-negative integer.
    fn u64(&self, v: &Value, field: &str) -> Result<u64, TablesError> {
        v.as_u64().ok_or_else(|| self.mistyped(field, "a non-negative integer", v))
    }

    /// A number.
    fn f64(&self, v: &Value, field: &str) -> Result<f64, TablesError> {
        v.as_f64().ok_or_else(|| self.mistyped(field, "a number", v))
    }

    /// A number in [0, 100].
    fn percent(&self, v: &Value, field: &str) -> Result<f64, TablesError> {
        let x = self.f64(v, field)?;
        if !(0.0..=100.0).contains(&x) {
            return Err(self.bad(field, format!("= {x} is not a percentage in [0, 100]")));
        }
        Ok(x)
    }

    /// A string.
    fn str<'v>(&self, v: &'v Value, field: &str) -> Result<&'v str, TablesError> {
        v.as_str().ok_or_else(|| self.mistyped(field, "a string", v))
    }

    /// The figures of a `grad_analysis` object.
    fn grad(&self, g: &Value) -> Result<GradFigures, TablesError> {
        const AT: &str = "grad_analysis";
        let total_gradients = self.u64(self.req(g, AT, "total_gradients")?, "grad_analysis.total_gradients")?;
        let std = self.f64(self.req(g, AT, "std")?, "grad_analysis.std")?;
        let list = self.req(g, AT, "vanished")?;
        let entries = list.as_array().ok_or_else(|| self.mistyped("grad_analysis.vanished", "an array", list))?;
        let mut pairs = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("grad_analysis.vanished[{i}]");
            let eps = self.f64(self.req(entry, &at, "eps")?, &format!("{at}.eps"))?;
            let ratio = self.f64(self.req(entry, &at, "ratio")?, &format!("{at}.ratio"))?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(self.bad(&format!("{at}.ratio"), format!("= {ratio} is not a fraction in [0, 1]")));
            }
            pairs.push((eps, ratio));
        }
        let mut vanished = [0.0; 4];
        for (slot, target) in vanished.iter_mut().zip(EPSILONS) {
            *slot = pairs
                .iter()
                .find(|(eps, _)| (eps - target).abs() <= target * 1e-9)
                .map(|&(_, ratio)| ratio)
                .ok_or_else(|| self.bad("grad_analysis.vanished", format!("has no entry for eps = {target:e}")))?;
        }
        Ok(GradFigures { total_gradients, std, vanished })
    }
}
