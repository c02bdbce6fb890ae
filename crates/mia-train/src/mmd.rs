//! The MMD regulariser of mixup+MMD (Li, Li & Ribeiro, "Membership Inference Attacks and
//! Defenses in Classification Models", CODASPY 2021; the authors' code is
//! `colaalex111/MMD-mixup-Defense`, also in MLHospital as `MixupMMD`): the objective is the
//! (mixup) cross-entropy plus `λ · MMD²(softmax(members), softmax(reference))`, which pulls the
//! members' posteriors towards those of examples the model never trained on. It is active in
//! an epoch when, at the epoch's start, the members' accuracy and the reference set's differ by
//! at least `gap`; as in the original, never in the last epoch (for test accuracy).
//!
//! **Where MIA Lab differs from the authors' code.** The original alternates a mixup pass with
//! a separate MMD pass (members in class order, one optimiser step per batch on λ·MMD² alone).
//! With Adam, the optimiser of our recipes, that pass takes steps whose size does not depend on
//! λ (Adam divides by the gradient's scale) and carries the mixup pass's momentum on for dozens
//! of steps: measured on CIFAR-10 (small CNN, 1 000 members), every epoch with an MMD pass
//! ended with the model predicting one class (test accuracy 0.10), and λ = 1e-6 still moved it
//! (0.27 → 0.20 train accuracy). So here the term is added to each training step's loss: every
//! batch of members is paired with as many reference examples of the same classes, drawn at
//! random, and `λ · MMD²` of the two batches' posteriors (the members' on their clean, unmixed
//! inputs; the reference outputs held constant) joins the batch's cross-entropy. λ is then a
//! weight relative to the cross-entropy, as in the paper's objective, whatever the optimiser.
//!
//! MMD² is the biased estimate with a Gaussian kernel `k(a, b) = exp(−‖a − b‖² / (2σ²))` on
//! the posteriors: `mean K(X, X) + mean K(Y, Y) − 2 · mean K(X, Y)`.
//!
//! The reference set is the split's validation part (`--val N`): held out from the members,
//! the attack's non-members and the test set, so the defense never sees a non-member the
//! attack is scored on. The adaptive attacker's shadows use the same reference set.

use std::collections::BTreeMap;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use mia_core::Model;
use mia_core::rng::mix;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::job::{Job, accuracy_and_loss, batch, predict, read_scalar};

/// The MMD regulariser's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmdConfig {
    /// Weight λ of MMD² against the cross-entropy (MLHospital's default for its separate MMD
    /// steps is 3; with the term in each step, 30 is what moved our small CNN, see docs/cli.md).
    pub lambda: f64,
    /// Bandwidth σ of the Gaussian kernel on posteriors (the original's: 1).
    #[serde(default = "one")]
    pub sigma: f64,
    /// The MMD term is on in an epoch only when the members' and the reference set's accuracies differ by
    /// at least this much (the original's: 3 points, 0.03).
    #[serde(default = "three_points")]
    pub gap: f64,
}

fn one() -> f64 {
    1.0
}

fn three_points() -> f64 {
    0.03
}

impl MmdConfig {
    /// Range checks.
    pub fn validate(&self) -> Result<(), TrainError> {
        let ok = self.lambda > 0.0
            && self.lambda.is_finite()
            && self.sigma > 0.0
            && self.sigma.is_finite()
            && (0.0..=1.0).contains(&self.gap);
        if ok {
            Ok(())
        } else {
            Err(TrainError::Config(format!(
                "MMD needs lambda > 0, sigma > 0 and 0 <= gap <= 1 (got lambda {}, sigma {}, gap {})",
                self.lambda, self.sigma, self.gap
            )))
        }
    }
}

/// Biased MMD² between the rows of `x` `[m, d]` and of `y` `[n, d]` under the Gaussian kernel
/// of bandwidth `sigma`; shape `[1]`.
pub fn mmd2_rbf(x: Tensor<2>, y: Tensor<2>, sigma: f64) -> Tensor<1> {
    let gamma = (1.0 / (2.0 * sigma * sigma)) as f32;
    let kernel_mean = |a: Tensor<2>, b: Tensor<2>| {
        let [m, _] = a.dims();
        let [n, _] = b.dims();
        let aa = (a.clone() * a.clone()).sum_dim(1); // [m, 1]
        let bb = (b.clone() * b.clone()).sum_dim(1).reshape([1, n]); // [1, n]
        let cross = a.matmul(b.transpose()); // [m, n]
        let dist = aa.expand([m, n]) + bb.expand([m, n]) - cross * 2.0; // [m, n]
        (dist * -gamma).exp().mean() // [1]
    };
    kernel_mean(x.clone(), x.clone()) + kernel_mean(y.clone(), y.clone()) - kernel_mean(x, y) * 2.0
}

/// Reference examples by class, to draw class-matched partners from.
struct ByClass {
    classes: BTreeMap<u32, Vec<usize>>,
    all: Vec<usize>,
}

impl ByClass {
    fn new(labels: &[u32], reference: &[usize]) -> Self {
        let mut classes: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for &i in reference {
            classes.entry(labels[i]).or_default().push(i);
        }
        Self { classes, all: reference.to_vec() }
    }

    /// A random reference example of `class` (of any class when the reference set has none of
    /// it).
    fn draw(&self, class: u32, rng: &mut ChaCha8Rng) -> Option<usize> {
        let pool = self.classes.get(&class).unwrap_or(&self.all);
        pool.choose(rng).copied()
    }
}

/// The seed stream of the MMD term's reference draws, apart from the mixup draws'.
const MMD_STREAM: u64 = 0x4D4D_4400_0000_0000;

/// One epoch's MMD term (see the module docs): the reference set by class, the epoch's seeded
/// draws and the running mean of MMD².
pub(crate) struct MmdTerm {
    config: MmdConfig,
    reference: ByClass,
    rng: ChaCha8Rng,
    epoch: usize,
    total: f64,
    batches: usize,
}

impl MmdTerm {
    /// The term for epoch `epoch`, or `None` when it is off: no MMD configured, the last
    /// epoch, no reference set, or an accuracy gap under `gap` for `model` (measured on the
    /// plain device `base`) at the epoch's start.
    pub(crate) fn for_epoch(
        job: &Job<'_>,
        model: &Model,
        base: &Device,
        epoch: usize,
    ) -> Result<Option<Self>, TrainError> {
        let (config, ds) = (job.config, job.ds);
        let Some(mmd) = config.mmd else { return Ok(None) };
        if epoch + 1 >= config.epochs || job.validation.is_empty() {
            return Ok(None);
        }
        let eval = model.valid();
        let member_acc = accuracy_and_loss(&predict(&eval, ds, job.train, base)?, ds, job.train).0;
        let reference_acc =
            accuracy_and_loss(&predict(&eval, ds, job.validation, base)?, ds, job.validation).0;
        if f64::from((member_acc - reference_acc).abs()) < mmd.gap {
            return Ok(None);
        }
        Ok(Some(Self {
            config: mmd,
            reference: ByClass::new(&ds.labels, job.validation),
            rng: ChaCha8Rng::seed_from_u64(mix(job.seed ^ MMD_STREAM, epoch as u64)),
            epoch,
            total: 0.0,
            batches: 0,
        }))
    }

    /// `λ · MMD²` between the posteriors of the members `chunk` (their clean inputs `x`
    /// `[b, c, h, w]`) and of as many class-matched reference examples; shape `[1]`.
    pub(crate) fn loss(
        &mut self,
        job: &Job<'_>,
        model: &Model,
        (chunk, x): (&[usize], Tensor<4>),
        device: &Device,
    ) -> Result<Tensor<1>, TrainError> {
        let ds = job.ds;
        let partners: Vec<usize> = chunk
            .iter()
            .filter_map(|&i| self.reference.draw(ds.labels[i], &mut self.rng))
            .collect();
        let (r, _) = batch(ds, &partners, None, device)?;
        let p = softmax(model.forward(x), 1); // [b, classes]
        let q = softmax(model.forward(r), 1).detach(); // [b, classes]
        let mmd2 = mmd2_rbf(p, q, self.config.sigma); // [1]
        let value = read_scalar(mmd2.clone())?;
        if !value.is_finite() {
            return Err(TrainError::Diverged { epoch: self.epoch + 1, loss: value });
        }
        self.total += f64::from(value);
        self.batches += 1;
        Ok(mmd2 * self.config.lambda as f32)
    }

    /// The epoch's mean MMD² over its batches.
    pub(crate) fn mean(&self) -> f64 {
        self.total / self.batches.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    fn tensor(rows: &[&[f32]]) -> Tensor<2> {
        let d = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), d]), &dev())
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().try_to_vec::<f32>().unwrap()[0]
    }

    /// MMD² by the definition, in f64.
    fn hand_mmd2(x: &[&[f32]], y: &[&[f32]], sigma: f64) -> f64 {
        let k = |a: &[f32], b: &[f32]| {
            let d2: f64 = a.iter().zip(b).map(|(u, v)| f64::from(u - v).powi(2)).sum();
            (-d2 / (2.0 * sigma * sigma)).exp()
        };
        let mean = |a: &[&[f32]], b: &[&[f32]]| {
            let s: f64 = a.iter().flat_map(|u| b.iter().map(move |v| k(u, v))).sum();
            s / (a.len() * b.len()) as f64
        };
        mean(x, x) + mean(y, y) - 2.0 * mean(x, y)
    }

    #[test]
    fn mmd2_matches_the_definition() {
        let x: [&[f32]; 3] = [&[0.7, 0.2, 0.1], &[0.9, 0.05, 0.05], &[0.1, 0.8, 0.1]];
        let y: [&[f32]; 2] = [&[0.4, 0.3, 0.3], &[0.2, 0.2, 0.6]];
        for sigma in [0.5, 1.0, 3.0] {
            let got = scalar(mmd2_rbf(tensor(&x), tensor(&y), sigma));
            let want = hand_mmd2(&x, &y, sigma);
            assert!((f64::from(got) - want).abs() < 1e-6, "σ {sigma}: {got} vs {want}");
        }
    }

    #[test]
    fn mmd2_of_a_sample_with_itself_is_zero_and_grows_with_the_shift() {
        let x: [&[f32]; 2] = [&[0.7, 0.3], &[0.4, 0.6]];
        assert!(scalar(mmd2_rbf(tensor(&x), tensor(&x), 1.0)).abs() < 1e-6);
        let near: [&[f32]; 2] = [&[0.6, 0.4], &[0.3, 0.7]];
        let far: [&[f32]; 2] = [&[0.0, 1.0], &[0.1, 0.9]];
        let a = scalar(mmd2_rbf(tensor(&x), tensor(&near), 1.0));
        let b = scalar(mmd2_rbf(tensor(&x), tensor(&far), 1.0));
        assert!(0.0 < a && a < b, "{a} {b}");
    }

    #[test]
    fn a_step_on_mmd2_pulls_the_first_sample_towards_the_second() {
        let x = tensor(&[&[3.0, 0.0, 0.0], &[0.0, 4.0, 0.0]]).require_grad();
        let y = tensor(&[&[0.5, 0.4, 0.3], &[0.3, 0.5, 0.4]]);
        let px = softmax(x.clone(), 1);
        let qy = softmax(y.clone(), 1);
        let before = mmd2_rbf(px, qy.clone(), 1.0);
        let grads = before.clone().backward();
        let g = x.grad(&grads).unwrap();
        let stepped = Tensor::<2>::from_inner(x.inner() - g * 5.0);
        let after = mmd2_rbf(softmax(stepped, 1), qy, 1.0);
        assert!(scalar(after) < scalar(before));
    }

    #[test]
    fn parameters_are_range_checked() {
        let ok = MmdConfig { lambda: 3.0, sigma: 1.0, gap: 0.03 };
        assert!(ok.validate().is_ok());
        for bad in [
            MmdConfig { lambda: 0.0, ..ok },
            MmdConfig { lambda: f64::NAN, ..ok },
            MmdConfig { sigma: -1.0, ..ok },
            MmdConfig { gap: 1.5, ..ok },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn partners_share_the_class_and_fall_back_to_any_class() {
        let labels = [0u32, 1, 0, 1, 2];
        let by = ByClass::new(&labels, &[0, 1, 2]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20 {
            let i = by.draw(0, &mut rng).unwrap();
            assert!(i == 0 || i == 2);
            assert_eq!(by.draw(1, &mut rng), Some(1));
            assert!(by.draw(2, &mut rng).is_some(), "no class-2 reference: any example");
        }
        assert_eq!(ByClass::new(&labels, &[]).draw(0, &mut rng), None);
    }
}
