//! The training configuration: what `config.json` records and what a TOML file (`--config`)
//! may set. Command-line flags override the file.

use std::path::PathBuf;

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use mia_core::Architecture;
pub use mia_core::mixup::MixupConfig;
use mia_data::LoadOptions;
use mia_data::{DatasetKind, SplitSizes};
use serde::{Deserialize, Serialize};

use crate::advreg::AdvRegConfig;
use crate::distill::DistillConfig;
use crate::dp::DpConfig;
use crate::mmd::MmdConfig;
use crate::prune::PruneConfig;
use crate::selena::SelenaConfig;
use crate::{DeviceChoice, TrainError};
pub use mia_core::defense::DefenseConfig;

/// Optimiser family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD with momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// Optimiser settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Family.
    pub kind: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (ignored by Adam).
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// L2 weight decay (a defense against overfitting too); 0 disables it.
    pub weight_decay: f32,
}

impl OptimizerConfig {
    /// Builds the burn optimiser.
    pub fn build(&self) -> ModuleOptimizer {
        let wd = (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay));
        match self.kind {
            OptimizerKind::Adam => AdamConfig::new().with_weight_decay(wd).init(),
            OptimizerKind::Sgd => SgdConfig::new()
                .with_momentum((self.momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(self.momentum)
                        .with_dampening(0.0)
                        .with_nesterov(self.nesterov)
                }))
                .with_weight_decay(wd)
                .init(),
        }
    }
}

/// Learning-rate schedule over epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Cosine annealing from the base rate towards 0 over the run.
    Cosine,
    /// Multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Decay factor.
        gamma: f64,
    },
}

impl Schedule {
    /// Learning rate of 0-based `epoch` out of `epochs`.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Self::Constant => base,
            Self::Cosine => {
                base * 0.5
                    * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos())
            }
            Self::Step { step_size, gamma } => base * gamma.powi((epoch / step_size.max(1)) as i32),
        }
    }
}

/// Everything that determines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Dataset kind.
    pub dataset: DatasetKind,
    /// Where the dataset's files are.
    pub data_dir: PathBuf,
    /// Reader options (folder image size, CSV label column).
    #[serde(default)]
    pub load: LoadOptions,
    /// Architecture.
    pub model: Architecture,
    /// Dropout before the classifier (a defense); 0 disables it.
    pub dropout: f64,
    /// The loss-based defense.
    pub defense: DefenseConfig,
    /// Mixup or AdaMixup on the training batches (a defense on the inputs; combines with
    /// the loss-based one).
    #[serde(default)]
    pub mixup: Option<MixupConfig>,
    /// DP-SGD (per-example clipping and noise, Poisson sampling, ε from the RDP accountant).
    #[serde(default)]
    pub dp: Option<DpConfig>,
    /// The MMD regulariser of mixup+MMD (λ·MMD² against the
    /// validation set as reference).
    #[serde(default)]
    pub mmd: Option<MmdConfig>,
    /// Distillation: a teacher on the members, the shipped student on the validation set
    /// against the teacher's posteriors.
    #[serde(default)]
    pub distill: Option<DistillConfig>,
    /// AdvReg: a min-max game with an inference model on members against the validation set.
    #[serde(default)]
    pub advreg: Option<AdvRegConfig>,
    /// SELENA: Split-AI's K sub-models, then the shipped model self-distilled from them.
    #[serde(default)]
    pub selena: Option<SelenaConfig>,
    /// Pruning after training, then fine-tuning with the masks held.
    #[serde(default)]
    pub prune: Option<PruneConfig>,
    /// Split sizes.
    pub split: SplitSizes,
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Optimiser.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Random crop (padding 4) and horizontal flip on training images.
    pub augment: bool,
    /// Stop when the validation loss has not improved for this many epochs (needs
    /// `split.validation > 0`); the best epoch's weights are kept.
    pub early_stopping: Option<usize>,
    /// Seed for the split, initialisation, data order, dropout and augmentation.
    pub seed: u64,
    /// Device.
    #[serde(default)]
    pub device: DeviceChoice,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Cifar10,
            data_dir: PathBuf::from("data/cifar-10"),
            load: LoadOptions::default(),
            model: Architecture::SmallCnn,
            dropout: 0.0,
            defense: DefenseConfig::Erm,
            mixup: None,
            dp: None,
            mmd: None,
            distill: None,
            advreg: None,
            selena: None,
            prune: None,
            split: SplitSizes { members: 5000, non_members: None, test: None, validation: 0 },
            epochs: 30,
            batch_size: 32,
            optimizer: OptimizerConfig {
                kind: OptimizerKind::Adam,
                lr: 1e-3,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
            schedule: Schedule::Constant,
            augment: false,
            early_stopping: None,
            seed: 0,
            device: DeviceChoice::Flex,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; missing keys take the defaults.
    pub fn from_toml(text: &str) -> Result<Self, TrainError> {
        // Merge the file over the defaults so a config may set only what it changes.
        let mut base = toml::Value::try_from(Self::default())
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let file: toml::Value =
            toml::from_str(text).map_err(|e| TrainError::Config(e.to_string()))?;
        merge(&mut base, file);
        base.try_into().map_err(|e: toml::de::Error| TrainError::Config(e.to_string()))
    }

    /// Checks the options fit together.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad("epochs and batch size must be at least 1".into());
        }
        if !(self.optimizer.lr > 0.0 && self.optimizer.lr.is_finite()) {
            return bad(format!("learning rate {} must be positive", self.optimizer.lr));
        }
        if self.early_stopping.is_some() && self.split.validation == 0 {
            return bad("early stopping needs a validation set: pass --val N".into());
        }
        if self.augment && self.dataset == DatasetKind::Csv {
            return bad("augmentation applies to images, not tabular data".into());
        }
        self.defense.build()?;
        if let Some(m) = &self.mixup {
            m.validate()?;
        }
        if let Some(dp) = &self.dp {
            dp.validate(self.model)?;
            if self.mixup.is_some() {
                return bad("DP-SGD bounds each example's influence, which mixup spreads over \
                            two examples: use one or the other"
                    .into());
            }
            if !self.defense.is_per_example() {
                return bad(
                    "DP-SGD needs a per-example loss; RelaxLoss and PPB work per batch".into()
                );
            }
        }
        self.validate_reference_set()
    }

    /// MMD and distillation need the validation set (their reference and transfer set) and
    /// combine with neither DP-SGD nor each other.
    fn validate_reference_set(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.into()));
        if let Some(m) = &self.mmd {
            m.validate()?;
            if self.split.validation == 0 {
                return bad("MMD needs a reference set disjoint from the members: pass --val N");
            }
        }
        if let Some(d) = &self.distill {
            d.validate()?;
            if self.split.validation == 0 {
                return bad(
                    "distillation needs a transfer set disjoint from the members: pass --val N",
                );
            }
            if self.early_stopping.is_some() || self.mmd.is_some() {
                return bad(
                    "distillation's student trains on the validation set: it combines with \
                            neither early stopping nor MMD",
                );
            }
        }
        if let Some(a) = &self.advreg {
            a.validate()?;
            if self.split.validation == 0 {
                return bad("AdvReg needs a reference set disjoint from the members: pass --val N");
            }
            if self.mixup.is_some() || self.mmd.is_some() || self.distill.is_some() {
                return bad("AdvReg's inference model reads clean posteriors: it combines with \
                            neither mixup, MMD nor distillation");
            }
        }
        if let Some(s) = &self.selena {
            s.validate()?;
            if self.mmd.is_some() || self.distill.is_some() || self.advreg.is_some() {
                return bad("SELENA distils its own Split-AI: it combines with neither MMD, \
                            distillation nor AdvReg");
            }
            if self.early_stopping.is_some() {
                return bad("SELENA trains K + 1 models for the planned epochs: it does not \
                            combine with early stopping");
            }
        }
        if let Some(p) = &self.prune {
            p.validate(self.split.validation)?;
            let other = self.mmd.is_some()
                || self.distill.is_some()
                || self.advreg.is_some()
                || self.selena.is_some()
                || self.dp.is_some();
            if other || self.early_stopping.is_some() {
                return bad("pruning fine-tunes a dense model of the run's recipe: it combines \
                            with loss defenses and mixup, not with DP-SGD, MMD, distillation, \
                            AdvReg, SELENA or early stopping");
            }
        }
        let outside = self.mmd.is_some()
            || self.distill.is_some()
            || self.advreg.is_some()
            || self.selena.is_some();
        if self.dp.is_some() && outside {
            return bad("DP-SGD's accountant covers its own steps only: MMD, distillation, \
                        AdvReg and SELENA would train outside it");
        }
        Ok(())
    }

    /// The defense as reports name it: the loss's, with the mixup on the inputs if any
    /// (`erm+mixup`).
    pub fn defense_label(&self) -> String {
        let label = match &self.mixup {
            None => self.defense.name().to_string(),
            Some(m) => format!("{}+{}", self.defense.name(), m.name()),
        };
        let extras = [
            (self.dp.is_some(), "dp-sgd"),
            (self.mmd.is_some(), "mmd"),
            (self.distill.is_some(), "distillation"),
            (self.advreg.is_some(), "advreg"),
            (self.selena.is_some(), "selena"),
        ];
        let label = extras.iter().filter(|e| e.0).fold(label, |l, e| format!("{l}+{}", e.1));
        match &self.prune {
            None => label,
            Some(p) => format!("{label}+{}", p.label()),
        }
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                // A tagged enum table (defense, schedule) replaces the whole value.
                let replace = matches!(
                    k.as_str(),
                    "defense"
                        | "schedule"
                        | "mixup"
                        | "dp"
                        | "mmd"
                        | "distill"
                        | "advreg"
                        | "selena"
                        | "prune"
                );
                match b.get_mut(&k) {
                    Some(slot) if !replace => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mia_core::defense::{RelaxVariant, SmoothingForm};

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c = TrainConfig::from_toml(
            "dataset = \"fashion-mnist\"\nepochs = 3\n[defense]\nname = \"relaxloss\"\nalpha = 0.5\n[split]\nmembers = 100\n",
        )
        .unwrap();
        assert_eq!(
            (c.dataset, c.epochs, c.split.members, c.batch_size),
            (DatasetKind::FashionMnist, 3, 100, 32)
        );
        assert_eq!(
            c.defense,
            DefenseConfig::Relaxloss { alpha: 0.5, variant: RelaxVariant::Cifar, upper: 1.0 }
        );
        assert!(TrainConfig::from_toml("epoch = 3").is_err());
        assert!(TrainConfig::from_toml("[defense]\nname = \"magic\"").is_err());
        assert!(TrainConfig::from_toml("not toml at all [").is_err());
        let mut bad = TrainConfig {
            defense: DefenseConfig::LabelSmoothing { epsilon: 1.5, form: SmoothingForm::Uniform },
            ..TrainConfig::default()
        };
        assert!(bad.validate().is_err());
        bad.defense = DefenseConfig::Erm;
        bad.early_stopping = Some(3);
        assert!(bad.validate().is_err());
    }

    #[test]
    fn mixup_comes_from_toml_is_range_checked_and_named_in_reports() {
        let c = TrainConfig::from_toml(
            "[defense]\nname = \"ppb\"\nlambda = 4.0\n[mixup]\nkind = \"adamixup\"\nstart = 0.3\n",
        )
        .unwrap();
        assert_eq!(c.mixup, Some(MixupConfig::Adamixup { start: 0.3 }));
        assert_eq!(c.defense_label(), "ppb+adamixup");
        assert!(c.validate().is_ok());
        assert_eq!(TrainConfig::default().defense_label(), "erm");
        let bad = TrainConfig {
            mixup: Some(MixupConfig::Mixup { alpha: -1.0 }),
            ..TrainConfig::default()
        };
        assert!(bad.validate().is_err());
        assert!(TrainConfig::from_toml("[mixup]\nkind = \"cutmix\"").is_err());
    }

    #[test]
    fn dp_sgd_refuses_what_is_not_per_example() {
        let dp =
            DpConfig { clip: 1.0, noise_multiplier: Some(1.0), target_epsilon: None, delta: 1e-5 };
        let ok = TrainConfig { dp: Some(dp), ..TrainConfig::default() };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.defense_label(), "erm+dp-sgd");
        let mixed = TrainConfig { mixup: Some(MixupConfig::Mixup { alpha: 1.0 }), ..ok.clone() };
        assert!(mixed.validate().is_err(), "mixup spreads an example over two");
        let paired = TrainConfig { defense: DefenseConfig::Ppb { lambda: 4.0 }, ..ok };
        assert!(paired.validate().is_err(), "PPB pairs examples");
    }

    #[test]
    fn mixup_mmd_and_distillation_come_from_toml_and_need_a_validation_set() {
        let c = TrainConfig::from_toml(
            "[mixup]\nkind = \"mixup\"\nalpha = 1.0\n[mmd]\nlambda = 3.0\n[split]\nmembers = 100\nvalidation = 50\n",
        )
        .unwrap();
        assert_eq!(c.mmd, Some(MmdConfig { lambda: 3.0, sigma: 1.0, gap: 0.03 }));
        assert_eq!(c.defense_label(), "erm+mixup+mmd");
        assert!(c.validate().is_ok());
        let no_reference =
            TrainConfig { split: SplitSizes { validation: 0, ..c.split }, ..c.clone() };
        assert!(no_reference.validate().is_err());
        let d = TrainConfig::from_toml(
            "[distill]\ntemperature = 4.0\n[split]\nmembers = 100\nvalidation = 100\n",
        )
        .unwrap();
        assert_eq!(d.defense_label(), "erm+distillation");
        assert!(d.validate().is_ok());
        let both = TrainConfig { mmd: c.mmd, ..d.clone() };
        assert!(both.validate().is_err());
        let stopping = TrainConfig { early_stopping: Some(3), ..d.clone() };
        assert!(stopping.validate().is_err(), "the student's validation set is its training set");
        let dp =
            DpConfig { clip: 1.0, noise_multiplier: Some(1.0), target_epsilon: None, delta: 1e-5 };
        assert!(TrainConfig { dp: Some(dp), ..d }.validate().is_err());
        assert!(
            TrainConfig::from_toml("[distill]\ntemperature = 0.1\n").unwrap().validate().is_err()
        );
    }

    #[test]
    fn advreg_comes_from_toml_needs_a_reference_set_and_clean_posteriors() {
        let c = TrainConfig::from_toml(
            "[advreg]\nlambda = 2.0\n[split]\nmembers = 100\nvalidation = 100\n",
        )
        .unwrap();
        assert_eq!(c.advreg, Some(AdvRegConfig { lambda: 2.0, attack_steps: 1, warmup: 3 }));
        assert_eq!(c.defense_label(), "erm+advreg");
        assert!(c.validate().is_ok());
        let no_reference =
            TrainConfig { split: SplitSizes { validation: 0, ..c.split }, ..c.clone() };
        assert!(no_reference.validate().is_err());
        let mixed = TrainConfig { mixup: Some(MixupConfig::Mixup { alpha: 1.0 }), ..c.clone() };
        assert!(mixed.validate().is_err());
        let bad = TrainConfig {
            advreg: Some(AdvRegConfig { lambda: -1.0, attack_steps: 1, warmup: 0 }),
            ..c
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn schedules() {
        assert!((Schedule::Cosine.lr(0.1, 5, 10) - 0.05).abs() < 1e-12);
        assert_eq!(Schedule::Cosine.lr(0.1, 0, 10), 0.1);
        assert!((Schedule::Step { step_size: 2, gamma: 0.1 }.lr(1.0, 5, 10) - 0.01).abs() < 1e-12);
    }
}
