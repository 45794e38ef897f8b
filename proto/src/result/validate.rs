//! The checks a delivered result passes on the coordinator's side: [`TrainResult::parse`] and
//! [`EpochMetrics::parse`] deserialise with the offending field's path, then check every range
//! the tables and plots rely on, so that a bad document is a [`ResultError`] naming its field.

use serde::de::DeserializeOwned;

use super::{EPSILONS, EpochMetrics, GradReport, HIST_BINS, ResultError, RunStatus, TrainResult, same_eps};

/// Deserialises `json` as a `T`, naming the field that does not fit.
fn from_json<T: DeserializeOwned>(json: &str) -> Result<T, ResultError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ResultError::Parse { field: e.path().to_string(), message: e.inner().to_string() })?;
    de.end().map_err(|e| ResultError::Parse { field: ".".to_owned(), message: e.to_string() })?;
    Ok(value)
}

/// The error for `field`.
fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ResultError {
    ResultError::Invalid { field: field.into(), problem: problem.into() }
}

/// Checks that `x` is a percentage.
fn percent(field: &str, x: f64) -> Result<(), ResultError> {
    if (0.0..=100.0).contains(&x) {
        Ok(())
    } else {
        Err(invalid(field, format!("= {x} is not a percentage in [0, 100]")))
    }
}

impl EpochMetrics {
    /// Parses and checks one epoch report.
    pub fn parse(json: &str) -> Result<Self, ResultError> {
        let m: EpochMetrics = from_json(json)?;
        m.validate("")?;
        Ok(m)
    }

    /// Checks the ranges; `at` prefixes the field names (`epochs[3].`).
    fn validate(&self, at: &str) -> Result<(), ResultError> {
        if self.epoch == 0 {
            return Err(invalid(format!("{at}epoch"), "is 0; epochs count from 1"));
        }
        percent(&format!("{at}train_acc"), self.train_acc)?;
        percent(&format!("{at}test_acc"), self.test_acc)?;
        if !(self.seconds.is_finite() && self.seconds >= 0.0) {
            return Err(invalid(format!("{at}seconds"), format!("= {} is not a duration", self.seconds)));
        }
        Ok(())
    }
}

impl TrainResult {
    /// Parses and checks a delivered result (see [`TrainResult::validate`]).
    pub fn parse(json: &str) -> Result<Self, ResultError> {
        let r: TrainResult = from_json(json)?;
        r.validate()?;
        Ok(r)
    }

    /// Checks what the tables and plots rely on: the ranges of the accuracies and fractions, a
    /// final accuracy for a completed run, epochs numbered 1, 2, ..., and a gradient analysis
    /// with an entry for each of Table 2's thresholds and a histogram of `HIST_BINS` bins.
    pub fn validate(&self) -> Result<(), ResultError> {
        for (i, m) in self.epochs.iter().enumerate() {
            m.validate(&format!("epochs[{i}]."))?;
            if m.epoch as usize != i + 1 {
                return Err(invalid(format!("epochs[{i}].epoch"), format!("is {}, expected {}", m.epoch, i + 1)));
            }
        }
        match (self.status, self.final_test_acc) {
            // An analysis-only job (0 epochs) has no accuracy to report.
            (RunStatus::Completed, None) if self.config.epochs > 0 => {
                return Err(invalid("final_test_acc", "is missing in a completed run"));
            }
            (_, Some(acc)) => percent("final_test_acc", acc)?,
            _ => {}
        }
        if let Some(acc) = self.best_test_acc {
            percent("best_test_acc", acc)?;
        }
        if !(self.train_seconds.is_finite() && self.train_seconds >= 0.0) {
            return Err(invalid("train_seconds", format!("= {} is not a duration", self.train_seconds)));
        }
        if let Some(g) = &self.grad_analysis {
            g.validate("grad_analysis")?;
        }
        let mut last = None;
        for (i, g) in self.earlier_grad_analyses.iter().chain(&self.grad_analysis).enumerate() {
            let at = if i < self.earlier_grad_analyses.len() {
                format!("earlier_grad_analyses[{i}]")
            } else {
                "grad_analysis".to_owned()
            };
            g.validate(&at)?;
            let epoch = g.epoch_or(self.epochs.len());
            if epoch as usize > self.epochs.len() || last.is_some_and(|l| epoch <= l) {
                let problem =
                    format!("is {epoch}: analysed epochs increase and are at most the {} run", self.epochs.len());
                return Err(invalid(format!("{at}.epoch"), problem));
            }
            last = Some(epoch);
        }
        if !self.earlier_grad_analyses.is_empty() && self.grad_analysis.is_none() {
            return Err(invalid("grad_analysis", "is missing while earlier_grad_analyses has entries"));
        }
        Ok(())
    }
}

impl GradReport {
    /// See [`TrainResult::validate`]; `at` names the report (`grad_analysis`).
    fn validate(&self, at: &str) -> Result<(), ResultError> {
        for (i, v) in self.vanished.iter().enumerate() {
            if !(0.0..=1.0).contains(&v.ratio) {
                let field = format!("{at}.vanished[{i}].ratio");
                return Err(invalid(field, format!("= {} is not a fraction in [0, 1]", v.ratio)));
            }
        }
        for target in EPSILONS {
            if !self.vanished.iter().any(|v| same_eps(v.eps, target)) {
                return Err(invalid(format!("{at}.vanished"), format!("has no entry for eps = {target:e}")));
            }
        }
        if !self.histogram.is_empty() && self.histogram.len() != HIST_BINS {
            let problem = format!("has {} bins, expected {HIST_BINS}", self.histogram.len());
            return Err(invalid(format!("{at}.histogram"), problem));
        }
        if let Some(std) = self.std.filter(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err(invalid(format!("{at}.std"), format!("= {std} is not a standard deviation")));
        }
        if self.nonfinite > self.total_gradients {
            let problem = format!("= {} exceeds total_gradients ({})", self.nonfinite, self.total_gradients);
            return Err(invalid(format!("{at}.nonfinite"), problem));
        }
        Ok(())
    }
}
