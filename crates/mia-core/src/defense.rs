//! Training-time defenses. Each is a loss: `loss(logits, labels, epoch) -> scalar`, the same
//! interface as MLS-Bench, so a new defense is one file implementing [`TrainingDefense`].
//! Defenses that are not losses (dropout, weight decay, early stopping) are training options
//! of the native trainer (`mia_train::TrainConfig`) and of the lab's head
//! ([`crate::lab::HeadConfig`]). This module is wasm-safe: the page trains with the same losses.
//!
//! - ERM: plain cross-entropy.
//! - Label smoothing (Szegedy et al., CVPR 2016): targets `(1-ε)·onehot + ε/C` ("uniform"
//!   form, as in PyTorch), or `1-ε` on the true class and `ε/(C-1)` elsewhere ("other" form).
//! - Confidence penalty (Pereyra et al., ICLR 2017 workshop): `CE − β·H(p)`.
//! - RelaxLoss (Chen, Yu & Fritz, ICLR 2022, "RelaxLoss: Defending Membership Inference
//!   Attacks without Losing Utility", Algorithm 1): keep the mean training loss near a target
//!   α. When the batch loss is at least α, plain gradient descent. Below α, alternate by epoch:
//!   even epochs take a gradient *ascent* step (`|CE − α|`), odd epochs flatten the posterior
//!   of correctly classified examples towards a soft target that keeps the true-class
//!   probability `p_y` (clamped to `upper`) and spreads `1 − p_y` evenly over the other
//!   classes; misclassified examples keep plain cross-entropy. This is the CIFAR variant. The
//!   tabular variant (used in the paper's Purchase/Texas experiments) drops the flattening
//!   step: `|CE − α|` on every step.
//! - HAMP's training (Chen & Pattabiraman, NDSS 2024): `CE` against a high-entropy soft label
//!   (true class at the largest `p` whose label entropy is at least `γ·ln C`) `− α·H(p)`.
//! - PPB (Yuan & Zhang, USENIX Security 2022): `CE + λ·KL` between the descending-sorted
//!   posteriors of the two halves of each batch, example `i` paired with `i + b/2`.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A training-time defense expressed as a loss.
pub trait TrainingDefense: Send + Sync {
    /// Short name, e.g. `relaxloss`.
    fn name(&self) -> &str;
    /// Scalar loss (shape `[1]`) for `[batch, classes]` logits and `[batch]` labels at `epoch`
    /// (0-based).
    fn loss(&self, logits: Tensor<2>, labels: Tensor<1, Int>, epoch: usize) -> Tensor<1>;
}

/// Per-example cross-entropy, `[batch]`.
pub fn cross_entropy_per_example(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let logp = log_softmax(logits, 1); // [b, c]
    logp.gather(1, labels.reshape([b, 1])).reshape([b]).neg() // [b]
}

/// One-hot `[batch, classes]` floats of `[batch]` labels, built on the device without
/// reading the labels back (burn's `one_hot` checks them on the host, which the browser's
/// WebGPU backend cannot do synchronously).
pub fn one_hot(labels: Tensor<1, Int>, classes: usize) -> Tensor<2> {
    let [b] = labels.dims();
    let device = labels.device();
    let ids = Tensor::<1, Int>::arange(0..classes as i64, &device).reshape([1, classes]);
    labels.reshape([b, 1]).expand([b, classes]).equal(ids.expand([b, classes])).float()
}

/// Per-example cross-entropy against soft targets, `[batch]`.
pub fn soft_cross_entropy_per_example(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let [b, _] = logits.dims();
    (log_softmax(logits, 1) * targets).sum_dim(1).reshape([b]).neg() // [b]
}

/// Empirical risk minimisation: mean cross-entropy.
pub struct Erm;

impl TrainingDefense for Erm {
    fn name(&self) -> &str {
        "erm"
    }
    fn loss(&self, logits: Tensor<2>, labels: Tensor<1, Int>, _epoch: usize) -> Tensor<1> {
        cross_entropy_per_example(logits, labels).mean()
    }
}

/// How label smoothing spreads ε.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SmoothingForm {
    /// `(1-ε)·onehot + ε/C` (Szegedy et al.; PyTorch's `label_smoothing`).
    #[default]
    Uniform,
    /// `1-ε` on the true class, `ε/(C-1)` on each other class.
    Other,
}

/// Label smoothing.
pub struct LabelSmoothing {
    /// ε.
    pub epsilon: f32,
    /// Form.
    pub form: SmoothingForm,
}

impl TrainingDefense for LabelSmoothing {
    fn name(&self) -> &str {
        "label-smoothing"
    }
    fn loss(&self, logits: Tensor<2>, labels: Tensor<1, Int>, _epoch: usize) -> Tensor<1> {
        let [_, c] = logits.dims();
        let onehot = one_hot(labels, c); // [b, c]
        let targets = match self.form {
            SmoothingForm::Uniform => onehot * (1.0 - self.epsilon) + self.epsilon / c as f32,
            SmoothingForm::Other => {
                let off = self.epsilon / (c as f32 - 1.0);
                onehot * (1.0 - self.epsilon - off) + off
            }
        };
        soft_cross_entropy_per_example(logits, targets).mean()
    }
}

/// Confidence penalty: cross-entropy minus β times the output entropy.
pub struct ConfidencePenalty {
    /// β.
    pub beta: f32,
}

impl TrainingDefense for ConfidencePenalty {
    fn name(&self) -> &str {
        "confidence-penalty"
    }
    fn loss(&self, logits: Tensor<2>, labels: Tensor<1, Int>, _epoch: usize) -> Tensor<1> {
        let [b, _] = logits.dims();
        let ce = cross_entropy_per_example(logits.clone(), labels); // [b]
        let logp = log_softmax(logits, 1); // [b, c]
        let entropy = (logp.clone().exp() * logp).sum_dim(1).reshape([b]).neg(); // [b]
        (ce - entropy * self.beta).mean()
    }
}

/// PPB, pair-based posterior balancing (Yuan & Zhang, USENIX Security 2022, the defense of
/// mia_prune): cross-entropy plus λ·KL(p_j ‖ p_i) between the *sorted* posteriors of paired
/// examples, pairing example `i` of the first half of the batch with example `i + b/2` of the
/// second (the KL divided by the b/2 pairs, PyTorch's `batchmean`). Sorting makes the pairs'
/// confidence profiles alike whatever their classes, so members stop standing out by how
/// peaked their posteriors are. An odd batch leaves its last example unpaired; a batch of one
/// is plain cross-entropy.
struct Ppb {
    lambda: f32,
}

impl TrainingDefense for Ppb {
    fn name(&self) -> &str {
        "ppb"
    }
    fn loss(&self, logits: Tensor<2>, labels: Tensor<1, Int>, _epoch: usize) -> Tensor<1> {
        let [b, c] = logits.dims();
        let ce = cross_entropy_per_example(logits.clone(), labels).mean(); // [1]
        let half = b / 2;
        if half == 0 {
            return ce;
        }
        let ranked = logits.sort_descending(1); // [b, c], each row descending
        let logq = log_softmax(ranked.clone().slice([0..half, 0..c]), 1); // [half, c]
        let logp = log_softmax(ranked.slice([half..2 * half, 0..c]), 1); // [half, c]
        let kl = (logp.clone().exp() * (logp - logq)).sum() / half as f32; // [1]
        ce + kl * self.lambda
    }
}

/// HAMP's training half (Chen & Pattabiraman, NDSS 2024): high-entropy soft labels, the true
/// class at probability `p` and the rest spread evenly, with `p` the largest value whose label
/// entropy reaches `γ·ln C`, and an entropy regulariser: `CE(soft) − α·H(softmax(z))`.
/// Cross-entropy against the soft label equals the paper's KL term up to a constant. Its
/// output modification is the `hamp` inference-time defense.
struct HampTraining {
    gamma: f32,
    alpha: f32,
}

/// The true-class probability of HAMP's soft label over `classes` classes: the largest
/// `p ∈ [1/C, 1]` with `H(p, (1−p)/(C−1), …) ≥ γ·ln C` (bisection; the entropy falls as `p`
/// grows).
pub fn hamp_true_class_probability(gamma: f64, classes: usize) -> f64 {
    let c = classes.max(2) as f64;
    let entropy = |p: f64| {
        let q = (1.0 - p) / (c - 1.0);
        let term = |x: f64| if x > 0.0 { -x * x.ln() } else { 0.0 };
        term(p) + (c - 1.0) * term(q)
    };
    let target = gamma * c.ln();
    let (mut lo, mut hi) = (1.0 / c, 1.0);
    if entropy(hi) >= target {
        return hi;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if entropy(mid) >= target { lo = mid } else { hi = mid }
    }
    lo
}

impl TrainingDefense for HampTraining {
    fn name(&self) -> &str {
        "hamp"
    }
    fn loss(&self, logits: Tensor<2>, labels: Tensor<1, Int>, _epoch: usize) -> Tensor<1> {
        let [b, c] = logits.dims();
        let p = hamp_true_class_probability(f64::from(self.gamma), c) as f32;
        let rest = (1.0 - p) / (c - 1).max(1) as f32;
        let targets = one_hot(labels, c) * (p - rest) + rest; // [b, c]
        let ce = soft_cross_entropy_per_example(logits.clone(), targets); // [b]
        let logp = log_softmax(logits, 1); // [b, c]
        let entropy = (logp.clone().exp() * logp).sum_dim(1).reshape([b]).neg(); // [b]
        (ce - entropy * self.alpha).mean()
    }
}

/// RelaxLoss variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RelaxVariant {
    /// Gradient ascent and posterior flattening on alternating epochs (images).
    #[default]
    Cifar,
    /// Gradient ascent below α, no flattening (tabular data).
    Tabular,
}

/// RelaxLoss (see the module documentation).
pub struct RelaxLoss {
    /// Target loss level α.
    pub alpha: f32,
    /// Upper clamp of the true-class confidence in the flattened target (1.0 in the paper's
    /// CIFAR runs).
    pub upper: f32,
    /// Variant.
    pub variant: RelaxVariant,
}

impl TrainingDefense for RelaxLoss {
    fn name(&self) -> &str {
        "relaxloss"
    }
    fn loss(&self, logits: Tensor<2>, labels: Tensor<1, Int>, epoch: usize) -> Tensor<1> {
        let ce_each = cross_entropy_per_example(logits.clone(), labels.clone()); // [b]
        let ce = ce_each.clone().mean(); // [1]
        // Which branch, as a constant 0/1 tensor rather than a value read back (the browser's
        // WebGPU backend cannot read synchronously): 1 when the batch loss is below α.
        let below = ce.clone().lower_elem(self.alpha).float().detach(); // [1]
        let relaxed = if self.variant == RelaxVariant::Tabular || epoch.is_multiple_of(2) {
            // Gradient ascent towards α: |CE − α| = α − CE here.
            (ce.clone() - self.alpha).abs()
        } else {
            self.flattened(logits, labels, ce_each)
        };
        below.clone() * relaxed + (below.neg() + 1.0) * ce
    }
}

impl RelaxLoss {
    /// The flattening step's loss: soft cross-entropy against a target that keeps `p_y` and
    /// spreads the rest evenly, on correctly classified examples; plain CE on the others.
    fn flattened(
        &self,
        logits: Tensor<2>,
        labels: Tensor<1, Int>,
        ce_each: Tensor<1>,
    ) -> Tensor<1> {
        let [b, c] = logits.dims();
        // Posterior flattening with a constant (detached) soft target.
        let probs = softmax(logits.clone().detach(), 1); // [b, c]
        let p_y = probs.clone().gather(1, labels.clone().reshape([b, 1])).clamp(0.0, self.upper); // [b, 1]
        let p_else = (p_y.clone().neg() + 1.0) / (c as f32 - 1.0); // [b, 1]
        let onehot = one_hot(labels.clone(), c); // [b, c]
        let targets =
            onehot.clone() * p_y.expand([b, c]) + (onehot.neg() + 1.0) * p_else.expand([b, c]);
        let soft = soft_cross_entropy_per_example(logits.clone(), targets); // [b]
        let correct = logits.argmax(1).reshape([b]).equal(labels).float(); // [b]
        (soft * correct.clone() + ce_each * (correct.neg() + 1.0)).mean()
    }
}

/// A training-time defense and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DefenseConfig {
    /// Plain cross-entropy.
    Erm,
    /// Label smoothing with ε.
    LabelSmoothing {
        /// ε in (0, 1).
        epsilon: f32,
        /// `uniform` (ε/C) or `other` (ε/(C−1)).
        #[serde(default)]
        form: SmoothingForm,
    },
    /// Confidence penalty with β.
    ConfidencePenalty {
        /// β ≥ 0.
        beta: f32,
    },
    /// RelaxLoss with target loss α.
    Relaxloss {
        /// α > 0.
        alpha: f32,
        /// `cifar` (default) or `tabular`.
        #[serde(default)]
        variant: RelaxVariant,
        /// Clamp of the kept true-class confidence (default 1.0).
        #[serde(default = "one")]
        upper: f32,
    },
    /// HAMP's training: high-entropy soft labels (entropy threshold γ) and an entropy
    /// regulariser α.
    Hamp {
        /// γ in [0, 1): the soft label's entropy as a share of ln C.
        gamma: f32,
        /// α ≥ 0.
        alpha: f32,
    },
    /// PPB with weight λ on the pairs' KL.
    Ppb {
        /// λ ≥ 0 (mia_prune's default: 4).
        lambda: f32,
    },
}

fn one() -> f32 {
    1.0
}

impl DefenseConfig {
    /// The defense's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Erm => "erm",
            Self::LabelSmoothing { .. } => "label-smoothing",
            Self::ConfidencePenalty { .. } => "confidence-penalty",
            Self::Relaxloss { .. } => "relaxloss",
            Self::Ppb { .. } => "ppb",
            Self::Hamp { .. } => "hamp",
        }
    }

    /// Whether the loss is a mean of per-example losses, as DP-SGD's per-example clipping
    /// needs (RelaxLoss decides per batch; PPB pairs examples).
    pub fn is_per_example(&self) -> bool {
        !matches!(self, Self::Relaxloss { .. } | Self::Ppb { .. })
    }

    /// Checks parameter ranges and builds the loss.
    pub fn build(&self) -> Result<Box<dyn TrainingDefense>, CoreError> {
        let bad = |m: &str| Err(CoreError::Parameter(m.to_string()));
        Ok(match *self {
            Self::Erm => Box::new(Erm),
            Self::LabelSmoothing { epsilon, form } => {
                if !(epsilon > 0.0 && epsilon < 1.0) {
                    return bad("label smoothing needs 0 < epsilon < 1");
                }
                Box::new(LabelSmoothing { epsilon, form })
            }
            Self::ConfidencePenalty { beta } => {
                if !(beta >= 0.0 && beta.is_finite()) {
                    return bad("confidence penalty needs beta >= 0");
                }
                Box::new(ConfidencePenalty { beta })
            }
            Self::Relaxloss { alpha, variant, upper } => {
                if !(alpha > 0.0 && alpha.is_finite() && upper > 0.0 && upper <= 1.0) {
                    return bad("relaxloss needs alpha > 0 and 0 < upper <= 1");
                }
                Box::new(RelaxLoss { alpha, upper, variant })
            }
            Self::Hamp { gamma, alpha } => {
                if !((0.0..1.0).contains(&gamma) && alpha >= 0.0 && alpha.is_finite()) {
                    return bad("hamp needs 0 <= gamma < 1 and alpha >= 0");
                }
                Box::new(HampTraining { gamma, alpha })
            }
            Self::Ppb { lambda } => {
                if !(lambda >= 0.0 && lambda.is_finite()) {
                    return bad("ppb needs lambda >= 0");
                }
                Box::new(Ppb { lambda })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posterior;

    #[test]
    fn one_hot_is_built_on_the_device() {
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &dev());
        let v: Vec<f32> = one_hot(labels, 3).into_data().try_to_vec().unwrap();
        assert_eq!(v, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().try_to_vec::<f32>().unwrap()[0]
    }

    fn inputs(rows: &[[f32; 3]], labels: &[i64]) -> (Tensor<2>, Tensor<1, Int>) {
        let d = dev();
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let logits =
            Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), 3]), &d).require_grad();
        (logits, Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [labels.len()]), &d))
    }

    const Z: [[f32; 3]; 2] = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]];

    fn hand_soft_ce(z: &[f32], t: &[f32]) -> f32 {
        -posterior::log_softmax(z).iter().zip(t).map(|(l, t)| l * t).sum::<f32>()
    }

    #[test]
    fn erm_is_mean_cross_entropy() {
        let (z, y) = inputs(&Z, &[0, 2]);
        let want = (posterior::cross_entropy(&Z[0], 0) + posterior::cross_entropy(&Z[1], 2)) / 2.0;
        assert!((scalar(Erm.loss(z, y, 0)) - want).abs() < 1e-5);
    }

    #[test]
    fn label_smoothing_both_forms_match_hand_values() {
        let eps = 0.3;
        for (form, t) in [
            (SmoothingForm::Uniform, [0.7 + 0.1, 0.1, 0.1]),
            (SmoothingForm::Other, [0.7, 0.15, 0.15]),
        ] {
            let (z, y) = inputs(&Z[..1], &[0]);
            let got = scalar(LabelSmoothing { epsilon: eps, form }.loss(z, y, 0));
            assert!((got - hand_soft_ce(&Z[0], &t)).abs() < 1e-5, "{form:?}");
        }
    }

    #[test]
    fn confidence_penalty_subtracts_beta_entropy() {
        let (z, y) = inputs(&Z[..1], &[1]);
        let p = posterior::softmax(&Z[0]);
        let want = posterior::cross_entropy(&Z[0], 1) - 0.5 * posterior::entropy(&p);
        assert!((scalar(ConfidencePenalty { beta: 0.5 }.loss(z, y, 0)) - want).abs() < 1e-5);
    }

    #[test]
    fn relaxloss_descends_above_alpha_and_ascends_below_it() {
        let ce = posterior::cross_entropy(&Z[0], 0);
        // Above α: plain cross-entropy, so the gradient on the true logit is negative.
        let (z, y) = inputs(&Z[..1], &[0]);
        let r = RelaxLoss { alpha: ce / 2.0, upper: 1.0, variant: RelaxVariant::Cifar };
        let loss = r.loss(z.clone(), y, 0);
        assert!((scalar(loss.clone()) - ce).abs() < 1e-5);
        let g = loss.backward();
        assert!(z.grad(&g).unwrap().into_data().try_to_vec::<f32>().unwrap()[0] < 0.0);
        // Below α on an even epoch: α − CE, so descent on it *raises* the loss (ascent).
        let (z, y) = inputs(&Z[..1], &[0]);
        let r = RelaxLoss { alpha: ce + 1.0, upper: 1.0, variant: RelaxVariant::Cifar };
        let loss = r.loss(z.clone(), y, 2);
        assert!((scalar(loss.clone()) - 1.0).abs() < 1e-5);
        let g = loss.backward();
        assert!(z.grad(&g).unwrap().into_data().try_to_vec::<f32>().unwrap()[0] > 0.0);
        // The tabular variant ascends on odd epochs too.
        let (z, y) = inputs(&Z[..1], &[0]);
        let t = RelaxLoss { alpha: ce + 1.0, upper: 1.0, variant: RelaxVariant::Tabular };
        assert!((scalar(t.loss(z, y, 1)) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn ppb_adds_lambda_kl_between_the_sorted_posteriors_of_paired_examples() {
        let (z, y) = inputs(&Z, &[0, 2]);
        let ce = (posterior::cross_entropy(&Z[0], 0) + posterior::cross_entropy(&Z[1], 2)) / 2.0;
        // Sorted rows: [2, 0.5, -1] and [0.3, 0.2, 0.1]; KL(p ‖ q) with p from the second.
        let logq = posterior::log_softmax(&[2.0, 0.5, -1.0]);
        let logp = posterior::log_softmax(&[0.3, 0.2, 0.1]);
        let kl: f32 = logp.iter().zip(&logq).map(|(lp, lq)| lp.exp() * (lp - lq)).sum();
        let got = scalar(Ppb { lambda: 0.5 }.loss(z, y, 0));
        assert!((got - (ce + 0.5 * kl)).abs() < 1e-5, "{got} vs {}", ce + 0.5 * kl);
        // Sorting: the same rows with their classes permuted give the same KL.
        let (z, y) = inputs(&[[0.5, -1.0, 2.0], [0.1, 0.3, 0.2]], &[2, 1]);
        let got = scalar(Ppb { lambda: 0.5 }.loss(z, y, 0));
        assert!((got - (ce + 0.5 * kl)).abs() < 1e-5);
        // One example: nothing to pair, plain cross-entropy; λ = 0 is ERM.
        let (z, y) = inputs(&Z[..1], &[0]);
        assert!(
            (scalar(Ppb { lambda: 4.0 }.loss(z, y, 0)) - posterior::cross_entropy(&Z[0], 0)).abs()
                < 1e-5
        );
        let (z, y) = inputs(&Z, &[0, 2]);
        assert!((scalar(Ppb { lambda: 0.0 }.loss(z, y, 0)) - ce).abs() < 1e-5);
        assert!(DefenseConfig::Ppb { lambda: -1.0 }.build().is_err());
        assert!(DefenseConfig::Ppb { lambda: f32::NAN }.build().is_err());
    }

    #[test]
    fn hamps_soft_label_reaches_the_entropy_threshold_and_its_loss_matches_hand_values() {
        // γ = 0: the one-hot label; the loss is then the confidence penalty's.
        assert_eq!(hamp_true_class_probability(0.0, 10), 1.0);
        let p = hamp_true_class_probability(0.9, 10) as f32;
        let q = (1.0 - p) / 9.0;
        let h = -(p * p.ln() + 9.0 * q * q.ln());
        assert!((h - 0.9 * 10f32.ln()).abs() < 1e-4 && p > 0.1 && p < 1.0, "p {p}, H {h}");
        let (z, y) = inputs(&Z[..1], &[1]);
        let p3 = hamp_true_class_probability(0.5, 3) as f32;
        let r3 = (1.0 - p3) / 2.0;
        let probs = posterior::softmax(&Z[0]);
        let want = hand_soft_ce(&Z[0], &[r3, p3, r3]) - 0.25 * posterior::entropy(&probs);
        let got = scalar(HampTraining { gamma: 0.5, alpha: 0.25 }.loss(z, y, 0));
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let (z, y) = inputs(&Z[..1], &[1]);
        let cp = scalar(ConfidencePenalty { beta: 0.25 }.loss(z.clone(), y.clone(), 0));
        assert!((scalar(HampTraining { gamma: 0.0, alpha: 0.25 }.loss(z, y, 0)) - cp).abs() < 1e-5);
        assert!(DefenseConfig::Hamp { gamma: 1.0, alpha: 0.1 }.build().is_err());
        assert!(DefenseConfig::Hamp { gamma: 0.5, alpha: -0.1 }.build().is_err());
    }

    #[test]
    fn only_batch_level_losses_are_not_per_example() {
        let relax =
            DefenseConfig::Relaxloss { alpha: 1.0, variant: RelaxVariant::Cifar, upper: 1.0 };
        assert!(!relax.is_per_example() && !DefenseConfig::Ppb { lambda: 4.0 }.is_per_example());
        for d in [
            DefenseConfig::Erm,
            DefenseConfig::ConfidencePenalty { beta: 0.1 },
            DefenseConfig::Hamp { gamma: 0.9, alpha: 0.01 },
            DefenseConfig::LabelSmoothing { epsilon: 0.1, form: SmoothingForm::Uniform },
        ] {
            assert!(d.is_per_example(), "{d:?}");
        }
    }

    #[test]
    fn ppb_gradients_pull_the_paired_posteriors_together() {
        let (z, y) = inputs(&Z, &[0, 2]);
        let loss = Ppb { lambda: 100.0 }.loss(z.clone(), y, 0);
        let g = z.grad(&loss.backward()).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let stepped: Vec<f32> = Z.iter().flatten().zip(&g).map(|(a, g)| a - 0.001 * g).collect();
        let gap = |r: &[f32]| {
            let mut a = posterior::softmax(&r[..3]);
            let mut b = posterior::softmax(&r[3..]);
            a.sort_by(|x, y| y.total_cmp(x));
            b.sort_by(|x, y| y.total_cmp(x));
            (a[0] - b[0]).abs()
        };
        let before: Vec<f32> = Z.iter().flatten().copied().collect();
        assert!(gap(&stepped) < gap(&before), "the top posteriors move closer");
    }

    #[test]
    fn relaxloss_flattens_non_target_probabilities_on_odd_epochs() {
        let z0 = [3.0f32, 1.0, -1.0]; // correctly classified, non-targets uneven
        let ce = posterior::cross_entropy(&z0, 0);
        let r = RelaxLoss { alpha: ce + 1.0, upper: 1.0, variant: RelaxVariant::Cifar };
        let (z, y) = inputs(&[z0], &[0]);
        let loss = r.loss(z.clone(), y, 1);
        let p = posterior::softmax(&z0);
        let rest = (1.0 - p[0]) / 2.0;
        assert!((scalar(loss.clone()) - hand_soft_ce(&z0, &[p[0], rest, rest])).abs() < 1e-5);
        // One gradient step makes the two non-target probabilities closer.
        let g = z.grad(&loss.backward()).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let stepped: Vec<f32> = z0.iter().zip(&g).map(|(a, g)| a - 1.0 * g).collect();
        let q = posterior::softmax(&stepped);
        assert!((q[1] - q[2]).abs() < (p[1] - p[2]).abs());
        assert!((q[0] - p[0]).abs() < 0.05, "the true-class confidence is kept");
    }
}
