//! Training a lab network ([`LabNet`]) epoch by epoch with burn's autodiff, under any
//! training-time defense loss ([`crate::defense`]), optionally with DP-SGD and early stopping.
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
//! confidence penalty); RelaxLoss decides per batch and is refused with DP-SGD. DP-SGD trains
//! heads only: a fine-tuned trunk's convolutions would need per-example gradients of their own.
//!
//! **Early stopping** (as `mia train --early-stopping`): after every epoch the caller reads the
//! loss on validation examples the network does not train on ([`HeadTrainer::validation_loss`],
//! a tensor, so the page can read it back asynchronously) and reports it
//! ([`HeadTrainer::observe_validation`]); training stops after `patience` epochs without a new
//! lowest loss and the weights of the best epoch are kept. Under DP-SGD, ε counts every epoch
//! trained, the ones after the kept epoch included: which epoch is kept was decided with their
//! validation losses, so the released weights depend on every step (as Opacus counts it).

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::head::{DpSgd, Head, HeadConfig, LabNet, TrainSet, masked};
use crate::defense::TrainingDefense;
use crate::models::Model;
use crate::privacy::Accountant;
use crate::rng::{mix, normal};
use crate::{CoreError, InputSpec};

/// The best epoch so far under early stopping.
struct Best {
    loss: f64,
    net: LabNet,
    epoch: usize,
}

/// Early stopping's state.
struct EarlyStop<'a> {
    patience: usize,
    data: TrainSet<'a>,
    best: Option<Best>,
    bad_epochs: usize,
    observed: usize,
}

/// Trains a lab network epoch by epoch, so a caller (the page) can yield, show progress and
/// cancel between epochs.
pub struct HeadTrainer<'a> {
    cfg: HeadConfig,
    data: TrainSet<'a>,
    n: usize,
    net: LabNet,
    optim: ModuleOptimizer,
    defense: Box<dyn TrainingDefense>,
    device: Device,
    epoch: usize,
    rng: ChaCha8Rng,
    accountant: Accountant,
    early: Option<EarlyStop<'a>>,
}

impl<'a> HeadTrainer<'a> {
    /// A trainer of a fresh head on `data` (features), on `device` (autodiff is added here).
    pub fn new(cfg: HeadConfig, data: TrainSet<'a>, device: &Device) -> Result<Self, CoreError> {
        Self::build(cfg, data, device, None)
    }

    /// A trainer that fine-tunes `model`'s trunk together with a fresh head on `data`, whose
    /// rows are normalised images of shape `input`. DP-SGD is refused (it clips heads only).
    pub fn fine_tune(
        cfg: HeadConfig,
        data: TrainSet<'a>,
        (model, input): (&Model, InputSpec),
        device: &Device,
    ) -> Result<Self, CoreError> {
        if cfg.dp.is_some() {
            return Err(CoreError::Parameter(
                "DP-SGD clips the head's per-example gradients only: train a head on frozen \
                 features, or fine-tune without DP-SGD"
                    .into(),
            ));
        }
        if data.dim != input.numel() {
            return Err(CoreError::Shape(format!(
                "rows of {} values for images of {input}",
                data.dim
            )));
        }
        Self::build(cfg, data, device, Some((model, input)))
    }

    fn build(
        cfg: HeadConfig,
        data: TrainSet<'a>,
        device: &Device,
        trunk: Option<(&Model, InputSpec)>,
    ) -> Result<Self, CoreError> {
        cfg.validate()?;
        let n = data.check()?;
        let device = device.clone().autodiff();
        let net = {
            let _rng = crate::rng::backend_lock();
            device.seed(mix(cfg.seed, 0x4EAD));
            let net = match trunk {
                None => LabNet::head(Head::new(data.dim, data.classes, &cfg, &device)),
                Some((model, input)) => {
                    let model = model.clone().fork(&device).train();
                    let dim = model.feature_dim().ok_or_else(|| {
                        CoreError::Parameter("this model exposes no features".into())
                    })?;
                    LabNet::fine_tuned(&model, input, Head::new(dim, data.classes, &cfg, &device))?
                }
            };
            net.visit(&mut crate::rng::Materialize);
            net
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
            net,
            optim,
            defense,
            device,
            epoch: 0,
            rng,
            accountant: Accountant::default(),
            early: None,
        })
    }

    /// Validation examples for early stopping (required when the recipe asks for it; refused
    /// otherwise). They must not be among the training examples.
    pub fn with_validation(mut self, data: TrainSet<'a>) -> Result<Self, CoreError> {
        let Some(patience) = self.cfg.early_stopping else {
            return Err(CoreError::Parameter("validation examples without early stopping".into()));
        };
        data.check()?;
        if data.dim != self.data.dim || data.classes != self.data.classes {
            return Err(CoreError::Shape("validation examples of another shape".into()));
        }
        self.early = Some(EarlyStop { patience, data, best: None, bad_epochs: 0, observed: 0 });
        Ok(self)
    }

    /// Mean cross-entropy of the current weights on the validation examples (`[1]`), to be
    /// read back and passed to [`Self::observe_validation`]; `None` without early stopping.
    pub fn validation_loss(&self) -> Option<Tensor<1>> {
        let early = self.early.as_ref()?;
        let rows: Vec<usize> = (0..early.data.labels.len()).collect();
        let device = self.device.clone().inner();
        let (x, y) = early.data.batch(&rows, &device);
        let logits = self.net.valid().forward(x);
        Some(CrossEntropyLossConfig::new().init(&device).forward(logits, y))
    }

    /// Records the validation loss after the latest epoch: a new lowest keeps these weights,
    /// `patience` epochs without one stop training.
    pub fn observe_validation(&mut self, loss: f64) {
        let (epoch, net) = (self.epoch, &self.net);
        let Some(early) = self.early.as_mut() else { return };
        early.observed = epoch;
        let better = early.best.as_ref().is_none_or(|b| loss < b.loss);
        if better && loss.is_finite() {
            early.best = Some(Best { loss, net: net.clone(), epoch });
            early.bad_epochs = 0;
        } else {
            early.bad_epochs += 1;
        }
    }

    /// The epoch whose weights [`Self::finish`] returns, and whether early stopping ended
    /// training before the planned epochs.
    pub fn kept_epoch(&self) -> (usize, bool) {
        match self.early.as_ref().and_then(|e| e.best.as_ref().map(|b| b.epoch)) {
            Some(best) => (best, self.stopped() && self.epoch < self.cfg.epochs),
            None => (self.epoch, false),
        }
    }

    fn stopped(&self) -> bool {
        self.early.as_ref().is_some_and(|e| e.bad_epochs >= e.patience)
    }

    /// Epochs done.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// Whether training is over: every planned epoch ran, or early stopping ended it.
    pub fn finished(&self) -> bool {
        self.epoch >= self.cfg.epochs || self.stopped()
    }

    /// ε at the configured δ (DP-SGD only) of the weights [`Self::finish`] returns: every step
    /// taken so far. Under early stopping that includes the epochs after the kept one, whose
    /// validation losses chose it.
    pub fn epsilon(&self) -> Option<f64> {
        let dp = self.cfg.dp?;
        self.accountant.epsilon(dp.delta).ok().map(|e| e.0)
    }

    /// One more epoch (no-op once finished). Under early stopping the previous epoch's
    /// validation loss must have been observed first.
    pub fn epoch(&mut self) -> Result<(), CoreError> {
        if self.finished() {
            return Ok(());
        }
        match &self.early {
            None if self.cfg.early_stopping.is_some() => {
                return Err(CoreError::Parameter(
                    "early stopping needs validation examples (with_validation)".into(),
                ));
            }
            Some(e) if e.observed != self.epoch => {
                return Err(CoreError::Parameter(
                    "early stopping: observe the validation loss after every epoch".into(),
                ));
            }
            _ => {}
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
            let loss = self.defense.loss(self.net.forward_masked(x, mask), y, self.epoch); // [1]
            let grads = GradientsParams::from_grads(loss.backward(), &self.net);
            self.net = self.optim.step(self.cfg.lr, self.net.clone(), grads);
        }
    }

    fn dp_epoch(&mut self, dp: DpSgd) -> Result<(), CoreError> {
        let (q, steps) = crate::privacy::poisson_schedule(self.cfg.batch_size, self.n);
        for _ in 0..steps {
            let rows: Vec<usize> = (0..self.n).filter(|_| self.rng.random::<f64>() < q).collect();
            let grads = self.dp_gradients(&rows, dp, q * self.n as f64);
            self.net = self.optim.step(self.cfg.lr, self.net.clone(), grads);
        }
        self.accountant.step(q, f64::from(dp.noise_multiplier), steps as u64)
    }

    /// The head being trained.
    pub fn head(&self) -> &Head {
        self.net.head_ref()
    }

    /// DP-SGD's clipped sum Σ_i min(1, C/‖g_i‖)·g_i of the per-example gradients of `rows`
    /// (before noise and before dividing by the batch), per parameter of the head in its
    /// visiting order, flattened. The native trainer computes the same sum with one backward
    /// pass per example; mia-train's tests check that the two agree.
    pub fn clipped_gradient(&mut self, rows: &[usize], clip: f32) -> Vec<Tensor<1>> {
        let grads = GradientsParams::from_grads(self.clipped_sum(rows, clip).backward(), &self.net);
        self.head_gradients(&grads)
    }

    /// The gradient one DP-SGD step hands the optimiser for `rows` (clipped sum plus
    /// N(0, σ²C²) noise per coordinate, divided by the expected batch q·n), per parameter of
    /// the head, flattened; `None` without DP-SGD.
    pub fn noisy_gradient(&mut self, rows: &[usize]) -> Option<Vec<Tensor<1>>> {
        let dp = self.cfg.dp?;
        let (q, _) = crate::privacy::poisson_schedule(self.cfg.batch_size, self.n);
        let grads = self.dp_gradients(rows, dp, q * self.n as f64);
        Some(self.head_gradients(&grads))
    }

    /// The head's parameter gradients in `grads`, flattened, in visiting order (zeros where
    /// the loss does not reach).
    fn head_gradients(&self, grads: &GradientsParams) -> Vec<Tensor<1>> {
        struct Flatten<'g>(&'g GradientsParams, Vec<Tensor<1>>);
        impl burn::module::ModuleVisitor for Flatten<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let v = param.val();
                let n = v.shape().num_elements();
                let g = self
                    .0
                    .get::<D>(param.id)
                    .unwrap_or_else(|| Tensor::zeros(v.shape(), &v.device()).inner());
                self.1.push(g.reshape([n]));
            }
        }
        let mut f = Flatten(grads, Vec::new());
        self.net.head_ref().visit(&mut f);
        f.1
    }

    /// The noisy clipped gradient of one Poisson batch, divided by the expected batch size.
    fn dp_gradients(&mut self, rows: &[usize], dp: DpSgd, expected: f64) -> GradientsParams {
        let clipped = if rows.is_empty() { None } else { Some(self.clipped_sum(rows, dp.clip)) };
        let head = self.net.head_ref();
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
        GradientsParams::from_grads(loss.backward(), &self.net)
    }

    /// `Σ_i c_i·⟨z_i, δ_i⟩` over the layers, whose parameter gradient is the clipped sum of
    /// per-example gradients.
    fn clipped_sum(&mut self, rows: &[usize], clip: f32) -> Tensor<1> {
        let (x, y) = self.data.batch(rows, &self.device);
        let b = rows.len();
        let mask = self.dropout_mask(b);
        let head = self.net.head_ref();
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

    /// The trained network (the best epoch's under early stopping), without autodiff.
    pub fn finish(self) -> LabNet {
        match self.early.and_then(|e| e.best) {
            Some(best) => best.net.valid(),
            None => self.net.valid(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::DefenseConfig;
    use crate::lab::{
        LabAttack, LabScores, Split, lab_logits, normalize_features, shadow_keep, split_members,
    };
    use crate::models::ModelConfig;

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

    fn train(cfg: &HeadConfig, x: &[f32], labels: &[usize], rows: &[usize], dim: usize) -> LabNet {
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

    fn logits(net: &LabNet, x: &[f32], dim: usize) -> Vec<f32> {
        let t = lab_logits(net, x, dim, &Device::flex()).unwrap();
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

    /// Every attack's rotated draws for 60 images with a target on a seeded member split and
    /// 16 shadows, every head seeded from `seed`.
    fn rotated(cfg: &HeadConfig, seed: u64) -> Vec<crate::lab::AttackDraws> {
        let (n, dim, s) = (60, 64, 16);
        let (x, labels) = images(n, dim, 1);
        let member = split_members(&labels, 0.5, seed).unwrap();
        let mut keep: Vec<bool> = member.clone();
        keep.extend(shadow_keep(n, s, seed));
        let mut all = Vec::new();
        for m in 0..=s {
            let c = HeadConfig { seed: mix(seed, m as u64), ..cfg.clone() };
            let rows: Vec<usize> = (0..n).filter(|&i| keep[m * n + i]).collect();
            all.extend(logits(&train(&c, &x, &labels, &rows, dim), &x, dim));
        }
        let models = crate::lab::Models { labels: &labels, classes: 2, logits: &all, keep: &keep };
        crate::lab::rotate(&models).unwrap()
    }

    #[test]
    fn rotated_intervals_from_other_seeds_agree() {
        // The same 60 images, 20 seeds (member split, shadow halves, initialisations). One draw
        // alone moves by ±0.1; each run's 95 % interval must hold the mean over all 20 runs
        // (the expected AUC on these images) about 95 % of the time, and any two runs'
        // intervals must overlap. (Measured: this interval holds it 19 or 20 times of 20 for
        // every attack; a t-interval over the draws, which share models and images, held
        // LiRA online's for 15 of 20 and offline's for 17.)
        let cfg = HeadConfig { epochs: 40, ..HeadConfig::default() };
        let runs: Vec<_> = (1..=20).map(|s| rotated(&cfg, s)).collect();
        for a in 0..LabAttack::ALL.len() {
            let attack = runs[0][a].attack;
            let means: Vec<f64> = runs.iter().map(|r| r[a].auc.mean).collect();
            let grand = means.iter().sum::<f64>() / means.len() as f64;
            let held = runs.iter().filter(|r| r[a].auc.contains(grand)).count();
            eprintln!("{attack:?}: grand mean {grand:.4}, held by {held} of 20 intervals");
            assert!(held >= 17, "{attack:?}: only {held} of 20 intervals hold {grand}");
            // Another seed's mean inside a run's rerun range (the class's comparison), and
            // inside the interval of the mean itself (expected ~83 % for calibrated intervals).
            let pairs =
                |inside: &dyn Fn(&crate::lab::AttackDraws, &crate::lab::AttackDraws) -> bool| {
                    let hits = runs.iter().enumerate().flat_map(|(i, r)| {
                        runs.iter()
                            .enumerate()
                            .filter(move |(j, _)| *j != i)
                            .map(move |(_, o)| (r, o))
                    });
                    hits.filter(|(r, o)| inside(&r[a], &o[a])).count()
                };
            let rerun = pairs(&|r, o| r.auc.rerun().contains(o.auc.mean));
            let mean = pairs(&|r, o| r.auc.contains(o.auc.mean));
            eprintln!(
                "{attack:?}: another seed's mean in the rerun range {rerun} of 380, in the interval {mean} of 380"
            );
            assert!(
                rerun >= 342,
                "{attack:?}: only {rerun} of 380 seeds' means in each other's rerun range"
            );
            for r in &runs[..3] {
                for o in &runs[..3] {
                    assert!(
                        r[a].auc.overlaps(&o[a].auc),
                        "{attack:?}: {:?} {:?}",
                        r[a].auc,
                        o[a].auc
                    );
                }
            }
        }
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
    fn clipping_bounds_every_example_and_nearly_noise_free_dp_learns_like_sgd() {
        // With a clip far above every gradient and no noise, DP-SGD's direction is plain
        // SGD's on the sampled examples: a head trained so still learns the task.
        let (x, labels) = images(40, 8, 9);
        let rows: Vec<usize> = (0..40).collect();
        let cfg = HeadConfig {
            epochs: 30,
            // σ·C = 1e-3: noise far below the gradients (σ = 0 itself is refused).
            dp: Some(DpSgd { clip: 1e6, noise_multiplier: 1e-9, delta: 1e-5 }),
            ..HeadConfig::default()
        };
        let z = logits(&train(&cfg, &x, &labels, &rows, 8), &x, 8);
        let right =
            z.chunks(2).zip(&labels).filter(|(z, y)| usize::from(z[1] > z[0]) == **y).count();
        assert!(right >= 32, "{right}/40 right");
    }

    /// Trains until finished, reading the validation loss back after every epoch when early
    /// stopping is on.
    fn run_all(t: &mut HeadTrainer<'_>) {
        while !t.finished() {
            t.epoch().unwrap();
            if let Some(loss) = t.validation_loss() {
                t.observe_validation(f64::from(loss.into_data().try_to_vec::<f32>().unwrap()[0]));
            }
        }
    }

    /// A trainer run with early stopping on `val` until it stops.
    fn trained_early<'a>(
        cfg: &HeadConfig,
        train: TrainSet<'a>,
        val: TrainSet<'a>,
    ) -> HeadTrainer<'a> {
        let mut t = HeadTrainer::new(cfg.clone(), train, &Device::flex())
            .unwrap()
            .with_validation(val)
            .unwrap();
        run_all(&mut t);
        t
    }

    /// Trains with early stopping on `val`, reading the validation loss back after every epoch.
    fn train_early(
        cfg: &HeadConfig,
        train: TrainSet<'_>,
        val: TrainSet<'_>,
    ) -> (LabNet, usize, bool) {
        let t = trained_early(cfg, train, val);
        let (kept, stopped) = t.kept_epoch();
        (t.finish(), kept, stopped)
    }

    #[test]
    fn early_stopping_keeps_the_best_epochs_weights_and_stops_after_the_patience() {
        // Labels unrelated to the features: the head memorises its 20 training examples, so
        // the loss on 20 other examples rises soon and training stops long before 200 epochs.
        let (x, _) = images(40, 16, 21);
        let labels: Vec<usize> = (0..40).map(|i| (i * 7 + i / 3) % 2).collect();
        let cfg = HeadConfig { epochs: 200, early_stopping: Some(3), ..HeadConfig::default() };
        let set = TrainSet { features: &x[..20 * 16], dim: 16, labels: &labels[..20], classes: 2 };
        let val = TrainSet { features: &x[20 * 16..], dim: 16, labels: &labels[20..], classes: 2 };
        let (net, kept, stopped) = train_early(&cfg, set, val);
        assert!(stopped && kept < 200, "kept epoch {kept}, stopped {stopped}");
        // The kept weights are exactly those of training `kept` epochs without early stopping.
        let plain = HeadConfig { epochs: kept, early_stopping: None, ..cfg };
        let rows: Vec<usize> = (0..20).collect();
        let again = train(&plain, &x, &labels, &rows, 16);
        assert_eq!(logits(&net, &x, 16), logits(&again, &x, 16));
    }

    /// A DP-SGD recipe whose validation loss rises early (labels unrelated to the features),
    /// and its training and validation sets as the lab splits them.
    fn dp_early_world() -> (Vec<f32>, Vec<usize>, HeadConfig) {
        let (x, _) = images(50, 16, 21);
        let labels: Vec<usize> = (0..50).map(|i| (i * 7 + i / 3) % 2).collect();
        let cfg = HeadConfig {
            epochs: 200,
            lr: 0.5,
            batch_size: 8,
            early_stopping: Some(2),
            dp: Some(DpSgd { clip: 1.0, noise_multiplier: 1.0, delta: 1e-5 }),
            ..HeadConfig::default()
        };
        (x, labels, cfg)
    }

    fn rows_of(x: &[f32], labels: &[usize], rows: &[usize], dim: usize) -> (Vec<f32>, Vec<usize>) {
        let xs = rows.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
        (xs, rows.iter().map(|&i| labels[i]).collect())
    }

    #[test]
    fn epsilon_under_early_stopping_counts_every_epoch_trained_not_only_the_kept_ones() {
        let (x, labels, cfg) = dp_early_world();
        let all: Vec<usize> = (0..50).collect();
        let (train_rows, val_rows) = crate::lab::validation_split(&all, 3);
        let (tx, ty) = rows_of(&x, &labels, &train_rows, 16);
        let (vx, vy) = rows_of(&x, &labels, &val_rows, 16);
        let set = TrainSet { features: &tx, dim: 16, labels: &ty, classes: 2 };
        let val = TrainSet { features: &vx, dim: 16, labels: &vy, classes: 2 };
        let t = trained_early(&cfg, set, val);
        let (kept, stopped) = t.kept_epoch();
        let done = t.epochs_done();
        assert!(stopped && kept < done, "kept {kept} of {done} epochs run");
        let (q, steps) = crate::privacy::poisson_schedule(cfg.batch_size, train_rows.len());
        let spent =
            |epochs: usize| crate::privacy::epsilon(q, 1.0, (steps * epochs) as u64, 1e-5).unwrap();
        let reported = t.epsilon().unwrap();
        assert!((reported - spent(done)).abs() < 1e-12, "{reported} vs {}", spent(done));
        assert!(reported > spent(kept), "the later epochs count too");
    }

    #[test]
    fn the_planned_epsilon_is_what_a_full_run_spends_with_and_without_early_stopping() {
        let (x, labels, cfg) = dp_early_world();
        let members: Vec<usize> = (0..50).collect();
        for early in [None, Some(1000)] {
            let cfg = HeadConfig { epochs: 4, early_stopping: early, ..cfg.clone() };
            let (train_rows, val_rows) = match early {
                Some(_) => crate::lab::validation_split(&members, 9),
                None => (members.clone(), Vec::new()),
            };
            let (tx, ty) = rows_of(&x, &labels, &train_rows, 16);
            let (vx, vy) = rows_of(&x, &labels, &val_rows, 16);
            let set = TrainSet { features: &tx, dim: 16, labels: &ty, classes: 2 };
            let mut t = HeadTrainer::new(cfg.clone(), set, &Device::flex()).unwrap();
            if early.is_some() {
                let val = TrainSet { features: &vx, dim: 16, labels: &vy, classes: 2 };
                t = t.with_validation(val).unwrap();
            }
            run_all(&mut t);
            assert_eq!(cfg.trained_on(members.len()), train_rows.len(), "{early:?}");
            assert_eq!(t.epochs_done(), 4);
            let planned = cfg.planned_epsilon(members.len()).unwrap().unwrap();
            let spent = t.epsilon().unwrap();
            assert!((planned - spent).abs() < 1e-12, "{early:?}: planned {planned}, spent {spent}");
        }
        assert_eq!(HeadConfig::default().planned_epsilon(50).unwrap(), None, "no DP-SGD");
    }

    #[test]
    fn dp_sgd_without_noise_is_refused_with_what_to_do() {
        let cfg = HeadConfig {
            dp: Some(DpSgd { clip: 1.0, noise_multiplier: 0.0, delta: 1e-5 }),
            ..HeadConfig::default()
        };
        let why = cfg.validate().unwrap_err().to_string();
        assert!(why.contains("σ = 0") && why.contains("choose σ > 0"), "{why}");
    }

    #[test]
    fn early_stopping_needs_validation_and_a_loss_after_every_epoch() {
        let (x, labels) = images(10, 4, 1);
        let set = || TrainSet { features: &x, dim: 4, labels: &labels, classes: 2 };
        let cfg = HeadConfig { early_stopping: Some(2), ..HeadConfig::default() };
        let mut t = HeadTrainer::new(cfg.clone(), set(), &Device::flex()).unwrap();
        assert!(t.epoch().is_err(), "no validation examples");
        let mut t =
            HeadTrainer::new(cfg, set(), &Device::flex()).unwrap().with_validation(set()).unwrap();
        t.epoch().unwrap();
        assert!(t.epoch().is_err(), "the first epoch's loss was not observed");
        let plain = HeadTrainer::new(HeadConfig::default(), set(), &Device::flex()).unwrap();
        assert!(plain.with_validation(set()).is_err(), "validation without early stopping");
    }

    fn tiny_cnn(device: &Device) -> (Model, InputSpec) {
        let input = InputSpec::new(3, 8, 8);
        device.seed(5);
        (
            ModelConfig::new(crate::models::Architecture::SmallCnn, input, 10)
                .init(device)
                .unwrap(),
            input,
        )
    }

    #[test]
    fn a_fine_tuned_net_reads_the_trunks_features_normalised_like_the_host() {
        let device = Device::flex();
        let (model, input) = tiny_cnn(&device);
        let pixels: Vec<f32> = (0..4 * 192).map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(pixels.clone(), [4, 192]), &device);
        let head = Head::new(128, 3, &HeadConfig::default(), &device);
        let mut features: Vec<f32> =
            model.features(x.reshape([4, 3, 8, 8])).unwrap().into_data().try_to_vec().unwrap();
        normalize_features(&mut features, 128);
        let frozen = logits(&LabNet::head(head.clone()), &features, 128);
        let tuned = logits(&LabNet::fine_tuned(&model, input, head).unwrap(), &pixels, 192);
        for (a, b) in frozen.iter().zip(&tuned) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn fine_tuning_trains_the_trunk_too_and_refuses_dp_sgd() {
        let device = Device::flex();
        let (model, input) = tiny_cnn(&device);
        let pixels: Vec<f32> = (0..8 * 192).map(|i| ((i * 31 % 23) as f32 - 11.0) / 7.0).collect();
        let labels: Vec<usize> = (0..8).map(|i| i % 2).collect();
        let data = || TrainSet { features: &pixels, dim: 192, labels: &labels, classes: 2 };
        let cfg = HeadConfig { epochs: 80, lr: 0.05, ..HeadConfig::default() };
        let mut t = HeadTrainer::fine_tune(cfg.clone(), data(), (&model, input), &device).unwrap();
        while !t.finished() {
            t.epoch().unwrap();
        }
        let net = t.finish();
        assert!(net.is_fine_tuned());
        // The trunk moved: its features of the same images differ from the shipped trunk's.
        let x = || Tensor::<2>::from_data(TensorData::new(pixels.clone(), [8, 192]), &device);
        let before = LabNet::fine_tuned(&model, input, Head::new(128, 2, &cfg, &device)).unwrap();
        let moved: f32 = (before.features(x()) - net.features(x()))
            .abs()
            .sum()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()[0];
        assert!(moved > 1e-3, "trunk unchanged ({moved})");
        // It fits its 8 training images.
        let z = logits(&net, &pixels, 192);
        let right =
            z.chunks(2).zip(&labels).filter(|(z, y)| usize::from(z[1] > z[0]) == **y).count();
        assert_eq!(right, 8);
        // Its trained trunk travels with it in the saved bytes.
        let bytes = net.to_bytes().unwrap();
        let back = LabNet::from_bytes(bytes, net.shape(), Some((&model, input)), &device).unwrap();
        assert_eq!(logits(&back, &pixels, 192), z);
        let dp =
            HeadConfig { dp: Some(DpSgd { clip: 1.0, noise_multiplier: 1.0, delta: 1e-5 }), ..cfg };
        assert!(HeadTrainer::fine_tune(dp, data(), (&model, input), &device).is_err());
        let wrong = TrainSet { features: &pixels[..8 * 96], dim: 96, labels: &labels, classes: 2 };
        assert!(
            HeadTrainer::fine_tune(HeadConfig::default(), wrong, (&model, input), &device).is_err()
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = [
            HeadConfig { epochs: 0, ..HeadConfig::default() },
            HeadConfig { lr: f64::NAN, ..HeadConfig::default() },
            HeadConfig { dropout: 1.0, ..HeadConfig::default() },
            HeadConfig { early_stopping: Some(0), ..HeadConfig::default() },
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
