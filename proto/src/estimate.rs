//! The expected work of a job, in one place for everything that predicts time (`coordinator
//! expand`, `plan`, `status`): device seconds when a calibration of the device is given, else the
//! scheduler's own cost model (`JobSpec::cost`) in relative units. A job that the calibration did
//! not measure is an error, never a silent fall back to the other unit.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::calibration::{Calibration, MissingEntry};
use crate::job::JobSpec;

/// What an estimate counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Device seconds, from a calibration.
    Seconds,
    /// `JobSpec::cost`: (blocks per stage + 0.5) x epochs x training images. Proportional to
    /// the work, comparable between jobs, but no time.
    CostUnits,
}

impl Unit {
    /// The unit's name in JSON (`seconds`, `cost_units`).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::CostUnits => "cost_units",
        }
    }

    /// `value` for people: `1h 02m 05s` for seconds, `3.85G units` for cost units.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Seconds => format_seconds(value),
            Unit::CostUnits => format!("{} units", format_si(value)),
        }
    }
}

/// A job's expected work.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// How much, in `unit`.
    pub value: f64,
    /// Seconds (calibrated) or cost units.
    pub unit: Unit,
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.unit.format(self.value))
    }
}

/// `job`'s expected work: seconds from `calibration` when given, else `JobSpec::cost` units.
pub fn estimate(job: &JobSpec, calibration: Option<&Calibration>) -> Result<Estimate, MissingEntry> {
    Ok(match calibration {
        Some(cal) => Estimate { value: cal.seconds_or_missing(job)?, unit: Unit::Seconds },
        None => Estimate { value: job.cost(), unit: Unit::CostUnits },
    })
}

/// The expected work of each of `jobs`, in order, and their unit; the first job the calibration
/// lacks is the error.
pub fn estimate_all(jobs: &[JobSpec], calibration: Option<&Calibration>) -> Result<(Vec<f64>, Unit), MissingEntry> {
    let unit = if calibration.is_some() { Unit::Seconds } else { Unit::CostUnits };
    let values = jobs.iter().map(|j| estimate(j, calibration).map(|e| e.value)).collect::<Result<_, _>>()?;
    Ok((values, unit))
}

/// Seconds as `42.5s`, `3m 05s`, `2h 03m 05s` or `3d 04h 10m`.
pub fn format_seconds(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return format!("{seconds}s");
    }
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds.round() as u64;
    let (d, h, m, s) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    match (d, h) {
        (0, 0) => format!("{m}m {s:02}s"),
        (0, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h:02}h {m:02}m"),
    }
}

/// A number with three significant digits and an SI prefix: `950`, `12.3k`, `3.85G`.
pub fn format_si(value: f64) -> String {
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let mut x = value;
    let mut k = 0;
    while x.abs() >= 999.5 && k + 1 < PREFIXES.len() {
        x /= 1000.0;
        k += 1;
    }
    let digits = if x.abs() >= 99.95 {
        0
    } else if x.abs() >= 9.995 {
        1
    } else {
        2
    };
    let text = format!("{x:.digits$}");
    // Whole numbers below 1000 read better without ".00".
    let text = if k == 0 && x.fract() == 0.0 { format!("{x:.0}") } else { text };
    format!("{text}{}", PREFIXES[k])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Arch, DataSpec, TrainConfig};

    #[test]
    fn seconds_read_as_hours_minutes_seconds() {
        assert_eq!(format_seconds(42.46), "42.5s");
        assert_eq!(format_seconds(185.0), "3m 05s");
        assert_eq!(format_seconds(7385.2), "2h 03m 05s");
        assert_eq!(format_seconds(3.0 * 86_400.0 + 4.0 * 3_600.0 + 600.0), "3d 04h 10m");
    }

    #[test]
    fn units_get_an_si_prefix() {
        assert_eq!(format_si(950.0), "950");
        assert_eq!(format_si(12_345.0), "12.3k");
        assert_eq!(format_si(3_847_500_000.0), "3.85G");
        assert_eq!(format_si(999_600.0), "1.00M");
        assert_eq!(Unit::CostUnits.format(2.5), "2.50 units");
    }

    #[test]
    fn without_a_calibration_the_cost_model_is_used() {
        let job = JobSpec {
            train: TrainConfig::paper(Arch::Grid, 26, 1),
            analysis: None,
            data: DataSpec::Cifar10,
            repeat: 0,
            program: None,
        };
        let e = estimate(&job, None).unwrap();
        assert_eq!(e, Estimate { value: job.cost(), unit: Unit::CostUnits });
        assert_eq!(e.to_string(), "67.5M units");
    }
}
