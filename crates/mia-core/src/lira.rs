//! LiRA, the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From
//! First Principles", IEEE S&P 2022).
//!
//! The signal is the logit-scaled confidence `φ = log(p_y / (1 − p_y))`, computed stably as
//! `z_y − logsumexp_{j≠y} z_j`. For each example, shadow models trained with it (IN) and
//! without it (OUT) give samples of φ, modelled as Gaussians. With K augmented queries, each
//! query has its own Gaussian and the per-query log-likelihoods are summed (diagonal model).
//!
//! Estimator choices (documented because papers and code differ):
//! - the centre is the **median** of the shadow samples by default, as in the authors' code
//!   (robust to a diverged shadow); [`Center::Mean`] is selectable;
//! - the spread is the per-example standard deviation ([`Variance::PerExample`]) or one
//!   **pooled** deviation per query shared by all examples ([`Variance::Fixed`], the paper's
//!   choice with few shadows): the root mean of the per-example variances;
//! - online: `log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out)`;
//! - offline (OUT shadows only): the one-sided test `P(Z ≤ φ)`, `Z ~ N(μ_out, σ_out)` (the
//!   paper's form; summed as log-CDFs across queries), or the authors' code's
//!   `−log N(φ; μ_out, σ_out)` ([`OfflineForm::NegLogPdf`]).
//!
//! Higher scores mean "more likely a member".

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// `log(p_y / (1 − p_y))` from one logit row, stable for saturated logits.
pub fn logit_confidence(logits: &[f32], y: usize) -> f32 {
    let zy = f64::from(logits.get(y).copied().unwrap_or(f32::NEG_INFINITY));
    let others = logits.iter().enumerate().filter(|(j, _)| *j != y).map(|(_, &z)| f64::from(z));
    let max = others.clone().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + others.map(|z| (z - max).exp()).sum::<f64>().ln();
    (zy - lse) as f32
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

/// How the Gaussian's spread is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Variance {
    /// One deviation per example (and query).
    PerExample,
    /// One pooled deviation per query, shared by every example.
    #[default]
    Fixed,
}

/// The offline test statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OfflineForm {
    /// One-sided: log P(Z ≤ φ) under the OUT Gaussian.
    #[default]
    OneSidedCdf,
    /// −log N(φ; μ_out, σ_out).
    NegLogPdf,
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

/// Fits per-example Gaussians. `phi[(m*n + i)*k + q]` is shadow model `m`'s φ on example `i`
/// for query `q`; `keep[m*n + i]` says whether model `m` trained on example `i`. Examples
/// with no sample on the requested side get the pooled statistics of that side.
pub fn fit(
    phi: &[f32],
    keep: &[bool],
    shape: SignalShape,
    inside: bool,
    center_by: Center,
    variance: Variance,
) -> Result<Gaussians, CoreError> {
    let SignalShape { models, examples: n, queries: k } = shape;
    if phi.len() != models * n * k || keep.len() != models * n || k == 0 {
        return Err(CoreError::Shape(format!(
            "{} φ values and {} keep flags for {models} models × {n} examples × {k} queries",
            phi.len(),
            keep.len()
        )));
    }
    let mut mean = vec![f32::NAN; n * k];
    let mut var = vec![f32::NAN; n * k];
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
            let avg = buf.iter().sum::<f32>() / buf.len() as f32;
            let v = buf.iter().map(|x| (x - avg).powi(2)).sum::<f32>() / buf.len() as f32;
            // One sample has no spread: such examples take the pooled variance below.
            if buf.len() >= 2 {
                var[i * k + q] = v;
            }
            mean[i * k + q] = match center_by {
                Center::Mean => avg,
                Center::Median => median(&mut buf),
            };
        }
    }
    let mut std = vec![0f32; n * k];
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
        for i in 0..n {
            let j = i * k + q;
            if !mean[j].is_finite() {
                mean[j] = pooled_mean;
            }
            if !var[j].is_finite() {
                var[j] = pooled_std * pooled_std;
            }
            std[j] = match variance {
                Variance::Fixed => pooled_std,
                Variance::PerExample => var[j].sqrt().max(1e-6),
            };
        }
    }
    Ok(Gaussians { queries: k, mean, std })
}

fn log_pdf(x: f64, mu: f64, sigma: f64) -> f64 {
    let z = (x - mu) / sigma;
    -0.5 * z * z - sigma.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// log Φ(z) for the standard normal, accurate in the far tails.
fn log_norm_cdf(z: f64) -> f64 {
    if z > -5.0 {
        (0.5 * erfc(-z / std::f64::consts::SQRT_2)).ln()
    } else {
        // Asymptotic series: Φ(z) ≈ φ(z)/|z| · (1 − 1/z² + 3/z⁴).
        let z2 = z * z;
        -0.5 * z2 - (-z).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            + (1.0 - 1.0 / z2 + 3.0 / (z2 * z2)).ln()
    }
}

/// Complementary error function (Numerical Recipes' erfcc, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
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
    Ok(per_example(target, gout.queries, |j, x| {
        let (mu, s) = (f64::from(gout.mean[j]), f64::from(gout.std[j]));
        match form {
            OfflineForm::OneSidedCdf => log_norm_cdf((x - mu) / s),
            OfflineForm::NegLogPdf => -log_pdf(x, mu, s),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE_4_2_1: SignalShape = SignalShape { models: 4, examples: 2, queries: 1 };
    const SHAPE_3_1_2: SignalShape = SignalShape { models: 3, examples: 1, queries: 2 };

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
        let gin = fit(&phi, &keep, SHAPE_4_2_1, true, Center::Mean, Variance::PerExample).unwrap();
        let gout =
            fit(&phi, &keep, SHAPE_4_2_1, false, Center::Mean, Variance::PerExample).unwrap();
        // Example 0: IN {3, 5} → μ 4, σ 1; OUT {1, −1} → μ 0, σ 1.
        assert_eq!((gin.mean[0], gin.std[0], gout.mean[0], gout.std[0]), (4.0, 1.0, 0.0, 1.0));
        // Example 1: IN {4, 6} → μ 5, σ 1; OUT {0, 2} → μ 1, σ 1.
        assert_eq!((gin.mean[1], gout.mean[1]), (5.0, 1.0));
        let target = [4.0f32, 1.0];
        let s = online(&target, &gin, &gout).unwrap();
        // Example 0 at φ=4: log N(4;4,1) − log N(4;0,1) = 0 − (−8) = 8; example 1 at φ=1: −8.
        assert!((s[0] - 8.0).abs() < 1e-5 && (s[1] + 8.0).abs() < 1e-5, "{s:?}");
        let off = offline(&target, &gout, OfflineForm::OneSidedCdf).unwrap();
        // log Φ(4) ≈ −3.167e-5 and log Φ(0) = log 0.5.
        assert!((off[0] + 3.167e-5).abs() < 1e-6 && (off[1] - 0.5f32.ln()).abs() < 1e-5, "{off:?}");
        let neg = offline(&target, &gout, OfflineForm::NegLogPdf).unwrap();
        assert!(neg[0] > neg[1]);
    }

    #[test]
    fn an_example_without_in_models_gets_the_pooled_in_statistics() {
        // 2 models, 2 examples, 1 query: example 0 is IN for both models, example 1 never.
        let keep = [true, false, true, false];
        let phi = [2.0, 9.0, 4.0, 9.0];
        let shape = SignalShape { models: 2, examples: 2, queries: 1 };
        let g = fit(&phi, &keep, shape, true, Center::Mean, Variance::PerExample).unwrap();
        // Example 0: IN {2, 4} → μ 3, σ 1; example 1 falls back to the pooled μ 3, σ 1.
        assert_eq!((g.mean[0], g.std[0]), (3.0, 1.0));
        assert_eq!((g.mean[1], g.std[1]), (3.0, 1.0));
    }

    #[test]
    fn median_fixed_variance_and_missing_sides() {
        // 3 models, 1 example, 2 queries; all OUT.
        let keep = [false, false, false];
        let phi = [0.0, 10.0, 1.0, 10.0, 100.0, 13.0];
        let g = fit(&phi, &keep, SHAPE_3_1_2, false, Center::Median, Variance::Fixed).unwrap();
        assert_eq!((g.mean[0], g.mean[1]), (1.0, 10.0));
        assert!(
            fit(&phi, &keep, SHAPE_3_1_2, true, Center::Median, Variance::Fixed).is_err(),
            "no IN sample at all"
        );
        assert!(
            fit(&phi[..5], &keep, SHAPE_3_1_2, false, Center::Median, Variance::Fixed).is_err()
        );
        // Far-tail CDF stays finite.
        assert!(log_norm_cdf(-40.0).is_finite() && log_norm_cdf(-40.0) < -700.0);
        assert!((log_norm_cdf(-4.9) - log_norm_cdf(-5.1)).abs() < 2.0);
    }
}
