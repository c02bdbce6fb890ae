//! LiRA, the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From
//! First Principles", IEEE S&P 2022).
//!
//! The signal is the logit-scaled confidence `φ = log(p_y / (1 − p_y))`, computed stably as
//! `z_y − logsumexp_{j≠y} z_j`. For each example, shadow models trained with it (IN) and
//! without it (OUT) give samples of φ, modelled as Gaussians. With K augmented queries, each
//! query has its own Gaussian and the per-query log-likelihoods are summed (diagonal model).
//!
//! Estimator choices (documented because papers and code differ), bundled in [`Estimator`]:
//! - the centre is the **median** of the shadow samples by default, as in the authors' code
//!   (robust to a diverged shadow); [`Center::Mean`] is selectable;
//! - the spread ([`Variance`]) is one of
//!   - per example ([`Variance::PerExample`]), floored at [`Estimator::std_floor`] times the
//!     pooled deviation (see below);
//!   - **pooled** ([`Variance::Fixed`], the default with few shadows): one deviation per side
//!     and query shared by all examples, the root mean of the per-example variances. It
//!     estimates the per-example noise the Gaussian model describes, without the spread
//!     *between* examples' centres;
//!   - **global** ([`Variance::Global`], the official code's `fix_variance`: tensorflow/privacy
//!     `mi_lira_2021`): one deviation of *all* IN samples of all examples and queries around
//!     their grand mean, used for IN and OUT alike (offline: of all OUT samples). It includes
//!     the spread between examples, so its Gaussians are wider; offered to reproduce the
//!     official numbers. (The official code also truncates every example to the smallest IN
//!     and OUT counts; MIA Lab uses every sample.)
//! - online: `log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out)`;
//! - offline (OUT shadows only): the one-sided test `P(Z ≤ φ)`, `Z ~ N(μ_out, σ_out)` (the
//!   paper's form, summed as log-CDFs across queries), or the authors' code's
//!   `−log N(φ; μ_out, σ_out)` ([`OfflineForm::NegLogPdf`]).
//!
//! **Per-example deviation floor.** With few shadows, or behind a defense that quantises or
//! caps the outputs, every IN (or OUT) sample of an example can be (nearly) equal; its
//! estimated σ is then ~0 and its log-likelihood ratio explodes (±1e13 was seen behind a
//! confidence cap), so a handful of examples decide the ROC on noise. A deviation far below
//! the pooled one is not a measurement of spread, so per-example deviations are floored at
//! `std_floor × σ_pooled` (default [`DEFAULT_STD_FLOOR`] = 0.1: a variance of 1 % of the
//! pooled one), and [`Gaussians::floored`] counts where the floor bound so that attacks can
//! warn when it decides many scores.
//!
//! Higher scores mean "more likely a member".

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// `log(p_y / (1 − p_y))` from one logit row, stable for saturated logits.
pub fn logit_confidence(logits: &[f32], y: usize) -> f32 {
    crate::posterior::log_odds64(logits, y) as f32
}

/// How the Gaussian's centre is estimated from shadow samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Center {
    /// Median (authors' code).
    #[default]
    Median,
    /// Mean.
    Mean,
}

/// How the Gaussian's spread is estimated (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Variance {
    /// One deviation per example (and query), floored relative to the pooled one.
    PerExample,
    /// One pooled within-example deviation per query, shared by every example.
    #[default]
    Fixed,
    /// The official code's fixed variance: one deviation of all samples of a side (all
    /// examples and queries, around the grand mean); online, OUT reuses IN's.
    Global,
}

/// The offline test statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OfflineForm {
    /// One-sided: `Σ_q log P(Z ≤ φ_q)` under the OUT Gaussians, reported as
    /// `−log(−Σ_q log Φ(z_q))`: a strictly increasing function of the paper's statistic (the
    /// same ranking, ROC and AUC) that stays distinct where every `Φ(z_q)` is within 1e-300 of
    /// 1, so strong members never tie at the top.
    #[default]
    OneSidedCdf,
    /// −log N(φ; μ_out, σ_out).
    NegLogPdf,
}

/// The default per-example deviation floor, as a fraction of the pooled deviation.
pub const DEFAULT_STD_FLOOR: f32 = 0.1;

/// Estimator choices of a fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimator {
    /// Centre.
    pub center: Center,
    /// Spread.
    pub variance: Variance,
    /// Per-example deviations are at least this fraction of the pooled one (`[0, 1]`).
    pub std_floor: f32,
}

impl Default for Estimator {
    fn default() -> Self {
        Self { center: Center::Median, variance: Variance::Fixed, std_floor: DEFAULT_STD_FLOOR }
    }
}

impl Estimator {
    /// The estimator with another spread.
    pub fn with_variance(self, variance: Variance) -> Self {
        Self { variance, ..self }
    }

    /// Checks the parameters' ranges.
    pub fn validate(&self) -> Result<(), CoreError> {
        if !(0.0..=1.0).contains(&self.std_floor) {
            return Err(CoreError::Parameter(format!(
                "the LiRA deviation floor {} must be between 0 and 1 (a fraction of the pooled \
                 deviation; default {DEFAULT_STD_FLOOR})",
                self.std_floor
            )));
        }
        Ok(())
    }
}

/// Per-example Gaussian parameters for K queries: `mean[i*k + q]`, `std[i*k + q]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gaussians {
    /// Queries per example.
    pub queries: usize,
    /// Centres.
    pub mean: Vec<f32>,
    /// Deviations.
    pub std: Vec<f32>,
    /// (example, query) pairs whose per-example deviation was raised to the floor.
    #[serde(default)]
    pub floored: usize,
}

/// The median of `samples` (sorts them).
fn median(samples: &mut [f32]) -> f32 {
    samples.sort_by(f32::total_cmp);
    let n = samples.len();
    if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2.0 }
}

/// Layout of cached shadow signals: `models × examples × queries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalShape {
    /// Shadow models.
    pub models: usize,
    /// Examples.
    pub examples: usize,
    /// Augmented queries per example.
    pub queries: usize,
}

/// Per-(example, query) centre and within-example variance of one side; NaN where the side
/// has no sample (centre) or fewer than two (variance). Also the global deviation of every
/// sample of the side.
struct Moments {
    mean: Vec<f32>,
    var: Vec<f32>,
    global_std: f32,
}

fn moments(
    phi: &[f32],
    keep: &[bool],
    shape: SignalShape,
    inside: bool,
    center: Center,
) -> Moments {
    let SignalShape { models, examples: n, queries: k } = shape;
    let mut mean = vec![f32::NAN; n * k];
    let mut var = vec![f32::NAN; n * k];
    let (mut sum, mut sum_sq, mut count) = (0f64, 0f64, 0usize);
    let mut buf = Vec::with_capacity(models);
    for i in 0..n {
        for q in 0..k {
            buf.clear();
            buf.extend(
                (0..models).filter(|m| keep[m * n + i] == inside).map(|m| phi[(m * n + i) * k + q]),
            );
            if buf.is_empty() {
                continue;
            }
            let avg = buf.iter().map(|&x| f64::from(x)).sum::<f64>() / buf.len() as f64;
            let v =
                buf.iter().map(|&x| (f64::from(x) - avg).powi(2)).sum::<f64>() / buf.len() as f64;
            sum += buf.iter().map(|&x| f64::from(x)).sum::<f64>();
            sum_sq += buf.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
            count += buf.len();
            // One sample has no spread: such examples take the pooled variance.
            if buf.len() >= 2 {
                var[i * k + q] = v as f32;
            }
            mean[i * k + q] = match center {
                Center::Mean => avg as f32,
                Center::Median => median(&mut buf),
            };
        }
    }
    let grand = sum / count.max(1) as f64;
    let global_std = (sum_sq / count.max(1) as f64 - grand * grand).max(0.0).sqrt() as f32;
    Moments { mean, var, global_std }
}

/// Fits per-example Gaussians. `phi[(m*n + i)*k + q]` is shadow model `m`'s φ on example `i`
/// for query `q`; `keep[m*n + i]` says whether model `m` trained on example `i`. Examples
/// with no sample on the requested side get the pooled statistics of that side.
pub fn fit(
    phi: &[f32],
    keep: &[bool],
    shape: SignalShape,
    inside: bool,
    est: Estimator,
) -> Result<Gaussians, CoreError> {
    est.validate()?;
    let SignalShape { models, examples: n, queries: k } = shape;
    if phi.len() != models * n * k || keep.len() != models * n || k == 0 {
        return Err(CoreError::Shape(format!(
            "{} φ values and {} keep flags for {models} models × {n} examples × {k} queries",
            phi.len(),
            keep.len()
        )));
    }
    if phi.iter().any(|x| !x.is_finite()) {
        return Err(CoreError::Shape("shadow φ values contain NaN or infinity".into()));
    }
    let Moments { mut mean, mut var, global_std } = moments(phi, keep, shape, inside, est.center);
    let mut std = vec![0f32; n * k];
    let mut floored = 0;
    for q in 0..k {
        let col = |v: &[f32]| -> Vec<f32> {
            (0..n).map(|i| v[i * k + q]).filter(|x| x.is_finite()).collect()
        };
        let (means, vars) = (col(&mean), col(&var));
        if means.is_empty() || vars.is_empty() {
            return Err(CoreError::Shape(format!(
                "no example has two {} shadow models to estimate a variance from",
                if inside { "IN" } else { "OUT" }
            )));
        }
        let pooled_mean = means.iter().sum::<f32>() / means.len() as f32;
        let pooled_std = (vars.iter().sum::<f32>() / vars.len() as f32).sqrt().max(1e-6);
        let floor = (est.std_floor * pooled_std).max(1e-6);
        for i in 0..n {
            let j = i * k + q;
            if !mean[j].is_finite() {
                mean[j] = pooled_mean;
            }
            if !var[j].is_finite() {
                var[j] = pooled_std * pooled_std;
            }
            std[j] = match est.variance {
                Variance::Fixed => pooled_std,
                Variance::Global => global_std.max(1e-6),
                Variance::PerExample => {
                    let s = var[j].sqrt();
                    if s < floor {
                        floored += 1;
                    }
                    s.max(floor)
                }
            };
        }
    }
    Ok(Gaussians { queries: k, mean, std, floored })
}

/// Fits the IN and OUT Gaussians of online LiRA. Under [`Variance::Global`] the OUT side
/// reuses the IN deviation, as the official code does.
pub fn fit_online(
    phi: &[f32],
    keep: &[bool],
    shape: SignalShape,
    est: Estimator,
) -> Result<(Gaussians, Gaussians), CoreError> {
    let gin = fit(phi, keep, shape, true, est)?;
    let mut gout = fit(phi, keep, shape, false, est)?;
    if est.variance == Variance::Global {
        gout.std.clone_from(&gin.std);
    }
    Ok((gin, gout))
}

pub(crate) fn log_pdf(x: f64, mu: f64, sigma: f64) -> f64 {
    let z = (x - mu) / sigma;
    -0.5 * z * z - sigma.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// `log Φ(z)` for the standard normal, with full relative precision in both tails: the upper
/// tail through `log1p(−Φ(−z))` (so `log Φ(9)` is −1.1e-19, not 0), the lower tail through
/// `erfc` (double precision, from libm) and, beyond its underflow, the asymptotic series.
pub fn log_norm_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z > 0.0 {
        (-0.5 * libm::erfc(z / std::f64::consts::SQRT_2)).ln_1p()
    } else if z > -37.0 {
        (0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)).ln()
    } else {
        // Φ(z) = φ(z)/|z| · (1 − 1/z² + 3/z⁴ − 15/z⁶ + …); at |z| ≥ 37 the next term is < 1e-11.
        let z2 = z * z;
        -0.5 * z2 - (-z).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            + (1.0 - 1.0 / z2 + 3.0 / (z2 * z2) - 15.0 / (z2 * z2 * z2)).ln()
    }
}

/// `log(−log Φ(z))`, finite and strictly decreasing over all finite `z`: in the upper tail
/// `−log Φ(z) = −log1p(−Q)` with `Q = Φ(−z)`, which is `Q(1 + Q/2 + …)`, so its log is
/// `log Q + log1p(Q/2 + …)` and never underflows.
pub fn log_neg_log_norm_cdf(z: f64) -> f64 {
    if z > 5.0 {
        let log_q = log_norm_cdf(-z);
        let q = log_q.exp();
        if q > 0.0 { log_q + (-(-q).ln_1p() / q).ln() } else { log_q }
    } else {
        (-log_norm_cdf(z)).ln()
    }
}

fn check(target: &[f32], g: &Gaussians) -> Result<(), CoreError> {
    if target.len() != g.mean.len() {
        return Err(CoreError::Shape(format!(
            "{} target φ values for {} fitted",
            target.len(),
            g.mean.len()
        )));
    }
    Ok(())
}

/// Sums `term(j, φ)` over each example's K queries (`j` indexes the fitted arrays).
fn per_example(target: &[f32], k: usize, term: impl Fn(usize, f64) -> f64) -> Vec<f32> {
    target
        .chunks(k)
        .enumerate()
        .map(|(i, row)| {
            row.iter().enumerate().map(|(q, &x)| term(i * k + q, f64::from(x))).sum::<f64>() as f32
        })
        .collect()
}

/// Online LiRA scores of the target's φ (`[n*k]`) against IN and OUT fits.
pub fn online(target: &[f32], gin: &Gaussians, gout: &Gaussians) -> Result<Vec<f32>, CoreError> {
    check(target, gin)?;
    check(target, gout)?;
    Ok(per_example(target, gin.queries, |j, x| {
        log_pdf(x, gin.mean[j].into(), gin.std[j].into())
            - log_pdf(x, gout.mean[j].into(), gout.std[j].into())
    }))
}

/// Offline LiRA scores of the target's φ against OUT fits only.
pub fn offline(target: &[f32], gout: &Gaussians, form: OfflineForm) -> Result<Vec<f32>, CoreError> {
    check(target, gout)?;
    let k = gout.queries;
    let z = |j: usize, x: f64| (x - f64::from(gout.mean[j])) / f64::from(gout.std[j]);
    Ok(match form {
        OfflineForm::OneSidedCdf => target
            .chunks(k)
            .enumerate()
            .map(|(i, row)| {
                // −log(−Σ_q log Φ(z_q)) = −logsumexp_q log(−log Φ(z_q)).
                let t: Vec<f64> = row
                    .iter()
                    .enumerate()
                    .map(|(q, &x)| log_neg_log_norm_cdf(z(i * k + q, f64::from(x))))
                    .collect();
                let max = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (-(max + t.iter().map(|v| (v - max).exp()).sum::<f64>().ln())) as f32
            })
            .collect(),
        OfflineForm::NegLogPdf => {
            per_example(target, k, |j, x| -log_pdf(x, gout.mean[j].into(), gout.std[j].into()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE_4_2_1: SignalShape = SignalShape { models: 4, examples: 2, queries: 1 };
    const SHAPE_3_1_2: SignalShape = SignalShape { models: 3, examples: 1, queries: 2 };
    const MEAN_PER_EXAMPLE: Estimator =
        Estimator { center: Center::Mean, variance: Variance::PerExample, std_floor: 0.0 };

    #[test]
    fn logit_confidence_is_log_odds_and_stable() {
        let z = [1.0f32, 0.0, -1.0];
        let p = crate::posterior::softmax(&z);
        assert!((logit_confidence(&z, 0) - (p[0] / (1.0 - p[0])).ln()).abs() < 1e-5);
        let saturated = logit_confidence(&[100.0, 0.0, 0.0], 0);
        assert!((saturated - (100.0 - 2f32.ln())).abs() < 1e-3, "{saturated}");
    }

    #[test]
    fn fit_and_score_a_tiny_case_by_hand() {
        // 4 shadow models, 2 examples, 1 query. Example 0 is IN for models 0 and 1.
        let keep = [true, false, true, false, false, true, false, true];
        let phi = [3.0, 0.0, 5.0, 2.0, 1.0, 4.0, -1.0, 6.0];
        let gin = fit(&phi, &keep, SHAPE_4_2_1, true, MEAN_PER_EXAMPLE).unwrap();
        let gout = fit(&phi, &keep, SHAPE_4_2_1, false, MEAN_PER_EXAMPLE).unwrap();
        // Example 0: IN {3, 5} → μ 4, σ 1; OUT {1, −1} → μ 0, σ 1.
        assert_eq!((gin.mean[0], gin.std[0], gout.mean[0], gout.std[0]), (4.0, 1.0, 0.0, 1.0));
        // Example 1: IN {4, 6} → μ 5, σ 1; OUT {0, 2} → μ 1, σ 1.
        assert_eq!((gin.mean[1], gout.mean[1]), (5.0, 1.0));
        let target = [4.0f32, 1.0];
        let s = online(&target, &gin, &gout).unwrap();
        // Example 0 at φ=4: log N(4;4,1) − log N(4;0,1) = 0 − (−8) = 8; example 1 at φ=1: −8.
        assert!((s[0] - 8.0).abs() < 1e-5 && (s[1] + 8.0).abs() < 1e-5, "{s:?}");
        let off = offline(&target, &gout, OfflineForm::OneSidedCdf).unwrap();
        // log Φ(4) ≈ −3.167e-5 and log Φ(0) = log 0.5, reported as −log(−log Φ).
        let want = [-(3.167_12e-5f64.ln()), -(-(0.5f64.ln())).ln()];
        assert!((f64::from(off[0]) - want[0]).abs() < 1e-4, "{off:?}");
        assert!((f64::from(off[1]) - want[1]).abs() < 1e-5, "{off:?}");
        let neg = offline(&target, &gout, OfflineForm::NegLogPdf).unwrap();
        assert!(neg[0] > neg[1]);
    }

    #[test]
    fn an_example_without_in_models_gets_the_pooled_in_statistics() {
        // 2 models, 2 examples, 1 query: example 0 is IN for both models, example 1 never.
        let keep = [true, false, true, false];
        let phi = [2.0, 9.0, 4.0, 9.0];
        let shape = SignalShape { models: 2, examples: 2, queries: 1 };
        let g = fit(&phi, &keep, shape, true, MEAN_PER_EXAMPLE).unwrap();
        // Example 0: IN {2, 4} → μ 3, σ 1; example 1 falls back to the pooled μ 3, σ 1.
        assert_eq!((g.mean[0], g.std[0]), (3.0, 1.0));
        assert_eq!((g.mean[1], g.std[1]), (3.0, 1.0));
    }

    #[test]
    fn median_fixed_variance_and_missing_sides() {
        // 3 models, 1 example, 2 queries; all OUT.
        let keep = [false, false, false];
        let phi = [0.0, 10.0, 1.0, 10.0, 100.0, 13.0];
        let g = fit(&phi, &keep, SHAPE_3_1_2, false, Estimator::default()).unwrap();
        assert_eq!((g.mean[0], g.mean[1]), (1.0, 10.0));
        assert!(
            fit(&phi, &keep, SHAPE_3_1_2, true, Estimator::default()).is_err(),
            "no IN sample at all"
        );
        assert!(fit(&phi[..5], &keep, SHAPE_3_1_2, false, Estimator::default()).is_err());
    }

    #[test]
    fn log_cdf_keeps_precision_in_both_tails() {
        // Reference values from mpmath at 50 digits.
        let cases = [
            (9.0, -1.128_588_405_953_840_6e-19),
            (0.5, -0.368_946_415_288_656_4),
            (-10.0, -53.231_285_150_512_47),
            (-37.5, -707.668_989_317_507_2),
            (-40.0, -804.608_442_013_753_8),
        ];
        for (z, want) in cases {
            let got = log_norm_cdf(z);
            assert!(((got - want) / want).abs() < 1e-12, "log Φ({z}) = {got}, want {want}");
        }
        // Strictly increasing through the branch points, where ln(0.5·erfc) used to round to 0.
        let grid: Vec<f64> = (-450..=450).map(|i| f64::from(i) / 10.0).collect();
        let values: Vec<f64> = grid.iter().map(|&z| log_neg_log_norm_cdf(z)).collect();
        assert!(values.iter().all(|v| v.is_finite()));
        assert!(values.windows(2).all(|w| w[0] > w[1]), "log(−log Φ) strictly decreasing");
        // log(−log Φ(20)) = log Q(20) to first order.
        assert!((log_neg_log_norm_cdf(20.0) - log_norm_cdf(-20.0)).abs() < 1e-12);
    }

    #[test]
    fn offline_scores_of_strong_members_do_not_tie() {
        // OUT Gaussians N(0, 1); candidates far above them (z from 8 to 40) stay ordered, and
        // with two queries the order follows the summed log-CDF.
        let gout = Gaussians { queries: 1, mean: vec![0.0; 6], std: vec![1.0; 6], floored: 0 };
        let target = [8.0f32, 8.5, 9.0, 12.0, 20.0, 40.0];
        let s = offline(&target, &gout, OfflineForm::OneSidedCdf).unwrap();
        assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
        let g2 = Gaussians { queries: 2, mean: vec![0.0; 4], std: vec![1.0; 4], floored: 0 };
        // Σ log Φ of (9, 9) against (8.9, 30): the scores order them as the sums do.
        let s = offline(&[9.0, 9.0, 8.9, 30.0], &g2, OfflineForm::OneSidedCdf).unwrap();
        let sum = |a: f64, b: f64| log_norm_cdf(a) + log_norm_cdf(b);
        assert_eq!(s[0] > s[1], sum(9.0, 9.0) > sum(8.9, 30.0), "{s:?}");
    }

    #[test]
    fn a_degenerate_per_example_deviation_is_floored_and_counted() {
        // 4 models, 2 examples: example 0's two IN samples are identical (a capped output).
        let keep = [true, true, true, false, false, true, false, false];
        let phi = [2.0, 1.0, 2.0, 0.0, 0.0, 3.0, 5.0, 4.0];
        let shape = SignalShape { models: 4, examples: 2, queries: 1 };
        let est =
            Estimator { center: Center::Mean, variance: Variance::PerExample, std_floor: 0.1 };
        let g = fit(&phi, &keep, shape, true, est).unwrap();
        // Example 1's IN samples {1, 3}: σ 1; pooled = sqrt((0 + 1) / 2).
        let pooled = 0.5f32.sqrt();
        assert!((g.std[0] - 0.1 * pooled).abs() < 1e-6, "{:?}", g.std);
        assert!((g.std[1] - 1.0).abs() < 1e-6);
        assert_eq!(g.floored, 1);
        let bad = Estimator { std_floor: 1.5, ..est };
        assert!(fit(&phi, &keep, shape, true, bad).is_err(), "floor out of range");
        let nan = [f32::NAN; 8];
        assert!(fit(&nan, &keep, shape, true, est).is_err(), "non-finite φ");
    }

    #[test]
    fn global_variance_is_the_official_codes_single_deviation() {
        // IN samples: example 0 {3, 5}, example 1 {4, 6}: grand mean 4.5, population std
        // sqrt(((−1.5)² + 0.5² + (−0.5)² + 1.5²) / 4) = sqrt(1.25).
        let keep = [true, false, true, false, false, true, false, true];
        let phi = [3.0, 0.0, 5.0, 2.0, 1.0, 4.0, -1.0, 6.0];
        let est = Estimator::default().with_variance(Variance::Global);
        let (gin, gout) = fit_online(&phi, &keep, SHAPE_4_2_1, est).unwrap();
        let want = 1.25f32.sqrt();
        assert!(gin.std.iter().chain(&gout.std).all(|s| (s - want).abs() < 1e-6), "{gin:?}");
        // Offline, the OUT side has its own: OUT {1, −1} and {0, 2}: mean 0.5, var 1.25.
        let off = fit(&phi, &keep, SHAPE_4_2_1, false, est).unwrap();
        assert!((off.std[0] - 1.25f32.sqrt()).abs() < 1e-6);
    }
}
