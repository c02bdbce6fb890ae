//! The neural attack models of mia_prune (Yuan & Zhang, "Membership Inference Attacks and
//! Defenses in Neural Network Pruning", USENIX Security 2022), trained with burn on the CPU on
//! the shadows' (features, member) rows, exactly as the authors' `BaseModel` trains them:
//!
//! | model | layers | used by |
//! |---|---|---|
//! | [`MiaFc`] (their `MIAFC`) | Linear(D→512) ReLU Dropout(0.2) → Linear(512→256) ReLU Dropout(0.2) → Linear(256→128) ReLU → Linear(128→2) | `nn`, `nn-top3`, `nn-cls` |
//! | [`SamiaNet`] (their `Transformer`) | BatchNorm(3C) → C tokens (p_c, s_c, y_c) → Linear(3→64) GELU → 3 post-norm encoder layers (64 wide, 4 heads, feed-forward 128, GELU, dropout 0.2) → flatten → Linear(64·C→64) ReLU → Linear(64→2) | `samia` |
//!
//! Training: SGD with momentum 0.9, learning rate 1e-3 divided by 10 at half and at three
//! quarters of the epochs, weight decay 5e-4, 100 epochs, mini-batches of 128, cross-entropy
//! over (non-member, member); Linear layers start Xavier-normal with zero biases (their
//! `weight_init`; the encoder's own projections take burn's Xavier-normal for weights and
//! biases alike). Rows are balanced by subsampling the larger class, as for the other attack
//! models. The score is the member logit minus the non-member logit.

use burn::module::{Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, relu};
use mia_core::rng::{Materialize, backend_lock, mix};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::AttackError;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKind {
    /// mia_prune's `MIAFC` on any feature vector.
    Fc,
    /// SAMIA's transformer on `[posterior (C), sensitivity (C), one-hot label (C)]`.
    Samia,
}

/// How a network trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkSettings {
    /// Passes over the rows (the learning rate drops ×0.1 at ½ and ¾ of them).
    pub epochs: usize,
    /// SGD learning rate (momentum 0.9).
    pub lr: f64,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Mini-batch size.
    pub batch: usize,
    /// Seed of initialisation, order and dropout.
    pub seed: u64,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self { epochs: 100, lr: 1e-3, weight_decay: 5e-4, batch: 128, seed: 0 }
    }
}

impl NetworkSettings {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), AttackError> {
        let bad = |m: String| Err(AttackError::Option(m));
        if !(1..=10_000).contains(&self.epochs) {
            return bad(format!(
                "attack-network epochs must lie in 1..=10000, got {}",
                self.epochs
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 10.0) {
            return bad(format!("attack-network learning rate {} must lie in (0, 10]", self.lr));
        }
        if !(self.weight_decay.is_finite() && (0.0..=1.0).contains(&self.weight_decay)) {
            return bad(format!(
                "attack-network weight decay {} must lie in [0, 1]",
                self.weight_decay
            ));
        }
        if !(2..=65_536).contains(&self.batch) {
            return bad(format!("attack-network batch {} must lie in 2..=65536", self.batch));
        }
        Ok(())
    }

    /// The learning rate of `epoch` (0-based) under the step schedule.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let drops =
            usize::from(epoch >= self.epochs / 2) + usize::from(epoch >= self.epochs * 3 / 4);
        self.lr * 0.1f64.powi(drops as i32)
    }
}

/// A Linear layer with Xavier-normal weights and zero bias (mia_prune's `weight_init`).
fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let mut l = LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::XavierNormal { gain: 1.0 })
        .init(device);
    l.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    l
}

/// mia_prune's `MIAFC`.
#[derive(Module, Debug)]
pub struct MiaFc {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    fc4: Linear,
    dropout: Dropout,
}

impl MiaFc {
    /// A fresh network on `dim` features.
    pub fn new(dim: usize, device: &Device) -> Self {
        Self {
            fc1: linear(dim, 512, device),
            fc2: linear(512, 256, device),
            fc3: linear(256, 128, device),
            fc4: linear(128, 2, device),
            dropout: DropoutConfig::new(0.2).init(),
        }
    }

    /// `[B, D]` → `[B, 2]` (non-member, member) logits.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.dropout.forward(relu(self.fc1.forward(x)));
        let x = self.dropout.forward(relu(self.fc2.forward(x)));
        self.fc4.forward(relu(self.fc3.forward(x)))
    }
}

/// SAMIA's transformer (mia_prune's `Transformer`).
#[derive(Module, Debug)]
pub struct SamiaNet {
    bn: BatchNorm,
    embed: Linear,
    encoder: TransformerEncoder,
    fc2: Linear,
    fc3: Linear,
    tokens: usize,
}

/// SAMIA's token width.
const SAMIA_WIDTH: usize = 64;

impl SamiaNet {
    /// A fresh network for `classes` classes (inputs of 3·classes features).
    pub fn new(classes: usize, device: &Device) -> Self {
        let encoder = TransformerEncoderConfig::new(SAMIA_WIDTH, 128, 4, 3)
            .with_dropout(0.2)
            .with_initializer(Initializer::XavierNormal { gain: 1.0 })
            .init(device);
        Self {
            bn: BatchNormConfig::new(3 * classes).init(device),
            embed: linear(3, SAMIA_WIDTH, device),
            encoder,
            fc2: linear(SAMIA_WIDTH * classes, SAMIA_WIDTH, device),
            fc3: linear(SAMIA_WIDTH, 2, device),
            tokens: classes,
        }
    }

    /// `[B, 3C]` (posterior, sensitivity, one-hot label) → `[B, 2]` logits.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, _] = x.dims();
        let c = self.tokens;
        // [B, 3C] → [B, 3, C] → token c is (p_c, s_c, y_c): [B, C, 3].
        let t = self.bn.forward(x).reshape([b, 3, c]).swap_dims(1, 2);
        let t = gelu(self.embed.forward(t)); // [B, C, 64]
        let t = self.encoder.forward(TransformerEncoderInput::new(t)); // [B, C, 64]
        let h = relu(self.fc2.forward(t.reshape([b, c * SAMIA_WIDTH])));
        self.fc3.forward(h)
    }
}

/// A trainable attack network.
trait Net: Module + Sized {
    fn logits(&self, x: Tensor<2>) -> Tensor<2>;
}

impl Net for MiaFc {
    fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward(x)
    }
}

impl Net for SamiaNet {
    fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward(x)
    }
}

/// A fitted network; [`Network::score`] gives member-minus-non-member logits.
#[derive(Debug, Clone)]
pub enum Network {
    /// `MIAFC`.
    Fc(MiaFc),
    /// SAMIA's transformer.
    Samia(SamiaNet),
}

impl Network {
    /// Fits `kind` on row-major features `x [n × dim]` and labels `y` (true = member); the
    /// larger class is subsampled so both weigh the same. SAMIA needs `dim = 3·classes`.
    pub fn fit(
        kind: NetworkKind,
        x: &[f32],
        dim: usize,
        y: &[bool],
        s: &NetworkSettings,
    ) -> Result<Self, AttackError> {
        s.validate()?;
        if dim == 0 || x.len() != y.len() * dim {
            return Err(AttackError::Shape(format!(
                "{} features for {} rows of {dim}",
                x.len(),
                y.len()
            )));
        }
        if kind == NetworkKind::Samia && !dim.is_multiple_of(3) {
            return Err(AttackError::Shape(format!("SAMIA's features are 3·C wide, not {dim}")));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix(s.seed, 0x5A41));
        let rows = balanced(y, &mut rng);
        if rows.len() < 2 {
            return Err(AttackError::Shape(
                "the attack network needs members and non-members".into(),
            ));
        }
        let device = Device::flex().autodiff();
        // Initialisation and dropout draw from the backend's generator: seeded and held for the
        // whole fit, so a seed gives the same network.
        let _lock = backend_lock();
        device.seed(mix(s.seed, 0x1417));
        Ok(match kind {
            NetworkKind::Fc => {
                let net = MiaFc::new(dim, &device);
                Self::Fc(train(net, x, dim, y, rows, s, &device, &mut rng)?)
            }
            NetworkKind::Samia => {
                let net = SamiaNet::new(dim / 3, &device);
                Self::Samia(train(net, x, dim, y, rows, s, &device, &mut rng)?)
            }
        })
    }

    /// Member-minus-non-member logits of row-major features `x [n × dim]`.
    pub fn score(&self, x: &[f32], dim: usize) -> Result<Vec<f32>, AttackError> {
        match self {
            Self::Fc(n) => predict(&n.valid(), x, dim),
            Self::Samia(n) => predict(&n.valid(), x, dim),
        }
    }
}

/// Both classes' rows, the larger one cut to the smaller one's size, in a random order.
fn balanced(y: &[bool], rng: &mut ChaCha8Rng) -> Vec<usize> {
    let (mut pos, mut neg): (Vec<usize>, Vec<usize>) = (0..y.len()).partition(|&i| y[i]);
    pos.shuffle(rng);
    neg.shuffle(rng);
    let keep = pos.len().min(neg.len());
    pos.truncate(keep);
    neg.truncate(keep);
    pos.extend(neg);
    pos
}

fn rows_tensor(x: &[f32], dim: usize, rows: &[usize], device: &Device) -> Tensor<2> {
    let data: Vec<f32> =
        rows.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [rows.len(), dim]), device)
}

#[allow(clippy::too_many_arguments)]
fn train<N: Net>(
    mut net: N,
    x: &[f32],
    dim: usize,
    y: &[bool],
    mut rows: Vec<usize>,
    s: &NetworkSettings,
    device: &Device,
    rng: &mut ChaCha8Rng,
) -> Result<N, AttackError> {
    net.visit(&mut Materialize);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
        .with_weight_decay((s.weight_decay > 0.0).then(|| WeightDecayConfig::new(s.weight_decay)))
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    for epoch in 0..s.epochs {
        rows.shuffle(rng);
        // A last batch of one row is dropped: batch norm has no statistics for it.
        for chunk in rows.chunks(s.batch).filter(|c| c.len() >= 2) {
            let xb = rows_tensor(x, dim, chunk, device);
            let yb: Vec<i64> = chunk.iter().map(|&i| i64::from(y[i])).collect();
            let yb = Tensor::<1, Int>::from_data(TensorData::new(yb, [chunk.len()]), device);
            let loss = loss_fn.forward(net.logits(xb), yb); // [1]
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(s.lr_at(epoch), net, grads);
        }
    }
    Ok(net)
}

fn predict<N: Net>(net: &N, x: &[f32], dim: usize) -> Result<Vec<f32>, AttackError> {
    let device = Device::flex();
    let n = x.len() / dim.max(1);
    let mut out = Vec::with_capacity(n);
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(4096) {
        let logits = net.logits(rows_tensor(x, dim, chunk, &device)); // [b, 2]
        let v = logits
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| AttackError::Shape(format!("attack-network output: {e:?}")))?;
        out.extend(v.chunks(2).map(|r| r[1] - r[0]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Members sit inside a ring: no line separates them.
    fn ring(n: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (a, b) = (rng.random::<f32>() * 4.0 - 2.0, rng.random::<f32>() * 4.0 - 2.0);
            x.extend([a, b]);
            y.push(a * a + b * b < 1.5);
        }
        (x, y)
    }

    fn accuracy(scores: &[f32], y: &[bool]) -> f64 {
        scores.iter().zip(y).filter(|(s, y)| (**s > 0.0) == **y).count() as f64 / y.len() as f64
    }

    #[test]
    fn the_step_schedule_drops_at_half_and_three_quarters() {
        let s = NetworkSettings { epochs: 100, lr: 1.0, ..NetworkSettings::default() };
        assert_eq!(s.lr_at(49), 1.0);
        assert!((s.lr_at(50) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(74) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(75) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let d = NetworkSettings::default();
        assert!(d.validate().is_ok());
        for bad in [
            NetworkSettings { epochs: 0, ..d },
            NetworkSettings { lr: 0.0, ..d },
            NetworkSettings { lr: f64::NAN, ..d },
            NetworkSettings { weight_decay: -1.0, ..d },
            NetworkSettings { batch: 1, ..d },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn miafc_learns_a_ring() {
        let (x, y) = ring(2000, 1);
        let s = NetworkSettings { epochs: 40, lr: 0.05, ..NetworkSettings::default() };
        let net = Network::fit(NetworkKind::Fc, &x, 2, &y, &s).unwrap();
        let (tx, ty) = ring(1000, 2);
        let acc = accuracy(&net.score(&tx, 2).unwrap(), &ty);
        assert!(acc > 0.9, "held-out accuracy {acc}");
    }

    #[test]
    fn samia_reads_the_sensitivity_of_the_labelled_class() {
        // 4 classes; members are those whose true class's sensitivity is low. The posterior is
        // noise and the sensitivities of the other classes are high and low at random, so only
        // the token of the labelled class carries the signal.
        let (c, n) = (4, 3000);
        let make = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let label = rng.random_range(0..c);
                let member = rng.random_bool(0.5);
                let p: Vec<f32> = (0..c).map(|_| rng.random::<f32>()).collect();
                let s: Vec<f32> = (0..c)
                    .map(|j| {
                        if j == label {
                            if member { 0.2 } else { 1.0 }
                        } else if rng.random_bool(0.5) {
                            0.2
                        } else {
                            1.0
                        }
                    } + 0.1 * rng.random::<f32>())
                    .collect();
                x.extend(p);
                x.extend(s);
                x.extend((0..c).map(|j| f32::from(u8::from(j == label))));
                y.push(member);
            }
            (x, y)
        };
        let (x, y) = make(3);
        let s = NetworkSettings { epochs: 30, lr: 0.05, ..NetworkSettings::default() };
        let net = Network::fit(NetworkKind::Samia, &x, 3 * c, &y, &s).unwrap();
        let (tx, ty) = make(4);
        let acc = accuracy(&net.score(&tx, 3 * c).unwrap(), &ty);
        assert!(acc > 0.9, "held-out accuracy {acc}");
    }

    #[test]
    fn the_same_seed_gives_the_same_network() {
        let (x, y) = ring(300, 5);
        let s = NetworkSettings { epochs: 3, ..NetworkSettings::default() };
        let a = Network::fit(NetworkKind::Fc, &x, 2, &y, &s).unwrap().score(&x, 2).unwrap();
        let b = Network::fit(NetworkKind::Fc, &x, 2, &y, &s).unwrap().score(&x, 2).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn malformed_rows_are_refused() {
        let s = NetworkSettings::default();
        assert!(Network::fit(NetworkKind::Fc, &[1.0, 2.0, 3.0], 2, &[true, false], &s).is_err());
        assert!(Network::fit(NetworkKind::Samia, &[0.0; 4], 2, &[true, false], &s).is_err());
        assert!(Network::fit(NetworkKind::Fc, &[0.0; 4], 2, &[true, true], &s).is_err());
    }
}
