//! The statistics against figures computed independently with scipy 1.17.1 and statsmodels
//! 0.15.0 (a venv, `pip install scipy statsmodels`); each expected number is pasted from the
//! Python call written beside it. Cases: equal and unequal variances, n = 2, 3 and unequal n.

use super::dist::{nct_cdf, normal_cdf, t_cdf, t_quantile};
use super::*;

/// `got` within `tol` (relative, or absolute near zero) of `want`.
fn close(got: f64, want: f64, tol: f64) {
    let scale = want.abs().max(1.0);
    assert!((got - want).abs() <= tol * scale, "got {got}, want {want}");
}

const EQ3: ([f64; 3], [f64; 3]) = ([93.1, 92.8, 93.4], [92.5, 92.2, 92.8]);
const UNEQ3: ([f64; 3], [f64; 3]) = ([94.4, 94.5, 94.3], [93.9, 94.6, 93.2]);
const N2: ([f64; 2], [f64; 2]) = ([94.0, 94.4], [93.1, 93.3]);
const MIXED: ([f64; 4], [f64; 2]) = ([94.4, 94.5, 94.3, 94.6], [93.9, 94.8]);

#[test]
fn distributions_match_scipy() {
    // stats.t.ppf(0.975, 1), (0.975, 2), (0.975, 3.7), (0.975, 1000)
    close(t_quantile(0.975, 1.0), 12.706204736174694, 1e-10);
    close(t_quantile(0.975, 2.0), 4.302652729749462, 1e-10);
    close(t_quantile(0.975, 3.7), 2.8675207071911895, 1e-10);
    close(t_quantile(0.975, 1000.0), 1.9623390808264083, 1e-10);
    // stats.t.cdf(1.3, 2.5), stats.t.cdf(-4.0, 7)
    close(t_cdf(1.3, 2.5), 0.8497566053646458, 1e-12);
    close(t_cdf(-4.0, 7.0), 0.0025949566746484064, 1e-12);
    // stats.norm.cdf(1.0), stats.norm.cdf(-2.5)
    close(normal_cdf(1.0), 0.8413447460685429, 1e-12);
    close(normal_cdf(-2.5), 0.006209665325776132, 1e-12);
    // stats.nct.cdf(2.0, 4, 1.5), (-1.0, 10.5, 2.0), (3.0, 30, 4.0)
    close(nct_cdf(2.0, 4.0, 1.5), 0.6189289251396548, 1e-9);
    close(nct_cdf(-1.0, 10.5, 2.0), 0.0017933059227483138, 1e-9);
    close(nct_cdf(3.0, 30.0, 4.0), 0.1694528942597737, 1e-9);
}

#[test]
fn confidence_intervals_match_scipy() {
    // stats.t.ppf(0.975, n - 1) * np.std(v, ddof=1) / np.sqrt(n)
    close(ci95_half_width(&EQ3.0).unwrap(), 0.7452413135251097, 1e-9);
    close(ci95_half_width(&UNEQ3.1).unwrap(), 1.7388963982252204, 1e-9);
    close(ci95_half_width(&N2.0).unwrap(), 2.541240947234975, 1e-9);
    close(ci95_half_width(&N2.1).unwrap(), 1.2706204736174875, 1e-9);
    // One run has no interval.
    assert_eq!(ci95_half_width(&[93.0]), None);
}

/// Checks `welch(a, b)` against `stats.ttest_ind(a, b, equal_var=False)`: statistic, df,
/// pvalue and confidence_interval(0.95).
fn check_welch(a: &[f64], b: &[f64], t: f64, df: f64, p: f64, ci: (f64, f64)) {
    let w = welch(a, b).unwrap();
    close(w.t, t, 1e-9);
    close(w.df, df, 1e-9);
    close(w.p, p, 1e-9);
    close(w.ci.0, ci.0, 1e-9);
    close(w.ci.1, ci.1, 1e-9);
}

#[test]
fn welch_matches_scipy() {
    // Equal variances, n = 3 a side.
    check_welch(
        &EQ3.0,
        &EQ3.1,
        2.4494897427830913,
        3.999999999999999,
        0.07048399691022651,
        (-0.08008738065827714, 1.2800873806582374),
    );
    // Unequal variances, n = 3.
    check_welch(
        &UNEQ3.0,
        &UNEQ3.1,
        1.224744871391596,
        2.081598667776856,
        0.3411699884852456,
        (-1.1921880031064775, 2.1921880031064775),
    );
    // n = 2 a side.
    check_welch(
        &N2.0,
        &N2.1,
        4.47213595499958,
        1.4705882352941178,
        0.07921020871046343,
        (-0.3837045660142182, 2.383704566014247),
    );
    // 4 runs against 2.
    check_welch(
        &MIXED.0,
        &MIXED.1,
        0.21997067253201955,
        1.0414286681868463,
        0.8610451523165781,
        (-5.160628256617192, 5.360628256617181),
    );
}

#[test]
fn no_test_from_one_run_or_no_spread() {
    assert_eq!(welch(&[93.0], &EQ3.1), Err(NoTest::TooFewRuns { n_a: 1, n_b: 3 }));
    assert_eq!(welch(&[93.0, 93.0], &[92.0, 92.0]), Err(NoTest::NoSpread));
    let v = verdict("grid", "resnet", 1, 3, &welch(&[93.0], &EQ3.1));
    assert_eq!(v, "no test: needs 2 runs a side, has 1 and 3");
}

#[test]
fn p_values_never_round_across_five_percent() {
    assert_eq!(format_p(0.0312), "p = 0.031");
    assert_eq!(format_p(0.04996), "p < 0.050");
    assert_eq!(p_text(0.0500001), "0.050");
    assert_eq!(format_p(0.0004), "p < 0.001");
}

#[test]
fn verdicts_in_words() {
    assert_eq!(verdict("grid", "resnet", 3, 3, &welch(&EQ3.0, &EQ3.1)), "no difference detectable with 3 seeds");
    let far = welch(&[95.0, 95.1, 94.9], &[93.0, 93.1, 92.9]);
    assert_eq!(verdict("grid", "resnet", 3, 3, &far), "grid higher, p < 0.001");
    // stats.ttest_ind([93.0, 93.4, 92.9], [93.9, 94.4, 94.1], equal_var=False).pvalue = 0.008086562022792298
    let below = welch(&[93.0, 93.4, 92.9], &[93.9, 94.4, 94.1]);
    assert_eq!(verdict("grid", "resnet", 3, 3, &below), "resnet higher, p = 0.008");
    assert_eq!(verdict("grid", "resnet", 3, 2, &below), "resnet higher, p = 0.008");
    let none = welch(&UNEQ3.1, &UNEQ3.0[..2]);
    assert_eq!(verdict("grid", "resnet", 3, 2, &none), "no difference detectable with 3 and 2 seeds");
}

#[test]
fn power_matches_scipy_noncentral_t() {
    // power(d, va, vb, n) = 1 - stats.nct.cdf(tc, df, delta) + stats.nct.cdf(-tc, df, delta)
    // with s = va + vb, df = s*s*(n-1)/(va*va + vb*vb), delta = abs(d)/np.sqrt(s/n),
    // tc = stats.t.ppf(0.975, df).
    close(welch_power(0.6, 0.09, 0.09, 3).unwrap(), 0.46264081189130724, 1e-8);
    close(welch_power(0.4, 0.01, 0.49, 3).unwrap(), 0.09492069449587355, 1e-8);
    close(welch_power(0.5, 0.08, 0.02, 5).unwrap(), 0.8329499663614763, 1e-8);
    // Equal variances: statsmodels' TTestIndPower().power(effect_size=0.3/0.5, nobs1=3,
    // alpha=0.05) = 0.08877465907677907.
    close(welch_power(0.3, 0.25, 0.25, 3).unwrap(), 0.08877465907677907, 1e-8);
}

#[test]
fn seeds_needed_match_scipy_and_statsmodels() {
    // The smallest n with power(d, va, vb, n) >= 0.8 (the scipy function above, n counted up
    // from 2): 6 (power 0.8764 there, 0.7905 at 5), 27 (0.8089; 0.7929 at 26), 5 (0.8329; 0.6877 at 4).
    assert_eq!(seeds_needed(0.6, 0.09, 0.09), SeedsNeeded::Seeds(6));
    assert_eq!(seeds_needed(-0.4, 0.01, 0.49), SeedsNeeded::Seeds(27));
    assert_eq!(seeds_needed(0.5, 0.08, 0.02), SeedsNeeded::Seeds(5));
    // statsmodels: TTestIndPower().solve_power(effect_size=0.6/0.3, alpha=0.05, power=0.8) =
    // 5.09, and for 0.3/0.5: 44.59; whole seeds: 6 and 45.
    assert_eq!(seeds_needed(0.6, 0.09, 0.09), SeedsNeeded::Seeds(6));
    assert_eq!(seeds_needed(0.3, 0.25, 0.25), SeedsNeeded::Seeds(45));
    assert_eq!(seeds_needed(0.0, 0.25, 0.25), SeedsNeeded::Undefined);
    assert_eq!(seeds_needed(1e-4, 1.0, 1.0), SeedsNeeded::MoreThan(MAX_SEEDS));
}
