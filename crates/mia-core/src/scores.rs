//! Threshold-attack scores (Song & Mittal, "Systematic Evaluation of Privacy Risks of Machine
//! Learning Models", USENIX Security 2021; Yeom et al., CSF 2018), computed stably from logits,
//! and threshold calibration on shadow data. Every score is oriented so that *higher means
//! more likely a member*, so they all feed [`crate::metrics`] the same way.

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::metrics::roc;
use crate::posterior::{argmax, cross_entropy, entropy, log_softmax, softmax};

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

    /// Score of one logit row with true label `y` (a label out of range scores as never
    /// predicted: confidence 0, loss −∞).
    pub fn score(self, logits: &[f32], y: usize) -> f32 {
        match self {
            Self::Confidence => softmax(logits).get(y).copied().unwrap_or(0.0),
            Self::Loss => -cross_entropy(logits, y),
            Self::Entropy => -entropy(&softmax(logits)),
            Self::ModifiedEntropy => -modified_entropy(logits, y),
            Self::Top1 => softmax(logits).into_iter().fold(0.0, f32::max),
            Self::Correctness => f32::from(u8::from(argmax(logits) == y)),
        }
    }

    /// Scores of row-major `[n, classes]` logits.
    pub fn scores(
        self,
        logits: &[f32],
        labels: &[usize],
        classes: usize,
    ) -> Result<Vec<f32>, CoreError> {
        if classes == 0
            || logits.len() != labels.len() * classes
            || labels.iter().any(|&y| y >= classes)
        {
            return Err(CoreError::Shape(format!(
                "{} logits for {} labels of {classes} classes (labels must be below {classes})",
                logits.len(),
                labels.len()
            )));
        }
        Ok(logits.chunks(classes).zip(labels).map(|(row, &y)| self.score(row, y)).collect())
    }
}

/// Song & Mittal's modified entropy, computed from log-probabilities so saturated logits
/// stay finite.
fn modified_entropy(logits: &[f32], y: usize) -> f32 {
    let mentr: f64 = log_softmax(logits)
        .into_iter()
        .map(f64::from)
        .enumerate()
        .map(|(i, li)| {
            if i == y {
                // −(1 − p_y) log p_y, with 1 − p_y = −expm1(log p_y).
                li.exp_m1() * li
            } else {
                -li.exp() * log1m_exp(li)
            }
        })
        .map(|v| if v.is_finite() { v } else { 0.0 })
        .sum();
    mentr as f32
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

/// The threshold maximising balanced accuracy on (shadow) scores: the ROC point with the
/// largest `(TPR + 1 − FPR) / 2`, so one sort instead of a pass per candidate threshold.
pub fn calibrate(scores: &[f32], is_member: &[bool]) -> Result<f32, CoreError> {
    let curve = roc(scores, is_member)?;
    let mut best = (f64::NEG_INFINITY, f32::INFINITY);
    for ((tpr, fpr), &t) in curve.tpr.iter().zip(&curve.fpr).zip(&curve.thresholds) {
        let acc = (tpr + 1.0 - fpr) / 2.0;
        if acc > best.0 {
            best = (acc, t);
        }
    }
    Ok(best.1)
}

/// Per-class thresholds calibrated on (shadow) scores.
pub fn calibrate_per_class(
    scores: &[f32],
    is_member: &[bool],
    labels: &[usize],
    classes: usize,
) -> Result<Threshold, CoreError> {
    let global = calibrate(scores, is_member)?;
    let per_class = (0..classes)
        .map(|c| {
            let (s, m): (Vec<f32>, Vec<bool>) = scores
                .iter()
                .zip(is_member)
                .zip(labels)
                .filter(|(_, y)| **y == c)
                .map(|((s, m), _)| (*s, *m))
                .unzip();
            if m.iter().any(|x| *x) && m.iter().any(|x| !*x) {
                calibrate(&s, &m)
            } else {
                Ok(global)
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(Threshold::PerClass { per_class, global })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::balanced_accuracy;

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
        assert!(ScoreKind::Loss.scores(&[0.0; 6], &[0, 3], 3).is_err(), "label out of range");
    }

    #[test]
    fn calibration_recovers_a_separating_threshold_per_class() {
        // Class 0 members score ≥ 0.8, class 1 members ≥ 0.4; non-members below.
        let scores = [0.9, 0.8, 0.5, 0.3, 0.6, 0.4, 0.2, 0.1];
        let member = [true, true, false, false, true, true, false, false];
        let labels = [0, 0, 0, 0, 1, 1, 1, 1];
        let t = calibrate_per_class(&scores, &member, &labels, 2).unwrap();
        let all =
            scores.iter().zip(&labels).zip(&member).all(|((s, y), m)| t.is_member(*s, *y) == *m);
        assert!(all, "{t:?}");
        // A global threshold cannot separate them perfectly.
        let g = calibrate(&scores, &member).unwrap();
        assert!(balanced_accuracy(&scores, &member, g) < 1.0);
        // The ROC-based choice is as good as trying every candidate threshold.
        let brute =
            scores.iter().map(|&t| balanced_accuracy(&scores, &member, t)).fold(0.0, f64::max);
        assert!((balanced_accuracy(&scores, &member, g) - brute).abs() < 1e-12);
        assert!(calibrate(&scores, &[true; 8]).is_err(), "needs both members and non-members");
    }
}
