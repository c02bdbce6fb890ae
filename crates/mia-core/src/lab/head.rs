//! The lab's trainable head: a linear layer, or one hidden layer with ReLU and dropout, on
//! frozen features, trained with burn's autodiff under any training-time defense loss
//! ([`crate::defense`]) and optionally with DP-SGD.
//!
//! **DP-SGD** (Abadi et al. 2016) with exact per-example clipping, without materialising
//! per-example gradients: for a dense layer `z = W·a + b`, example `i`'s gradient is
//! `δ_i ⊗ (a_i, 1)` with `δ_i = ∂ℓ_i/∂z_i`, so its squared norm is `‖δ_i‖²·(‖a_i‖² + 1)`
//! ("ghost norm", Goodfellow 2015). One backward pass gives every `δ_i` (a zero leaf added to
//! each layer's output collects them); a second, on `Σ_i c_i·⟨z_i, δ_i⟩` with the clip factors
//! `c_i = min(1, C/‖g_i‖)` held constant, gives the clipped sum `Σ_i c_i·g_i` for every layer at
//! once; Gaussian noise `N(0, σ²C²)` is added to each parameter's gradient through `⟨θ, ξ⟩`.
//! Batches are Poisson-sampled (each example with probability q = batch / n), the setting the
//! RDP accountant ([`crate::privacy`]) assumes, and the sum is divided by the expected batch
//! size q·n. The defense loss must be a mean of per-example losses (ERM, label smoothing,
//! confidence penalty); RelaxLoss decides per batch and is refused with DP-SGD.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::defense::{DefenseConfig, TrainingDefense};
use crate::privacy::Accountant;
use crate::rng::{mix, normal};

/// DP-SGD's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpSgd {
    /// Per-example gradient norm bound C.
    pub clip: f32,
    /// Noise multiplier σ (noise standard deviation σ·C).
    pub noise_multiplier: f32,
    /// δ at which ε is reported.
    pub delta: f64,
}

/// How the lab trains a head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Hidden units; 0 = a linear head.
    pub hidden: usize,
    /// Passes over the members.
    pub epochs: usize,
    /// Mini-batch size (the expected size under DP-SGD's Poisson sampling).
    pub batch_size: usize,
    /// SGD learning rate (momentum 0.9).
    pub lr: f64,
    /// L2 weight decay (0 = off).
    pub weight_decay: f32,
    /// Dropout before the output layer (hidden heads only).
    pub dropout: f64,
    /// The training loss.
    pub defense: DefenseConfig,
    /// DP-SGD, when on.
    pub dp: Option<DpSgd>,
    /// Seed of initialisation, batch order, dropout and noise.
    pub seed: u64,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            hidden: 0,
            epochs: 60,
            batch_size: 16,
            lr: 0.1,
            weight_decay: 0.0,
            dropout: 0.0,
            defense: DefenseConfig::Erm,
            dp: None,
            seed: 0,
        }
    }
}

impl HeadConfig {
    /// Range-checks every parameter.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::Parameter(m));
        if self.hidden > 4096 {
            return bad(format!("hidden units {} exceed 4096", self.hidden));
        }
        if !(1..=10_000).contains(&self.epochs) {
            return bad(format!("epochs must lie in 1..=10000, got {}", self.epochs));
        }
        if !(1..=4096).contains(&self.batch_size) {
            return bad(format!("batch size must lie in 1..=4096, got {}", self.batch_size));
        }
        if !(self.lr > 0.0 && self.lr <= 10.0) {
            return bad(format!("learning rate must lie in (0, 10], got {}", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay <= 1.0) {
            return bad(format!("weight decay must lie in [0, 1], got {}", self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must lie in [0, 1), got {}", self.dropout));
        }
        self.defense.build()?;
        if let Some(dp) = self.dp {
            if !(dp.clip > 0.0 && dp.clip.is_finite()) {
                return bad(format!("DP-SGD's clip norm must be positive, got {}", dp.clip));
            }
            if !(dp.noise_multiplier >= 0.0 && dp.noise_multiplier <= 1000.0) {
                return bad(format!(
                    "DP-SGD's noise multiplier must lie in [0, 1000], got {}",
                    dp.noise_multiplier
                ));
            }
            if !(dp.delta > 0.0 && dp.delta < 1.0) {
                return bad(format!("DP-SGD's δ must lie in (0, 1), got {}", dp.delta));
            }
            if matches!(self.defense, DefenseConfig::Relaxloss { .. }) {
                return bad("DP-SGD needs a per-example loss; RelaxLoss decides per batch".into());
            }
        }
        Ok(())
    }
}

/// The head: `features → classes` logits. Dropout (hidden heads) is applied by the trainer
/// with masks from its own seeded generator, so training is the same on every platform.
#[derive(Module, Debug)]
pub struct Head {
    fc1: Linear,
    fc2: Option<Linear>,
    relu: Relu,
}

impl Head {
    /// A fresh head for `dim` features and `classes` (burn's default initialisation on the
    /// device's seeded generator).
    pub fn new(dim: usize, classes: usize, cfg: &HeadConfig, device: &Device) -> Self {
        let out1 = if cfg.hidden == 0 { classes } else { cfg.hidden };
        Self {
            fc1: LinearConfig::new(dim, out1).init(device),
            fc2: (cfg.hidden > 0).then(|| LinearConfig::new(cfg.hidden, classes).init(device)),
            relu: Relu::new(),
        }
    }

    /// `[b, dim]` features → `[b, classes]` logits.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_masked(x, None)
    }

    /// The same, with the hidden activations multiplied by `mask` (`[b, hidden]`, inverted
    /// dropout: 0 or 1/(1−p)) while training.
    fn forward_masked(&self, x: Tensor<2>, mask: Option<Tensor<2>>) -> Tensor<2> {
        let h = self.fc1.forward(x);
        match &self.fc2 {
            None => h,
            Some(fc2) => fc2.forward(masked(self.relu.forward(h), mask)),
        }
    }
}

fn masked(a: Tensor<2>, mask: Option<Tensor<2>>) -> Tensor<2> {
    match mask {
        Some(m) => a * m,
        None => a,
    }
}

/// Features and labels of the examples a head trains on.
pub struct TrainSet<'a> {
    /// `[n × dim]` features, row-major.
    pub features: &'a [f32],
    /// Feature dimension.
    pub dim: usize,
    /// Labels, `< classes`.
    pub labels: &'a [usize],
    /// Classes.
    pub classes: usize,
}

impl TrainSet<'_> {
    fn check(&self) -> Result<usize, CoreError> {
        let n = self.labels.len();
        if self.dim == 0 || self.features.len() != n * self.dim {
            return Err(CoreError::Shape(format!(
                "{} feature values for {n} examples of dimension {}",
                self.features.len(),
                self.dim
            )));
        }
        if n == 0 || self.classes < 2 || self.labels.iter().any(|&y| y >= self.classes) {
            return Err(CoreError::Shape(format!(
                "a head needs examples and labels below {} classes (≥ 2)",
                self.classes
            )));
        }
        Ok(n)
    }

    fn batch(&self, rows: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let d = self.dim;
        let x: Vec<f32> =
            rows.iter().flat_map(|&i| self.features[i * d..(i + 1) * d].iter().copied()).collect();
        let y: Vec<i64> = rows.iter().map(|&i| self.labels[i] as i64).collect();
        (
            Tensor::from_data(TensorData::new(x, [rows.len(), d]), device),
            Tensor::from_data(TensorData::new(y, [rows.len()]), device),
        )
    }
}

/// Trains a head epoch by epoch, so a caller (the page) can yield, show progress and cancel
/// between epochs.
pub struct HeadTrainer<'a> {
    cfg: HeadConfig,
    data: TrainSet<'a>,
    n: usize,
    head: Head,
    optim: ModuleOptimizer,
    defense: Box<dyn TrainingDefense>,
    device: Device,
    epoch: usize,
    rng: ChaCha8Rng,
    accountant: Accountant,
}

impl<'a> HeadTrainer<'a> {
    /// A trainer of a fresh head on `data`, on `device` (autodiff is added here).
    pub fn new(cfg: HeadConfig, data: TrainSet<'a>, device: &Device) -> Result<Self, CoreError> {
        cfg.validate()?;
        let n = data.check()?;
        let device = device.clone().autodiff();
        let head = {
            let _rng = crate::rng::backend_lock();
            device.seed(mix(cfg.seed, 0x4EAD));
            let head = Head::new(data.dim, data.classes, &cfg, &device);
            head.visit(&mut crate::rng::Materialize);
            head
        };
        let wd = (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay));
        let optim = SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
            .with_weight_decay(wd)
            .init();
        let defense = cfg.defense.build()?;
        let rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, 0xBA7C));
        Ok(Self {
            cfg,
            data,
            n,
            head,
            optim,
            defense,
            device,
            epoch: 0,
            rng,
            accountant: Accountant::default(),
        })
    }

    /// Epochs done.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// Whether every planned epoch ran.
    pub fn finished(&self) -> bool {
        self.epoch >= self.cfg.epochs
    }

    /// ε spent so far at the configured δ (DP-SGD only).
    pub fn epsilon(&self) -> Option<f64> {
        let dp = self.cfg.dp?;
        self.accountant.epsilon(dp.delta).ok().map(|e| e.0)
    }

    /// One more epoch (no-op once finished).
    pub fn epoch(&mut self) -> Result<(), CoreError> {
        if self.finished() {
            return Ok(());
        }
        match self.cfg.dp {
            None => self.plain_epoch(),
            Some(dp) => self.dp_epoch(dp)?,
        }
        self.epoch += 1;
        Ok(())
    }

    fn plain_epoch(&mut self) {
        let mut order: Vec<usize> = (0..self.n).collect();
        order.shuffle(&mut self.rng);
        for rows in order.chunks(self.cfg.batch_size) {
            let (x, y) = self.data.batch(rows, &self.device);
            let mask = self.dropout_mask(rows.len());
            let loss = self.defense.loss(self.head.forward_masked(x, mask), y, self.epoch); // [1]
            let grads = GradientsParams::from_grads(loss.backward(), &self.head);
            self.head = self.optim.step(self.cfg.lr, self.head.clone(), grads);
        }
    }

    fn dp_epoch(&mut self, dp: DpSgd) -> Result<(), CoreError> {
        let q = (self.cfg.batch_size as f64 / self.n as f64).min(1.0);
        let steps = (1.0 / q).round().max(1.0) as usize;
        for _ in 0..steps {
            let rows: Vec<usize> = (0..self.n).filter(|_| self.rng.random::<f64>() < q).collect();
            let grads = self.dp_gradients(&rows, dp, q * self.n as f64);
            self.head = self.optim.step(self.cfg.lr, self.head.clone(), grads);
        }
        self.accountant.step(q, f64::from(dp.noise_multiplier), steps as u64)
    }

    /// The noisy clipped gradient of one Poisson batch, divided by the expected batch size.
    fn dp_gradients(&mut self, rows: &[usize], dp: DpSgd, expected: f64) -> GradientsParams {
        let clipped = if rows.is_empty() { None } else { Some(self.clipped_sum(rows, dp.clip)) };
        let head = &self.head;
        let sigma = dp.noise_multiplier * dp.clip;
        let mut noise_term: Option<Tensor<1>> = None;
        let layers = std::iter::once(&head.fc1).chain(head.fc2.as_ref());
        for layer in layers {
            let w = layer.weight.val();
            let dims = w.dims();
            let xi: Vec<f32> =
                (0..dims[0] * dims[1]).map(|_| sigma * normal(&mut self.rng)).collect();
            let mut t = (w * Tensor::from_data(TensorData::new(xi, dims), &self.device)).sum();
            if let Some(b) = &layer.bias {
                let b = b.val();
                let len = b.dims()[0];
                let xi: Vec<f32> = (0..len).map(|_| sigma * normal(&mut self.rng)).collect();
                t = t + (b * Tensor::from_data(TensorData::new(xi, [len]), &self.device)).sum();
            }
            noise_term = Some(match noise_term {
                None => t,
                Some(acc) => acc + t,
            });
        }
        let total = match (clipped, noise_term) {
            (Some(c), Some(n)) => c + n,
            (None, Some(n)) => n,
            (Some(c), None) => c,
            (None, None) => Tensor::zeros([1], &self.device),
        };
        let loss = total / expected as f32;
        GradientsParams::from_grads(loss.backward(), &self.head)
    }

    /// `Σ_i c_i·⟨z_i, δ_i⟩` over the layers, whose parameter gradient is the clipped sum of
    /// per-example gradients.
    fn clipped_sum(&mut self, rows: &[usize], clip: f32) -> Tensor<1> {
        let (x, y) = self.data.batch(rows, &self.device);
        let b = rows.len();
        let mask = self.dropout_mask(b);
        let head = &self.head;
        // Pass 1: per-example output gradients δ of every layer, collected on zero leaves.
        let e1 = Tensor::<2>::zeros([b, head.fc1.weight.dims()[1]], &self.device).require_grad();
        let h = head.fc1.forward(x.clone()) + e1.clone();
        let (logits, a, e2) = match &head.fc2 {
            None => (h, None, None),
            Some(fc2) => {
                let a = masked(head.relu.forward(h), mask);
                let e2 = Tensor::<2>::zeros([b, fc2.weight.dims()[1]], &self.device).require_grad();
                (fc2.forward(a.clone()) + e2.clone(), Some(a.detach()), Some(e2))
            }
        };
        let sum = self.defense.loss(logits, y, self.epoch) * b as f32; // Σ_i ℓ_i, [1]
        let grads = sum.backward();
        let delta = |e: &Tensor<2>| e.grad(&grads).map(|g| g.autodiff());
        let d1 = delta(&e1).unwrap_or_else(|| Tensor::zeros([b, 1], &self.device));
        let d2 = e2.as_ref().and_then(delta);
        // Squared per-example norms: ‖δ‖²·(‖input‖² + 1), summed over the layers.
        let sq = |t: &Tensor<2>| t.clone().powf_scalar(2.0).sum_dim(1); // [b, 1]
        let mut norm2 = sq(&d1) * (sq(&x) + 1.0);
        if let (Some(d2), Some(a)) = (&d2, &a) {
            norm2 = norm2 + sq(d2) * (sq(a) + 1.0);
        }
        let c = (norm2.sqrt().clamp_min(1e-12).recip() * clip).clamp_max(1.0).detach(); // [b, 1]
        // Pass 2: the surrogate, with δ and c constant.
        let mut s = (head.fc1.forward(x) * d1.detach() * c.clone()).sum();
        if let (Some(fc2), Some(d2), Some(a)) = (&head.fc2, d2, a) {
            s = s + (fc2.forward(a) * d2.detach() * c).sum();
        }
        s
    }

    /// Inverted-dropout masks `[b, hidden]` from the trainer's generator (None without dropout
    /// or a hidden layer).
    fn dropout_mask(&mut self, b: usize) -> Option<Tensor<2>> {
        let p = self.cfg.dropout;
        if p == 0.0 || self.cfg.hidden == 0 {
            return None;
        }
        let h = self.cfg.hidden;
        let keep = (1.0 / (1.0 - p)) as f32;
        let m: Vec<f32> =
            (0..b * h).map(|_| if self.rng.random::<f64>() < p { 0.0 } else { keep }).collect();
        Some(Tensor::from_data(TensorData::new(m, [b, h]), &self.device))
    }

    /// The trained head, without autodiff.
    pub fn finish(self) -> Head {
        self.head.valid()
    }
}

/// Scales every feature vector (rows of `[n × dim]`) to length √dim, so that its entries are
/// about 1 whatever the trunk's activation scale; each image on its own (no statistics shared
/// across images, so held-out images tell the head nothing). All-zero rows stay zero.
pub fn normalize_features(features: &mut [f32], dim: usize) {
    if dim == 0 {
        return;
    }
    let target = (dim as f32).sqrt();
    for row in features.chunks_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v *= target / norm);
        }
    }
}

/// `[n × classes]` logits of `head` on `[n × dim]` features (row-major).
pub fn head_logits(
    head: &Head,
    features: &[f32],
    dim: usize,
    device: &Device,
) -> Result<Tensor<2>, CoreError> {
    if dim == 0 || !features.len().is_multiple_of(dim) {
        return Err(CoreError::Shape(format!("{} values of dimension {dim}", features.len())));
    }
    let x =
        Tensor::from_data(TensorData::new(features.to_vec(), [features.len() / dim, dim]), device);
    Ok(head.forward(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LabAttack, LabScores, Split, shadow_keep, split_members};

    /// Two classes of Gaussian "features" that overlap: a head that fits its members
    /// memorises them.
    fn images(n: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let x = labels
            .iter()
            .flat_map(|&y| {
                let shift = if y == 0 { 0.3 } else { -0.3 };
                (0..dim).map(|_| normal(&mut rng) + shift).collect::<Vec<_>>()
            })
            .collect();
        (x, labels)
    }

    fn train(cfg: &HeadConfig, x: &[f32], labels: &[usize], rows: &[usize], dim: usize) -> Head {
        let device = Device::flex();
        let xs: Vec<f32> =
            rows.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
        let ys: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
        let data = TrainSet { features: &xs, dim, labels: &ys, classes: 2 };
        let mut t = HeadTrainer::new(cfg.clone(), data, &device).unwrap();
        while !t.finished() {
            t.epoch().unwrap();
        }
        t.finish()
    }

    fn logits(head: &Head, x: &[f32], dim: usize) -> Vec<f32> {
        let t = head_logits(head, x, dim, &Device::flex()).unwrap();
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// LiRA-online AUC of an audit of 60 images with 8 shadows under `cfg`.
    fn lira_auc(cfg: &HeadConfig) -> f64 {
        let (n, dim, s) = (60, 64, 8);
        let (x, labels) = images(n, dim, 1);
        let member = split_members(&labels, 0.5, 2).unwrap();
        let rows = |keep: &dyn Fn(usize) -> bool| (0..n).filter(|&i| keep(i)).collect::<Vec<_>>();
        let target = logits(&train(cfg, &x, &labels, &rows(&|i| member[i]), dim), &x, dim);
        let keep = shadow_keep(n, s, 3);
        let mut shadows = Vec::new();
        for m in 0..s {
            let c = HeadConfig { seed: cfg.seed + 1 + m as u64, ..cfg.clone() };
            let head = train(&c, &x, &labels, &rows(&|i| keep[m * n + i]), dim);
            shadows.extend(logits(&head, &x, dim));
        }
        let split =
            Split { labels: &labels, classes: 2, target: &target, shadows: &shadows, keep: &keep };
        let aucs = LabScores::compute(&split).unwrap().aucs(&member).unwrap();
        aucs.iter().find(|a| a.0 == LabAttack::LiraOnline).unwrap().1
    }

    #[test]
    fn an_erm_head_leaks_its_members_and_strong_dp_sgd_hides_them() {
        let erm = HeadConfig { epochs: 40, ..HeadConfig::default() };
        let auc = lira_auc(&erm);
        assert!(auc > 0.7, "ERM head: LiRA AUC {auc}");
        eprintln!("ERM head: LiRA AUC {auc}");
        let dp =
            HeadConfig { dp: Some(DpSgd { clip: 1.0, noise_multiplier: 8.0, delta: 1e-5 }), ..erm };
        let auc = lira_auc(&dp);
        eprintln!("DP-SGD head: LiRA AUC {auc}");
        assert!((auc - 0.5).abs() < 0.15, "DP-SGD σ = 8: LiRA AUC {auc}");
    }

    #[test]
    fn the_same_seed_gives_the_same_head_and_dp_reports_epsilon() {
        let (x, labels) = images(20, 8, 5);
        let rows: Vec<usize> = (0..20).collect();
        let cfg = HeadConfig {
            hidden: 16,
            epochs: 3,
            dropout: 0.2,
            dp: Some(DpSgd { clip: 1.0, noise_multiplier: 1.0, delta: 1e-5 }),
            ..HeadConfig::default()
        };
        let a = logits(&train(&cfg, &x, &labels, &rows, 8), &x, 8);
        let b = logits(&train(&cfg, &x, &labels, &rows, 8), &x, 8);
        assert_eq!(a, b);
        let data = TrainSet { features: &x, dim: 8, labels: &labels, classes: 2 };
        let mut t = HeadTrainer::new(cfg, data, &Device::flex()).unwrap();
        t.epoch().unwrap();
        let e1 = t.epsilon().unwrap();
        t.epoch().unwrap();
        assert!(e1 > 0.0 && t.epsilon().unwrap() > e1, "ε grows with every epoch");
    }

    #[test]
    fn clipping_bounds_every_example_and_noise_free_dp_equals_clipped_sgd() {
        // With a clip far above every gradient and no noise, DP-SGD's direction is plain
        // SGD's on the sampled examples: a head trained so still learns the task.
        let (x, labels) = images(40, 8, 9);
        let rows: Vec<usize> = (0..40).collect();
        let cfg = HeadConfig {
            epochs: 30,
            dp: Some(DpSgd { clip: 1e6, noise_multiplier: 0.0, delta: 1e-5 }),
            ..HeadConfig::default()
        };
        let z = logits(&train(&cfg, &x, &labels, &rows, 8), &x, 8);
        let right =
            z.chunks(2).zip(&labels).filter(|(z, y)| usize::from(z[1] > z[0]) == **y).count();
        assert!(right >= 32, "{right}/40 right");
    }

    #[test]
    fn features_are_scaled_per_image_to_root_dim() {
        let mut f = vec![3.0, 4.0, 0.0, 0.0];
        normalize_features(&mut f, 2);
        assert!((f[0] - 0.6 * 2f32.sqrt()).abs() < 1e-6 && (f[1] - 0.8 * 2f32.sqrt()).abs() < 1e-6);
        assert_eq!(&f[2..], &[0.0, 0.0]);
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = [
            HeadConfig { epochs: 0, ..HeadConfig::default() },
            HeadConfig { lr: f64::NAN, ..HeadConfig::default() },
            HeadConfig { dropout: 1.0, ..HeadConfig::default() },
            HeadConfig {
                defense: DefenseConfig::Relaxloss {
                    alpha: 1.0,
                    variant: Default::default(),
                    upper: 1.0,
                },
                dp: Some(DpSgd { clip: 1.0, noise_multiplier: 1.0, delta: 1e-5 }),
                ..HeadConfig::default()
            },
        ];
        for cfg in bad {
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
        let data = TrainSet { features: &[0.0; 3], dim: 2, labels: &[0, 1], classes: 2 };
        assert!(HeadTrainer::new(HeadConfig::default(), data, &Device::flex()).is_err());
    }
}
