//! DP-SGD in the native trainer (Abadi et al., CCS 2016): every step samples a Poisson batch
//! (each member with probability q = batch / members, the sampling the RDP accountant
//! assumes; `steps = round(1/q)` per epoch), computes **each example's gradient exactly**
//! (one backward pass per example; no batch statistics, so models with batch normalisation
//! are refused, as Opacus does), clips it to norm C, sums, adds Gaussian noise N(0, σ²C²) to
//! every coordinate and divides by the expected batch size q·n. ε at δ after each epoch comes
//! from [`mia_core::privacy`], the accountant the browser lab uses; `target_epsilon` picks the
//! smallest σ that keeps ε within it after the planned epochs.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use mia_core::{Architecture, Model, privacy};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::defense::TrainingDefense;
use crate::job::read_scalar;

/// DP-SGD's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpConfig {
    /// Per-example gradient norm bound C.
    pub clip: f64,
    /// Noise multiplier σ (give this or `target_epsilon`).
    #[serde(default)]
    pub noise_multiplier: Option<f64>,
    /// ε to reach at `delta` after the planned epochs (σ is chosen for it).
    #[serde(default)]
    pub target_epsilon: Option<f64>,
    /// δ at which ε is reported.
    #[serde(default = "default_delta")]
    pub delta: f64,
}

fn default_delta() -> f64 {
    1e-5
}

/// A run's DP-SGD as it will execute: sampling rate, steps per epoch, σ, C and δ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpPlan {
    /// Poisson sampling rate q.
    pub q: f64,
    /// Steps per epoch, round(1/q).
    pub steps: usize,
    /// Noise multiplier σ.
    pub sigma: f64,
    /// Clip norm C.
    pub clip: f64,
    /// δ.
    pub delta: f64,
}

impl DpConfig {
    /// Range checks, and refuses what per-example gradients cannot do.
    pub fn validate(&self, arch: Architecture) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if !(self.clip > 0.0 && self.clip.is_finite()) {
            return bad(format!("DP-SGD's clip norm must be positive, got {}", self.clip));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return bad(format!("DP-SGD's δ must lie in (0, 1), got {}", self.delta));
        }
        match (self.noise_multiplier, self.target_epsilon) {
            (Some(0.0), None) => return Err(TrainError::NoNoise),
            (Some(s), None) if s > 0.0 && s <= 1000.0 => {}
            (None, Some(e)) if e > 0.0 && e.is_finite() => {}
            (Some(_), Some(_)) | (None, None) => {
                return bad("DP-SGD needs exactly one of --dp-noise and --target-epsilon".into());
            }
            _ => return bad("DP-SGD's σ must lie in (0, 1000] and ε must be positive".into()),
        }
        if matches!(
            arch,
            Architecture::Resnet20 | Architecture::Vgg16Bn | Architecture::MobilenetV2
        ) {
            return bad(format!(
                "DP-SGD needs per-example gradients, and {arch}'s batch normalisation mixes the \
                 examples of a batch (Opacus refuses it too): use small-cnn, ml-leaks-cnn or mlp"
            ));
        }
        Ok(())
    }

    /// The plan for `members` examples, batches of `batch` and `epochs` epochs.
    pub fn plan(&self, members: usize, batch: usize, epochs: usize) -> Result<DpPlan, TrainError> {
        let (q, steps) = privacy::poisson_schedule(batch, members);
        let sigma = match (self.noise_multiplier, self.target_epsilon) {
            (Some(s), _) => s,
            (None, Some(e)) => {
                privacy::noise_for_epsilon(e, q, (steps * epochs) as u64, self.delta)?
            }
            (None, None) => return Err(TrainError::Config("DP-SGD without σ or ε".into())),
        };
        Ok(DpPlan { q, steps, sigma, clip: self.clip, delta: self.delta })
    }
}

impl DpPlan {
    /// ε at δ after `epochs` epochs.
    pub fn epsilon_after(&self, epochs: usize) -> Result<f64, TrainError> {
        Ok(privacy::epsilon(self.q, self.sigma, (self.steps * epochs) as u64, self.delta)?)
    }
}

/// Every float parameter's gradient in `grads`, flattened, in the model's visiting order
/// (zeros for a parameter the loss does not reach).
fn flatten<M: Module>(model: &M, grads: &GradientsParams) -> Vec<Tensor<1>> {
    struct Flatten<'a>(&'a GradientsParams, Vec<Tensor<1>>);
    impl ModuleVisitor for Flatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self.0.get::<D>(param.id).unwrap_or_else(|| {
                let v = param.val();
                Tensor::zeros(v.shape(), &v.device()).inner()
            });
            let n = g.shape().num_elements();
            self.1.push(g.reshape([n]));
        }
    }
    let mut f = Flatten(grads, Vec::new());
    model.visit(&mut f);
    f.1
}

/// The gradients, flattened per parameter, of each example's loss (one backward pass each:
/// exact per-example gradients), and the sum of the losses.
pub(crate) fn per_example(
    model: &Model,
    defense: &dyn TrainingDefense,
    examples: Vec<(Tensor<4>, Tensor<1, Int>)>,
    epoch: usize,
) -> Result<(Vec<Vec<Tensor<1>>>, f64), TrainError> {
    let losses = examples.into_iter().map(|(x, y)| defense.loss(model.forward(x), y, epoch));
    gradients_of_each(model, losses)
}

/// The gradients of `model`'s parameters, flattened per parameter, of each loss in turn (one
/// backward pass each: each loss is built only when the previous one is done), and their sum.
fn gradients_of_each<M: Module>(
    model: &M,
    losses: impl Iterator<Item = Tensor<1>>,
) -> Result<(Vec<Vec<Tensor<1>>>, f64), TrainError> {
    let mut total = 0f64;
    let mut grads = Vec::new();
    for loss in losses {
        total += scalar(loss.clone())?; // [1]
        grads.push(flatten(model, &GradientsParams::from_grads(loss.backward(), model)));
    }
    Ok((grads, total))
}

fn scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    read_scalar(t).map(f64::from)
}

fn norm(g: &[Tensor<1>]) -> Result<f64, TrainError> {
    let mut s = 0f64;
    for t in g {
        s += scalar(t.clone().powf_scalar(2.0).sum())?;
    }
    Ok(s.sqrt())
}

/// Σ_i min(1, C/‖g_i‖)·g_i, flattened per parameter (`None` for an empty batch).
pub(crate) fn clipped_sum(
    grads: Vec<Vec<Tensor<1>>>,
    clip: f64,
) -> Result<Option<Vec<Tensor<1>>>, TrainError> {
    let mut sum: Option<Vec<Tensor<1>>> = None;
    for g in grads {
        let c = (clip / norm(&g)?.max(1e-12)).min(1.0) as f32;
        let scaled: Vec<Tensor<1>> = g.into_iter().map(|t| t * c).collect();
        sum = Some(match sum {
            None => scaled,
            Some(acc) => acc.into_iter().zip(scaled).map(|(a, b)| a + b).collect(),
        });
    }
    Ok(sum)
}

/// The noisy gradient of one step: (clipped sum + N(0, σ²C²)) / (q·n), as the optimiser's
/// gradients of `model`'s parameters. Noise comes from `rng` (host draws: reproducible
/// whatever threads train other models).
pub(crate) fn noisy_step(
    model: &Model,
    sum: Option<Vec<Tensor<1>>>,
    plan: &DpPlan,
    expected: f64,
    rng: &mut ChaCha8Rng,
) -> GradientsParams {
    struct Register<'a, R: Rng> {
        sum: Option<std::vec::IntoIter<Tensor<1>>>,
        std: f64,
        scale: f32,
        rng: &'a mut R,
        out: GradientsParams,
    }
    impl<R: Rng> ModuleVisitor for Register<'_, R> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let v = param.val();
            let (dims, device) = (v.dims(), v.device());
            let n = v.shape().num_elements();
            let noise: Vec<f32> = (0..n)
                .map(|_| (self.std * f64::from(mia_core::rng::normal(self.rng))) as f32)
                .collect();
            let mut g = Tensor::<1>::from_data(TensorData::new(noise, [n]), &device).inner();
            if let Some(s) = self.sum.as_mut().and_then(Iterator::next) {
                g = g + s;
            }
            self.out.register::<D>(param.id, (g * self.scale).reshape(dims));
        }
    }
    let mut r = Register {
        sum: sum.map(Vec::into_iter),
        std: plan.sigma * plan.clip,
        scale: (1.0 / expected.max(1e-12)) as f32,
        rng,
        out: GradientsParams::new(),
    };
    model.visit(&mut r);
    r.out
}

/// The members one step trains on: each with probability q.
pub(crate) fn poisson(members: &[usize], q: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    members.iter().copied().filter(|_| rng.random::<f64>() < q).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mia_core::{InputSpec, ModelConfig};
    use rand::SeedableRng;

    fn tiny() -> (Model, Vec<(Tensor<4>, Tensor<1, Int>)>, Device) {
        let device = Device::flex().autodiff();
        device.seed(4);
        let input = InputSpec::new(1, 1, 6);
        let model = ModelConfig::new(Architecture::Mlp, input, 3).init(&device).unwrap();
        let examples = (0..4)
            .map(|i| {
                let x: Vec<f32> = (0..6).map(|j| ((i * 7 + j * 3) % 5) as f32 - 2.0).collect();
                (
                    Tensor::<4>::from_data(TensorData::new(x, [1, 1, 1, 6]), &device),
                    Tensor::<1, Int>::from_data(
                        TensorData::new(vec![(i % 3) as i64], [1]),
                        &device,
                    ),
                )
            })
            .collect();
        (model, examples, device)
    }

    fn values(v: &[Tensor<1>]) -> Vec<f32> {
        v.iter().flat_map(|t| t.clone().into_data().try_to_vec::<f32>().unwrap()).collect()
    }

    #[test]
    fn per_example_gradients_sum_to_the_gradient_of_the_summed_loss() {
        let (model, examples, _) = tiny();
        let defense = crate::DefenseConfig::Erm.build().unwrap();
        let (each, _) = per_example(&model, defense.as_ref(), examples.clone(), 0).unwrap();
        let sum = clipped_sum(each, 1e9).unwrap().unwrap(); // no clipping
        // One backward pass over the whole batch of the *sum* of the losses.
        let x = Tensor::cat(examples.iter().map(|e| e.0.clone()).collect(), 0);
        let y = Tensor::cat(examples.iter().map(|e| e.1.clone()).collect(), 0);
        let total = defense.loss(model.forward(x), y, 0) * 4.0;
        let batch = flatten(&model, &GradientsParams::from_grads(total.backward(), &model));
        for (a, b) in values(&sum).iter().zip(values(&batch)) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn clipping_bounds_each_example_and_sigma_zero_adds_no_noise() {
        let (model, examples, _) = tiny();
        let defense = crate::DefenseConfig::Erm.build().unwrap();
        let (each, _) = per_example(&model, defense.as_ref(), examples, 0).unwrap();
        let norms: Vec<f64> = each.iter().map(|g| norm(g).unwrap()).collect();
        assert!(norms.iter().all(|&n| n > 0.01), "{norms:?}");
        let sum = clipped_sum(each, 0.01).unwrap().unwrap();
        assert!(norm(&sum).unwrap() <= 4.0 * 0.01 + 1e-6, "each example contributes at most C");
        let plan = DpPlan { q: 0.5, steps: 2, sigma: 0.0, clip: 0.01, delta: 1e-5 };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let g = noisy_step(&model, Some(sum.clone()), &plan, 2.0, &mut rng);
        let back = flatten(&model, &g);
        for (a, b) in values(&back).iter().zip(values(&sum)) {
            assert!((a - b / 2.0).abs() < 1e-7, "divided by the expected batch size");
        }
        // With σ > 0 and no examples the step is pure noise of standard deviation σC/(qn).
        let plan = DpPlan { sigma: 2.0, clip: 1.0, ..plan };
        let noise = values(&flatten(&model, &noisy_step(&model, None, &plan, 4.0, &mut rng)));
        let sd = (noise.iter().map(|v| f64::from(v * v)).sum::<f64>() / noise.len() as f64).sqrt();
        assert!((sd - 0.5).abs() < 0.05, "noise sd {sd}");
    }

    #[test]
    fn the_plan_reaches_the_target_epsilon_and_bad_settings_are_refused() {
        let dp =
            DpConfig { clip: 1.0, noise_multiplier: None, target_epsilon: Some(4.0), delta: 1e-5 };
        let plan = dp.plan(2500, 32, 20).unwrap();
        assert_eq!(plan.steps, 78);
        let eps = plan.epsilon_after(20).unwrap();
        assert!(eps <= 4.0 && eps > 3.9, "ε {eps} after the planned epochs");
        assert!(plan.epsilon_after(10).unwrap() < eps, "ε grows with the epochs");
        assert!(dp.validate(Architecture::SmallCnn).is_ok());
        assert!(dp.validate(Architecture::Resnet20).is_err(), "batch norm");
        let both = DpConfig { noise_multiplier: Some(1.0), ..dp };
        assert!(both.validate(Architecture::SmallCnn).is_err());
        let neither = DpConfig { target_epsilon: None, ..dp };
        assert!(neither.validate(Architecture::SmallCnn).is_err());
        assert!(DpConfig { clip: 0.0, ..dp }.validate(Architecture::Mlp).is_err());
    }

    /// The lab (mia-core's head trainer: per-layer norms from two passes over the batch) and
    /// this trainer (one backward pass per example) implement DP-SGD twice; on the same head,
    /// examples and clip they must give the same clipped sum, the same noise scale and the
    /// same ε.
    #[test]
    fn the_native_and_the_lab_dp_sgd_clip_alike_add_the_same_noise_and_count_the_same_epsilon() {
        use mia_core::lab::{DpSgd, HeadConfig, HeadTrainer, TrainSet};
        let (n, dim, classes) = (24, 40, 10);
        let features: Vec<f32> = (0..n * dim)
            .map(|k| {
                ((mia_core::rng::mix(7, k as u64) % 2001) as f32 / 1000.0 - 1.0)
                    * (1 + k / dim % 3) as f32
            })
            .collect();
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let rows: Vec<usize> = (0..n).step_by(2).collect();
        // A clip that binds for some examples only (the hidden layer's gradients are smaller).
        for (hidden, clip) in [(0, 6.0f32), (6, 3.0)] {
            let dp = DpSgd { clip, noise_multiplier: 1.3, delta: 1e-5 };
            let cfg = HeadConfig {
                hidden,
                dropout: 0.0,
                batch_size: 8,
                epochs: 3,
                dp: Some(dp),
                ..HeadConfig::default()
            };
            let device = Device::flex();
            let data = TrainSet { features: &features, dim, labels: &labels, classes };
            let mut lab = HeadTrainer::new(cfg.clone(), data, &device).unwrap();
            let lab_sum = values(&lab.clipped_gradient(&rows, clip));
            let head = lab.head().clone();
            let on = Device::flex().autodiff();
            let loss = cfg.defense.build().unwrap();
            let x = |i: usize| {
                let row = features[i * dim..(i + 1) * dim].to_vec();
                Tensor::<2>::from_data(TensorData::new(row, [1, dim]), &on)
            };
            let y = |i: usize| {
                Tensor::<1, Int>::from_data(TensorData::new(vec![labels[i] as i64], [1]), &on)
            };
            let losses = rows.iter().map(|&i| loss.loss(head.forward(x(i)), y(i), 0));
            let (each, _) = gradients_of_each(&head, losses).unwrap();
            let norms: Vec<f64> = each.iter().map(|g| norm(g).unwrap()).collect();
            assert!(
                norms.iter().any(|&g| g > f64::from(clip))
                    && norms.iter().any(|&g| g < f64::from(clip)),
                "hidden {hidden}: clipping must bind for some examples only: {norms:?}"
            );
            let native = values(&clipped_sum(each, f64::from(clip)).unwrap().unwrap());
            assert_eq!(native.len(), lab_sum.len());
            for (a, b) in native.iter().zip(&lab_sum) {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + a.abs()),
                    "hidden {hidden}: native {a}, lab {b}"
                );
            }
            // Noise: with no example in the batch the step is noise alone, σC/(q·n) per
            // coordinate in both (the native trainer's is checked above).
            let noise = values(&lab.noisy_gradient(&[]).unwrap());
            let plan = DpConfig {
                clip: f64::from(clip),
                noise_multiplier: Some(f64::from(dp.noise_multiplier)), // the lab's σ is an f32
                target_epsilon: None,
                delta: 1e-5,
            }
            .plan(n, 8, 3)
            .unwrap();
            let want = plan.sigma * plan.clip / (plan.q * n as f64);
            let sd =
                (noise.iter().map(|v| f64::from(v * v)).sum::<f64>() / noise.len() as f64).sqrt();
            assert!(
                (sd / want - 1.0).abs() < 0.1,
                "hidden {hidden}: lab noise sd {sd}, native {want}"
            );
            // ε: the same schedule and accountant, before and after training.
            let planned = cfg.planned_epsilon(n).unwrap().unwrap();
            assert_eq!(planned, plan.epsilon_after(3).unwrap());
            for _ in 0..3 {
                lab.epoch().unwrap();
            }
            assert_eq!(lab.epsilon(), Some(planned), "hidden {hidden}: ε spent");
        }
    }

    #[test]
    fn poisson_batches_have_the_expected_size() {
        let members: Vec<usize> = (0..10_000).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let b = poisson(&members, 0.01, &mut rng);
        assert!((b.len() as f64 - 100.0).abs() < 40.0, "{}", b.len());
    }
}
