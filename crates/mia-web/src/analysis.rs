//! What the lab shows, computed from a model's logits on the reference sample: the released
//! posteriors after the chosen inference defenses, each attack's member/non-member scores,
//! ROC curve, AUC and the verdicts at the attacker's threshold. Pure functions over
//! `mia-core`, so the numbers are the trainer's and are tested natively.

use mia_core::bundle::{BrowserAttack, LiraStats, ShadowOutputs};
use mia_core::inference::defender::{Defender, ModelOutputs, TARGET, shadow};
use mia_core::inference::{Chain, ModelContext};
use mia_core::lira;
use mia_core::metrics::{Confusion, Roc, roc};
use mia_core::posterior::{argmax, softmax};
use mia_core::recognise::MembersIndex;
use mia_core::{CoreError, InputSpec};

/// One plain-language sentence on what `id` measures, for its chart.
pub fn explain(id: BrowserAttack) -> &'static str {
    match id {
        BrowserAttack::Confidence => {
            "How sure the model is of the true class, shown as log-odds log(p / (1 − p)) so that 99 % and 99.99 % stay apart. Models are usually surer on images they were trained on, so high confidence hints \"member\"."
        }
        BrowserAttack::Loss => {
            "The training loss (cross-entropy) on the image, shown as −log10(loss): 2 means a loss of 0.01, 4 a loss of 0.0001. Training drives the loss of members down, so they sit to the right."
        }
        BrowserAttack::ModifiedEntropy => {
            "Song & Mittal's modified entropy: the model's uncertainty, counting confidence in a wrong class against it; shown as −log10(entropy), so further right = more certain of the true class. A sharper version of the confidence test."
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
    /// Scores of the reference examples on the display scale (higher = member).
    pub scores: Vec<f32>,
    /// ROC on the reference sample.
    pub roc: Roc,
    /// AUC on the reference sample.
    pub auc: f64,
    /// The attacker's threshold (calibrated on shadows), on the display scale.
    pub threshold: f32,
    /// The reference examples scored the way an upload is: `[0]` at the true label, `[1]` at
    /// the predicted label, LiRA with [`Self::pooled`] statistics. An upload verdict's
    /// false-positive rate is measured on these, so it is the rate of the procedure it used.
    pub as_upload: [Vec<f32>; 2],
    /// LiRA's Gaussians averaged over the reference sample: all an image without shadow
    /// models of its own can be scored with.
    pub pooled: Option<LiraStats>,
}

impl AttackView {
    /// (TPR, FPR) of "member iff score ≥ t" on the reference sample.
    pub fn rates(&self, is_member: &[bool], t: f32) -> (f64, f64) {
        let c = Confusion::at(&self.scores, is_member, t);
        (c.tpr(), c.fpr())
    }

    /// The score of released logits `z` at `label`, as for an upload.
    pub fn upload_score(&self, z: &[f32], label: usize) -> Option<f32> {
        match self.id.score_kind() {
            Some(kind) => Some(display(self.id, kind.score(z, label))),
            None => Some(self.pooled.as_ref()?.online(0, lira::logit_confidence(z, label))),
        }
    }
}

/// The scale the page shows `id`'s raw score on, monotone so that every ROC is unchanged:
/// the loss as −log10(loss) and the modified entropy as −log10(entropy), so that members
/// whose loss is 10⁻⁴ and 10⁻⁸ do not share one bin at 0.
pub fn display(id: BrowserAttack, raw: f32) -> f32 {
    match id {
        BrowserAttack::Loss | BrowserAttack::ModifiedEntropy => neg_log10_of_neg(raw),
        BrowserAttack::Confidence | BrowserAttack::Lira => raw,
    }
}

/// −log10(−raw) for a score that is a negated non-negative quantity (loss, entropy); NaN
/// stays NaN and a zero stays finite (45).
pub fn neg_log10_of_neg(raw: f32) -> f32 {
    if raw.is_nan() { raw } else { -(f64::from(-raw).max(1e-45)).log10() as f32 }
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

/// The target's context for `chain` (mia-core's [`Defender`], the code `mia attack` runs):
/// HAMP's references are the target's outputs on random inputs, MemGuard's surrogate is
/// fitted on `members` against the rest of the reference sample.
pub fn context(
    chain: &Chain,
    logits: &[f32],
    classes: usize,
    members: &[bool],
    references: &[Vec<f32>],
    seed: u64,
) -> Result<ModelContext, CoreError> {
    let outputs = ModelOutputs::single(logits, classes, members, references);
    Defender::new(chain, seed).context(&outputs, TARGET)
}

/// The target's released logits of `[n × C]` logits through `chain` (row ids `0..n`, so the
/// same example gets the same noise each time).
pub fn release(
    chain: &Chain,
    logits: &[f32],
    classes: usize,
    ctx: &ModelContext,
    seed: u64,
) -> Result<Vec<f32>, CoreError> {
    Defender::new(chain, seed).release(
        &ModelOutputs::single(logits, classes, &[], &[]),
        ctx,
        TARGET,
    )
}

/// The adaptive attacker's shadows through `chain`: each shadow's `[n × C]` logits (from
/// `shadows`, `[S × n × C]`) released by mia-core's [`Defender`] with its own members
/// (`keep`, `[S × n]`) as the defenses' context, as `mia attack` releases them. The page has
/// no shadow's outputs on random inputs, so HAMP's references are the target's
/// (`references`). Shared by the shipped models' view and lab mode.
pub fn release_shadows(
    chain: &Chain,
    shadows: &[f32],
    keep: &[bool],
    (n, c): (usize, usize),
    references: &[Vec<f32>],
    seed: u64,
) -> Result<Vec<Vec<f32>>, CoreError> {
    let defender = Defender::new(chain, seed);
    shadows
        .chunks(n * c)
        .zip(keep.chunks(n))
        .enumerate()
        .map(|(s, (logits, keep))| {
            defender.release_model(&ModelOutputs::single(logits, c, keep, references), shadow(s))
        })
        .collect()
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
        (Attacker::Adaptive, Some(sh)) => {
            Some(release_shadows(chain, &sh.logits, &sh.keep, (n, c), m.references, seed)?)
        }
        _ => None,
    };
    let predicted: Vec<usize> = released.chunks(c).map(argmax).collect();
    let mut out = Vec::new();
    for id in BrowserAttack::ALL {
        let (scores, threshold, pooled) = match id.score_kind() {
            Some(kind) => {
                let scores: Vec<f32> = released
                    .chunks(c)
                    .zip(m.labels)
                    .map(|(z, &y)| display(id, kind.score(z, y)))
                    .collect();
                let threshold = match (&defended, m.shadows) {
                    (Some(d), Some(sh)) => {
                        id.shadow_threshold(d.iter().map(Vec::as_slice), c, m.labels, &sh.keep)?
                    }
                    _ => {
                        m.thresholds.iter().find(|(k, _)| k == id.name()).map_or(f32::NAN, |t| t.1)
                    }
                };
                (scores, display(id, threshold), None)
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
                let scores = (0..n).map(|i| stats.online(i, target[i])).collect();
                (scores, 0.0, Some(pool(&stats)))
            }
        };
        let curve = roc(&scores, m.is_member)?;
        let mut view = AttackView {
            id,
            auc: curve.auc(),
            roc: curve,
            scores,
            threshold,
            as_upload: [Vec::new(), Vec::new()],
            pooled,
        };
        let rows = released.chunks(c);
        let score = |z: &[f32], y: usize| view.upload_score(z, y).unwrap_or(f32::NAN);
        let at_true = rows.clone().zip(m.labels).map(|(z, &y)| score(z, y)).collect();
        let at_predicted = rows.zip(&predicted).map(|(z, &y)| score(z, y)).collect();
        view.as_upload = [at_true, at_predicted];
        out.push(view);
    }
    Ok(out)
}

/// LiRA's per-example Gaussians averaged into one row.
fn pool(stats: &LiraStats) -> LiraStats {
    let n = stats.rows.len().max(1) as f32;
    let mut mean = [0f32; 4];
    for r in &stats.rows {
        mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / n);
    }
    LiraStats { rows: vec![mean] }
}

/// What the page knows of whether the model trained on one of the student's files, from the
/// bundle's index of its training images ([`mia_core::recognise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Being looked up (the index is fetched at the first upload).
    Checking,
    /// The bundle lists no training images, or the list could not be fetched.
    Unchecked,
    /// Not one of the model's training images.
    NotMember,
    /// One of the model's training images, or a copy of one (re-encoded, resized, recoloured
    /// or mirrored).
    Member {
        /// The label it was trained with.
        label: usize,
        /// Its position among the training images.
        position: usize,
        /// Hash bits that differ.
        distance: u32,
        /// The upload is the training image mirrored.
        mirrored: bool,
    },
}

/// What the index says of `pixels` (CHW at the model's `input`).
pub fn recognise(index: &MembersIndex, pixels: &[u8], input: InputSpec) -> Known {
    match index.find(pixels, input) {
        Ok(Some(m)) => Known::Member {
            label: usize::from(m.label),
            position: m.position,
            distance: m.distance,
            mirrored: m.mirrored,
        },
        Ok(None) => Known::NotMember,
        Err(_) => Known::Unchecked,
    }
}

/// Where an upload came from, which decides what the page may claim about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The student's own file, and whether it is one of the model's training images.
    File {
        /// What the index says.
        known: Known,
    },
    /// A reference example: its membership and true label are known.
    Reference {
        /// Its index in the reference sample.
        index: usize,
        /// Its true label.
        label: usize,
        /// Whether the target trained on it.
        member: bool,
    },
}

/// The label an upload is scored at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelUsed {
    /// The model's prediction (the student gave no label).
    Predicted(usize),
    /// The class the student picked.
    Chosen(usize),
    /// A reference example's true label, or the label a recognised training image was
    /// trained with.
    True(usize),
}

impl LabelUsed {
    /// The class.
    pub fn class(self) -> usize {
        match self {
            Self::Predicted(k) | Self::Chosen(k) | Self::True(k) => k,
        }
    }
}

/// One attack's verdict on an upload: its score against the threshold, and how often the same
/// procedure flags images the model never saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The attack.
    pub attack: BrowserAttack,
    /// The upload's score (higher = member).
    pub score: f32,
    /// The attacker's threshold (calibrated, or dragged by the student).
    pub threshold: f32,
    /// `score >= threshold`.
    pub flagged: bool,
    /// Fraction of the reference non-members the same procedure flags at this threshold.
    pub fpr: f64,
    /// Fraction of the reference members it flags.
    pub tpr: f64,
    /// Non-members that rate rests on.
    pub non_members: usize,
    /// LiRA scored with statistics averaged over the reference sample.
    pub pooled: bool,
}

/// What the page says about one uploaded image on the current model.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadAnalysis {
    /// The three likeliest classes and their released probabilities, likeliest first.
    pub top: Vec<(usize, f32)>,
    /// The label the attacks scored.
    pub label: LabelUsed,
    /// Every attack with a threshold, in display order.
    pub verdicts: Vec<Verdict>,
}

/// The verdict of `view` on `score` at `threshold`, with the rates of the same procedure on
/// the reference sample (`calibration[i]` is example `i` scored that way).
fn verdict(
    view: &AttackView,
    score: f32,
    threshold: f32,
    calibration: &[f32],
    is_member: &[bool],
    pooled: bool,
) -> Verdict {
    let c = Confusion::at(calibration, is_member, threshold);
    Verdict {
        attack: view.id,
        score,
        threshold,
        flagged: score >= threshold,
        fpr: c.fpr(),
        tpr: c.tpr(),
        non_members: is_member.iter().filter(|m| !**m).count(),
        pooled,
    }
}

/// Upload number `index`'s view on the current model. A file's `logits` go through `chain`
/// (noise seeded per upload from `seed`) and are scored at the `chosen` class, else at the
/// prediction; its verdict's rates are those of that procedure on the reference sample. A
/// reference example gets exactly the card's score, so its verdict is the card's. `views` are
/// the current attack views; `threshold` gives each attack's threshold in use.
#[allow(clippy::too_many_arguments)]
pub fn upload_analysis(
    chain: &Chain,
    logits: &[f32],
    ctx: &ModelContext,
    (seed, index): (u64, usize),
    origin: Origin,
    chosen: Option<usize>,
    views: &[AttackView],
    is_member: &[bool],
    threshold: impl Fn(&AttackView) -> f32,
) -> Result<UploadAnalysis, CoreError> {
    let released = release(chain, logits, logits.len(), ctx, seed ^ (1 << 40) ^ index as u64)?;
    let p = softmax(&released);
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let top = order.iter().take(3).map(|&k| (k, p[k])).collect();
    let (label, verdicts) = match origin {
        Origin::Reference { index: i, label, .. } => {
            let verdicts = views
                .iter()
                .filter_map(|v| {
                    let t = threshold(v);
                    let s = *v.scores.get(i)?;
                    Some(verdict(v, s, t, &v.scores, is_member, false))
                })
                .collect();
            (LabelUsed::True(label), verdicts)
        }
        Origin::File { known } => {
            let label = match (chosen, known) {
                (Some(k), _) if k < p.len() => LabelUsed::Chosen(k),
                (_, Known::Member { label, .. }) if label < p.len() => LabelUsed::True(label),
                _ => LabelUsed::Predicted(argmax(&released)),
            };
            let calibration = usize::from(matches!(label, LabelUsed::Predicted(_)));
            let verdicts = views
                .iter()
                .filter_map(|v| {
                    let s = v.upload_score(&released, label.class())?;
                    let pooled = v.pooled.is_some();
                    Some(verdict(v, s, threshold(v), &v.as_upload[calibration], is_member, pooled))
                })
                .collect();
            (label, verdicts)
        }
    };
    Ok(UploadAnalysis { top, label, verdicts })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of the student's that is not a training image.
    const FILE: Origin = Origin::File { known: Known::NotMember };

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
        let ctx = context(&chain, &target, 3, &member, &[], 0).unwrap();
        let released = release(&chain, &target, 3, &ctx, 0).unwrap();
        let naive = attacks(&m, &chain, &released, Attacker::Naive, 0).unwrap();
        let conf = &naive[0];
        let (tpr, fpr) = conf.rates(&member, conf.threshold);
        assert_eq!((tpr, fpr), (0.0, 0.0), "no tempered posterior reaches the naive 0.9");
        let adaptive = attacks(&m, &chain, &released, Attacker::Adaptive, 0).unwrap();
        let (tpr, fpr) = adaptive[0].rates(&member, adaptive[0].threshold);
        assert!(tpr - fpr > 0.3, "the adaptive threshold still separates: {tpr} {fpr}");
        let lira = adaptive.iter().find(|v| v.id == BrowserAttack::Lira).unwrap();
        assert!(lira.pooled.is_some(), "LiRA carries pooled statistics for uploads");
        assert_eq!(adaptive[0].as_upload[0], adaptive[0].scores, "true label = the card's");
    }

    #[test]
    fn loss_and_entropy_are_shown_on_a_log_scale_that_keeps_the_tails_apart() {
        let loss = |ce: f64| display(BrowserAttack::Loss, (-ce) as f32);
        assert!((loss(0.01) - 2.0).abs() < 1e-5);
        assert!(loss(1e-8) > loss(1e-4) + 3.9, "{} {}", loss(1e-8), loss(1e-4));
        assert!(loss(0.0).is_finite(), "a zero loss stays on the chart");
        assert!(loss(5.0) < loss(0.5), "monotone: a larger loss is less member-like");
        let m = display(BrowserAttack::ModifiedEntropy, -1e-3);
        assert!((m - 3.0).abs() < 1e-5);
        assert_eq!(display(BrowserAttack::Confidence, 1.25), 1.25);
    }

    fn views_of(target: &[f32], member: &[bool], labels: &[usize]) -> Vec<AttackView> {
        let (.., shadows) = world();
        let m = ModelData {
            classes: 3,
            labels,
            is_member: member,
            lira: None,
            shadows: Some(&shadows),
            thresholds: &[],
            references: &[],
        };
        // As the page does: the card scores the released logits, like an upload.
        let none = Chain::default();
        let released = release(&none, target, 3, &ModelContext::default(), 0).unwrap();
        attacks(&m, &none, &released, Attacker::Adaptive, 0).unwrap()
    }

    /// Uploads every reference example as a file (no label given) and counts how many
    /// non-members each attack flags.
    fn flagged_as_files(target: &[f32], member: &[bool], views: &[AttackView]) -> Vec<f64> {
        let ctx = ModelContext::default();
        let none = Chain::default();
        let non_members = member.iter().filter(|m| !**m).count() as f64;
        let mut flagged = vec![0f64; views.len()];
        for (i, z) in target.chunks(3).enumerate().filter(|(i, _)| !member[*i]) {
            let up =
                upload_analysis(&none, z, &ctx, (7, i), FILE, None, views, member, |v| v.threshold)
                    .unwrap();
            assert!(matches!(up.label, LabelUsed::Predicted(_)));
            for (f, v) in flagged.iter_mut().zip(&up.verdicts) {
                *f += f64::from(u8::from(v.flagged)) / non_members;
            }
        }
        flagged
    }

    #[test]
    fn a_file_verdict_states_the_false_positive_rate_its_own_procedure_has() {
        let (target, labels, member, _) = world();
        let views = views_of(&target, &member, &labels);
        let flagged = flagged_as_files(&target, &member, &views);
        let z = &target[..3];
        let up = upload_analysis(
            &Chain::default(),
            z,
            &ModelContext::default(),
            (7, 0),
            FILE,
            None,
            &views,
            &member,
            |v| v.threshold,
        )
        .unwrap();
        assert_eq!(up.verdicts.len(), views.len());
        for (v, f) in up.verdicts.iter().zip(&flagged) {
            assert!((v.fpr - f).abs() < 1e-9, "{:?}: stated {} measured {f}", v.attack, v.fpr);
        }
        let lira = up.verdicts.iter().find(|v| v.attack == BrowserAttack::Lira).unwrap();
        assert!(lira.pooled, "an upload's LiRA has no shadow models of its own");
    }

    #[test]
    fn a_chosen_label_scores_like_the_card_and_a_reference_example_gets_the_cards_verdict() {
        let (target, labels, member, _) = world();
        let views = views_of(&target, &member, &labels);
        let (ctx, none) = (ModelContext::default(), Chain::default());
        let i = 150; // a non-member
        let z = &target[3 * i..3 * i + 3];
        let chosen = Some(labels[i]);
        let t = |v: &AttackView| v.threshold;
        let up = upload_analysis(&none, z, &ctx, (7, 0), FILE, chosen, &views, &member, t).unwrap();
        assert_eq!(up.label, LabelUsed::Chosen(labels[i]));
        let card = &views[0];
        assert_eq!(up.verdicts[0].score, card.scores[i]);
        assert_eq!(up.verdicts[0].fpr, card.rates(&member, card.threshold).1);
        let origin = Origin::Reference { index: i, label: labels[i], member: member[i] };
        let r = upload_analysis(&none, z, &ctx, (7, 0), origin, None, &views, &member, t).unwrap();
        for (v, card) in r.verdicts.iter().zip(&views) {
            assert_eq!(v.score, card.scores[i]);
            let (tpr, fpr) = card.rates(&member, card.threshold);
            assert_eq!((v.tpr, v.fpr, v.pooled), (tpr, fpr, false), "{:?}", v.attack);
        }
    }

    #[test]
    fn a_recognised_training_image_is_scored_at_the_label_it_was_trained_with() {
        let (target, labels, member, _) = world();
        let views = views_of(&target, &member, &labels);
        let (ctx, none) = (ModelContext::default(), Chain::default());
        let t = |v: &AttackView| v.threshold;
        let i = 4; // a member whose label is not always the prediction
        let z = &target[3 * i..3 * i + 3];
        let known = Known::Member { label: labels[i], position: 9, distance: 4, mirrored: false };
        let file = Origin::File { known };
        let up = upload_analysis(&none, z, &ctx, (7, 0), file, None, &views, &member, t).unwrap();
        assert_eq!(up.label, LabelUsed::True(labels[i]));
        let chosen = Some(labels[i]);
        let same =
            upload_analysis(&none, z, &ctx, (7, 0), FILE, chosen, &views, &member, t).unwrap();
        assert_eq!(up.verdicts, same.verdicts, "scored like the true class picked by hand");
        let other = Some((labels[i] + 1) % 3);
        let picked =
            upload_analysis(&none, z, &ctx, (7, 0), file, other, &views, &member, t).unwrap();
        assert_eq!(picked.label, LabelUsed::Chosen((labels[i] + 1) % 3), "the student's pick wins");
    }

    #[test]
    fn recognise_names_the_training_image_and_nothing_else() {
        let input = InputSpec::new(3, 32, 32);
        let noise = |seed: usize| -> Vec<u8> {
            (0..input.numel()).map(|k| mia_core::rng::mix(seed as u64, k as u64) as u8).collect()
        };
        let pixels: Vec<u8> = (0..4).flat_map(noise).collect();
        let index = MembersIndex::build(&pixels, &[5, 6, 7, 8], input).unwrap();
        let known = recognise(&index, &noise(2), input);
        assert!(
            matches!(known, Known::Member { label: 7, position: 2, distance: 0, mirrored: false }),
            "{known:?}"
        );
        assert_eq!(recognise(&index, &noise(11), input), Known::NotMember);
        assert_eq!(recognise(&index, &[0; 5], input), Known::Unchecked, "a wrong size is unknown");
    }
}
