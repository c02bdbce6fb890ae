//! Training a target model into a run directory ([`train`]): the split, the recipe's fit
//! ([`fit`]: the epoch loop of [`crate::epochs`], or a recipe that runs it in phases:
//! distillation, SELENA, pruning), the kept weights, the attack signals and `summary.json`.

use std::path::Path;

use burn::prelude::*;
use mia_core::Model;
use mia_core::ModelConfig;
use mia_core::layout::{RunLayout, Signals};
use mia_core::npy::NpyArray;
use mia_data::{Dataset, Split};
use serde::{Deserialize, Serialize};

use crate::dp::DpPlan;
pub use crate::epochs::{EpochMetrics, Observer, Silent};
use crate::epochs::{Fitted, fit_with};
use crate::job::{Job, predict, save_record};
use crate::run::{read_json, write_json, write_npy};
use crate::{TrainConfig, TrainError};

fn infinite_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

/// The outcome of a run, written to `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Dataset.
    pub dataset: String,
    /// Architecture.
    pub model: String,
    /// Training defense.
    pub defense: String,
    /// Member accuracy of the final weights.
    pub train_acc: f32,
    /// Test accuracy of the final weights.
    pub test_acc: f32,
    /// `train_acc − test_acc`.
    pub generalization_gap: f32,
    /// Epochs trained.
    pub epochs: usize,
    /// Epoch whose weights were kept (differs from `epochs` after early stopping).
    pub kept_epoch: usize,
    /// Whether early stopping ended the run.
    pub early_stopped: bool,
    /// Wall-clock seconds of training steps (all epochs, across resumes).
    pub wall_seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Device name.
    pub device: String,
    /// Members, non-members, test examples.
    pub counts: [usize; 3],
    /// Hash of the split.
    pub split_sha256: String,
    /// DP-SGD: ε at δ of the kept weights, and the noise multiplier σ used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<DpSummary>,
    /// Pruning: the fraction of convolution and linear weights that are exactly zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparsity: Option<f64>,
}

/// What DP-SGD spent (in `summary.json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpSummary {
    /// ε of the kept weights: every step taken, the epochs after an early-stopped run's kept
    /// epoch included. JSON has no infinity: an infinite ε (no noise, from runs made before
    /// σ = 0 was refused) was written as `null` and reads back as infinite.
    #[serde(deserialize_with = "infinite_if_null")]
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// Noise multiplier σ (chosen for `target_epsilon` when that was given).
    pub noise_multiplier: f64,
    /// Clip norm C.
    pub clip: f64,
    /// Poisson sampling rate q.
    pub sampling_rate: f64,
}

/// Refuses to start over an existing run, to resume where there is none, or to resume with
/// another configuration (the device may change).
fn check_resume(config: &TrainConfig, paths: &RunLayout, resume: bool) -> Result<(), TrainError> {
    let refuse =
        |reason: &str| Err(TrainError::Resume { path: paths.root.clone(), reason: reason.into() });
    let has_run = paths.config().exists();
    if resume && !has_run {
        return refuse("there is no run to resume there");
    }
    if !resume && has_run {
        return refuse("a run already exists there (pass --resume to continue it)");
    }
    if resume {
        let saved: TrainConfig = read_json(&paths.config())?;
        if (TrainConfig { device: config.device, ..saved.clone() }) != *config {
            return refuse("the configuration differs from the saved one");
        }
    }
    Ok(())
}

/// The run's split: the saved one when resuming (on the same dataset), else a new draw,
/// saved with the configuration.
fn run_split(
    config: &TrainConfig,
    paths: &RunLayout,
    ds: &Dataset,
    resume: bool,
) -> Result<Split, TrainError> {
    if resume {
        let s = Split::load(&paths.split())?;
        if s.pool_size != ds.len() || s.dataset != ds.name {
            return Err(TrainError::Resume {
                path: paths.root.clone(),
                reason: "the dataset changed since the run started".into(),
            });
        }
        return Ok(s);
    }
    // Draw first, so a split that cannot be drawn leaves nothing behind.
    let s = Split::draw(&ds.name, ds.len(), config.split, config.seed)?;
    create_dirs(paths)?;
    s.save(&paths.split())?;
    write_json(&paths.config(), config)?;
    Ok(s)
}

/// The attack signals: the target's logits on its members, then its non-members, with their
/// pool indices, labels and membership.
fn write_signals(
    model: &Model,
    ds: &Dataset,
    split: &Split,
    sig: &Signals,
    device: &Device,
) -> Result<(), TrainError> {
    let indices: Vec<usize> = split.members.iter().chain(&split.non_members).copied().collect();
    let logits = predict(model, ds, &indices, device)?;
    let n = indices.len();
    let index_values = indices.iter().map(|&i| i as i64).collect();
    write_npy(&sig.indices(), &NpyArray::i64(vec![n], index_values)?)?;
    write_npy(&sig.logits(), &NpyArray::f32(vec![n, ds.num_classes()], logits)?)?;
    let labels = indices.iter().map(|&i| i64::from(ds.labels[i])).collect();
    write_npy(&sig.labels(), &NpyArray::i64(vec![n], labels)?)?;
    let membership = (0..n).map(|k| k < split.members.len()).collect();
    write_npy(&sig.is_member(), &NpyArray::bool(vec![n], membership)?)
}

fn create_dirs(paths: &RunLayout) -> Result<(), TrainError> {
    for dir in [paths.checkpoint().dir, paths.signals().dir] {
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    Ok(())
}

/// Runs (or, with `resume` and a checkpoint in `job.checkpoints`, continues) the training:
/// the epoch loop, or for distillation the teacher's and then the student's, or SELENA's
/// sub-models and then its distilled model, or a pruned run's dense model and then its
/// fine-tuning.
pub(crate) fn fit(
    job: &Job<'_>,
    base: &Device,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<Fitted, TrainError> {
    let config = job.config;
    match (config.distill, config.selena, &config.prune) {
        (Some(d), ..) => crate::distill::fit_student(job, base, resume, observer, d),
        (None, Some(s), _) => crate::selena::fit_selena(job, base, resume, observer, s),
        (None, None, Some(p)) => crate::prune::fit_pruned(job, base, resume, observer, p),
        (None, None, None) => fit_with(job, base, resume, observer, None),
    }
}

/// Trains the target model described by `config` into the run directory `out`.
///
/// With `resume`, continues from the last checkpoint in `out` (the configuration must match).
pub fn train(
    config: &TrainConfig,
    out: &Path,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<Summary, TrainError> {
    config.validate()?;
    let paths = RunLayout::new(out);
    check_resume(config, &paths, resume)?;
    let ds = config.dataset.load(&config.data_dir, &config.load)?;
    let split = run_split(config, &paths, &ds, resume)?;
    let model_config =
        ModelConfig::new(config.model, ds.input, ds.num_classes()).with_dropout(config.dropout);
    write_json(&paths.model_config(), &model_config)?;

    let base = config.device.device()?;
    let job = Job {
        config,
        model_config: &model_config,
        ds: &ds,
        train: &split.members,
        scored: &split.members,
        validation: &split.validation,
        test: &split.test,
        checkpoints: &paths.checkpoint(),
        metrics: &paths.metrics(),
        seed: config.seed,
        init: None,
        masks: None,
        eval_each_epoch: true,
    };
    if let Some(warning) =
        config.dp.and_then(|dp| mia_core::privacy::delta_warning(dp.delta, split.members.len()))
    {
        observer.on_warning(&warning);
    }
    let Fitted { model, state, kept_epoch, plan } = fit(&job, &base, resume, observer)?;
    save_record(&model, &paths.weights())?;
    write_signals(&model, &ds, &split, &paths.signals(), &base)?;

    // The kept epoch was evaluated on exactly these weights; no need to run the test set again.
    let kept = state
        .metrics
        .get(kept_epoch.saturating_sub(1))
        .ok_or_else(|| TrainError::Backend(format!("no metrics for epoch {kept_epoch}")))?;
    let (train_acc, test_acc) = (kept.train_acc, kept.test_acc);
    let summary = Summary {
        dataset: ds.name.clone(),
        model: config.model.to_string(),
        defense: config.defense_label(),
        train_acc,
        test_acc,
        generalization_gap: train_acc - test_acc,
        epochs: state.next_epoch,
        kept_epoch,
        early_stopped: state.stopped,
        wall_seconds: state.train_seconds,
        images_per_s: state.images as f64 / state.train_seconds.max(1e-9),
        device: config.device.to_string(),
        counts: [split.members.len(), split.non_members.len(), split.test.len()],
        split_sha256: split.sha256.clone(),
        dp: plan.map(|p| dp_summary(&p, &state.metrics)).transpose()?,
        sparsity: config
            .prune
            .as_ref()
            .map(|_| crate::prune::measured_sparsity(&model))
            .transpose()?,
    };
    write_json(&paths.summary(), &summary)?;
    Ok(summary)
}

/// What DP-SGD spent on the kept weights: the ε after the last epoch run. Under early
/// stopping that counts the epochs after the kept one too: their validation losses chose the
/// kept epoch, so the released weights depend on every step taken (as Opacus counts it).
fn dp_summary(plan: &DpPlan, metrics: &[EpochMetrics]) -> Result<DpSummary, TrainError> {
    let last = metrics.last().ok_or_else(|| TrainError::Backend("no epoch was run".into()))?;
    let epsilon = last
        .epsilon
        .ok_or_else(|| TrainError::Backend(format!("no ε for epoch {}", last.epoch)))?;
    Ok(DpSummary {
        epsilon,
        delta: plan.delta,
        noise_multiplier: plan.sigma,
        clip: plan.clip,
        sampling_rate: plan.q,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unevaluated_epoch_metrics_survive_a_json_round_trip() {
        let m = EpochMetrics {
            epoch: 3,
            lr: 0.01,
            train_objective: 1.5,
            train_acc: f32::NAN,
            train_loss: f32::NAN,
            test_acc: f32::NAN,
            test_loss: f32::NAN,
            val_loss: None,
            train_seconds: 1.0,
            images_per_s: 10.0,
            epsilon: None,
            mmd: None,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"train_acc\":null"), "{text}");
        let back: EpochMetrics = serde_json::from_str(&text).unwrap();
        assert!(back.train_acc.is_nan() && back.test_loss.is_nan());
        assert_eq!((back.epoch, back.train_objective), (3, 1.5));
    }

    fn epoch_with_epsilon(epoch: usize, epsilon: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            lr: 0.01,
            train_objective: 1.0,
            train_acc: 0.5,
            train_loss: 1.0,
            test_acc: 0.5,
            test_loss: 1.0,
            val_loss: Some(1.0),
            train_seconds: 1.0,
            images_per_s: 10.0,
            epsilon: Some(epsilon),
            mmd: None,
        }
    }

    #[test]
    fn the_summarys_epsilon_counts_every_epoch_run_not_only_up_to_the_kept_one() {
        // Four epochs run, early stopping kept the third: the fourth epoch's validation loss
        // chose it, so the released weights spent what all four epochs spent.
        let metrics: Vec<_> = [1.2, 1.8, 2.333, 2.655]
            .iter()
            .enumerate()
            .map(|(i, &e)| epoch_with_epsilon(i + 1, e))
            .collect();
        let plan = DpPlan { q: 0.2, steps: 5, sigma: 2.0, clip: 1.0, delta: 1e-5 };
        assert_eq!(dp_summary(&plan, &metrics).unwrap().epsilon, 2.655);
        assert!(dp_summary(&plan, &[]).is_err());
    }

    #[test]
    fn an_infinite_epsilon_written_as_null_reads_back() {
        let text = r#"{"epsilon":null,"delta":1e-5,"noise_multiplier":0.0,"clip":1.0,"sampling_rate":0.1}"#;
        let dp: DpSummary = serde_json::from_str(text).unwrap();
        assert_eq!(dp.epsilon, f64::INFINITY);
    }
}
