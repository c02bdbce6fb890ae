//! Which images each model of a lab run trains on, and the run itself for callers that need
//! no yielding (native tools and tests). The page runs the same plan epoch by epoch between
//! yields (mia-web's `lab_run`); both train every model with [`HeadTrainer`].
//!
//! A run is the target (on the student's members) and `S` shadows (on complementary random
//! halves of all the images, [`shadow_keep`]); under early stopping each model sets a seeded
//! share of its images aside to validate on ([`validation_split`]), and those count as OUT for
//! that model.

use burn::prelude::*;

use super::audit::{shadow_keep, validation_split};
use super::head::{HeadConfig, TrainSet};
use super::trainer::HeadTrainer;
use crate::CoreError;
use crate::rng::mix;

/// One model of a run: what it trains on, what it validates on, its seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPlan {
    /// Images it trains on.
    pub rows: Vec<usize>,
    /// Images it only validates on (early stopping).
    pub validation: Vec<usize>,
    /// Its seed (initialisation, batches, noise).
    pub seed: u64,
}

/// A run's models, the target first, and `keep` (`[(S + 1) × n]`: whether model `m` trained
/// on image `i`, set-aside images counted OUT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    /// The target, then each shadow.
    pub models: Vec<ModelPlan>,
    /// `[(S + 1) × n]` training flags.
    pub keep: Vec<bool>,
}

impl RunPlan {
    /// The plan for images with target membership `member`, `shadows` shadows drawn from
    /// `split_seed`, early stopping or not, and head seeds `seed`, `seed + 1`, ….
    pub fn new(member: &[bool], shadows: usize, split_seed: u64, early: bool, seed: u64) -> Self {
        let n = member.len();
        let mut keep = member.to_vec();
        keep.extend(shadow_keep(n, shadows, split_seed));
        let mut models = Vec::with_capacity(shadows + 1);
        for m in 0..=shadows {
            let flags = &mut keep[m * n..(m + 1) * n];
            let rows: Vec<usize> = (0..n).filter(|&i| flags[i]).collect();
            let (rows, validation) = match early {
                true => validation_split(&rows, mix(split_seed, m as u64)),
                false => (rows, Vec::new()),
            };
            validation.iter().for_each(|&i| flags[i] = false);
            models.push(ModelPlan { rows, validation, seed: seed + m as u64 });
        }
        Self { models, keep }
    }

    /// The target's training flags (its members less the images it only validated on).
    pub fn member(&self) -> &[bool] {
        &self.keep[..self.keep.len() / self.models.len().max(1)]
    }

    /// The shadows' training flags, `[S × n]`.
    pub fn shadow_keep(&self) -> &[bool] {
        &self.keep[self.keep.len() / self.models.len().max(1)..]
    }
}

/// What a native run returns: every model's logits on all images (`[(S + 1) × n × C]`, the
/// target first) and the target's ε (DP-SGD).
#[derive(Debug, Clone, PartialEq)]
pub struct RunLogits {
    /// `[(S + 1) × n × C]`.
    pub logits: Vec<f32>,
    /// (ε, δ) the target spent.
    pub epsilon: Option<(f64, f64)>,
}

/// Trains every model of `plan` on `features` (`[n × dim]`, rows of [`TrainSet`]) with recipe
/// `cfg` (each model with its own seed) on `device`, without yielding, and returns every
/// model's logits on all images. Heads on frozen features only.
pub fn run_heads(
    plan: &RunPlan,
    cfg: &HeadConfig,
    all: &TrainSet<'_>,
    device: &Device,
) -> Result<RunLogits, CoreError> {
    let n = all.labels.len();
    let mut logits = Vec::with_capacity(plan.models.len() * n * all.classes);
    let mut epsilon = None;
    for (m, model) in plan.models.iter().enumerate() {
        let (xs, ys) = rows_of(all, &model.rows);
        let (vx, vy) = rows_of(all, &model.validation);
        let cfg = HeadConfig { seed: model.seed, ..cfg.clone() };
        let data = TrainSet { features: &xs, dim: all.dim, labels: &ys, classes: all.classes };
        let mut t = HeadTrainer::new(cfg.clone(), data, device)?;
        if cfg.early_stopping.is_some() {
            let val = TrainSet { features: &vx, dim: all.dim, labels: &vy, classes: all.classes };
            t = t.with_validation(val)?;
        }
        while !t.finished() {
            t.epoch()?;
            if let Some(loss) = t.validation_loss() {
                let v = loss.into_data().try_to_vec::<f32>().map_err(|e| read_error(&e))?;
                t.observe_validation(v.first().map_or(f64::NAN, |&x| f64::from(x)));
            }
        }
        if m == 0 {
            epsilon = t.epsilon().zip(cfg.dp.map(|d| d.delta));
        }
        let net = t.finish();
        let z = super::head::lab_logits(&net, all.features, all.dim, device)?;
        logits.extend(z.into_data().try_to_vec::<f32>().map_err(|e| read_error(&e))?);
    }
    Ok(RunLogits { logits, epsilon })
}

fn read_error(e: &impl std::fmt::Debug) -> CoreError {
    CoreError::Shape(format!("reading a tensor back: {e:?}"))
}

/// The features and labels of images `rows`.
pub fn rows_of(all: &TrainSet<'_>, rows: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let d = all.dim;
    let xs = rows.iter().flat_map(|&i| all.features[i * d..(i + 1) * d].iter().copied());
    (xs.collect(), rows.iter().map(|&i| all.labels[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_trains_on_its_members_and_shadows_on_halves_less_their_validation() {
        let member = [true, false, true, false, true, false, true, false, true, false];
        let plan = RunPlan::new(&member, 4, 7, false, 11);
        assert_eq!(plan.models.len(), 5);
        assert_eq!(plan.member(), &member);
        assert_eq!(plan.models[0].rows, vec![0, 2, 4, 6, 8]);
        assert_eq!(plan.shadow_keep(), shadow_keep(10, 4, 7).as_slice());
        assert_eq!(plan.models[3].seed, 14);
        let early = RunPlan::new(&member, 4, 7, true, 11);
        for (m, model) in early.models.iter().enumerate() {
            assert_eq!(model.validation.len(), 1, "a fifth of 5 images");
            let flags = &early.keep[m * 10..(m + 1) * 10];
            assert!(model.validation.iter().all(|&i| !flags[i]), "set aside = OUT");
            assert!(model.rows.iter().all(|&i| flags[i]));
        }
    }
}
