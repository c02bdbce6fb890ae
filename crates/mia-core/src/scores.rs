//! Threshold-attack scores (Song & Mittal, "Systematic Evaluation of Privacy Risks of Machine
//! Learning Models", USENIX Security 2021; Yeom et al., CSF 2018), computed stably from logits,
//! and threshold calibration on shadow data. Every score is oriented so that *higher means
//! more likely a member*, so they all feed [`crate::metrics`] the same way.

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::metrics::balanced_accuracy;
use crate::posterior::{argmax, log_softmax};

/// A threshold attack's signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreKind {
    /// Confidence on the true label, `p_y`.
    Confidence,
    /// Negative cross-entropy loss, `log p_y`.
    Loss,
    /// Negative prediction entropy, `−H(p)` (no label needed).
    Entropy,
    /// Negative modified entropy, `−Mentr(p, y)` with
    /// `Mentr = −(1 − p_y) log p_y − Σ_{i≠y} p_i log(1 − p_i)`.
    ModifiedEntropy,
    /// Top-1 confidence, `max p` (no label needed).
    Top1,
    /// Correctness, 1 when the prediction is right (the label-only gap attack).
    Correctness,
}

impl ScoreKind {
    /// Every kind.
    pub const ALL: [ScoreKind; 6] = [
        Self::Confidence,
        Self::Loss,
        Self::Entropy,
        Self::ModifiedEntropy,
        Self::Top1,
        Self::Correctness,
    ];

    /// Score of one logit row with true label `y`.
    pub fn score(self, logits: &[f32], y: usize) -> f32 {
        let logp: Vec<f64> = log_softmax(logits).into_iter().map(f64::from).collect();
        let ly = logp.get(y).copied().unwrap_or(f64::NEG_INFINITY);
        let value = match self {
            Self::Confidence => ly.exp(),
            Self::Loss => ly,
            Self::Entropy => logp.iter().map(|l| l.exp() * l).filter(|v| v.is_finite()).sum(),
            Self::ModifiedEntropy => {
                let mentr: f64 = logp
                    .iter()
                    .enumerate()
                    .map(|(i, &li)| {
                        let log_one_minus = log1m_exp(li);
                        if i == y {
                            // −(1 − p_y) log p_y, with 1 − p_y = −expm1(log p_y).
                            li.exp_m1() * li
                        } else {
                            -li.exp() * log_one_minus
                        }
                    })
                    .map(|v| if v.is_finite() { v } else { 0.0 })
                    .sum();
                -mentr
            }
            Self::Top1 => logp.iter().copied().fold(f64::NEG_INFINITY, f64::max).exp(),
            Self::Correctness => f64::from(u8::from(argmax(logits) == y)),
        };
        value as f32
    }

    /// Scores of row-major `[n, classes]` logits.
    pub fn scores(
        self,
        logits: &[f32],
        labels: &[usize],
        classes: usize,
    ) -> Result<Vec<f32>, CoreError> {
        if classes == 0 || logits.len() != labels.len() * classes {
            return Err(CoreError::Shape(format!(
                "{} logits for {} labels of {classes} classes",
                logits.len(),
                labels.len()
            )));
        }
        Ok(logits.chunks(classes).zip(labels).map(|(row, &y)| self.score(row, y)).collect())
    }
}

/// `log(1 − e^x)` for `x ≤ 0`, accurate near 0 and near −∞.
fn log1m_exp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 { (-x.exp_m1()).ln() } else { (-x.exp()).ln_1p() }
}

/// A threshold rule: "member" when `score >= threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Threshold {
    /// One threshold for every example.
    Global(f32),
    /// One threshold per class (falls back to the global one for classes without data).
    PerClass {
        /// Per-class thresholds.
        per_class: Vec<f32>,
        /// Fallback.
        global: f32,
    },
}

impl Threshold {
    /// Whether an example of class `y` with `score` is called a member.
    pub fn is_member(&self, score: f32, y: usize) -> bool {
        match self {
            Self::Global(t) => score >= *t,
            Self::PerClass { per_class, global } => score >= *per_class.get(y).unwrap_or(global),
        }
    }
}

/// The threshold maximising balanced accuracy on (shadow) scores.
pub fn calibrate(scores: &[f32], is_member: &[bool]) -> f32 {
    let mut candidates: Vec<f32> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let mut best = (f64::NEG_INFINITY, f32::INFINITY);
    for &t in &candidates {
        let acc = balanced_accuracy(scores, is_member, t);
        if acc > best.0 {
            best = (acc, t);
        }
    }
    best.1
}

/// Per-class thresholds calibrated on (shadow) scores.
pub fn calibrate_per_class(
    scores: &[f32],
    is_member: &[bool],
    labels: &[usize],
    classes: usize,
) -> Threshold {
    let global = calibrate(scores, is_member);
    let per_class = (0..classes)
        .map(|c| {
            let (s, m): (Vec<f32>, Vec<bool>) = scores
                .iter()
                .zip(is_member)
                .zip(labels)
                .filter(|(_, y)| **y == c)
                .map(|((s, m), _)| (*s, *m))
                .unzip();
            if m.iter().any(|x| *x) && m.iter().any(|x| !*x) { calibrate(&s, &m) } else { global }
        })
        .collect();
    Threshold::PerClass { per_class, global }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posterior::softmax;

    #[test]
    fn scores_match_hand_computed_values() {
        let z = [2.0f32, 0.0, -1.0];
        let p: Vec<f64> = softmax(&z).into_iter().map(f64::from).collect();
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 1e-5;
        assert!(close(ScoreKind::Confidence.score(&z, 1), p[1]));
        assert!(close(ScoreKind::Loss.score(&z, 1), p[1].ln()));
        assert!(close(ScoreKind::Entropy.score(&z, 1), p.iter().map(|q| q * q.ln()).sum()));
        let mentr = -(1.0 - p[1]) * p[1].ln() - p[0] * (1.0 - p[0]).ln() - p[2] * (1.0 - p[2]).ln();
        assert!(close(ScoreKind::ModifiedEntropy.score(&z, 1), -mentr));
        assert!(close(ScoreKind::Top1.score(&z, 1), p[0]));
        assert_eq!(
            (ScoreKind::Correctness.score(&z, 0), ScoreKind::Correctness.score(&z, 1)),
            (1.0, 0.0)
        );
    }

    #[test]
    fn modified_entropy_is_finite_on_saturated_logits_and_orders_correctly() {
        let confident_right = [60.0f32, 0.0, 0.0];
        let confident_wrong = [0.0f32, 60.0, 0.0];
        let right = ScoreKind::ModifiedEntropy.score(&confident_right, 0);
        let wrong = ScoreKind::ModifiedEntropy.score(&confident_wrong, 0);
        assert!(right.is_finite() && wrong.is_finite());
        assert!(right > wrong, "a confident correct prediction looks more like a member");
        assert!(ScoreKind::Loss.scores(&[0.0; 5], &[0, 1], 3).is_err());
    }

    #[test]
    fn calibration_recovers_a_separating_threshold_per_class() {
        // Class 0 members score ≥ 0.8, class 1 members ≥ 0.4; non-members below.
        let scores = [0.9, 0.8, 0.5, 0.3, 0.6, 0.4, 0.2, 0.1];
        let member = [true, true, false, false, true, true, false, false];
        let labels = [0, 0, 0, 0, 1, 1, 1, 1];
        let t = calibrate_per_class(&scores, &member, &labels, 2);
        let all =
            scores.iter().zip(&labels).zip(&member).all(|((s, y), m)| t.is_member(*s, *y) == *m);
        assert!(all, "{t:?}");
        // A global threshold cannot separate them perfectly.
        let g = calibrate(&scores, &member);
        assert!(balanced_accuracy(&scores, &member, g) < 1.0);
    }
}
