//! Pruning then fine-tuning, as a training recipe (SynthShield's first half, and mia_prune's
//! prune + fine-tune baseline, Yuan & Zhang, USENIX Security 2022):
//!
//! 1. a **dense** model trains with the run's recipe (checkpointed in `checkpoint/dense/`);
//! 2. its convolution and linear weights are pruned by magnitude: **unstructured**, the
//!    fraction `sparsity` of those weights with the smallest |w| over the whole network (global
//!    L1 pruning, as `torch.nn.utils.prune.global_unstructured` with `L1Unstructured`);
//!    or **structured**, in every convolution the fraction `sparsity` of output filters with
//!    the smallest L1 norm, with their biases (Li et al., ICLR 2017), linear layers untouched;
//! 3. the pruned model is **fine-tuned** for `epochs` epochs at `lr` on a chosen source: the
//!    members (mia_prune's baseline, known to raise the leak), the split's validation part
//!    (real images disjoint from members, non-members and test set), or a folder of (synthetic)
//!    images, one sub-folder per class (SynthShield). The masks are applied after every step,
//!    so pruned weights stay exactly zero.
//!
//! The fine-tuned model is the run's model; `summary.json` reports the sparsity it reached.
//! Shadows follow the same recipe, each pruning its own dense model.

use std::path::PathBuf;

use burn::prelude::*;
use mia_core::rng::mix;
use mia_data::{Dataset, Samples};
use serde::{Deserialize, Serialize};

use crate::epochs::{Fitted, Observer, fit_with};
use crate::job::{Job, phase_folder};
pub use crate::masks::{Masks, measured_sparsity};
use crate::{TrainConfig, TrainError};

/// What the pruned model is fine-tuned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinetuneSource {
    /// The members (the training set): mia_prune's prune + fine-tune baseline.
    Members,
    /// The split's validation part: real images outside members, non-members and test set.
    Validation,
    /// The images of `synthetic_dir` (one sub-folder per class): SynthShield.
    Synthetic,
}

/// Pruning's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// Fraction of the prunable weights (unstructured) or of each convolution's filters
    /// (structured) set to zero, in (0, 1).
    pub sparsity: f64,
    /// Prune whole convolution filters instead of single weights.
    #[serde(default)]
    pub structured: bool,
    /// Fine-tuning epochs after pruning (0 to 1000; 0 releases the pruned model as it is).
    pub epochs: usize,
    /// Fine-tuning learning rate (default: a tenth of the run's).
    #[serde(default)]
    pub lr: Option<f64>,
    /// What the fine-tuning trains on.
    pub source: FinetuneSource,
    /// The folder of images for [`FinetuneSource::Synthetic`].
    #[serde(default)]
    pub synthetic_dir: Option<PathBuf>,
}

impl PruneConfig {
    /// How reports name the recipe: `prune50-ft-members`, `sprune75-ft-synthetic`, …
    pub fn label(&self) -> String {
        let kind = if self.structured { "sprune" } else { "prune" };
        let source = match self.source {
            FinetuneSource::Members => "members",
            FinetuneSource::Validation => "val",
            FinetuneSource::Synthetic => "synthetic",
        };
        let pct = (self.sparsity * 100.0).round();
        if self.epochs == 0 { format!("{kind}{pct}") } else { format!("{kind}{pct}-ft-{source}") }
    }

    /// Range checks and the source's needs (`validation` is the run's validation size).
    pub fn validate(&self, validation: usize) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if !(self.sparsity > 0.0 && self.sparsity < 1.0) {
            return bad(format!("pruning's sparsity must lie in (0, 1), got {}", self.sparsity));
        }
        if self.epochs > 1000 {
            return bad(format!("at most 1000 fine-tuning epochs, got {}", self.epochs));
        }
        if let Some(lr) = self.lr
            && !(lr > 0.0 && lr <= 10.0)
        {
            return bad(format!("the fine-tuning learning rate must lie in (0, 10], got {lr}"));
        }
        match (self.source, &self.synthetic_dir) {
            (FinetuneSource::Synthetic, None) => {
                bad("fine-tuning on synthetic images needs their folder: pass --synthetic-dir"
                    .into())
            }
            (FinetuneSource::Validation, _) if validation == 0 => {
                bad("fine-tuning on the validation part needs one disjoint from the members: pass \
                 --val N"
                    .into())
            }
            _ => Ok(()),
        }
    }
}

/// `ds` with the images of `dir` (one sub-folder per class, named after the class or its
/// number) appended, resized to `ds`'s input.
pub fn with_folder(ds: &Dataset, dir: &std::path::Path) -> Result<Dataset, TrainError> {
    let input = ds.input;
    let Samples::U8(pixels) = &ds.samples else {
        return Err(TrainError::Config(
            "synthetic fine-tuning images need an image dataset, not a CSV one".into(),
        ));
    };
    if input.height != input.width {
        return Err(TrainError::Config(format!(
            "synthetic images are resized to square inputs; this dataset's are {}×{}",
            input.height, input.width
        )));
    }
    let extra = mia_data::folder::load(dir, input.height, input.channels == 1)?;
    let mut class_of = Vec::with_capacity(extra.class_names.len());
    for name in &extra.class_names {
        let by_name = ds.class_names.iter().position(|c| c == name);
        let by_number = name.parse::<usize>().ok().filter(|&k| k < ds.num_classes());
        class_of.push(by_name.or(by_number).ok_or_else(|| {
            TrainError::Config(format!(
                "{}: sub-folder {name:?} is not a class of {} (name the sub-folders {} or 0–{})",
                dir.display(),
                ds.name,
                ds.class_names.join(", "),
                ds.num_classes() - 1
            ))
        })? as u32);
    }
    let Samples::U8(more) = extra.samples else {
        return Err(TrainError::Config("the synthetic folder did not decode to images".into()));
    };
    let mut all = Vec::with_capacity(pixels.len() + more.len());
    all.extend_from_slice(pixels);
    all.extend(more);
    let mut labels = ds.labels.clone();
    labels.extend(extra.labels.iter().map(|&l| class_of[l as usize]));
    Ok(Dataset {
        name: ds.name.clone(),
        input: ds.input,
        class_names: ds.class_names.clone(),
        samples: Samples::U8(all),
        labels,
        normalization: ds.normalization.clone(),
    })
}

/// The dense model's recipe: the run's, without pruning.
fn dense_config(config: &TrainConfig) -> TrainConfig {
    TrainConfig { prune: None, ..config.clone() }
}

/// The fine-tuning recipe: the run's loss, mixup, batch size and augmentation, for the pruning's
/// epochs at its learning rate, constant.
fn finetune_config(config: &TrainConfig, prune: &PruneConfig) -> TrainConfig {
    let mut c = TrainConfig { prune: None, epochs: prune.epochs, ..config.clone() };
    c.optimizer.lr = prune.lr.unwrap_or(config.optimizer.lr / 10.0);
    c.schedule = crate::Schedule::Constant;
    c
}

/// The seed stream of the fine-tuning, apart from the dense model's.
const FINETUNE_STREAM: u64 = 0xF1E7_0E5E;

/// Fits the dense model, prunes it and fine-tunes the pruned model with its masks held.
pub(crate) fn fit_pruned(
    job: &Job<'_>,
    base: &Device,
    resume: bool,
    observer: &mut dyn Observer,
    prune: &PruneConfig,
) -> Result<Fitted, TrainError> {
    let (dense_checkpoints, dense_metrics) = phase_folder(job.checkpoints.dense())?;
    let config = dense_config(job.config);
    let dense_job =
        Job { config: &config, checkpoints: &dense_checkpoints, metrics: &dense_metrics, ..*job };
    observer.on_phase("dense");
    let dense = fit_with(&dense_job, base, resume, observer, None)?;
    let masks = Masks::magnitude(&dense.model, prune.sparsity, prune.structured, base)?;
    let weights = dense_checkpoints.generation(dense.state.next_epoch).weights();

    let extended;
    let (ds, train): (&Dataset, Vec<usize>) = match (prune.source, &prune.synthetic_dir) {
        (FinetuneSource::Members, _) => (job.ds, job.train.to_vec()),
        (FinetuneSource::Validation, _) => (job.ds, job.validation.to_vec()),
        (FinetuneSource::Synthetic, Some(dir)) => {
            extended = with_folder(job.ds, dir)?;
            (&extended, (job.ds.len()..extended.len()).collect())
        }
        (FinetuneSource::Synthetic, None) => {
            return Err(TrainError::Config("--synthetic-dir is missing".into()));
        }
    };
    let config = finetune_config(job.config, prune);
    let finetune_job = Job {
        config: &config,
        ds,
        train: &train,
        validation: &[],
        init: Some(&weights),
        masks: Some(&masks),
        seed: mix(job.seed, FINETUNE_STREAM),
        ..*job
    };
    observer.on_phase("fine-tune");
    let mut fitted = fit_with(&finetune_job, base, resume, observer, None)?;
    fitted.state.train_seconds += dense.state.train_seconds;
    fitted.state.images += dense.state.images;
    Ok(fitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masks::{Prunable, prunables};
    use burn::module::Module;
    use mia_core::Model;
    use mia_core::{Architecture, InputSpec, ModelConfig};

    fn model() -> Model {
        let config = ModelConfig::new(Architecture::SmallCnn, InputSpec::new(1, 28, 28), 10);
        crate::job::init_model(&config, &Device::flex(), 3).unwrap()
    }

    #[test]
    fn global_pruning_zeroes_exactly_the_smallest_weights_over_every_layer() {
        let m = model();
        let before = prunables(&m).unwrap();
        let masks = Masks::magnitude(&m, 0.6, false, &Device::flex()).unwrap();
        let pruned = masks.apply(m);
        let after = prunables(&pruned).unwrap();
        let weights = |ps: &[Prunable]| -> Vec<f32> {
            ps.iter().filter(|p| p.name == "weight").flat_map(|p| p.values.clone()).collect()
        };
        let (w0, w1) = (weights(&before), weights(&after));
        let zeros = w1.iter().filter(|v| **v == 0.0).count();
        assert_eq!(zeros, (w0.len() as f64 * 0.6).round() as usize);
        // Every kept weight is unchanged and larger in magnitude than every pruned one.
        let kept_min = w0.iter().zip(&w1).filter(|(_, a)| **a != 0.0).map(|(b, _)| b.abs());
        let pruned_max = w0.iter().zip(&w1).filter(|(_, a)| **a == 0.0).map(|(b, _)| b.abs());
        let (lo, hi) = (kept_min.fold(f32::MAX, f32::min), pruned_max.fold(0.0, f32::max));
        assert!(lo >= hi, "kept {lo} < pruned {hi}");
        assert!(w0.iter().zip(&w1).all(|(b, a)| *a == 0.0 || a == b));
        // Biases are left alone; every conv and linear layer takes part.
        let layers = before.iter().filter(|p| p.name == "weight").count();
        assert!(layers >= 3, "{layers} layers");
        assert_eq!(measured_sparsity(&pruned).unwrap(), zeros as f64 / w0.len() as f64);
    }

    #[test]
    fn structured_pruning_zeroes_whole_filters_of_least_l1_norm_and_their_biases() {
        let m = model();
        let before = prunables(&m).unwrap();
        let pruned = Masks::magnitude(&m, 0.5, true, &Device::flex()).unwrap().apply(m);
        let after = prunables(&pruned).unwrap();
        for (b, a) in before.iter().zip(&after).filter(|(b, _)| b.conv && b.name == "weight") {
            let per = b.values.len() / b.shape[0];
            let norms = |v: &[f32]| {
                v.chunks(per).map(|c| c.iter().map(|x| x.abs()).sum::<f32>()).collect::<Vec<_>>()
            };
            let (n0, n1) = (norms(&b.values), norms(&a.values));
            let gone: Vec<usize> = (0..n1.len()).filter(|&f| n1[f] == 0.0).collect();
            assert_eq!(gone.len(), b.shape[0] / 2, "{}", b.layer);
            let kept_min =
                (0..n0.len()).filter(|f| !gone.contains(f)).map(|f| n0[f]).fold(f32::MAX, f32::min);
            assert!(gone.iter().all(|&f| n0[f] <= kept_min), "{}", b.layer);
            if let Some(bias) = after.iter().find(|p| p.name == "bias" && p.layer == b.layer) {
                assert!(gone.iter().all(|&f| bias.values[f] == 0.0), "{}", b.layer);
            }
        }
        // Linear layers are untouched.
        for (b, a) in before.iter().zip(&after).filter(|(b, _)| !b.conv) {
            assert_eq!(b.values, a.values, "{}", b.layer);
        }
    }

    #[test]
    fn masks_hold_through_optimiser_steps() {
        use burn::optim::GradientsParams;
        let device = Device::flex().autodiff();
        let config = ModelConfig::new(Architecture::SmallCnn, InputSpec::new(1, 28, 28), 10);
        let mut m = crate::job::init_model(&config, &device, 3).unwrap();
        let masks = Masks::magnitude(&m.valid(), 0.7, false, &Device::flex()).unwrap();
        m = masks.apply(m);
        let mut optim = TrainConfig::default().optimizer.build();
        for _ in 0..3 {
            let x = Tensor::<4>::ones([4, 1, 28, 28], &device);
            let loss = m.forward(x).powf_scalar(2.0).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            m = optim.step(1e-2, m, grads);
            m = masks.apply(m);
        }
        assert!((measured_sparsity(&m.valid()).unwrap() - 0.7).abs() < 1e-4);
    }

    #[test]
    fn sparsity_epochs_lr_and_sources_are_checked() {
        let ok = PruneConfig {
            sparsity: 0.5,
            structured: false,
            epochs: 5,
            lr: None,
            source: FinetuneSource::Members,
            synthetic_dir: None,
        };
        assert!(ok.validate(0).is_ok());
        for s in [0.0, 1.0, -0.1, f64::NAN] {
            assert!(PruneConfig { sparsity: s, ..ok.clone() }.validate(0).is_err(), "{s}");
        }
        assert!(PruneConfig { epochs: 1001, ..ok.clone() }.validate(0).is_err());
        assert!(PruneConfig { lr: Some(0.0), ..ok.clone() }.validate(0).is_err());
        let val = PruneConfig { source: FinetuneSource::Validation, ..ok.clone() };
        assert!(val.validate(0).is_err() && val.validate(10).is_ok());
        let synth = PruneConfig { source: FinetuneSource::Synthetic, ..ok.clone() };
        assert!(synth.validate(0).is_err());
        let dir = Some(PathBuf::from("synthetic"));
        assert!(PruneConfig { synthetic_dir: dir, ..synth }.validate(0).is_ok());
    }
}
