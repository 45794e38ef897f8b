//! How many seeds per side would detect a difference: the power of the two-sided Welch test at
//! 5% with n runs on each side, taking the observed difference and the two observed variances
//! as the truth, and the smallest n that reaches 80%.
//!
//! The power is exact for the t statistic's distribution as Welch approximates it: with n runs a
//! side the statistic is noncentral t with noncentrality δ = |d| / √((s_a² + s_b²)/n) and the
//! Welch–Satterthwaite degrees of freedom ν = (s_a² + s_b²)² (n - 1) / (s_a⁴ + s_b⁴), so
//! power = 1 - F(t_c; ν, δ) + F(-t_c; ν, δ), t_c = t(0.975, ν), F the noncentral t CDF
//! ([`super::dist::nct_cdf`]). With equal variances this is the usual two-sample t-test power
//! (ν = 2n - 2), the figure statsmodels' `TTestIndPower` gives. Power grows with n, so n is
//! found by doubling from 2 and then bisecting.

use super::{ALPHA, dist};

/// The power asked for.
pub const POWER: f64 = 0.8;
/// The search stops here: a difference that needs more seeds is reported as "more than".
pub const MAX_SEEDS: u32 = 10_000;

/// The seeds per side a comparison would need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedsNeeded {
    /// This many runs per side reach 80% power.
    Seeds(u32),
    /// Not even `MAX_SEEDS` do.
    MoreThan(u32),
    /// The observed means are equal, or no side has a variance: nothing to size a test on.
    Undefined,
}

impl SeedsNeeded {
    /// As a cell: `5`, `> 10000`, or empty.
    pub fn cell(&self) -> String {
        match self {
            SeedsNeeded::Seeds(n) => n.to_string(),
            SeedsNeeded::MoreThan(n) => format!("> {n}"),
            SeedsNeeded::Undefined => String::new(),
        }
    }
}

/// The power of the two-sided Welch test at 5% with `n` runs per side, when the true
/// difference is `diff` and the variances are `var_a` and `var_b`. None when n < 2 or both
/// variances are zero.
pub fn welch_power(diff: f64, var_a: f64, var_b: f64, n: u32) -> Option<f64> {
    let sum = var_a + var_b;
    if n < 2 || sum <= 0.0 {
        return None;
    }
    let nf = f64::from(n);
    let df = sum * sum * (nf - 1.0) / (var_a * var_a + var_b * var_b);
    let delta = diff.abs() / (sum / nf).sqrt();
    let tc = dist::t_quantile(1.0 - ALPHA / 2.0, df);
    Some(1.0 - dist::nct_cdf(tc, df, delta) + dist::nct_cdf(-tc, df, delta))
}

/// The smallest n ≥ 2 runs per side at which [`welch_power`] reaches [`POWER`].
pub fn seeds_needed(diff: f64, var_a: f64, var_b: f64) -> SeedsNeeded {
    if diff == 0.0 || !diff.is_finite() || var_a + var_b <= 0.0 {
        return SeedsNeeded::Undefined;
    }
    // Power grows with n; bracket by doubling, then bisect.
    let reaches = |n: u32| welch_power(diff, var_a, var_b, n).is_some_and(|p| p >= POWER);
    if reaches(2) {
        return SeedsNeeded::Seeds(2);
    }
    let mut lo = 2;
    let mut hi = 4;
    while !reaches(hi) {
        if hi >= MAX_SEEDS {
            return SeedsNeeded::MoreThan(MAX_SEEDS);
        }
        lo = hi;
        hi = (hi * 2).min(MAX_SEEDS);
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if reaches(mid) { hi = mid } else { lo = mid }
    }
    SeedsNeeded::Seeds(hi)
}
