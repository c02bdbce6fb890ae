//! Attack metrics: pure functions of attack scores and membership labels (members are the
//! positive class; a higher score means "more likely a member"). ROC curve, AUC, attacker
//! advantage, balanced accuracy, TPR at low FPR with Clopper–Pearson intervals, and the
//! MLS-Bench privacy score as published and fixed. [`Evaluation::warnings`] flags results that
//! should not be read at face value.

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A ROC curve: one point per distinct score threshold, from (0, 0) to (1, 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roc {
    /// False-positive rates, non-decreasing.
    pub fpr: Vec<f64>,
    /// True-positive rates, non-decreasing.
    pub tpr: Vec<f64>,
    /// Threshold of each point: predict "member" when `score >= threshold` (the first point's
    /// threshold is `+inf`).
    pub thresholds: Vec<f32>,
    /// Number of members.
    pub positives: usize,
    /// Number of non-members.
    pub negatives: usize,
}

/// Builds the ROC curve. Ties are handled exactly: examples with equal scores enter together.
pub fn roc(scores: &[f32], is_member: &[bool]) -> Result<Roc, CoreError> {
    if scores.len() != is_member.len() {
        return Err(CoreError::Shape(format!(
            "{} scores for {} membership labels",
            scores.len(),
            is_member.len()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(CoreError::Shape("attack scores contain NaN".into()));
    }
    let positives = is_member.iter().filter(|m| **m).count();
    let negatives = is_member.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(CoreError::Shape("need both members and non-members".into()));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = Roc {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f32::INFINITY],
        positives,
        negatives,
    };
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if is_member[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        curve.fpr.push(fp as f64 / negatives as f64);
        curve.tpr.push(tp as f64 / positives as f64);
        curve.thresholds.push(s);
    }
    Ok(curve)
}

impl Roc {
    /// Area under the curve (trapezoid rule; equals P(score_member > score_non-member) with
    /// ties counted one half).
    pub fn auc(&self) -> f64 {
        self.fpr
            .windows(2)
            .zip(self.tpr.windows(2))
            .map(|(f, t)| (f[1] - f[0]) * (t[1] + t[0]) / 2.0)
            .sum()
    }

    /// Two-sided attacker advantage `max |TPR − FPR|` over thresholds: Yeom et al.'s
    /// advantage for an attacker who may also flip the score, so an inverted attack (AUC
    /// below 0.5) is as strong as its mirror image and never reads as "no leakage".
    pub fn advantage(&self) -> f64 {
        self.fpr.iter().zip(&self.tpr).map(|(f, t)| (t - f).abs()).fold(0.0, f64::max)
    }

    /// One-sided advantage `max(TPR − FPR)` (Yeom et al. 2018): only "higher = member".
    pub fn advantage_one_sided(&self) -> f64 {
        self.fpr.iter().zip(&self.tpr).map(|(f, t)| t - f).fold(0.0, f64::max)
    }

    /// Largest TPR among thresholds whose FPR is at most `max_fpr`.
    pub fn tpr_at_fpr(&self, max_fpr: f64) -> f64 {
        self.fpr
            .iter()
            .zip(&self.tpr)
            .filter(|(f, _)| **f <= max_fpr + 1e-12)
            .map(|(_, t)| *t)
            .fold(0.0, f64::max)
    }
}

/// A decision rule's "member" calls counted against the truth: the one place TPR and FPR
/// are counted (the ROC curve sweeps every threshold in [`roc`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Members called members.
    pub true_positives: usize,
    /// Non-members called members.
    pub false_positives: usize,
    /// Members.
    pub positives: usize,
    /// Non-members.
    pub negatives: usize,
}

impl Confusion {
    /// Counts `(call, is_member)` pairs.
    pub fn count(calls: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let mut c = Self::default();
        for (call, member) in calls {
            if member {
                c.positives += 1;
                c.true_positives += usize::from(call);
            } else {
                c.negatives += 1;
                c.false_positives += usize::from(call);
            }
        }
        c
    }
    /// The calls of "member iff `score >= threshold`".
    pub fn at(scores: &[f32], is_member: &[bool], threshold: f32) -> Self {
        Self::count(scores.iter().zip(is_member).map(|(&s, &m)| (s >= threshold, m)))
    }
    /// True-positive rate (0 without members).
    pub fn tpr(&self) -> f64 {
        self.true_positives as f64 / self.positives.max(1) as f64
    }
    /// False-positive rate (0 without non-members).
    pub fn fpr(&self) -> f64 {
        self.false_positives as f64 / self.negatives.max(1) as f64
    }
    /// `(TPR + 1 − FPR) / 2`.
    pub fn balanced_accuracy(&self) -> f64 {
        (self.tpr() + 1.0 - self.fpr()) / 2.0
    }
    /// The share of "member" calls that are right (0 when nothing is called a member).
    pub fn precision(&self) -> f64 {
        let called = self.true_positives + self.false_positives;
        if called == 0 { 0.0 } else { self.true_positives as f64 / called as f64 }
    }
}

/// Balanced accuracy of "member iff `score >= threshold`".
pub fn balanced_accuracy(scores: &[f32], is_member: &[bool], threshold: f32) -> f64 {
    Confusion::at(scores, is_member, threshold).balanced_accuracy()
}

/// Two-sided Clopper–Pearson (exact binomial) interval for `k` successes in `n` trials at
/// confidence `1 − alpha`.
pub fn clopper_pearson(k: usize, n: usize, alpha: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, nf) = (k as f64, n as f64);
    let lo = if k == 0.0 { 0.0 } else { beta_quantile(alpha / 2.0, k, nf - k + 1.0) };
    let hi = if k == nf { 1.0 } else { beta_quantile(1.0 - alpha / 2.0, k + 1.0, nf - k) };
    (lo, hi)
}

/// Quantile of the Beta(a, b) distribution by bisection on the regularised incomplete beta.
fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if inc_beta(mid, a, b) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// Regularised incomplete beta function I_x(a, b) (continued fraction, Lentz's method).
fn inc_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(1.0 - x, b, a) / b
    }
}

fn beta_cf(x: f64, a: f64, b: f64) -> f64 {
    let tiny = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let s = G[0] + G.iter().skip(1).enumerate().map(|(i, g)| g / (x + i as f64 + 1.0)).sum::<f64>();
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

/// TPR at a fixed FPR with its 95% Clopper–Pearson interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TprAtFpr {
    /// The FPR budget.
    pub fpr: f64,
    /// The TPR reached.
    pub tpr: f64,
    /// 95% interval of the TPR.
    pub ci95: (f64, f64),
    /// False positives the budget allows (`fpr × non-members`); below 1 the point is not
    /// resolvable.
    pub allowed_false_positives: f64,
}

/// The standard summary of one attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// AUC (members positive).
    pub auc: f64,
    /// |AUC − 0.5|: how far from chance in either direction.
    pub auc_distance: f64,
    /// Two-sided advantage max |TPR − FPR| (see [`Roc::advantage`]).
    pub advantage: f64,
    /// One-sided advantage max(TPR − FPR), for comparison with papers that report it.
    #[serde(default)]
    pub advantage_one_sided: f64,
    /// Best balanced accuracy over thresholds, the score flipped if that is better
    /// (= (1 + advantage) / 2).
    pub best_balanced_accuracy: f64,
    /// TPR at 1%, 0.1% and 0.01% FPR.
    pub tpr_at_low_fpr: Vec<TprAtFpr>,
    /// Results that should not be read at face value.
    pub warnings: Vec<String>,
}

/// The FPR budgets reported by default.
pub const LOW_FPRS: [f64; 3] = [0.01, 0.001, 0.0001];

/// Evaluates attack scores against membership.
pub fn evaluate(scores: &[f32], is_member: &[bool]) -> Result<Evaluation, CoreError> {
    let curve = roc(scores, is_member)?;
    let auc = curve.auc();
    let advantage = curve.advantage();
    let mut warnings = Vec::new();
    if scores.iter().all(|s| *s == scores[0]) {
        warnings.push("all scores are equal: the attack carries no information".into());
    }
    if auc < 0.5 {
        warnings.push(format!(
            "AUC {auc:.4} is below 0.5: the score is inverted (members score lower); \
             |AUC − 0.5| = {:.4} is what an attacker who flips it gets",
            0.5 - auc
        ));
    }
    let tpr_at_low_fpr = LOW_FPRS
        .iter()
        .map(|&fpr| {
            let tpr = curve.tpr_at_fpr(fpr);
            let allowed = fpr * curve.negatives as f64;
            if allowed < 1.0 {
                warnings.push(format!(
                    "TPR at {}% FPR is not resolvable with {} non-members (needs at least {})",
                    fpr * 100.0,
                    curve.negatives,
                    (1.0 / fpr).ceil()
                ));
            }
            let k = (tpr * curve.positives as f64).round() as usize;
            TprAtFpr {
                fpr,
                tpr,
                ci95: clopper_pearson(k, curve.positives, 0.05),
                allowed_false_positives: allowed,
            }
        })
        .collect();
    Ok(Evaluation {
        auc,
        auc_distance: (auc - 0.5).abs(),
        advantage,
        advantage_one_sided: curve.advantage_one_sided(),
        best_balanced_accuracy: (1.0 + advantage) / 2.0,
        tpr_at_low_fpr,
        warnings,
    })
}

/// DynaNoise's MIDPUT (Forough & Haddadi, PETs 2026) for one attack, as published: the drop in
/// the attack's success metric minus the drop in test accuracy,
/// `(attack_before − attack_after) − (acc_before − acc_after)`; the paper averages it over
/// attacks. With AUC or attack accuracy as the success metric, pushing an attack *below*
/// chance counts as a gain; prefer [`midput_advantage`].
pub fn midput_published(
    attack_before: f64,
    attack_after: f64,
    acc_before: f64,
    acc_after: f64,
) -> f64 {
    (attack_before - attack_after) - (acc_before - acc_after)
}

/// MIDPUT computed on the two-sided advantage `max |TPR − FPR|` ([`Roc::advantage`]; 0 at
/// chance and equal for a score and its flip), so a defense that inverts an attack earns
/// nothing for it. Pass two-sided advantages; a negative value is taken by magnitude.
pub fn midput_advantage(adv_before: f64, adv_after: f64, acc_before: f64, acc_after: f64) -> f64 {
    (adv_before.abs() - adv_after.abs()) - (acc_before - acc_after)
}

/// MLS-Bench privacy score as published: `test_acc − max(AUC − 0.5, 0)`. It rewards an
/// attack AUC below 0.5 as if it were perfect privacy; prefer [`privacy_score_fixed`].
pub fn privacy_score_published(test_acc: f64, auc: f64) -> f64 {
    test_acc - (auc - 0.5).max(0.0)
}

/// Privacy score that does not reward inverted attacks: `test_acc − |AUC − 0.5|`.
pub fn privacy_score_fixed(test_acc: f64, auc: f64) -> f64 {
    test_acc - (auc - 0.5).abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small deterministic generator for property tests.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    fn random_case(seed: u64, n: usize) -> (Vec<f32>, Vec<bool>) {
        let mut g = Lcg(seed);
        let member: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
        // Coarse scores so ties occur; members shifted up a little.
        let scores = member
            .iter()
            .map(|&m| ((g.next() * 10.0).floor() + if m { 2.0 } else { 0.0 }) / 4.0)
            .collect();
        (scores, member)
    }

    fn brute_auc(s: &[f32], m: &[bool]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for (_, &si) in s.iter().enumerate().filter(|(i, _)| m[*i]) {
            for (j, &sj) in s.iter().enumerate() {
                if !m[j] {
                    den += 1.0;
                    num += if si > sj {
                        1.0
                    } else if si == sj {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        num / den
    }

    #[test]
    fn auc_properties_hold_on_random_cases() {
        for seed in 0..40 {
            let (s, m) = random_case(seed, 60 + seed as usize);
            let auc = roc(&s, &m).unwrap().auc();
            assert!((auc - brute_auc(&s, &m)).abs() < 1e-9, "matches the pair count");
            let neg: Vec<f32> = s.iter().map(|x| -x).collect();
            assert!(
                (roc(&neg, &m).unwrap().auc() - (1.0 - auc)).abs() < 1e-9,
                "AUC(−s) = 1 − AUC(s)"
            );
            let curve = roc(&s, &m).unwrap();
            let mut last = 0.0;
            for f in [0.0, 0.01, 0.05, 0.1, 0.3, 0.6, 1.0] {
                let t = curve.tpr_at_fpr(f);
                assert!(t >= last, "TPR@FPR is monotone");
                last = t;
            }
            assert!((curve.tpr_at_fpr(1.0) - 1.0).abs() < 1e-12);
            let e = evaluate(&s, &m).unwrap();
            for t in &e.tpr_at_low_fpr {
                assert!(
                    t.ci95.0 <= t.tpr + 1e-9 && t.tpr <= t.ci95.1 + 1e-9,
                    "CI contains the estimate"
                );
            }
            assert!(e.advantage >= 0.0 && e.advantage <= 1.0);
        }
    }

    #[test]
    fn perfect_and_degenerate_attacks() {
        let m = [true, true, false, false];
        let perfect = evaluate(&[0.9, 0.8, 0.2, 0.1], &m).unwrap();
        assert_eq!((perfect.auc, perfect.advantage), (1.0, 1.0));
        assert!(perfect.warnings.iter().any(|w| w.contains("not resolvable")));
        let constant = evaluate(&[0.5; 4], &m).unwrap();
        assert_eq!(constant.auc, 0.5);
        assert!(constant.warnings.iter().any(|w| w.contains("all scores are equal")));
        let inverted = evaluate(&[0.1, 0.2, 0.8, 0.9], &m).unwrap();
        assert_eq!((inverted.auc, inverted.auc_distance), (0.0, 0.5));
        assert!(inverted.warnings.iter().any(|w| w.contains("below 0.5")));
        assert!((balanced_accuracy(&[0.9, 0.8, 0.2, 0.1], &m, 0.5) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn confusion_counts_calls_at_a_threshold() {
        let m = [true, true, true, false, false];
        let c = Confusion::at(&[0.9, 0.5, 0.1, 0.5, 0.2], &m, 0.5);
        assert_eq!((c.true_positives, c.false_positives, c.positives, c.negatives), (2, 1, 3, 2));
        assert!((c.tpr() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.fpr() - 0.5).abs() < 1e-12);
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.balanced_accuracy() - (2.0 / 3.0 + 0.5) / 2.0).abs() < 1e-12);
        let none = Confusion::at(&[0.1, 0.2], &[true, false], 0.5);
        assert_eq!((none.tpr(), none.fpr(), none.precision()), (0.0, 0.0, 0.0));
        assert!(roc(&[0.1], &[true, false]).is_err());
        assert!(roc(&[0.1, 0.2], &[true, true]).is_err());
        assert!(roc(&[f32::NAN, 0.2], &[true, false]).is_err());
    }

    #[test]
    fn clopper_pearson_matches_known_values() {
        // Reference values from scipy.stats.beta.ppf (the exact binomial interval).
        let (lo, hi) = clopper_pearson(5, 10, 0.05);
        assert!((lo - 0.187_086).abs() < 1e-5 && (hi - 0.812_914).abs() < 1e-5, "{lo} {hi}");
        let (lo, hi) = clopper_pearson(0, 20, 0.05);
        assert!(lo == 0.0 && (hi - 0.168_433).abs() < 1e-5, "{hi}");
        assert_eq!(clopper_pearson(3, 3, 0.05).1, 1.0);
    }

    #[test]
    fn privacy_scores_published_rewards_inversion_and_fixed_does_not() {
        assert!((privacy_score_published(0.8, 0.2) - 0.8).abs() < 1e-12);
        assert!((privacy_score_fixed(0.8, 0.2) - 0.5).abs() < 1e-12);
        assert!((privacy_score_fixed(0.8, 0.7) - privacy_score_published(0.8, 0.7)).abs() < 1e-12);
    }

    #[test]
    fn midput_matches_the_papers_table_and_the_fixed_form_ignores_inversion() {
        // DynaNoise's CIFAR-10 row: confidence attack 0.6124 → 0.5014, accuracy 0.7875 → 0.7807
        // gives the published MIDPUT_conf 0.1043 (to rounding).
        assert!((midput_published(0.6124, 0.5014, 0.7875, 0.7807) - 0.1042).abs() < 2e-4);
        // A defense that inverts an attack (AUC 0.6 → 0.3) "gains" 0.3 as published ...
        assert!((midput_published(0.6, 0.3, 0.8, 0.8) - 0.3).abs() < 1e-12);
        // ... but on advantage it can gain at most what the attack had.
        assert!((midput_advantage(0.2, 0.0, 0.8, 0.79) - 0.19).abs() < 1e-12);
    }

    #[test]
    fn an_inverted_attack_keeps_its_advantage_and_earns_the_defense_nothing() {
        // Before the defense the attack separates members well; "after", the defense merely
        // flipped the score (AUC 1 − AUC_before): the attacker flips it back.
        let (s, m) = random_case(7, 300);
        let before = evaluate(&s, &m).unwrap();
        let flipped: Vec<f32> = s.iter().map(|x| -x).collect();
        let after = evaluate(&flipped, &m).unwrap();
        assert!(after.auc < 0.5 && (after.auc - (1.0 - before.auc)).abs() < 1e-9);
        assert!((after.advantage - before.advantage).abs() < 1e-12, "two-sided is symmetric");
        assert!(after.advantage_one_sided < before.advantage_one_sided);
        let gain = midput_advantage(before.advantage, after.advantage, 0.8, 0.8);
        assert!(gain.abs() < 1e-12, "no credit for inverting: {gain}");
    }
}
