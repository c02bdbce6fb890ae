//! AdvReg, adversarial regularisation (Nasr, Shokri & Houmansadr, "Machine Learning with
//! Membership Privacy using Adversarial Regularization", CCS 2018; the authors' code is
//! `SPIN-UMass/ML-Privacy-Regulization`, also in MLHospital as `AdvReg`): a min-max game
//! between the classifier and an **inference model** `h(posterior, label)` that guesses
//! membership.
//!
//! After `warmup` epochs of plain training, every classifier step is preceded by `k` steps of
//! the inference model, each on a batch of members drawn at random and a batch of the
//! reference set (the split's validation part, `--val N`: disjoint from the members, the
//! attack's non-members and the test set), maximising its gain
//! `mean log h(members) + mean log(1 − h(reference))` (binary cross-entropy, computed from the
//! logit in log space) with the classifier held fixed. The classifier step then minimises
//! `loss(z, y) + λ · mean h(softmax(z), y)` on its batch of members (`loss` is the run's
//! `--defense`, cross-entropy by default): it is pushed to make its members look like
//! non-members to the current inference model. The penalty is the reference implementations'
//! mean membership probability (the paper's gain minus its reference-set term, which does not
//! depend on the members' outputs).
//!
//! The inference model is the paper's (and MLHospital's): the posterior through 1024-512-64
//! ReLU units, the label (one-hot as ±1) through 128-64, both concatenated through
//! 256-128-64-1. It trains with Adam at the fixed rate `ATTACK_LR`. It and its optimiser are
//! checkpointed with the classifier, so a resumed run reaches the same weights.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, sigmoid, softmax};
use mia_core::Model;
use mia_core::defense::one_hot;
use mia_core::layout::Generation;
use mia_core::rng::mix;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::job::{Job, batch, load_record, read_scalar, save_record};
use crate::run::write_atomic;

/// AdvReg's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvRegConfig {
    /// λ: weight of the inference model's mean membership probability in the classifier's
    /// loss (the paper tries 1–6 on CIFAR-100; MLHospital uses 1).
    pub lambda: f64,
    /// k: inference-model steps before each classifier step (the paper's k; default 1).
    #[serde(default = "one")]
    pub attack_steps: usize,
    /// Epochs of plain training before the game starts (default 3; MLHospital's 4 epochs
    /// count from 1).
    #[serde(default = "three")]
    pub warmup: usize,
}

fn one() -> usize {
    1
}

fn three() -> usize {
    3
}

impl AdvRegConfig {
    /// Range checks.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.lambda > 0.0 && self.lambda <= 100.0 && (1..=100).contains(&self.attack_steps) {
            Ok(())
        } else {
            Err(TrainError::Config(format!(
                "AdvReg needs 0 < lambda <= 100 and 1 <= k <= 100 attack steps (got lambda {}, k {})",
                self.lambda, self.attack_steps
            )))
        }
    }
}

/// The inference model's learning rate (Adam).
pub const ATTACK_LR: f64 = 1e-3;

/// The inference model `h(posterior, label)`; see the module documentation.
#[derive(Module, Debug)]
pub struct InferenceModel {
    posterior: Vec<Linear>,
    label: Vec<Linear>,
    combine: Vec<Linear>,
    out: Linear,
    act: Relu,
}

fn stack(widths: &[usize], device: &Device) -> Vec<Linear> {
    widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect()
}

impl InferenceModel {
    /// A fresh inference model for `classes` classes.
    pub fn new(classes: usize, device: &Device) -> Self {
        Self {
            posterior: stack(&[classes, 1024, 512, 64], device),
            label: stack(&[classes, 128, 64], device),
            combine: stack(&[128, 256, 128, 64], device),
            out: LinearConfig::new(64, 1).init(device),
            act: Relu::new(),
        }
    }

    fn through(&self, layers: &[Linear], mut x: Tensor<2>) -> Tensor<2> {
        for l in layers {
            x = self.act.forward(l.forward(x));
        }
        x
    }

    /// The membership logit `[b]` of `[b, classes]` posteriors with `[b]` labels.
    pub fn forward(&self, posteriors: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let [b, c] = posteriors.dims();
        let signed = one_hot(labels, c) * 2.0 - 1.0; // [b, c], ±1
        let p = self.through(&self.posterior, posteriors); // [b, 64]
        let l = self.through(&self.label, signed); // [b, 64]
        let joint = self.through(&self.combine, Tensor::cat(vec![p, l], 1)); // [b, 64]
        self.out.forward(joint).reshape([b]) // [b]
    }
}

/// The inference model's loss: binary cross-entropy with members as 1 and reference examples
/// as 0, from logits, `mean softplus(−l_members) + mean softplus(l_reference)`; shape `[1]`.
pub fn inference_loss(members: Tensor<1>, reference: Tensor<1>) -> Tensor<1> {
    log_sigmoid(members).mean().neg() - log_sigmoid(reference.neg()).mean()
}

/// The classifier's penalty: λ times the mean membership probability of its members; `[1]`.
pub fn privacy_penalty(member_logits: Tensor<1>, lambda: f64) -> Tensor<1> {
    sigmoid(member_logits).mean() * lambda as f32
}

/// The inference model and its optimiser, as one run carries them through its epochs.
pub(crate) struct Adversary {
    pub model: InferenceModel,
    pub optim: ModuleOptimizer,
    config: AdvRegConfig,
}

/// The seed stream of the inference model's initialisation and draws.
const ADVREG_STREAM: u64 = 0xAD5E_0000_0000_0000;

impl Adversary {
    /// A fresh adversary on the autodiff `device`, its weights drawn from `seed`.
    pub(crate) fn new(config: AdvRegConfig, classes: usize, device: &Device, seed: u64) -> Self {
        let model = {
            let _rng = mia_core::rng::backend_lock();
            device.seed(mix(seed, ADVREG_STREAM));
            let m = InferenceModel::new(classes, device);
            m.visit(&mut mia_core::rng::Materialize);
            m
        };
        Self { model, optim: AdamConfig::new().init(), config }
    }

    /// Writes the inference model and its optimiser into a checkpoint generation (before its
    /// `state.json`, which marks the generation complete).
    pub(crate) fn save(&self, generation: &Generation) -> Result<(), TrainError> {
        save_record(&self.model, &generation.adversary())?;
        let path = generation.adversary_optimizer();
        let bytes = self.optim.into_bytes().map_err(|e| TrainError::io(&path, e))?;
        write_atomic(&path, &bytes)
    }

    /// Restores the inference model and its optimiser from a checkpoint generation.
    pub(crate) fn load(&self, generation: &Generation) -> Result<Self, TrainError> {
        let model = load_record(self.model.clone(), &generation.adversary())?;
        let path = generation.adversary_optimizer();
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        let optim = AdamConfig::new()
            .init()
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { model, optim, config: self.config })
    }

    /// Whether epoch `epoch` (0-based) plays the game (after the warm-up).
    pub(crate) fn plays(&self, epoch: usize) -> bool {
        epoch >= self.config.warmup
    }

    /// `k` steps of the inference model against the fixed classifier `model`: members drawn
    /// at random from `job.train`, reference examples from `job.validation`.
    pub(crate) fn attack_steps(
        &mut self,
        job: &Job<'_>,
        model: &Model,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<f32, TrainError> {
        let (ds, size) = (job.ds, job.config.batch_size);
        let mut last = f32::NAN;
        for _ in 0..self.config.attack_steps {
            let members: Vec<usize> = job.train.choose_multiple(rng, size).copied().collect();
            let reference: Vec<usize> =
                job.validation.choose_multiple(rng, size).copied().collect();
            let (xm, ym) = batch(ds, &members, None, device)?;
            let (xr, yr) = batch(ds, &reference, None, device)?;
            let pm = softmax(model.forward(xm), 1).detach(); // [b, classes]
            let pr = softmax(model.forward(xr), 1).detach(); // [b, classes]
            let loss = inference_loss(self.model.forward(pm, ym), self.model.forward(pr, yr));
            last = read_scalar(loss.clone())?;
            let grads = GradientsParams::from_grads(loss.backward(), &self.model);
            self.model = self.optim.step(ATTACK_LR, self.model.clone(), grads);
        }
        Ok(last)
    }

    /// The classifier's penalty on its batch's logits `[b, classes]` and labels.
    pub(crate) fn penalty(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let member = self.model.forward(softmax(logits, 1), labels); // [b]
        privacy_penalty(member, self.config.lambda)
    }
}

/// The generator of epoch `epoch`'s inference-model batches, apart from the epoch's order and
/// augmentation stream.
pub(crate) fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed ^ ADVREG_STREAM, epoch as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    fn vec1(v: &[f32]) -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev())
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().try_to_vec::<f32>().unwrap()[0]
    }

    fn softplus(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    #[test]
    fn the_inference_loss_is_binary_cross_entropy_from_logits() {
        let (m, r) = ([2.0f32, -1.0], [0.5f32, -3.0, 1.0]);
        let want = (softplus(-2.0) + softplus(1.0)) / 2.0
            + (softplus(0.5) + softplus(-3.0) + softplus(1.0)) / 3.0;
        let got = scalar(inference_loss(vec1(&m), vec1(&r)));
        assert!((f64::from(got) - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn the_inference_loss_stays_finite_in_the_tails() {
        let got = scalar(inference_loss(vec1(&[-200.0]), vec1(&[200.0])));
        assert!((got - 400.0).abs() < 1e-2, "{got}");
        let confident = scalar(inference_loss(vec1(&[200.0]), vec1(&[-200.0])));
        assert!(confident.abs() < 1e-6);
    }

    #[test]
    fn the_penalty_is_lambda_times_the_mean_membership_probability() {
        let got = scalar(privacy_penalty(vec1(&[0.0, 2.0]), 3.0));
        let want = 3.0 * (0.5 + 1.0 / (1.0 + (-2.0f32).exp())) / 2.0;
        assert!((got - want).abs() < 1e-6);
    }

    #[test]
    fn the_inference_model_reads_posteriors_and_labels() {
        let d = dev();
        let h = InferenceModel::new(3, &d);
        let p = Tensor::<2>::from_data(
            TensorData::new(vec![0.8f32, 0.1, 0.1, 0.2, 0.3, 0.5], [2, 3]),
            &d,
        );
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &d);
        let out: Vec<f32> = h.forward(p.clone(), y).into_data().try_to_vec().unwrap();
        assert_eq!(out.len(), 2);
        let other = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 1], [2]), &d);
        let moved: Vec<f32> = h.forward(p, other).into_data().try_to_vec().unwrap();
        assert_ne!(out, moved, "the label is an input");
    }

    fn rows(v: &[[f32; 3]]) -> Tensor<2> {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        Tensor::<2>::from_data(TensorData::new(flat, [v.len(), 3]), &dev())
    }

    fn labels(n: usize) -> Tensor<1, Int> {
        Tensor::<1, Int>::from_data(TensorData::new(vec![0i64; n], [n]), &dev())
    }

    const PEAKED: [[f32; 3]; 2] = [[0.95, 0.03, 0.02], [0.9, 0.06, 0.04]];
    const FLAT: [[f32; 3]; 2] = [[0.45, 0.3, 0.25], [0.4, 0.35, 0.25]];

    /// An inference model trained for `steps` Adam steps to call peaked posteriors members and
    /// flat ones non-members; with its loss before and after.
    fn trained(steps: usize) -> (InferenceModel, f32, f32) {
        let d = dev();
        let mut adversary =
            Adversary::new(AdvRegConfig { lambda: 1.0, attack_steps: 1, warmup: 0 }, 3, &d, 9);
        let loss = |h: &InferenceModel| {
            inference_loss(h.forward(rows(&PEAKED), labels(2)), h.forward(rows(&FLAT), labels(2)))
        };
        let before = scalar(loss(&adversary.model));
        for _ in 0..steps {
            let l = loss(&adversary.model);
            let grads = GradientsParams::from_grads(l.backward(), &adversary.model);
            adversary.model = adversary.optim.step(ATTACK_LR, adversary.model.clone(), grads);
        }
        let after = scalar(loss(&adversary.model));
        (adversary.model, before, after)
    }

    #[test]
    fn the_inference_model_learns_to_tell_members_posteriors_from_the_references() {
        let (h, before, after) = trained(60);
        assert!(after < 0.5 * before, "loss {before} → {after}");
        let m: Vec<f32> = h.forward(rows(&PEAKED), labels(2)).into_data().try_to_vec().unwrap();
        let r: Vec<f32> = h.forward(rows(&FLAT), labels(2)).into_data().try_to_vec().unwrap();
        assert!(m.iter().all(|a| r.iter().all(|b| a > b)), "members {m:?}, reference {r:?}");
    }

    #[test]
    fn a_classifier_step_on_the_penalty_makes_its_members_look_less_like_members() {
        let (h, ..) = trained(15);
        // Posteriors between the peaked and the flat ones, where h is not saturated.
        let z = rows(&[[2.0, 0.5, 0.0], [1.5, 0.5, 0.2]]).require_grad();
        let logit = |z: Tensor<2>| scalar(h.forward(softmax(z, 1), labels(2)).mean());
        let penalty = privacy_penalty(h.forward(softmax(z.clone(), 1), labels(2)), 1.0);
        let g = z.grad(&penalty.backward()).unwrap();
        let stepped = Tensor::<2>::from_inner(z.clone().inner() - g * 2.0);
        let (before, after) = (logit(z), logit(stepped));
        assert!(after < before, "mean membership logit {before} → {after}");
    }

    #[test]
    fn parameters_are_range_checked() {
        let ok = AdvRegConfig { lambda: 1.0, attack_steps: 1, warmup: 3 };
        assert!(ok.validate().is_ok());
        for bad in [
            AdvRegConfig { lambda: 0.0, ..ok },
            AdvRegConfig { lambda: f64::NAN, ..ok },
            AdvRegConfig { attack_steps: 0, ..ok },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
