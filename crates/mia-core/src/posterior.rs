//! Posterior math on plain slices: numerically stable softmax, log-softmax and entropy.
//! Attack scores and inference-time defenses build on these.

/// Log-softmax of one logit row in f64, accurate in both tails: the log-sum is
/// `max + ln_1p(Σ_{j≠argmax} e^{z_j − max})`, so a confident row's top log-probability keeps
/// its tiny negative value (about `−Σ_{j≠argmax} e^{z_j − max}`) instead of rounding to 0.
pub fn log_softmax64(logits: &[f32]) -> Vec<f64> {
    let top = argmax(logits);
    let max = logits.get(top).map_or(f64::NEG_INFINITY, |&z| f64::from(z));
    let rest: f64 = logits
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != top)
        .map(|(_, &z)| (f64::from(z) - max).exp())
        .sum();
    let log_sum = rest.ln_1p();
    logits.iter().map(|&z| f64::from(z) - max - log_sum).collect()
}

/// `log Σ_{j≠i} e^{z_j}` (−∞ for a one-class row).
fn log_sum_exp_except(logits: &[f32], i: usize) -> f64 {
    let others =
        || logits.iter().enumerate().filter(move |(j, _)| *j != i).map(|(_, &z)| f64::from(z));
    let max = others().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + others().map(|z| (z - max).exp()).sum::<f64>().ln()
}

/// `log(1 − p_i)` from the logits, without cancellation: `LSE_{j≠i} z_j − LSE_j z_j`.
/// Finite for finite logits even when `p_i` rounds to 1.
pub fn log_complement64(logits: &[f32], i: usize) -> f64 {
    let all = log_sum_exp_except(logits, usize::MAX);
    log_sum_exp_except(logits, i) - all
}

/// Log-odds of class `y`, `log(p_y / (1 − p_y)) = z_y − LSE_{j≠y} z_j`: a strictly increasing
/// function of `p_y` that never saturates (p_y = 1 − 1e-20 and 1 − 1e-30 stay apart), which
/// is how confidence-type scores are ranked. A label out of range gives −∞.
pub fn log_odds64(logits: &[f32], y: usize) -> f64 {
    match logits.get(y) {
        Some(&zy) => f64::from(zy) - log_sum_exp_except(logits, y),
        None => f64::NEG_INFINITY,
    }
}

/// Stable log-softmax of one logit row (f32 values of [`log_softmax64`]).
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    log_softmax64(logits).into_iter().map(|l| l as f32).collect()
}

/// Stable softmax of one logit row.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    log_softmax(logits).into_iter().map(f32::exp).collect()
}

/// Shannon entropy (nats) of a probability vector.
pub fn entropy(probs: &[f32]) -> f32 {
    -probs.iter().filter(|&&p| p > 0.0).map(|&p| p * p.ln()).sum::<f32>()
}

/// Cross-entropy loss of one logit row for label `y`.
pub fn cross_entropy(logits: &[f32], y: usize) -> f32 {
    -log_softmax(logits).get(y).copied().unwrap_or(f32::NEG_INFINITY)
}

/// SAMIA's perturbation draws per example (m in Yuan & Zhang 2022, and in mia_prune's
/// `predict_target_sensitivity`).
pub const SENSITIVITY_DRAWS: usize = 10;
/// SAMIA's perturbation step ε, in the model's normalised input space.
pub const SENSITIVITY_EPSILON: f32 = 1e-3;

/// SAMIA's sensitivity of one example: with `base` its logit row and `perturbed` the logit
/// rows of m perturbed copies `x + ε·u` (u ~ N(0, I)) one after another, the mean over the
/// copies of `|softmax(perturbed) − softmax(base)| / ε`, per class. The posteriors are
/// computed and differenced in f64: a confident class moves by less than f32's spacing near 1
/// at ε = 1e-3, and would read as exactly insensitive. `None` when `perturbed` is not whole
/// rows or ε is not a positive number.
pub fn sensitivity(base: &[f32], perturbed: &[f32], epsilon: f64) -> Option<Vec<f32>> {
    let c = base.len();
    if c == 0
        || perturbed.is_empty()
        || !perturbed.len().is_multiple_of(c)
        || epsilon.is_nan()
        || epsilon <= 0.0
    {
        return None;
    }
    let probs =
        |row: &[f32]| -> Vec<f64> { log_softmax64(row).into_iter().map(f64::exp).collect() };
    let p0 = probs(base);
    let m = perturbed.len() / c;
    let mut out = vec![0f64; c];
    for row in perturbed.chunks(c) {
        for ((o, p), q) in out.iter_mut().zip(probs(row)).zip(&p0) {
            *o += (p - q).abs();
        }
    }
    Some(out.into_iter().map(|s| (s / (m as f64 * epsilon)) as f32).collect())
}

/// Index of the largest value (first on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] == 0.0);
        assert!((cross_entropy(&[0.0, 0.0], 1) - std::f32::consts::LN_2).abs() < 1e-6);
        assert!((entropy(&[0.5, 0.5]) - std::f32::consts::LN_2).abs() < 1e-6);
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), 1);
    }

    #[test]
    fn sensitivity_is_the_mean_absolute_posterior_change_over_epsilon() {
        // Two classes; the base posterior is (1/2, 1/2). Copy 1: logits (ln 3, 0) → (3/4, 1/4),
        // a change of 1/4 per class; copy 2 unchanged. Mean 1/8, over ε = 0.5: 1/4.
        let base = [0.0f32, 0.0];
        let perturbed = [3f32.ln(), 0.0, 0.0, 0.0];
        let s = sensitivity(&base, &perturbed, 0.5).unwrap();
        assert!((s[0] - 0.25).abs() < 1e-6 && (s[1] - 0.25).abs() < 1e-6, "{s:?}");
        assert!(sensitivity(&base, &[1.0, 2.0, 3.0], 0.5).is_none());
        assert!(sensitivity(&base, &perturbed, 0.0).is_none());
        assert!(sensitivity(&base, &perturbed, f64::NAN).is_none());
    }

    #[test]
    fn sensitivity_resolves_changes_below_f32_spacing_near_one() {
        // p_0 ≈ 1 − 2e^{-20} ≈ 1 − 4.1e-9: in f32 both rows' p_0 round to 1.0, but the
        // other classes' and the f64 difference are not zero.
        let base = [20.0f32, 0.0, 0.0];
        let perturbed = [20.0f32, 0.01, 0.0];
        let s = sensitivity(&base, &perturbed, 1e-3).unwrap();
        let want = ((0.01f64).exp() - 1.0) * (-20f64).exp() / 1e-3;
        assert!(s[0] > 0.0, "the top class's change must not round away");
        assert!((f64::from(s[1]) - want).abs() < 1e-3 * want, "{} vs {want}", s[1]);
        assert!((f64::from(s[0]) - want).abs() < 1e-2 * want, "{} vs {want}", s[0]);
    }

    #[test]
    fn log_probabilities_keep_precision_in_the_upper_tail() {
        // p_0 = 1 / (1 + 2e^{-40}): log p_0 ≈ −2e^{-40} ≈ −8.5e-18, which rounds to 0 when the
        // log-sum is taken as ln(1 + tiny).
        let z = [40.0f32, 0.0, 0.0];
        let l = log_softmax64(&z);
        let want = -2.0 * (-40f64).exp();
        assert!((l[0] - want).abs() < 1e-12 * want.abs(), "{} vs {want}", l[0]);
        assert!(l[0] < 0.0 && (l[0] as f32) < 0.0);
        // log(1 − p_0) = log(2e^{-40}) − log(1 + 2e^{-40}).
        let want = 2f64.ln() - 40.0;
        assert!((log_complement64(&z, 0) - want).abs() < 1e-9);
        // Log-odds keep apart rows whose p_y is 1 in f64.
        assert!(log_odds64(&[60.0, 0.0], 0) < log_odds64(&[80.0, 0.0], 0));
        assert!((log_odds64(&[60.0, 0.0], 0) - 60.0).abs() < 1e-12);
        assert_eq!(log_odds64(&[1.0, 0.0], 5), f64::NEG_INFINITY);
        // Ties at the maximum are handled: two equal top logits give log p = log 1/2.
        let l = log_softmax64(&[3.0, 3.0]);
        assert!((l[0] - 0.5f64.ln()).abs() < 1e-15 && (l[1] - 0.5f64.ln()).abs() < 1e-15);
    }
}
