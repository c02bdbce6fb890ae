//! Threshold-attack scores (Song & Mittal, "Systematic Evaluation of Privacy Risks of Machine
//! Learning Models", USENIX Security 2021; Yeom et al., CSF 2018), computed stably from logits,
//! and threshold calibration on shadow data. Every score is oriented so that *higher means
//! more likely a member*, so they all feed [`crate::metrics`] the same way.

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::metrics::roc;
use crate::posterior::{argmax, log_complement64, log_odds64, log_softmax64};

/// A threshold attack's signal. Every score is computed from the logits in f64 and log space,
/// so that confident members do not tie at a rounded 1.0 (which would hide them at low FPR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreKind {
    /// Confidence on the true label `p_y`, ranked by its log-odds `log(p_y / (1 − p_y))`
    /// (a strictly increasing function of `p_y`, so the same attack, without saturation).
    Confidence,
    /// Negative cross-entropy loss, `log p_y`.
    Loss,
    /// Negative prediction entropy, `−H(p)` (no label needed).
    Entropy,
    /// Negative modified entropy, `−Mentr(p, y)` with
    /// `Mentr = −(1 − p_y) log p_y − Σ_{i≠y} p_i log(1 − p_i)`.
    ModifiedEntropy,
    /// Top-1 confidence `max p`, ranked by its log-odds (label-free).
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

    /// The name, as on the command line and in serde.
    pub fn name(self) -> &'static str {
        match self {
            Self::Confidence => "confidence",
            Self::Loss => "loss",
            Self::Entropy => "entropy",
            Self::ModifiedEntropy => "modified-entropy",
            Self::Top1 => "top1",
            Self::Correctness => "correctness",
        }
    }

    /// Score of one logit row with true label `y` (a label out of range scores as never
    /// predicted: −∞ for the label-based scores).
    pub fn score(self, logits: &[f32], y: usize) -> f32 {
        let value = match self {
            Self::Confidence => log_odds64(logits, y),
            Self::Loss => log_softmax64(logits).get(y).copied().unwrap_or(f64::NEG_INFINITY),
            Self::Entropy => log_softmax64(logits).into_iter().map(|l| l.exp() * l).sum(),
            Self::ModifiedEntropy => -modified_entropy(logits, y),
            Self::Top1 => log_odds64(logits, argmax(logits)),
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

/// Song & Mittal's modified entropy, in f64 from log-probabilities and log-complements
/// (`log(1 − p_i)` as `LSE_{j≠i} z − LSE z`), so every term stays finite and exact even when a
/// class's probability rounds to 1. A label out of range gives +∞ (never a member).
fn modified_entropy(logits: &[f32], y: usize) -> f64 {
    if y >= logits.len() {
        return f64::INFINITY;
    }
    let logp = log_softmax64(logits);
    logp.iter()
        .enumerate()
        .map(|(i, &li)| {
            let log_rest = log_complement64(logits, i);
            if i == y {
                // −(1 − p_y) log p_y
                -log_rest.exp() * li
            } else {
                // −p_i log(1 − p_i)
                -li.exp() * log_rest
            }
        })
        .sum()
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

    #[test]
    fn names_are_the_serde_names() {
        for k in ScoreKind::ALL {
            let serde = serde_json::to_value(k).expect("serialises");
            assert_eq!(serde.as_str(), Some(k.name()));
        }
    }
    use crate::metrics::balanced_accuracy;

    #[test]
    fn scores_match_hand_computed_values() {
        let z = [2.0f32, 0.0, -1.0];
        let p: Vec<f64> = crate::posterior::softmax(&z).into_iter().map(f64::from).collect();
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 1e-5;
        let odds = |q: f64| (q / (1.0 - q)).ln();
        assert!(close(ScoreKind::Confidence.score(&z, 1), odds(p[1])));
        assert!(close(ScoreKind::Loss.score(&z, 1), p[1].ln()));
        assert!(close(ScoreKind::Entropy.score(&z, 1), p.iter().map(|q| q * q.ln()).sum()));
        let mentr = -(1.0 - p[1]) * p[1].ln() - p[0] * (1.0 - p[0]).ln() - p[2] * (1.0 - p[2]).ln();
        assert!(close(ScoreKind::ModifiedEntropy.score(&z, 1), -mentr));
        assert!(close(ScoreKind::Top1.score(&z, 1), odds(p[0])));
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
    fn confident_members_do_not_tie_at_one() {
        // p_y rounds to 1.0 in f32 (and in f64 for the last two), yet the rows stay ordered.
        let rows = [[18.0f32, 0.0, 0.0], [30.0, 0.0, 0.0], [45.0, 0.0, 0.0], [60.0, 0.0, 0.0]];
        for kind in [ScoreKind::Confidence, ScoreKind::Top1, ScoreKind::Loss, ScoreKind::Entropy] {
            let s: Vec<f32> = rows.iter().map(|r| kind.score(r, 0)).collect();
            assert!(s.windows(2).all(|w| w[0] < w[1]), "{kind:?}: {s:?}");
        }
        let me: Vec<f32> = rows.iter().map(|r| ScoreKind::ModifiedEntropy.score(r, 0)).collect();
        assert!(me.windows(2).all(|w| w[0] < w[1]), "{me:?}");
        // Confidence is the log-odds: z_y − LSE of the others = 45 − ln 2.
        assert!((ScoreKind::Confidence.score(&rows[2], 0) - (45.0 - 2f32.ln())).abs() < 1e-4);
    }

    #[test]
    fn modified_entropy_keeps_the_term_of_a_wrong_class_with_p_near_one() {
        // Class 1 has p ≈ 1 and the label is 0: Mentr = −(1 − p_0) log p_0 − p_1 log(1 − p_1)
        // − p_2 log(1 − p_2) ≈ 60 + (60 − ln 2) + 0. Dropping the non-finite middle term (the
        // old behaviour) gave about −60.
        let want = -(60.0 + 60.0 - 2f64.ln());
        let got = f64::from(ScoreKind::ModifiedEntropy.score(&[0.0, 60.0, 0.0], 0));
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        // Against an exact evaluation in f64 on a moderate row.
        let z = [1.5f32, -0.5, 0.25, 3.0];
        let p: Vec<f64> = {
            let e: Vec<f64> = z.iter().map(|&v| f64::from(v).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|v| v / sum).collect()
        };
        let exact: f64 = -(1.0 - p[2]) * p[2].ln()
            - [0, 1, 3].iter().map(|&i| p[i] * (1.0 - p[i]).ln()).sum::<f64>();
        let got = f64::from(ScoreKind::ModifiedEntropy.score(&z, 2));
        assert!((got + exact).abs() < 1e-6, "{got} vs {}", -exact);
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
