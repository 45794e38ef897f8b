//! The statistics behind the tables' intervals and comparisons, all at the 5% level:
//! - a mean's 95% confidence interval over n runs: Student's t, mean ± t(0.975, n - 1) s / √n
//!   (none from one run);
//! - Welch's unequal-variances t-test between two sets of runs: the difference of means, its
//!   standard error √(s_a²/n_a + s_b²/n_b), the Welch–Satterthwaite degrees of freedom, the
//!   two-sided p-value and the 95% interval of the difference (none from fewer than 2 runs a
//!   side);
//! - the seeds per side that would detect the observed difference with 80% power
//!   ([`power`]).
//!
//! The distributions are computed in [`dist`] (no statistics crate); every figure is checked
//! against scipy in `tests.rs`.

pub mod dist;
mod power;
#[cfg(test)]
mod tests;

pub use power::{MAX_SEEDS, POWER, SeedsNeeded, seeds_needed, welch_power};

/// The two-sided significance level of every test and interval (95% intervals).
pub const ALPHA: f64 = 0.05;

/// The sample mean and variance (n - 1) of `values`; None when fewer than two.
pub fn mean_var(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    Some((mean, ss / (n - 1.0)))
}

/// Half the width of the 95% Student-t confidence interval of the mean of `values`
/// (mean ± this): t(0.975, n - 1) · s / √n. None for fewer than two values, where the
/// interval is not defined ("n/a" in the tables).
pub fn ci95_half_width(values: &[f64]) -> Option<f64> {
    let (_, var) = mean_var(values)?;
    let n = values.len() as f64;
    Some(dist::t_quantile(1.0 - ALPHA / 2.0, n - 1.0) * (var / n).sqrt())
}

/// Welch's t-test of two sets of runs, a against b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    /// mean(a) - mean(b).
    pub diff: f64,
    /// Its standard error, √(s_a²/n_a + s_b²/n_b).
    pub se: f64,
    /// The statistic, diff / se.
    pub t: f64,
    /// The Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// The two-sided p-value, 2 P(T_df > |t|).
    pub p: f64,
    /// The 95% interval of the difference: diff ± t(0.975, df) · se.
    pub ci: (f64, f64),
}

/// Why two sets of runs get no test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoTest {
    /// A side has fewer than two runs: no variance to test with.
    TooFewRuns {
        /// Runs of a.
        n_a: usize,
        /// Runs of b.
        n_b: usize,
    },
    /// Every run of each side gave exactly the same figure: the standard error is zero.
    NoSpread,
}

/// Welch's t-test of `a` against `b` (difference a - b).
pub fn welch(a: &[f64], b: &[f64]) -> Result<Welch, NoTest> {
    let (Some((ma, va)), Some((mb, vb))) = (mean_var(a), mean_var(b)) else {
        return Err(NoTest::TooFewRuns { n_a: a.len(), n_b: b.len() });
    };
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (qa, qb) = (va / na, vb / nb);
    let se2 = qa + qb;
    if se2 <= 0.0 {
        return Err(NoTest::NoSpread);
    }
    let se = se2.sqrt();
    let df = se2 * se2 / (qa * qa / (na - 1.0) + qb * qb / (nb - 1.0));
    let diff = ma - mb;
    let t = diff / se;
    let p = (2.0 * (1.0 - dist::t_cdf(t.abs(), df))).min(1.0);
    let half = dist::t_quantile(1.0 - ALPHA / 2.0, df) * se;
    Ok(Welch { diff, se, t, df, p, ci: (diff - half, diff + half) })
}

/// A p-value as the tables print it: `< 0.001`, else three decimals; `< 0.050` for a p just
/// below 0.05 that three decimals would round up to it, so the figure never contradicts the
/// verdict.
pub fn p_text(p: f64) -> String {
    if p < 0.001 {
        return "< 0.001".to_owned();
    }
    let three = format!("{p:.3}");
    if p < ALPHA && three.parse::<f64>().is_ok_and(|r| r >= ALPHA) { format!("< {ALPHA:.3}") } else { three }
}

/// A p-value in a sentence: `p = 0.031`, `p < 0.001`.
pub fn format_p(p: f64) -> String {
    let text = p_text(p);
    if text.starts_with('<') { format!("p {text}") } else { format!("p = {text}") }
}

/// The verdict in words on `a` against `b` (named `name_a`, `name_b`) with `n_a` and `n_b`
/// runs: "grid higher, p = 0.031" when Welch's test rejects equal means at 5%, else "no
/// difference detectable with 3 seeds", or why there is no test.
pub fn verdict(name_a: &str, name_b: &str, n_a: usize, n_b: usize, test: &Result<Welch, NoTest>) -> String {
    let seeds = if n_a == n_b { format!("{n_a} seeds") } else { format!("{n_a} and {n_b} seeds") };
    match test {
        Err(NoTest::TooFewRuns { .. }) => format!("no test: needs 2 runs a side, has {n_a} and {n_b}"),
        Err(NoTest::NoSpread) => format!("no test: the runs of each side are identical ({seeds})"),
        Ok(w) if w.p < ALPHA => {
            let higher = if w.diff > 0.0 { name_a } else { name_b };
            format!("{higher} higher, {}", format_p(w.p))
        }
        Ok(_) => format!("no difference detectable with {seeds}"),
    }
}
