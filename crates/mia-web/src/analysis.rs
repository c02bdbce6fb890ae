//! What the lab shows, computed from a model's logits on the reference sample: the released
//! posteriors after the chosen inference defenses, each attack's member/non-member scores,
//! ROC curve, AUC and the verdicts at the attacker's threshold. Pure functions over
//! `mia-core`, so the numbers are the trainer's and are tested natively.

use mia_core::CoreError;
use mia_core::bundle::{BrowserAttack, LiraStats, ShadowOutputs};
use mia_core::inference::{Chain, ModelContext, Row, Surrogate, released_logits};
use mia_core::lira;
use mia_core::metrics::{Confusion, Roc, roc};
use mia_core::posterior::{argmax, softmax};

/// One plain-language sentence on what `id` measures, for its chart.
pub fn explain(id: BrowserAttack) -> &'static str {
    match id {
        BrowserAttack::Confidence => {
            "How sure the model is of the true class, shown as log-odds log(p / (1 − p)) so that 99 % and 99.99 % stay apart. Models are usually surer on images they were trained on, so high confidence hints \"member\"."
        }
        BrowserAttack::Loss => {
            "The training loss on the image (shown negated: higher = lower loss). Training drives the loss of members down."
        }
        BrowserAttack::ModifiedEntropy => {
            "Song & Mittal's modified entropy: low uncertainty concentrated on the true class. A sharper version of the confidence test."
        }
        BrowserAttack::Lira => {
            "LiRA compares the model's confidence with how shadow models behave when they did and did not train on this very image: a likelihood ratio, the strongest test here."
        }
    }
}

/// Which attacker: calibrated on undefended shadows, or on shadows through the same defense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attacker {
    /// Thresholds and LiRA statistics from undefended shadows (shipped).
    Naive,
    /// Shadows' outputs pass through the same defense; recalibrated live.
    Adaptive,
}

/// One attack's live view.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackView {
    /// Which attack.
    pub id: BrowserAttack,
    /// Scores of the reference examples (higher = member).
    pub scores: Vec<f32>,
    /// ROC on the reference sample.
    pub roc: Roc,
    /// AUC on the reference sample.
    pub auc: f64,
    /// The attacker's threshold (calibrated on shadows).
    pub threshold: f32,
}

impl AttackView {
    /// (TPR, FPR) of "member iff score ≥ t" on the reference sample.
    pub fn rates(&self, is_member: &[bool], t: f32) -> (f64, f64) {
        let c = Confusion::at(&self.scores, is_member, t);
        (c.tpr(), c.fpr())
    }
}

/// Everything fixed for one model: reference labels and membership, shipped calibration.
pub struct ModelData<'a> {
    /// Classes C.
    pub classes: usize,
    /// True labels.
    pub labels: &'a [usize],
    /// Membership.
    pub is_member: &'a [bool],
    /// Shipped per-example LiRA Gaussians (from undefended shadows).
    pub lira: Option<&'a LiraStats>,
    /// Shipped shadow logits on the reference sample.
    pub shadows: Option<&'a ShadowOutputs>,
    /// Shipped thresholds by attack name.
    pub thresholds: &'a [(String, f32)],
    /// The model's sorted posteriors on random inputs (HAMP).
    pub references: &'a [Vec<f32>],
}

/// The per-model context a chain needs, built from what the browser has: HAMP's random-input
/// outputs of the target, and a MemGuard surrogate fitted on `members` vs the rest.
pub fn context(
    chain: &Chain,
    logits: &[f32],
    classes: usize,
    members: &[bool],
    references: &[Vec<f32>],
    seed: u64,
) -> ModelContext {
    let needs = chain.needs();
    let mut ctx = ModelContext { references: references.to_vec(), ..ModelContext::default() };
    if needs.surrogate {
        let x: Vec<f32> = logits.chunks(classes).flat_map(softmax).collect();
        ctx.surrogate = Some(Surrogate::fit(&x, classes, members, seed));
    }
    ctx
}

/// Released logits of `[n × C]` logits through `chain` (ids `0..n`, so the same example gets
/// the same noise each time).
pub fn release(
    chain: &Chain,
    logits: &[f32],
    classes: usize,
    ctx: &ModelContext,
    seed: u64,
) -> Result<Vec<f32>, CoreError> {
    let mut out = Vec::with_capacity(logits.len());
    for (i, z) in logits.chunks(classes).enumerate() {
        let p = chain.apply(z, ctx, Row { id: i as u64, gradient_norm: None }, seed)?;
        out.extend(released_logits(&p));
    }
    Ok(out)
}

fn phi_rows(logits: &[f32], classes: usize, labels: &[usize]) -> Vec<f32> {
    logits.chunks(classes).zip(labels).map(|(z, &y)| lira::logit_confidence(z, y)).collect()
}

/// Every attack's view of `released` logits (the target's outputs after the defense).
pub fn attacks(
    m: &ModelData<'_>,
    chain: &Chain,
    released: &[f32],
    attacker: Attacker,
    seed: u64,
) -> Result<Vec<AttackView>, CoreError> {
    let c = m.classes;
    let n = m.labels.len();
    // The adaptive attacker's shadows: every shadow's outputs through the same defense.
    let defended: Option<Vec<Vec<f32>>> = match (attacker, m.shadows) {
        (Attacker::Adaptive, Some(sh)) => Some(
            (0..sh.shadows)
                .map(|s| {
                    let logits: Vec<f32> = (0..n).flat_map(|i| sh.row(s, i).to_vec()).collect();
                    let keep = &sh.keep[s * n..(s + 1) * n];
                    let ctx = context(chain, &logits, c, keep, m.references, seed ^ (s as u64 + 1));
                    release(chain, &logits, c, &ctx, seed.wrapping_add(1 + s as u64))
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => None,
    };
    let mut out = Vec::new();
    for id in BrowserAttack::ALL {
        let (scores, threshold) = match id.score_kind() {
            Some(kind) => {
                let scores: Vec<f32> =
                    released.chunks(c).zip(m.labels).map(|(z, &y)| kind.score(z, y)).collect();
                let threshold = match (&defended, m.shadows) {
                    (Some(d), Some(sh)) => {
                        id.shadow_threshold(d.iter().map(Vec::as_slice), c, m.labels, &sh.keep)?
                    }
                    _ => {
                        m.thresholds.iter().find(|(k, _)| k == id.name()).map_or(f32::NAN, |t| t.1)
                    }
                };
                (scores, threshold)
            }
            None => {
                let target = phi_rows(released, c, m.labels);
                let stats = match (&defended, m.shadows) {
                    (Some(d), Some(sh)) if sh.shadows >= 2 => {
                        let phi: Vec<f32> =
                            d.iter().flat_map(|l| phi_rows(l, c, m.labels)).collect();
                        Some(LiraStats::fit(&phi, &sh.keep, sh.shadows, n)?)
                    }
                    _ => m.lira.cloned(),
                };
                let Some(stats) = stats else { continue };
                ((0..n).map(|i| stats.online(i, target[i])).collect(), 0.0)
            }
        };
        let curve = roc(&scores, m.is_member)?;
        out.push(AttackView { id, auc: curve.auc(), roc: curve, scores, threshold });
    }
    Ok(out)
}

/// One attack's verdict on an upload: its score against the attack's threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The attack.
    pub attack: BrowserAttack,
    /// The upload's score (higher = member).
    pub score: f32,
    /// The attacker's threshold (calibrated, or dragged by the student).
    pub threshold: f32,
    /// `score >= threshold`.
    pub member: bool,
}

/// What the page says about one uploaded image on the current model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UploadAnalysis {
    /// The three likeliest classes and their released probabilities, likeliest first.
    pub top: Vec<(usize, f32)>,
    /// Every attack with a threshold, in display order.
    pub verdicts: Vec<Verdict>,
}

/// Upload number `index`'s view: its `logits` through `chain` (the defenses' noise seeded per
/// upload from `seed`), its top three classes, and each attack's score at the label the
/// attacker assumes (the prediction) against `threshold(attack)`; attacks without a
/// threshold get no verdict.
pub fn upload_analysis(
    chain: &Chain,
    logits: &[f32],
    ctx: &ModelContext,
    seed: u64,
    index: usize,
    lira: Option<&LiraStats>,
    threshold: impl Fn(BrowserAttack) -> Option<f32>,
) -> Result<UploadAnalysis, CoreError> {
    let released = release(chain, logits, logits.len(), ctx, seed ^ (1 << 40) ^ index as u64)?;
    let p = softmax(&released);
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let top = order.iter().take(3).map(|&k| (k, p[k])).collect();
    let label = argmax(&released);
    let verdicts = upload_scores(&released, label, lira)
        .into_iter()
        .filter_map(|(attack, score)| {
            let threshold = threshold(attack)?;
            Some(Verdict { attack, score, threshold, member: score >= threshold })
        })
        .collect();
    Ok(UploadAnalysis { top, verdicts })
}

/// Scores of one uploaded image for every attack, given its released logits and the label
/// the attacker assumes (the prediction). LiRA uses the reference sample's average IN/OUT
/// Gaussians, since an upload has no shadow statistics of its own.
pub fn upload_scores(
    released: &[f32],
    label: usize,
    lira: Option<&LiraStats>,
) -> Vec<(BrowserAttack, f32)> {
    BrowserAttack::ALL
        .iter()
        .filter_map(|&id| match id.score_kind() {
            Some(kind) => Some((id, kind.score(released, label))),
            None => {
                let stats = lira?;
                let n = stats.rows.len().max(1) as f32;
                let mut mean = [0f32; 4];
                for r in &stats.rows {
                    mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / n);
                }
                let avg = LiraStats { rows: vec![mean] };
                Some((id, avg.online(0, lira::logit_confidence(released, label))))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use mia_core::scores::ScoreKind;

    use super::*;

    /// Members have a larger true-class logit; 4 paired shadows behave alike.
    fn world() -> (Vec<f32>, Vec<usize>, Vec<bool>, ShadowOutputs) {
        let (n, c) = (200usize, 3usize);
        let labels: Vec<usize> = (0..n).map(|i| i % c).collect();
        let member: Vec<bool> = (0..n).map(|i| i < n / 2).collect();
        let model = |keep: &dyn Fn(usize) -> bool, salt: usize| -> Vec<f32> {
            (0..n)
                .flat_map(|i| {
                    let mut z = vec![0f32; c];
                    z[labels[i]] =
                        ((i * 7 + salt) % 13) as f32 / 6.0 + if keep(i) { 2.5 } else { 0.0 };
                    z
                })
                .collect()
        };
        let target = model(&|i| member[i], 0);
        let mut keep = Vec::new();
        let mut logits = Vec::new();
        for s in 0..4 {
            let k = move |i: usize| (i / 3 + s / 2).is_multiple_of(2) ^ (s % 2 == 1);
            keep.extend((0..n).map(k));
            logits.extend(model(&k, s + 1));
        }
        (
            target,
            labels,
            member,
            ShadowOutputs { shadows: 4, examples: n, classes: c, keep, logits },
        )
    }

    #[test]
    fn attacks_see_membership_and_temperature_fools_only_the_naive_thresholds() {
        let (target, labels, member, shadows) = world();
        let thresholds = vec![("confidence".to_string(), 0.9f32)];
        let m = ModelData {
            classes: 3,
            labels: &labels,
            is_member: &member,
            lira: None,
            shadows: Some(&shadows),
            thresholds: &thresholds,
            references: &[],
        };
        let none = Chain::default();
        let views = attacks(&m, &none, &target, Attacker::Adaptive, 0).unwrap();
        let lira = views.iter().find(|v| v.id == BrowserAttack::Lira).unwrap();
        assert!(lira.auc > 0.9, "{}", lira.auc);
        let chain = Chain::parse("temperature:t=20").unwrap();
        let ctx = context(&chain, &target, 3, &member, &[], 0);
        let released = release(&chain, &target, 3, &ctx, 0).unwrap();
        let naive = attacks(&m, &chain, &released, Attacker::Naive, 0).unwrap();
        let conf = &naive[0];
        let (tpr, fpr) = conf.rates(&member, conf.threshold);
        assert_eq!((tpr, fpr), (0.0, 0.0), "no tempered posterior reaches the naive 0.9");
        let adaptive = attacks(&m, &chain, &released, Attacker::Adaptive, 0).unwrap();
        let (tpr, fpr) = adaptive[0].rates(&member, adaptive[0].threshold);
        assert!(tpr - fpr > 0.3, "the adaptive threshold still separates: {tpr} {fpr}");
        let up = upload_scores(&released[..3], 0, None);
        assert_eq!(up.len(), 3, "no LiRA without statistics");
    }

    #[test]
    fn an_upload_gets_its_top_classes_and_a_verdict_per_attack_with_a_threshold() {
        let logits = [0.0f32, 3.0, 1.0, -2.0];
        let none = Chain::default();
        let ctx = ModelContext::default();
        let only_loss = |a: BrowserAttack| (a == BrowserAttack::Loss).then_some(-0.5);
        let up = upload_analysis(&none, &logits, &ctx, 7, 0, None, only_loss).unwrap();
        let classes: Vec<usize> = up.top.iter().map(|t| t.0).collect();
        assert_eq!(classes, vec![1, 2, 0]);
        assert_eq!(up.verdicts.len(), 1);
        let v = &up.verdicts[0];
        // Scored at the predicted class 1: log p_1 of softmax([0, 3, 1, −2]) ≈ −0.17 ≥ −0.5.
        assert_eq!(v.attack, BrowserAttack::Loss);
        assert!((v.score - ScoreKind::Loss.score(&logits, 1)).abs() < 1e-6);
        assert!(v.member, "{v:?}");
        let strict = upload_analysis(&none, &logits, &ctx, 7, 0, None, |_| Some(100.0)).unwrap();
        assert_eq!(strict.verdicts.len(), 3, "no LiRA without statistics");
        assert!(strict.verdicts.iter().all(|v| !v.member), "no score reaches 100: {strict:?}");
    }
}
