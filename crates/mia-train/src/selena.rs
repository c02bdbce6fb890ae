//! SELENA (Tang, Mahloujifar, Song, Shejwalkar, Nasr, Houmansadr & Mittal, USENIX Security
//! 2022; the authors' `MIAdefenseSELENA`): **Split-AI** then **self-distillation**.
//!
//! - Split-AI: `K` sub-models of the run's architecture and recipe. Each member is left out of
//!   `L` of them, drawn at random for that member (the authors' `generation10.py`), so
//!   sub-model `k` trains on the members not left out of it, about `(K − L)/K` of them.
//!   Split-AI's output for a member is the mean of the **posteriors** of the `L` sub-models
//!   that never saw it.
//! - Self-distillation: the shipped model, of the same architecture, trains on the members
//!   against those posteriors with the soft-label cross-entropy `−Σ p_splitai · log softmax(z)`
//!   (temperature 1, as the authors' `Distillation/train.py`), with the run's optimiser,
//!   schedule, epochs and augmentation, without its loss defense or mixup (those shape the
//!   sub-models). Split-AI itself is never queried by the attacks: the distilled model is what
//!   is released.
//!
//! Each sub-model checkpoints into `checkpoint/split-ai/NN/` ([`Checkpoints::sub_model`]), so
//! a stopped run resumes inside whichever sub-model (or the distillation) it was in. The
//! adaptive attacker's shadows are SELENA models: each trains its own `K` sub-models on its
//! own members.

use burn::prelude::*;
use mia_core::posterior;
use mia_core::rng::mix;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::defense::DefenseConfig;
use crate::epochs::{Fitted, Observer, fit_with};
use crate::job::{Job, phase_folder, predict};
use crate::soft::SoftTargets;
use crate::{TrainConfig, TrainError};

/// SELENA's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelenaConfig {
    /// `K`: Split-AI's sub-models (2 to 64; the paper uses 25).
    pub models: usize,
    /// `L`: the sub-models each member is left out of (1 to K − 1; the paper uses 10).
    pub excluded: usize,
}

impl SelenaConfig {
    /// The paper's `L/K = 10/25` at `models` sub-models, at least 1 and at most `K − 1`.
    pub fn paper_ratio(models: usize) -> usize {
        (models * 2).div_ceil(5).clamp(1, models.saturating_sub(1).max(1))
    }

    /// Range checks.
    pub fn validate(&self) -> Result<(), TrainError> {
        if !(2..=64).contains(&self.models) {
            return Err(TrainError::Config(format!(
                "SELENA's sub-model count K must lie in [2, 64], got {}",
                self.models
            )));
        }
        if !(1..self.models).contains(&self.excluded) {
            return Err(TrainError::Config(format!(
                "SELENA leaves each member out of L sub-models, 1 ≤ L < K = {}; got L = {}",
                self.models, self.excluded
            )));
        }
        Ok(())
    }
}

/// For every member (by position), the `L` sub-models it is left out of, drawn from `seed`.
pub(crate) fn left_out(members: usize, selena: SelenaConfig, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, SPLIT_STREAM));
    (0..members)
        .map(|_| {
            let mut models: Vec<usize> = (0..selena.models).collect();
            models.shuffle(&mut rng);
            models.truncate(selena.excluded);
            models.sort_unstable();
            models
        })
        .collect()
}

/// The sub-models' recipe: the run's, without SELENA.
fn sub_model_config(config: &TrainConfig) -> TrainConfig {
    TrainConfig { selena: None, ..config.clone() }
}

/// The distilled model's recipe: the run's optimiser, schedule, epochs, batch size and
/// augmentation; its loss is the soft-label one (no loss defense, no mixup).
fn distilled_config(config: &TrainConfig) -> TrainConfig {
    TrainConfig { selena: None, mixup: None, defense: DefenseConfig::Erm, ..config.clone() }
}

/// The seed streams of the member-to-sub-model assignment and of the sub-models.
const SPLIT_STREAM: u64 = 0x5E1E_0A11;
const SUB_MODEL_STREAM: u64 = 0x5E1E_0B00;

/// Fits Split-AI's `K` sub-models, then the distilled model on `job.train` against Split-AI's
/// posteriors on the members.
pub(crate) fn fit_selena(
    job: &Job<'_>,
    base: &Device,
    resume: bool,
    observer: &mut dyn Observer,
    selena: SelenaConfig,
) -> Result<Fitted, TrainError> {
    let (ds, members) = (job.ds, job.train);
    let classes = ds.num_classes();
    let left = left_out(members.len(), selena, job.seed);
    let config = sub_model_config(job.config);
    // Σ over the sub-models that never saw a member of their posteriors on it.
    let mut sums = vec![0.0f64; members.len() * classes];
    let (mut seconds, mut images) = (0.0, 0u64);
    for k in 0..selena.models {
        // (position among the members, dataset index) of the members sub-model k sees, and
        // of those it never sees.
        type Rows = Vec<(usize, usize)>;
        let (train, held_out): (Rows, Rows) =
            members.iter().copied().enumerate().partition(|(p, _)| !left[*p].contains(&k));
        let train: Vec<usize> = train.into_iter().map(|(_, i)| i).collect();
        if train.is_empty() || held_out.is_empty() {
            return Err(TrainError::Config(format!(
                "SELENA's sub-model {k} would train on {} of {} members: use more members or \
                 other K and L",
                train.len(),
                members.len()
            )));
        }
        let (checkpoints, metrics) = phase_folder(job.checkpoints.sub_model(k))?;
        let sub_job = Job {
            config: &config,
            train: &train,
            scored: &train,
            validation: &[],
            checkpoints: &checkpoints,
            metrics: &metrics,
            seed: mix(job.seed, SUB_MODEL_STREAM + k as u64),
            ..*job
        };
        observer.on_phase(&format!("split-ai {}/{}", k + 1, selena.models));
        let sub = fit_with(&sub_job, base, resume, observer, None)?;
        seconds += sub.state.train_seconds;
        images += sub.state.images;
        let indices: Vec<usize> = held_out.iter().map(|(_, i)| *i).collect();
        let logits = predict(&sub.model, ds, &indices, base)?;
        for ((p, _), row) in held_out.iter().zip(logits.chunks(classes)) {
            let probs = posterior::softmax(row);
            for (s, q) in sums[p * classes..(p + 1) * classes].iter_mut().zip(probs) {
                *s += f64::from(q);
            }
        }
    }
    let probs: Vec<f32> = sums.iter().map(|s| (s / selena.excluded as f64) as f32).collect();
    let soft = SoftTargets::from_probs(probs, members, classes);
    let config = distilled_config(job.config);
    let distilled_job = Job { config: &config, ..*job };
    observer.on_phase("self-distillation");
    let mut fitted = fit_with(&distilled_job, base, resume, observer, Some(&soft))?;
    // The run's cost is all K + 1 models'.
    fitted.state.train_seconds += seconds;
    fitted.state.images += images;
    Ok(fitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_is_left_out_of_l_distinct_sub_models() {
        let selena = SelenaConfig { models: 5, excluded: 2 };
        let left = left_out(2000, selena, 7);
        assert_eq!(left.len(), 2000);
        for l in &left {
            assert_eq!(l.len(), 2);
            assert!(l[0] < l[1] && l[1] < 5, "{l:?}");
        }
        // Each sub-model misses about L/K of the members and sees the rest.
        for k in 0..5 {
            let missed = left.iter().filter(|l| l.contains(&k)).count();
            assert!((700..=900).contains(&missed), "sub-model {k} misses {missed} of 2000");
        }
        // Deterministic per seed, another seed another draw.
        assert_eq!(left, left_out(2000, selena, 7));
        assert_ne!(left, left_out(2000, selena, 8));
    }

    #[test]
    fn the_paper_ratio_is_l_over_k_ten_over_twenty_five() {
        assert_eq!(SelenaConfig::paper_ratio(25), 10);
        assert_eq!(SelenaConfig::paper_ratio(5), 2);
        assert_eq!(SelenaConfig::paper_ratio(2), 1);
        assert_eq!(SelenaConfig::paper_ratio(3), 2);
        for k in 2..=64 {
            let l = SelenaConfig::paper_ratio(k);
            assert!(SelenaConfig { models: k, excluded: l }.validate().is_ok(), "{k}");
        }
    }

    #[test]
    fn k_and_l_are_range_checked() {
        assert!(SelenaConfig { models: 25, excluded: 10 }.validate().is_ok());
        for (k, l) in [(1, 0), (0, 0), (5, 0), (5, 5), (5, 6), (65, 10)] {
            assert!(SelenaConfig { models: k, excluded: l }.validate().is_err(), "{k} {l}");
        }
    }

    #[test]
    fn the_distilled_model_drops_the_loss_defense_and_mixup_the_sub_models_keep_them() {
        let config = TrainConfig {
            defense: DefenseConfig::Ppb { lambda: 4.0 },
            mixup: Some(crate::config::MixupConfig::Mixup { alpha: 1.0 }),
            selena: Some(SelenaConfig { models: 5, excluded: 2 }),
            ..TrainConfig::default()
        };
        let sub = sub_model_config(&config);
        assert_eq!((sub.defense.name(), sub.mixup.is_some(), sub.selena), ("ppb", true, None));
        let distilled = distilled_config(&config);
        assert_eq!(
            (distilled.defense.name(), distilled.mixup, distilled.selena),
            ("erm", None, None)
        );
        assert_eq!(distilled.epochs, config.epochs);
    }
}
