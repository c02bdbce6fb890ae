//! The lab's trainable network: a head (a linear layer, or one hidden layer with ReLU and
//! dropout) on the frozen features of a shipped model's trunk, or, when the student asks to
//! fine-tune the whole network, the trunk and the head trained together ([`LabNet`]). The
//! recipe is a [`HeadConfig`]; [`crate::lab::HeadTrainer`] trains it.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::defense::DefenseConfig;
use crate::models::{Model, SmallCnn};
use crate::{CoreError, InputSpec};

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
    /// Early stopping: the patience in epochs (training stops after this many epochs without
    /// a lower validation loss, and the weights of the best epoch are kept). Needs validation
    /// examples ([`crate::lab::HeadTrainer::with_validation`]).
    #[serde(default)]
    pub early_stopping: Option<usize>,
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
            early_stopping: None,
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
        if let Some(p) = self.early_stopping
            && !(1..=1000).contains(&p)
        {
            return bad(format!("early-stopping patience must lie in 1..=1000, got {p}"));
        }
        if let Some(dp) = self.dp {
            if !(dp.clip > 0.0 && dp.clip.is_finite()) {
                return bad(format!("DP-SGD's clip norm must be positive, got {}", dp.clip));
            }
            if dp.noise_multiplier == 0.0 {
                return bad("DP-SGD with noise multiplier σ = 0 adds no noise, so ε is infinite \
                            and the run promises no privacy: choose σ > 0 (e.g. 1), or train \
                            without DP-SGD"
                    .into());
            }
            if !(dp.noise_multiplier > 0.0 && dp.noise_multiplier <= 1000.0) {
                return bad(format!(
                    "DP-SGD's noise multiplier must lie in (0, 1000], got {}",
                    dp.noise_multiplier
                ));
            }
            if !(dp.delta > 0.0 && dp.delta < 1.0) {
                return bad(format!("DP-SGD's δ must lie in (0, 1), got {}", dp.delta));
            }
            if !self.defense.is_per_example() {
                return bad(
                    "DP-SGD needs a per-example loss; RelaxLoss and PPB work per batch".into()
                );
            }
        }
        Ok(())
    }
}

impl HeadConfig {
    /// How many of `members` images a model trains on: all of them, or under early stopping
    /// those left after the share set aside to validate on ([`crate::lab::validation_split`]).
    pub fn trained_on(&self, members: usize) -> usize {
        match self.early_stopping {
            Some(_) => members - super::audit::validation_size(members),
            None => members,
        }
    }

    /// The ε at δ that training on `members` images with this recipe spends when it runs every
    /// planned epoch (`None` without DP-SGD): with early stopping, on the members less the
    /// share set aside to validate on ([`crate::lab::validation_split`]), as the trainer runs
    /// it. Early stopping can only end a run sooner and spend less, never more.
    pub fn planned_epsilon(&self, members: usize) -> Result<Option<f64>, CoreError> {
        let Some(dp) = self.dp else { return Ok(None) };
        let (q, steps) =
            crate::privacy::poisson_schedule(self.batch_size, self.trained_on(members));
        let steps = (steps * self.epochs) as u64;
        crate::privacy::epsilon(q, f64::from(dp.noise_multiplier), steps, dp.delta).map(Some)
    }
}

/// The head: `features → classes` logits. Dropout (hidden heads) is applied by the trainer
/// with masks from its own seeded generator, so training is the same on every platform.
#[derive(Module, Debug)]
pub struct Head {
    pub(crate) fc1: Linear,
    pub(crate) fc2: Option<Linear>,
    pub(crate) relu: Relu,
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
    pub(crate) fn forward_masked(&self, x: Tensor<2>, mask: Option<Tensor<2>>) -> Tensor<2> {
        let h = self.fc1.forward(x);
        match &self.fc2 {
            None => h,
            Some(fc2) => fc2.forward(masked(self.relu.forward(h), mask)),
        }
    }
}

pub(crate) fn masked(a: Tensor<2>, mask: Option<Tensor<2>>) -> Tensor<2> {
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
    pub(crate) fn check(&self) -> Result<usize, CoreError> {
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

    pub(crate) fn batch(&self, rows: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
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

/// A lab network's shape: input dimension, hidden units (0 = linear), classes, and whether
/// the trunk is part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetShape {
    /// Input rows' dimension (features, or pixels when fine-tuned).
    pub dim: usize,
    /// Hidden units of the head (0 = linear).
    pub hidden: usize,
    /// Classes.
    pub classes: usize,
    /// Whether the trunk was trained too.
    pub fine_tuned: bool,
}

/// What the lab trains: a [`Head`] on inputs that are frozen features, or (fine-tuning) the
/// shipped small CNN's trunk followed by the head, on inputs that are normalised pixels.
#[derive(Module, Debug)]
pub struct LabNet {
    trunk: Option<SmallCnn>,
    head: Head,
    /// The image shape the trunk reads (`None` for a head on features).
    #[module(skip)]
    input: Option<InputSpec>,
}

impl LabNet {
    /// A head alone, on features.
    pub fn head(head: Head) -> Self {
        Self { trunk: None, head, input: None }
    }

    /// The trunk of `model` (only the small CNN exposes one) followed by `head`, on images of
    /// shape `input` flattened to rows.
    pub fn fine_tuned(model: &Model, input: InputSpec, head: Head) -> Result<Self, CoreError> {
        match model {
            Model::SmallCnn(m) => Ok(Self { trunk: Some(m.clone()), head, input: Some(input) }),
            _ => Err(CoreError::Parameter(
                "fine-tuning needs a model whose features the lab can read (the small CNN)".into(),
            )),
        }
    }

    /// Whether the trunk is trained too.
    pub fn is_fine_tuned(&self) -> bool {
        self.trunk.is_some()
    }

    /// What it takes to rebuild this network before loading its weights.
    pub fn shape(&self) -> NetShape {
        let [dim, out1] = self.head.fc1.weight.dims();
        let classes = self.head.fc2.as_ref().map_or(out1, |l| l.weight.dims()[1]);
        NetShape {
            dim: self.input.map_or(dim, |i| i.numel()),
            hidden: if self.head.fc2.is_some() { out1 } else { 0 },
            classes,
            fine_tuned: self.is_fine_tuned(),
        }
    }

    /// Every parameter's values, flattened, in the module's visiting order. On a GPU the
    /// caller reads them back asynchronously and hands them to [`Self::with_values`].
    pub fn parameter_tensors(&self) -> Vec<Tensor<1>> {
        struct Collect(Vec<Tensor<1>>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let t = param.val();
                let n = t.shape().num_elements();
                self.0.push(t.reshape([n]));
            }
        }
        let mut c = Collect(Vec::new());
        self.visit(&mut c);
        c.0
    }

    /// This network with its parameters replaced by `values` (in the order of
    /// [`Self::parameter_tensors`]) on `device`: how a network trained on a GPU reaches the CPU
    /// without a blocking read.
    pub fn with_values(self, values: Vec<Vec<f32>>, device: &Device) -> Result<Self, CoreError> {
        struct Assign<'a> {
            values: std::vec::IntoIter<Vec<f32>>,
            device: &'a Device,
            wrong: bool,
        }
        impl burn::module::ModuleMapper for Assign<'_> {
            fn map_float<const D: usize>(
                &mut self,
                param: burn::module::Param<Tensor<D>>,
            ) -> burn::module::Param<Tensor<D>> {
                let next = self.values.next();
                let device = self.device;
                let mut wrong = false;
                let param = param.map(|t| {
                    let dims = t.dims();
                    match next {
                        Some(v) if v.len() == dims.iter().product::<usize>() => {
                            Tensor::from_data(TensorData::new(v, dims), device)
                        }
                        _ => {
                            wrong = true;
                            t
                        }
                    }
                });
                self.wrong |= wrong;
                param
            }
        }
        let expected = self.parameter_tensors().len();
        if values.len() != expected {
            return Err(CoreError::Shape(format!("{} parameters for {expected}", values.len())));
        }
        let mut a = Assign { values: values.into_iter(), device, wrong: false };
        let net = self.map(&mut a);
        if a.wrong {
            return Err(CoreError::Shape("a parameter's values do not fit its shape".into()));
        }
        Ok(net)
    }

    /// The weights (trunk and head) as burnpack bytes (a blocking read: on a GPU, copy the
    /// network to the CPU with [`Self::with_values`] first).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CoreError> {
        let bytes = self.clone().into_record().into_bytes();
        bytes.map(|b| b.to_vec()).map_err(|e| CoreError::Parameter(format!("weights: {e}")))
    }

    /// A network of `shape` with weights from [`Self::to_bytes`]; a fine-tuned one is built
    /// on `trunk` (the model and its input) first. Damaged bytes or another shape are errors.
    pub fn from_bytes(
        bytes: Vec<u8>,
        shape: NetShape,
        trunk: Option<(&Model, InputSpec)>,
        device: &Device,
    ) -> Result<Self, CoreError> {
        let bad = |m: String| CoreError::Parameter(format!("the saved network: {m}"));
        if shape.classes < 2 || shape.dim == 0 || shape.hidden > 4096 {
            return Err(bad(format!("impossible shape {shape:?}")));
        }
        let cfg = HeadConfig { hidden: shape.hidden, ..HeadConfig::default() };
        let skeleton = match (shape.fine_tuned, trunk) {
            (false, _) => Self::head(Head::new(shape.dim, shape.classes, &cfg, device)),
            (true, Some((model, input))) if input.numel() == shape.dim => {
                let d = model
                    .feature_dim()
                    .ok_or_else(|| bad("this model exposes no features".into()))?;
                Self::fine_tuned(model, input, Head::new(d, shape.classes, &cfg, device))?
            }
            (true, _) => return Err(bad("fine-tuned on another model's input".into())),
        };
        // Checked before burn reads them: a lab file may come from anyone (`crate::weights`).
        crate::weights::load_record(bytes, skeleton).map_err(bad)
    }

    /// The head.
    pub fn head_ref(&self) -> &Head {
        &self.head
    }

    /// `[b, dim]` inputs → `[b, classes]` logits.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_masked(x, None)
    }

    /// The same with a dropout mask on the head's hidden layer.
    pub(crate) fn forward_masked(&self, x: Tensor<2>, mask: Option<Tensor<2>>) -> Tensor<2> {
        self.head.forward_masked(self.features(x), mask)
    }

    /// What the head reads: the inputs themselves, or the trunk's features of the images,
    /// scaled per image to length √dim as [`normalize_features`] does on the host.
    pub(crate) fn features(&self, x: Tensor<2>) -> Tensor<2> {
        let (Some(trunk), Some(i)) = (&self.trunk, self.input) else { return x };
        let b = x.dims()[0];
        let f = trunk.features(x.reshape([b, i.channels, i.height, i.width])); // [b, d]
        let d = f.dims()[1] as f32;
        let norm = f.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12); // [b, 1]
        f / norm * d.sqrt()
    }
}

/// `[n × classes]` logits of `net` on `[n × dim]` inputs (row-major): features for a head,
/// normalised pixels for a fine-tuned network.
pub fn lab_logits(
    net: &LabNet,
    inputs: &[f32],
    dim: usize,
    device: &Device,
) -> Result<Tensor<2>, CoreError> {
    if dim == 0 || !inputs.len().is_multiple_of(dim) {
        return Err(CoreError::Shape(format!("{} values of dimension {dim}", inputs.len())));
    }
    if let Some(i) = net.input
        && i.numel() != dim
    {
        return Err(CoreError::Shape(format!("rows of {dim} values for images of {i}")));
    }
    let x = Tensor::from_data(TensorData::new(inputs.to_vec(), [inputs.len() / dim, dim]), device);
    Ok(net.forward(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_round_trips_through_bytes_and_damage_is_refused() {
        let device = Device::flex();
        let cfg = HeadConfig { hidden: 5, ..HeadConfig::default() };
        let net = LabNet::head(Head::new(4, 3, &cfg, &device));
        let shape = net.shape();
        assert_eq!(shape, NetShape { dim: 4, hidden: 5, classes: 3, fine_tuned: false });
        let bytes = net.to_bytes().unwrap();
        let back = LabNet::from_bytes(bytes.clone(), shape, None, &device).unwrap();
        let x = [0.5, -1.0, 2.0, 0.25];
        let z = |n: &LabNet| lab_logits(n, &x, 4, &device).unwrap().into_data();
        assert_eq!(z(&back), z(&net));
        let other = NetShape { hidden: 0, ..shape };
        assert!(LabNet::from_bytes(bytes.clone(), other, None, &device).is_err(), "another shape");
        assert!(
            LabNet::from_bytes(bytes[..bytes.len() / 2].to_vec(), shape, None, &device).is_err()
        );
        let tuned = NetShape { fine_tuned: true, ..shape };
        assert!(LabNet::from_bytes(bytes, tuned, None, &device).is_err(), "no trunk given");
    }

    #[test]
    fn parameters_travel_as_values_to_another_copy() {
        let device = Device::flex();
        let cfg = HeadConfig { hidden: 3, ..HeadConfig::default() };
        let net = LabNet::head(Head::new(2, 2, &cfg, &device));
        let values: Vec<Vec<f32>> = net
            .parameter_tensors()
            .into_iter()
            .map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .collect();
        assert_eq!(values.iter().map(Vec::len).collect::<Vec<_>>(), [6, 3, 6, 2]);
        let fresh = LabNet::head(Head::new(2, 2, &HeadConfig { seed: 9, ..cfg.clone() }, &device));
        let copy = fresh.clone().with_values(values.clone(), &device).unwrap();
        let x = [0.3, -0.7];
        let z = |n: &LabNet| lab_logits(n, &x, 2, &device).unwrap().into_data();
        assert_eq!(z(&copy), z(&net), "the same weights (parameter ids aside)");
        let mut short = values.clone();
        short[0].pop();
        assert!(fresh.clone().with_values(short, &device).is_err());
        assert!(fresh.with_values(values[..2].to_vec(), &device).is_err());
    }

    #[test]
    fn features_are_scaled_per_image_to_root_dim() {
        let mut f = vec![3.0, 4.0, 0.0, 0.0];
        normalize_features(&mut f, 2);
        assert!((f[0] - 0.6 * 2f32.sqrt()).abs() < 1e-6 && (f[1] - 0.8 * 2f32.sqrt()).abs() < 1e-6);
        assert_eq!(&f[2..], &[0.0, 0.0]);
    }
}
