//! Posterior math on plain slices: numerically stable softmax, log-softmax and entropy.
//! Attack scores and inference-time defenses build on these.

/// Stable log-softmax of one logit row.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    // Shift by the max first: adding a small log-sum to a large max in f32 loses precision.
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|&z| f64::from(z - max).exp()).sum::<f64>().ln();
    logits.iter().map(|&z| (f64::from(z - max) - log_sum) as f32).collect()
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
}
