//! The paper's models of the mean squared gradient sigma_g^2 against the gradient's distance k
//! from the output (in blocks), fitted to measured points: eq. 5 for a sequential network,
//! sigma_g^2(k) = c alpha^k, and eq. 6 for the grid, sigma_g^2(k) = c (beta^k + (1 - beta^k)/2).
//! The fit is least squares on log10 sigma_g^2 (every point weighs the same, whatever its
//! magnitude), with the scale c solved in closed form for each alpha or beta and the parameter
//! found by a coarse scan refined by golden-section search. The residual is the root mean square
//! of the log10 residuals, in decades.

use gridsweep_proto::job::Arch;

/// Which of the paper's models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Model {
    /// Eq. 5: c alpha^k (sequential residual network).
    Alpha,
    /// Eq. 6: c (beta^k + (1 - beta^k) / 2) (grid).
    Beta,
}

impl Model {
    /// The model the paper gives for `arch` (none for the plain network).
    pub(crate) fn of(arch: Arch) -> Option<Model> {
        match arch {
            Arch::Resnet => Some(Model::Alpha),
            Arch::Grid => Some(Model::Beta),
            Arch::Vgg => None,
        }
    }

    /// `α` or `β`.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Model::Alpha => "α",
            Model::Beta => "β",
        }
    }

    /// `eq. 5` or `eq. 6`.
    pub(crate) fn equation(self) -> &'static str {
        match self {
            Model::Alpha => "eq. 5",
            Model::Beta => "eq. 6",
        }
    }

    /// log10 of the model's shape at distance `k` for parameter exp(`ln_p`), without the scale.
    fn shape(self, ln_p: f64, k: f64) -> f64 {
        let a = k * ln_p;
        let ln = match self {
            Model::Alpha => a,
            // ln((p^k + 1) / 2), stable for large |k ln p|.
            Model::Beta => a.max(0.0) + (-a.abs()).exp().ln_1p() - std::f64::consts::LN_2,
        };
        ln / std::f64::consts::LN_10
    }
}

/// A fitted model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Fit {
    /// Which model.
    pub model: Model,
    /// Its alpha or beta.
    pub param: f64,
    /// log10 of the scale c.
    pub log10_scale: f64,
    /// Root mean square of the log10 residuals (decades).
    pub rms: f64,
    /// Points fitted.
    pub points: usize,
}

impl Fit {
    /// log10 sigma_g^2 at distance `k` from the output.
    pub(crate) fn predict(&self, k: f64) -> f64 {
        self.log10_scale + self.model.shape(self.param.ln(), k)
    }
}

/// The per-block parameter range searched: ln p in [-LN_RANGE, LN_RANGE] (p from 0.37 to 2.7).
const LN_RANGE: f64 = 1.0;

/// Fits `model` to `points` of (k, log10 sigma_g^2), k the distance from the output in blocks;
/// None with fewer than 3 points or non-finite values.
pub(crate) fn fit(model: Model, points: &[(f64, f64)]) -> Option<Fit> {
    if points.len() < 3 || points.iter().any(|(k, y)| !k.is_finite() || !y.is_finite()) {
        return None;
    }
    let n = points.len() as f64;
    // For a parameter, the best scale (the mean residual) and the sum of squares left.
    let cost = |ln_p: f64| {
        let c = points.iter().map(|&(k, y)| y - model.shape(ln_p, k)).sum::<f64>() / n;
        let ss = points.iter().map(|&(k, y)| (y - c - model.shape(ln_p, k)).powi(2)).sum::<f64>();
        (ss, c)
    };
    // A coarse scan (the sum of squares may have several dips), then golden sections around
    // the best point of the scan.
    const STEPS: usize = 400;
    let step = 2.0 * LN_RANGE / STEPS as f64;
    let (_, best) =
        (0..=STEPS).map(|i| -LN_RANGE + step * i as f64).map(|x| (cost(x).0, x)).min_by(|a, b| a.0.total_cmp(&b.0))?;
    let (mut lo, mut hi) = ((best - step).max(-LN_RANGE), (best + step).min(LN_RANGE));
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let (a, b) = (hi - g * (hi - lo), lo + g * (hi - lo));
        if cost(a).0 < cost(b).0 {
            hi = b;
        } else {
            lo = a;
        }
    }
    let ln_p = (lo + hi) / 2.0;
    let (ss, c) = cost(ln_p);
    Some(Fit { model, param: ln_p.exp(), log10_scale: c, rms: (ss / n).sqrt(), points: points.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(model: Model, p: f64, c: f64, noise: &[f64]) -> Vec<(f64, f64)> {
        noise.iter().enumerate().map(|(k, e)| (k as f64, c + model.shape(p.ln(), k as f64) + e)).collect()
    }

    #[test]
    fn recovers_alpha_and_beta_from_exact_points() {
        let zeros = [0.0; 60];
        let f = fit(Model::Alpha, &sample(Model::Alpha, 0.97, -3.0, &zeros)).unwrap();
        assert!((f.param - 0.97).abs() < 1e-6 && (f.log10_scale + 3.0).abs() < 1e-6 && f.rms < 1e-6, "{f:?}");
        let f = fit(Model::Beta, &sample(Model::Beta, 0.9, -2.0, &zeros)).unwrap();
        assert!((f.param - 0.9).abs() < 1e-6 && (f.log10_scale + 2.0).abs() < 1e-6 && f.rms < 1e-6, "{f:?}");
        // Growth towards the input is a parameter above 1, found as well.
        let f = fit(Model::Alpha, &sample(Model::Alpha, 1.02, 0.5, &zeros)).unwrap();
        assert!((f.param - 1.02).abs() < 1e-6, "{f:?}");
    }

    #[test]
    fn the_residual_is_the_rms_of_the_noise_left() {
        // Alternating noise of 0.1 decades cannot be absorbed by alpha or the scale.
        let noise: Vec<f64> = (0..40).map(|k| if k % 2 == 0 { 0.1 } else { -0.1 }).collect();
        let f = fit(Model::Alpha, &sample(Model::Alpha, 0.95, 1.0, &noise)).unwrap();
        assert!((f.rms - 0.1).abs() < 2e-3 && (f.param - 0.95).abs() < 2e-3, "{f:?}");
        // The beta model flattens at half the scale: a pure exponential fits it worse.
        let beta = sample(Model::Beta, 0.8, 0.0, &[0.0; 40]);
        let (a, b) = (fit(Model::Alpha, &beta).unwrap(), fit(Model::Beta, &beta).unwrap());
        assert!(b.rms < 1e-6 && a.rms > 0.02, "{a:?} {b:?}");
    }

    #[test]
    fn too_few_or_bad_points_fit_nothing() {
        assert_eq!(fit(Model::Alpha, &[(0.0, 1.0), (1.0, 0.5)]), None);
        assert_eq!(fit(Model::Alpha, &[(0.0, 1.0), (1.0, f64::NAN), (2.0, 0.0)]), None);
    }
}
