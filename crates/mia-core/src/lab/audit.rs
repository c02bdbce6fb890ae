//! The lab's attacks on the student's images: who is a member, which images each shadow head
//! trains on, and the scores of every attack from the target's and the shadows' logits.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::lira::{self, Estimator, OfflineForm, SignalShape};
use crate::metrics::roc;
use crate::posterior::softmax;
use crate::rng::mix;
use crate::scores::ScoreKind;
use crate::shadows::keep_mask;

/// Which images are members, by class: within each class, a seeded random `fraction`
/// (rounded) of its images. Re-drawing with another seed gives another split.
pub fn split_members(labels: &[usize], fraction: f64, seed: u64) -> Result<Vec<bool>, CoreError> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(CoreError::Parameter(format!("member fraction {fraction} is not in [0, 1]")));
    }
    let mut member = vec![false; labels.len()];
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    for c in 0..classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, c as u64)));
        let k = (idx.len() as f64 * fraction).round() as usize;
        idx.iter().take(k).for_each(|&i| member[i] = true);
    }
    Ok(member)
}

/// Which images shadow `s` of `shadows` trains on (`keep[s*n + i]`): complementary pairs of
/// random halves ([`crate::shadows::keep_mask`], the draw `mia shadows` uses), so with an even
/// count every image is IN for exactly half of the shadows.
pub fn shadow_keep(n: usize, shadows: usize, seed: u64) -> Vec<bool> {
    (0..shadows).flat_map(|s| keep_mask(seed, s, n, n / 2, true)).collect()
}

/// Share of a head's training images early stopping sets aside to validate on.
pub const VALIDATION_SHARE: f64 = 0.2;

/// How many of `len` training images [`validation_split`] sets aside.
pub(crate) fn validation_size(len: usize) -> usize {
    if len < 3 {
        return 0;
    }
    ((len as f64 * VALIDATION_SHARE).round() as usize).clamp(1, len - 2)
}

/// Splits a head's training images `rows` into those it trains on and, for early stopping,
/// a seeded [`VALIDATION_SHARE`] it only validates on (at least one, and at least two left to
/// train on; fewer than three images give no validation set).
pub fn validation_split(rows: &[usize], seed: u64) -> (Vec<usize>, Vec<usize>) {
    let k = validation_size(rows.len());
    if k == 0 {
        return (rows.to_vec(), Vec::new());
    }
    let mut order = rows.to_vec();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, 0x7A11)));
    let val = order.split_off(order.len() - k);
    order.sort_unstable();
    let mut val = val;
    val.sort_unstable();
    (order, val)
}

/// An attack the lab runs on the student's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabAttack {
    /// Cross-entropy on the true class (negated).
    Loss,
    /// Log-odds of the true class's probability.
    Confidence,
    /// Song & Mittal's modified entropy (negated).
    ModifiedEntropy,
    /// Online LiRA (IN and OUT shadows, fixed variance).
    LiraOnline,
    /// Offline LiRA (OUT shadows only, one-sided).
    LiraOffline,
    /// Online RMIA (γ = 1, the other images as the population).
    RmiaOnline,
}

impl LabAttack {
    /// Every attack, in display order.
    pub const ALL: [Self; 6] = [
        Self::Loss,
        Self::Confidence,
        Self::ModifiedEntropy,
        Self::LiraOnline,
        Self::LiraOffline,
        Self::RmiaOnline,
    ];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Loss => "loss",
            Self::Confidence => "confidence",
            Self::ModifiedEntropy => "modified-entropy",
            Self::LiraOnline => "lira-online",
            Self::LiraOffline => "lira-offline",
            Self::RmiaOnline => "rmia-online",
        }
    }
}

/// The logits an audit needs: the target's and every shadow's on all `n` images.
pub struct Split<'a> {
    /// Labels of the images.
    pub labels: &'a [usize],
    /// Classes C.
    pub classes: usize,
    /// `[n × C]` target logits.
    pub target: &'a [f32],
    /// `[S × n × C]` shadow logits.
    pub shadows: &'a [f32],
    /// `[S × n]`: whether shadow `s` trained on image `i`.
    pub keep: &'a [bool],
}

/// Every attack's scores on the student's images (higher = member).
#[derive(Debug, Clone, PartialEq)]
pub struct LabScores {
    /// (attack, scores of the `n` images).
    pub scores: Vec<(LabAttack, Vec<f32>)>,
}

/// What every attack reads of one model's logits on the `n` images, computed once per model
/// however many draws reuse it (the intervals score each model as the target against the
/// others, hundreds of times per run).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelSignals {
    /// LiRA's logit-scaled confidence `φ` of each image.
    phi: Vec<f32>,
    /// RMIA's true-class probability of each image.
    true_p: Vec<f32>,
    /// Loss, confidence and modified-entropy scores of each image.
    kinds: [Vec<f32>; 3],
}

/// The score kinds of [`ModelSignals::kinds`], in their attacks' order.
const KINDS: [(LabAttack, ScoreKind); 3] = [
    (LabAttack::Loss, ScoreKind::Loss),
    (LabAttack::Confidence, ScoreKind::Confidence),
    (LabAttack::ModifiedEntropy, ScoreKind::ModifiedEntropy),
];

impl ModelSignals {
    /// The signals of `[n × C]` logits (rows of `classes`) with `labels`.
    pub(crate) fn of(logits: &[f32], labels: &[usize], classes: usize) -> Self {
        let rows = || logits.chunks(classes).zip(labels);
        Self {
            phi: rows().map(|(z, &y)| lira::logit_confidence(z, y)).collect(),
            true_p: rows().map(|(z, &y)| softmax(z)[y]).collect(),
            kinds: KINDS.map(|(_, k)| rows().map(|(z, &y)| k.score(z, y)).collect()),
        }
    }
}

impl LabScores {
    /// Scores `split` with every attack.
    pub fn compute(split: &Split<'_>) -> Result<Self, CoreError> {
        let (n, c) = (split.labels.len(), split.classes);
        let s = split.shadows.len().checked_div(n * c).unwrap_or(0);
        if c < 2
            || split.target.len() != n * c
            || split.shadows.len() != s * n * c
            || split.keep.len() != s * n
            || s < 2
            || split.labels.iter().any(|&y| y >= c)
        {
            return Err(CoreError::Shape(format!(
                "a lab audit needs [n × C] target logits, [S × n × C] shadow logits and [S × n] keep flags with S ≥ 2 (n = {n}, C = {c}, {} shadow values, {} keep flags)",
                split.shadows.len(),
                split.keep.len()
            )));
        }
        let target = ModelSignals::of(split.target, split.labels, c);
        let shadows: Vec<ModelSignals> =
            split.shadows.chunks(n * c).map(|l| ModelSignals::of(l, split.labels, c)).collect();
        Self::from_signals(&target, &shadows.iter().collect::<Vec<_>>(), split.keep)
    }

    /// Scores a target from its and its shadows' [`ModelSignals`] (`keep`: `[S × n]`, whether
    /// shadow `s` trained on image `i`): the same scores as [`Self::compute`] on their logits.
    pub(crate) fn from_signals(
        target: &ModelSignals,
        shadows: &[&ModelSignals],
        keep: &[bool],
    ) -> Result<Self, CoreError> {
        let (n, s) = (target.phi.len(), shadows.len());
        if s < 2 || keep.len() != s * n || shadows.iter().any(|m| m.phi.len() != n) {
            return Err(CoreError::Shape(format!(
                "a lab audit needs S ≥ 2 shadows on the target's {n} images and [S × n] keep flags ({s} shadows, {} keep flags)",
                keep.len()
            )));
        }
        let phi_s: Vec<f32> = shadows.iter().flat_map(|m| m.phi.iter().copied()).collect();
        let shape = SignalShape { models: s, examples: n, queries: 1 };
        let est = Estimator::default();
        let (gin, gout) = lira::fit_online(&phi_s, keep, shape, est)?;
        let gout_offline = lira::fit(&phi_s, keep, shape, false, est)?;
        let mut scores: Vec<(LabAttack, Vec<f32>)> =
            KINDS.iter().zip(&target.kinds).map(|((a, _), v)| (*a, v.clone())).collect();
        scores.extend([
            (LabAttack::LiraOnline, lira::online(&target.phi, &gin, &gout)?),
            (
                LabAttack::LiraOffline,
                lira::offline(&target.phi, &gout_offline, OfflineForm::OneSidedCdf)?,
            ),
            (LabAttack::RmiaOnline, rmia_online(target, shadows)?),
        ]);
        Ok(Self { scores })
    }

    /// Each attack's AUC against `member`.
    pub fn aucs(&self, member: &[bool]) -> Result<Vec<(LabAttack, f64)>, CoreError> {
        self.scores.iter().map(|(a, s)| Ok((*a, roc(s, member)?.auc()))).collect()
    }
}

/// Label smoothing's fingerprint on a network that fits its training images: trained to its
/// optimum, every training image's true-class probability sits at the smoothed target
/// `1 − ε + ε/C`, while other images land anywhere. Returns the share of the images with
/// `flag[i] == want` whose true-class probability lies within `tol` of that target
/// (`[n × C]` logits).
pub fn at_smoothing_target(
    logits: &[f32],
    labels: &[usize],
    classes: usize,
    epsilon: f32,
    (flag, want): (&[bool], bool),
    tol: f64,
) -> f64 {
    let target = 1.0 - f64::from(epsilon) + f64::from(epsilon) / classes as f64;
    let rows: Vec<usize> = (0..labels.len()).filter(|&i| flag.get(i) == Some(&want)).collect();
    let near = rows
        .iter()
        .filter(|&&i| {
            let z = &logits[i * classes..(i + 1) * classes];
            (f64::from(softmax(z)[labels[i]]) - target).abs() <= tol
        })
        .count();
    near as f64 / rows.len().max(1) as f64
}

/// Online RMIA with γ = 1: the share of the *other* images z whose likelihood ratio x beats.
fn rmia_online(target: &ModelSignals, shadows: &[&ModelSignals]) -> Result<Vec<f32>, CoreError> {
    let (n, s) = (target.true_p.len(), shadows.len());
    let prior: Vec<f32> =
        (0..n).map(|i| shadows.iter().map(|m| m.true_p[i]).sum::<f32>() / s as f32).collect();
    let all = crate::rmia::scores(&target.true_p, &prior, &target.true_p, &prior, 1.0)?;
    // With γ = 1 every image counts itself as one of the z it beats: take it out.
    let others = (n.max(2) - 1) as f32;
    Ok(all.iter().map(|&f| ((f * n as f32 - 1.0) / others).max(0.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_sets_a_seeded_fifth_aside() {
        let rows: Vec<usize> = (10..30).collect();
        let (train, val) = validation_split(&rows, 4);
        assert_eq!((train.len(), val.len()), (16, 4));
        assert!(val.iter().all(|v| rows.contains(v) && !train.contains(v)));
        assert_eq!(validation_split(&rows, 4), (train.clone(), val.clone()));
        assert_ne!(validation_split(&rows, 5).1, val, "another seed, another draw");
        assert_eq!(validation_split(&[1, 2, 3, 4], 0).1.len(), 1);
        assert_eq!(validation_split(&[1, 2], 0), (vec![1, 2], vec![]));
    }

    #[test]
    fn the_smoothing_fingerprint_counts_images_at_the_smoothed_target() {
        // ε = 0.1, C = 2: the target is 0.95, a logit gap of ln 19.
        let gap = 19f32.ln();
        let logits = [gap, 0.0, 0.0, gap, 4.0, 0.0, 0.0, 0.5];
        let labels = [0, 1, 0, 1];
        let member = [true, true, false, false];
        let share = |want| at_smoothing_target(&logits, &labels, 2, 0.1, (&member, want), 0.005);
        assert_eq!((share(true), share(false)), (1.0, 0.0));
    }

    #[test]
    fn members_are_a_seeded_share_of_each_class() {
        let labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
        let m = split_members(&labels, 0.5, 3).unwrap();
        assert_eq!(m[..4].iter().filter(|x| **x).count(), 2);
        assert_eq!(m[4..].iter().filter(|x| **x).count(), 3);
        assert_eq!(m, split_members(&labels, 0.5, 3).unwrap(), "seeded");
        assert_ne!(m, split_members(&labels, 0.5, 4).unwrap(), "re-drawable");
        assert!(split_members(&labels, 1.5, 0).is_err());
    }

    #[test]
    fn shadow_pairs_are_complementary_halves() {
        let (n, s) = (9, 4);
        let keep = shadow_keep(n, s, 1);
        for i in 0..n {
            let ins = (0..s).filter(|&m| keep[m * n + i]).count();
            assert_eq!(ins, 2, "image {i} is IN for half of the shadows");
            assert_ne!(keep[i], keep[n + i]);
        }
        assert_eq!(keep[..n].iter().filter(|k| **k).count(), n / 2);
    }

    #[test]
    fn scores_rank_a_memorised_image_above_an_unseen_one() {
        // 2 classes, 4 images; shadows and target are surer of the images they trained on.
        let (n, c, s) = (4usize, 2usize, 4usize);
        let labels = [0, 1, 0, 1];
        let member = [true, true, false, false];
        let logit = |y: usize, sure: f32| if y == 0 { [sure, 0.0] } else { [0.0, sure] };
        let target: Vec<f32> =
            (0..n).flat_map(|i| logit(labels[i], if member[i] { 4.0 } else { 1.0 })).collect();
        let keep = shadow_keep(n, s, 0);
        let shadows: Vec<f32> = (0..s * n)
            .flat_map(|j| {
                logit(
                    labels[j % n],
                    if keep[j] { 4.0 + 0.1 * (j % 3) as f32 } else { 1.0 + 0.1 * (j % 2) as f32 },
                )
            })
            .collect();
        let split =
            Split { labels: &labels, classes: c, target: &target, shadows: &shadows, keep: &keep };
        let scores = LabScores::compute(&split).unwrap();
        for (attack, auc) in scores.aucs(&member).unwrap() {
            assert_eq!(auc, 1.0, "{attack:?}");
        }
        let bad = Split { keep: &keep[..4], ..split };
        assert!(LabScores::compute(&bad).is_err());
    }
}
