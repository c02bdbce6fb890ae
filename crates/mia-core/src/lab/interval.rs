//! How sure a lab number is. One member split and one set of shadows is one draw of a noisy
//! experiment: on 60 photos a LiRA AUC moves by ±0.1 between splits. A lab run trains the
//! target and S shadow models, each on a known subset of the same images with the same
//! recipe, so each of them can take its turn as the target with the other S as its reference
//! models (the LiRA paper's evaluation protocol, Carlini et al. 2022, Section VI: it costs
//! scoring only). Every attack then has S + 1 AUCs and TPRs instead of one, and reports their
//! mean with a 95 % interval.
//!
//! The draws are not independent: they share the images, and each model is a reference for the
//! others, so a t-interval over them is too narrow (measured on 60 images and 20 seeds: it held
//! the mean over all seeds for 15 of 20 runs with LiRA online; one seed's 0.886 lay outside
//! another's 0.806–0.869). The interval is a
//! grouped jackknife over the models instead: leaving out the target, or one complementary
//! pair of shadows, at a time (the models' only sources of randomness besides the images, which
//! stay fixed), recomputing every remaining draw with the remaining references, and taking
//! the spread of those leave-out means (Efron & Stein 1981; the jackknife of a mean over
//! draws that reuse each other). Its check is the one a class makes: the same images under
//! other seeds give means inside each other's intervals
//! (`rotated_intervals_from_other_seeds_agree`, and the browser test).

use serde::{Deserialize, Serialize};

use super::audit::{LabAttack, LabScores, ModelSignals};
use crate::CoreError;
use crate::metrics::roc;

/// A mean over draws with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Mean over the draws.
    pub mean: f64,
    /// Lower end of the 95 % interval of the mean.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Draws.
    pub draws: usize,
}

impl Interval {
    /// The mean of `values` with its two-sided 95 % Student-t interval; `None` for fewer than
    /// two values or a non-finite one.
    pub fn of(values: &[f64]) -> Option<Self> {
        let k = values.len();
        if k < 2 || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mean = values.iter().sum::<f64>() / k as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
        let half = t_975(k - 1) * (var / k as f64).sqrt();
        Some(Self { mean, lo: mean - half, hi: mean + half, draws: k })
    }

    /// The grouped-jackknife interval of `full` (the statistic on every group) from the
    /// statistic with each of `G` groups left out: variance (G − 1)/G · Σ (θ₋g − θ̄)², two-sided
    /// 95 % with Student's t at G − 1 degrees of freedom. `None` for fewer than two groups.
    pub fn jackknife(full: f64, leave_out: &[f64], draws: usize) -> Option<Self> {
        let g = leave_out.len();
        if g < 2 || !full.is_finite() || leave_out.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let bar = leave_out.iter().sum::<f64>() / g as f64;
        let var =
            (g - 1) as f64 / g as f64 * leave_out.iter().map(|v| (v - bar).powi(2)).sum::<f64>();
        let half = t_975(g - 1) * var.sqrt();
        Some(Self { mean: full, lo: full - half, hi: full + half, draws })
    }

    /// Where another run's mean on the same images lands 95 % of the time: the mean ± √2 times
    /// this interval's half-width (two runs' means differ by the noise of both, √2 times one
    /// mean's). What a class compares: a classmate's number with other seeds lands here, while
    /// only about 83 % of them land inside this interval of the mean itself (|Z| < 1.96/√2).
    pub fn rerun(&self) -> Self {
        let half = (self.hi - self.lo) / 2.0 * std::f64::consts::SQRT_2;
        Self { lo: self.mean - half, hi: self.mean + half, ..*self }
    }

    /// Whether `x` lies in the interval.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// Whether two intervals share a point.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// Whether the whole interval lies below `x` (e.g. an AUC below chance beyond its error).
    pub fn below(&self, x: f64) -> bool {
        self.hi < x
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: exact to 3 decimals from a
/// table up to 30, then the Cornish–Fisher expansion around the normal quantile.
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let (z, n) = (1.959_963_984_540_054_f64, df as f64);
            let (z3, z5) = (z.powi(3), z.powi(5));
            z + (z3 + z) / (4.0 * n) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// The difference `a − b` of two runs' mean AUCs with its 95 % interval: two runs on the
/// same images with the same splits (the same member set in draw `j` of both) differ in their
/// recipe only, so the jackknife of the difference of their leave-out means (the same groups
/// left out of both) cancels the noise the images and splits share. `None` unless both have
/// the same groups.
pub fn paired_difference(a: &AttackDraws, b: &AttackDraws) -> Option<Interval> {
    if a.leave_out.len() != b.leave_out.len() || a.aucs.len() != b.aucs.len() {
        return None;
    }
    let d: Vec<f64> = a.leave_out.iter().zip(&b.leave_out).map(|(x, y)| x - y).collect();
    Interval::jackknife(a.auc.mean - b.auc.mean, &d, a.aucs.len())
}

/// Every model of a lab run on the same images: `M` = target + shadows, the shadows in
/// complementary pairs (1, 2), (3, 4), … as [`crate::lab::shadow_keep`] draws them.
pub struct Models<'a> {
    /// Labels of the `n` images.
    pub labels: &'a [usize],
    /// Classes C.
    pub classes: usize,
    /// `[M × n × C]` logits, the student's target first.
    pub logits: &'a [f32],
    /// `[M × n]`: whether model `m` trained on image `i` (the target's: its members).
    pub keep: &'a [bool],
}

/// One attack over every draw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackDraws {
    /// The attack.
    pub attack: LabAttack,
    /// AUC of each draw, the student's own target first.
    pub aucs: Vec<f64>,
    /// TPR at FPR ≤ [`Self::fpr`] of each draw.
    pub tprs: Vec<f64>,
    /// Mean AUC and its interval.
    pub auc: Interval,
    /// Mean TPR at [`Self::fpr`] and its interval.
    pub tpr: Interval,
    /// The smallest FPR every draw can measure: one over the fewest held-out images of any
    /// draw.
    pub fpr: f64,
    /// The mean AUC with each jackknife group (the target, then each pair of shadows) left out.
    pub leave_out: Vec<f64>,
}

impl AttackDraws {
    /// An attack's draws from its per-draw AUCs and TPRs at `fpr` and the means with each
    /// jackknife group left out (`leave_out`: (AUC, TPR) per group); `None` with fewer than two
    /// groups or a non-finite value.
    pub fn from_parts(
        attack: LabAttack,
        (aucs, tprs): (Vec<f64>, Vec<f64>),
        fpr: f64,
        leave_out: &[(f64, f64)],
    ) -> Option<Self> {
        let (oa, ot): (Vec<f64>, Vec<f64>) = leave_out.iter().copied().unzip();
        let auc = Interval::jackknife(mean(&aucs), &oa, aucs.len())?;
        let tpr = Interval::jackknife(mean(&tprs), &ot, tprs.len())?;
        Some(Self { attack, aucs, tprs, auc, tpr, fpr, leave_out: oa })
    }
}

/// Each model of `models` in turn as the target, the others as its reference models: every
/// attack's AUC and TPR at the smallest measurable FPR per draw, with their means and 95 %
/// grouped-jackknife intervals. Needs at least 7 models (the target and three pairs of
/// shadows, so that every draw of every leave-out keeps four references, enough for LiRA's
/// IN and OUT spreads), and members and held-out images in every draw.
pub fn rotate(models: &Models<'_>) -> Result<Vec<AttackDraws>, CoreError> {
    let (n, c) = (models.labels.len(), models.classes);
    let m = models.keep.len().checked_div(n).unwrap_or(0);
    if m < 7 || models.keep.len() != m * n || models.logits.len() != m * n * c {
        return Err(CoreError::Shape(format!(
            "rotating the target needs at least 7 models with [M × n × C] logits and [M × n] \
             flags (n = {n}, C = {c}, {} logits, {} flags)",
            models.logits.len(),
            models.keep.len()
        )));
    }
    let outs = (0..m).map(|j| models.keep[j * n..(j + 1) * n].iter().filter(|k| !**k).count());
    let fewest = outs.min().unwrap_or(0);
    if fewest == 0 || fewest == n {
        return Err(CoreError::Shape("every model needs members and held-out images".into()));
    }
    let fpr = 1.0 / fewest as f64;
    let all: Vec<usize> = (0..m).collect();
    let signals: Vec<ModelSignals> =
        models.logits.chunks(n * c).map(|l| ModelSignals::of(l, models.labels, c)).collect();
    let models = &Rotation { models, signals };
    let full = draws_over(models, &all, fpr)?;
    let groups = jackknife_groups(m);
    let mut leave_out: Vec<Vec<(f64, f64)>> = vec![Vec::new(); LabAttack::ALL.len()];
    for g in &groups {
        let kept: Vec<usize> = all.iter().copied().filter(|j| !g.contains(j)).collect();
        for (slot, (_, aucs, tprs)) in leave_out.iter_mut().zip(draws_over(models, &kept, fpr)?) {
            slot.push((mean(&aucs), mean(&tprs)));
        }
    }
    full.into_iter()
        .zip(leave_out)
        .map(|((attack, aucs, tprs), out)| {
            AttackDraws::from_parts(attack, (aucs, tprs), fpr, &out)
                .ok_or_else(|| CoreError::Shape("a draw gave a non-finite AUC".into()))
        })
        .collect()
}

/// The jackknife's groups of models: the target alone, then each complementary pair of
/// shadows (a last unpaired shadow alone).
fn jackknife_groups(m: usize) -> Vec<Vec<usize>> {
    std::iter::once(vec![0])
        .chain((1..m).step_by(2).map(|j| (j..(j + 2).min(m)).collect()))
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// An attack's AUC and TPR in each draw.
type PerDraw = (LabAttack, Vec<f64>, Vec<f64>);

/// The models of a rotation and each one's signals, computed once for all its draws.
struct Rotation<'a> {
    models: &'a Models<'a>,
    signals: Vec<ModelSignals>,
}

/// Each model of `subset` in turn as the target with the rest of `subset` as its references:
/// per attack, the AUC and TPR at `fpr` of every draw.
fn draws_over(r: &Rotation<'_>, subset: &[usize], fpr: f64) -> Result<Vec<PerDraw>, CoreError> {
    let n = r.models.labels.len();
    let mut per_attack: Vec<PerDraw> =
        LabAttack::ALL.iter().map(|&a| (a, Vec::new(), Vec::new())).collect();
    for &j in subset {
        let member = &r.models.keep[j * n..(j + 1) * n];
        let rest: Vec<usize> = subset.iter().copied().filter(|&k| k != j).collect();
        let shadows: Vec<&ModelSignals> = rest.iter().map(|&k| &r.signals[k]).collect();
        let keep: Vec<bool> =
            rest.iter().flat_map(|&k| &r.models.keep[k * n..(k + 1) * n]).copied().collect();
        for (attack, scores) in LabScores::from_signals(&r.signals[j], &shadows, &keep)?.scores {
            let curve = roc(&scores, member)?;
            if let Some(slot) = per_attack.iter_mut().find(|p| p.0 == attack) {
                slot.1.push(curve.auc());
                slot.2.push(curve.tpr_at_fpr(fpr));
            }
        }
    }
    Ok(per_attack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::audit::Split;
    use crate::lab::shadow_keep;

    #[test]
    fn the_interval_is_students_t_around_the_mean() {
        let i = Interval::of(&[0.5, 0.7]).unwrap();
        assert!((i.mean - 0.6).abs() < 1e-12);
        // s = 0.1414, s/√2 = 0.1, t(1) = 12.706.
        assert!((i.hi - i.mean - 1.2706).abs() < 1e-9, "{i:?}");
        assert!(Interval::of(&[0.5]).is_none() && Interval::of(&[0.5, f64::NAN]).is_none());
        let flat = Interval::of(&[0.6; 5]).unwrap();
        assert_eq!((flat.lo, flat.hi, flat.draws), (0.6, 0.6, 5));
        assert!(flat.contains(0.6) && !flat.below(0.6) && flat.below(0.61));
        assert!(i.overlaps(&flat));
    }

    #[test]
    fn the_jackknife_spreads_the_leave_out_means() {
        // θ̄ = 2, variance 2/3 · (1 + 0 + 1) = 4/3, t(2) = 4.303.
        let i = Interval::jackknife(2.0, &[1.0, 2.0, 3.0], 7).unwrap();
        assert!((i.hi - 2.0 - 4.303 * (4.0f64 / 3.0).sqrt()).abs() < 1e-9, "{i:?}");
        assert_eq!((i.mean, i.draws), (2.0, 7));
        assert!(Interval::jackknife(2.0, &[1.0], 7).is_none());
    }

    fn draws_with(aucs: &[f64], leave_out: &[f64]) -> AttackDraws {
        let out: Vec<(f64, f64)> = leave_out.iter().map(|&v| (v, v)).collect();
        let both = (aucs.to_vec(), aucs.to_vec());
        AttackDraws::from_parts(LabAttack::LiraOnline, both, 0.05, &out).unwrap()
    }

    #[test]
    fn a_paired_difference_cancels_what_two_runs_share() {
        // Both runs move together from group to group; one sits 0.05 above the other.
        let out = [0.60, 0.70, 0.55, 0.66, 0.62];
        let a = draws_with(&[0.62, 0.64, 0.63], &out);
        let shifted: Vec<f64> = out.iter().map(|x| x - 0.05).collect();
        let b = draws_with(&[0.57, 0.59, 0.58], &shifted);
        let d = paired_difference(&a, &b).unwrap();
        assert!((d.mean - 0.05).abs() < 1e-12 && d.lo > 0.0, "{d:?}");
        // Unpaired, their intervals overlap: the shared spread hides the difference.
        assert!(a.auc.overlaps(&b.auc));
        let fewer = draws_with(&[0.57, 0.59], &shifted[..4]);
        assert!(paired_difference(&a, &fewer).is_none());
    }

    #[test]
    fn t_quantiles_meet_the_normal_one() {
        assert!((t_975(30) - 2.042).abs() < 1e-9);
        assert!((t_975(31) - 2.040).abs() < 2e-3, "{}", t_975(31));
        assert!((t_975(120) - 1.980).abs() < 2e-3, "{}", t_975(120));
        assert!((t_975(100_000) - 1.960).abs() < 1e-3);
        assert!(t_975(5) > t_975(6) && t_975(0).is_infinite());
    }

    /// `m` models on `n` images of 2 classes: each is surer of the images it trained on by
    /// `gap`, plus noise that differs per model.
    fn world(n: usize, m: usize, gap: f32, seed: u64) -> (Vec<usize>, Vec<f32>, Vec<bool>) {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let keep = shadow_keep(n, m, seed);
        let logits = (0..m * n)
            .flat_map(|j| {
                let sure = 1.0 + if keep[j] { gap } else { 0.0 } + crate::rng::normal(&mut rng);
                if labels[j % n] == 0 { [sure, 0.0] } else { [0.0, sure] }
            })
            .collect();
        (labels, logits, keep)
    }

    #[test]
    fn every_model_takes_its_turn_and_a_leak_shows_in_every_draw() {
        let (labels, logits, keep) = world(40, 9, 3.0, 1);
        let models = Models { labels: &labels, classes: 2, logits: &logits, keep: &keep };
        let draws = rotate(&models).unwrap();
        assert_eq!(draws.len(), LabAttack::ALL.len());
        for d in &draws {
            assert_eq!((d.aucs.len(), d.tprs.len(), d.auc.draws), (9, 9, 9));
            assert!(d.auc.lo > 0.75, "{:?}: {:?}", d.attack, d.auc);
            assert!((d.fpr - 1.0 / 20.0).abs() < 1e-12, "20 held out in every draw");
        }
        // Draw 0 is the first model as the target with the others as references.
        let split = Split {
            labels: &labels,
            classes: 2,
            target: &logits[..80],
            shadows: &logits[80..],
            keep: &keep[40..],
        };
        let first = LabScores::compute(&split).unwrap().aucs(&keep[..40]).unwrap();
        for (d, (a, auc)) in draws.iter().zip(first) {
            assert_eq!((d.attack, d.aucs[0]), (a, auc));
        }
        // Draw 4 from each model's signals computed once: the same as scoring its logits with
        // the others', model 0 among them, in their order.
        let rest = |v: &[f32], w: usize| [&v[..4 * w], &v[5 * w..]].concat();
        let (shadows, rest_keep) = (rest(&logits, 80), [&keep[..160], &keep[200..]].concat());
        let split =
            Split { target: &logits[320..400], shadows: &shadows, keep: &rest_keep, ..split };
        let fifth = LabScores::compute(&split).unwrap().aucs(&keep[160..200]).unwrap();
        for (d, (a, auc)) in draws.iter().zip(fifth) {
            assert_eq!((d.attack, d.aucs[4]), (a, auc));
        }
    }

    #[test]
    fn no_leak_gives_intervals_around_chance() {
        let (labels, logits, keep) = world(60, 17, 0.0, 2);
        let models = Models { labels: &labels, classes: 2, logits: &logits, keep: &keep };
        for d in rotate(&models).unwrap() {
            assert!(d.auc.lo < 0.5 + 0.1 && d.auc.hi > 0.5 - 0.1, "{:?}: {:?}", d.attack, d.auc);
        }
    }

    #[test]
    fn too_few_models_or_mismatched_shapes_are_errors() {
        let (labels, logits, keep) = world(10, 7, 1.0, 3);
        let ok = Models { labels: &labels, classes: 2, logits: &logits, keep: &keep };
        assert!(rotate(&ok).is_ok(), "the target and three pairs");
        let six = Models { labels: &labels, classes: 2, logits: &logits[..120], keep: &keep[..60] };
        assert!(rotate(&six).is_err());
        let bad = Models { labels: &labels, classes: 2, logits: &logits[..60], keep: &keep };
        assert!(rotate(&bad).is_err());
    }

    #[test]
    fn the_jackknife_leaves_out_the_target_then_each_pair() {
        assert_eq!(jackknife_groups(6), vec![vec![0], vec![1, 2], vec![3, 4], vec![5]]);
        assert_eq!(jackknife_groups(5), vec![vec![0], vec![1, 2], vec![3, 4]]);
    }
}
