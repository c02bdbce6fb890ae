//! Mixup-family training, the defenses that change a batch's inputs rather than the loss:
//!
//! - **mixup** (Zhang, Cissé, Dauphin & Lopez-Paz, ICLR 2018): each batch is mixed with a
//!   shuffled copy of itself, `x̃ = λ·x + (1−λ)·x[π]`, with one `λ ~ Beta(α, α)` per batch, and
//!   the loss is `λ·ℓ(x̃, y) + (1−λ)·ℓ(x̃, y[π])`.
//! - **AdaMixup** (Chen et al. 2025, arXiv 2501.02182): the partner's weight decays linearly
//!   over training, `m(t) = m₀·(1 − t/T)` at epoch `t` of `T`, so early epochs regularise and
//!   late ones converge on clean inputs; the label is the *dominant* sample's (`m ≤ 0.5`, so
//!   the batch's own), not a mixture. This follows the paper's description of the schedule and
//!   label rule; it publishes no code, and the deterministic per-epoch weight is our reading.
//!
//! The loss `ℓ` is the run's training defense (cross-entropy for ERM). The draws come from the
//! caller's seeded stream, so a run is reproducible.

use burn::prelude::*;
use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::rng::beta;

/// Which mixup, with its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MixupConfig {
    /// Mixup with `λ ~ Beta(α, α)`.
    Mixup {
        /// α > 0 (Zhang et al. use 0.2–1 on CIFAR-10).
        alpha: f64,
    },
    /// AdaMixup with the partner's starting weight m₀.
    Adamixup {
        /// m₀ in (0, 0.5]: the partner never dominates.
        start: f64,
    },
}

impl MixupConfig {
    /// The name reports show (`mixup`, `adamixup`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mixup { .. } => "mixup",
            Self::Adamixup { .. } => "adamixup",
        }
    }

    /// Range-checks the parameter.
    pub fn validate(&self) -> Result<(), CoreError> {
        match *self {
            Self::Mixup { alpha } if !(alpha > 0.0 && alpha <= 100.0) => Err(CoreError::Parameter(
                format!("mixup's alpha must lie in (0, 100], got {alpha}"),
            )),
            Self::Adamixup { start } if !(start > 0.0 && start <= 0.5) => {
                Err(CoreError::Parameter(format!(
                    "adamixup's start weight must lie in (0, 0.5], got {start}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The mixing of one batch of `b` examples at `epoch` of `epochs`.
    pub fn draw(&self, rng: &mut impl Rng, b: usize, (epoch, epochs): (usize, usize)) -> Mix {
        let mut partner: Vec<usize> = (0..b).collect();
        partner.shuffle(rng);
        match *self {
            Self::Mixup { alpha } => {
                Mix { own: beta(rng, alpha, alpha) as f32, partner, partner_label: true }
            }
            Self::Adamixup { start } => {
                let m = start * (1.0 - epoch as f64 / epochs.max(1) as f64);
                Mix { own: (1.0 - m.max(0.0)) as f32, partner, partner_label: false }
            }
        }
    }
}

/// One batch's mixing: the weight of each example itself, its partner, and whether the loss
/// also counts the partner's label (mixup) or only the dominant one's (AdaMixup).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// λ, the weight of the example itself.
    pub own: f32,
    /// π: example `i` is mixed with example `partner[i]`.
    pub partner: Vec<usize>,
    /// Whether the loss is `λ·ℓ(y) + (1−λ)·ℓ(y[π])` (else `ℓ(y)`).
    pub partner_label: bool,
}

impl Mix {
    /// `λ·x + (1−λ)·x[π]` of a `[b, …]` batch.
    pub fn inputs<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let idx = self.index(&x.device());
        let other = x.clone().select(0, idx);
        x * self.own + other * (1.0 - self.own)
    }

    /// The batch's loss from the logits of the mixed inputs, with `loss(logits, labels)` the
    /// training defense's.
    pub fn loss(
        &self,
        logits: Tensor<2>,
        labels: Tensor<1, Int>,
        loss: impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<1>,
    ) -> Tensor<1> {
        if !self.partner_label {
            return loss(logits, labels);
        }
        let other = labels.clone().select(0, self.index(&labels.device()));
        loss(logits.clone(), labels) * self.own + loss(logits, other) * (1.0 - self.own)
    }

    fn index(&self, device: &Device) -> Tensor<1, Int> {
        let p: Vec<i64> = self.partner.iter().map(|&i| i as i64).collect();
        Tensor::from_data(TensorData::new(p, [self.partner.len()]), device)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::defense::cross_entropy_per_example;
    use crate::posterior;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn inputs_are_mixed_with_the_partner_by_the_own_weight() {
        let d = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 10.0, 20.0], [2, 2]), &d);
        let mix = Mix { own: 0.75, partner: vec![1, 0], partner_label: true };
        assert_eq!(values(mix.inputs(x)), vec![3.25, 6.5, 7.75, 15.5]);
    }

    #[test]
    fn the_mixup_loss_weights_both_labels_and_adamixup_keeps_the_dominant_one() {
        let d = Device::flex();
        let z = [[2.0f32, 0.5, -1.0], [0.1, 0.2, 0.3]];
        let logits = Tensor::<2>::from_data(TensorData::new(z.concat(), [2, 3]), &d);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &d);
        let ce = |l: Tensor<2>, y: Tensor<1, Int>| cross_entropy_per_example(l, y).mean();
        let h = |r: usize, y: usize| posterior::cross_entropy(&z[r], y);
        let mix = Mix { own: 0.7, partner: vec![1, 0], partner_label: true };
        let got = values(mix.loss(logits.clone(), labels.clone(), ce))[0];
        let want = 0.7 * (h(0, 0) + h(1, 2)) / 2.0 + 0.3 * (h(0, 2) + h(1, 0)) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let ada = Mix { partner_label: false, ..mix };
        let got = values(ada.loss(logits, labels, ce))[0];
        assert!((got - (h(0, 0) + h(1, 2)) / 2.0).abs() < 1e-5);
    }

    #[test]
    fn adamixups_partner_weight_decays_linearly_to_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let cfg = MixupConfig::Adamixup { start: 0.4 };
        let own: Vec<f32> = [0, 5, 9].iter().map(|&e| cfg.draw(&mut rng, 4, (e, 10)).own).collect();
        for (got, want) in own.iter().zip([0.6f32, 0.8, 0.96]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        let m = cfg.draw(&mut rng, 6, (0, 10));
        let mut sorted = m.partner.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..6).collect::<Vec<_>>(), "a permutation of the batch");
        assert!(!m.partner_label);
    }

    #[test]
    fn parameters_are_range_checked() {
        for bad in [
            MixupConfig::Mixup { alpha: 0.0 },
            MixupConfig::Mixup { alpha: f64::NAN },
            MixupConfig::Adamixup { start: 0.6 },
            MixupConfig::Adamixup { start: 0.0 },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(MixupConfig::Mixup { alpha: 1.0 }.validate().is_ok());
    }
}
