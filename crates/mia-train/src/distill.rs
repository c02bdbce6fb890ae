//! Distillation as a membership defense (Hinton, Vinyals & Dean 2015, the knowledge-transfer
//! defense of Shejwalkar & Houmansadr's DMP, AAAI 2021, without DMP's entropy-based selection
//! of the transfer set): a **teacher** trains on the members with the run's recipe (its loss,
//! mixup, augmentation), then a **student** of the same architecture trains only on a
//! *disjoint* transfer set, the split's validation part (`--val N`), against the teacher's
//! posteriors at temperature `T`, with the loss `T² · CE(softmax(z/T), softmax(z_teacher/T))`.
//! The student never sees a member; what it knows of them is what the teacher's outputs on
//! other images carry. The student is the model the run ships and the attacks score; its
//! `train_acc` is measured on the members.
//!
//! The teacher checkpoints into `checkpoint/teacher/` ([`Checkpoints::teacher`]), so a
//! stopped run resumes inside whichever phase it was in; the adaptive attacker's shadows go
//! through both phases with the same transfer set.

use burn::prelude::*;
use mia_core::rng::mix;
use serde::{Deserialize, Serialize};

use crate::defense::DefenseConfig;
use crate::epochs::{Fitted, Observer, fit_with};
use crate::job::{Job, phase_folder, predict};
use crate::soft::SoftTargets;
use crate::{TrainConfig, TrainError};

/// Distillation's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Softmax temperature `T` of the teacher's targets and the student's outputs (1 to 100;
    /// Hinton et al. use 2–20).
    pub temperature: f64,
}

impl DistillConfig {
    /// Range checks.
    pub fn validate(&self) -> Result<(), TrainError> {
        if (1.0..=100.0).contains(&self.temperature) {
            Ok(())
        } else {
            Err(TrainError::Config(format!(
                "distillation's temperature must lie in [1, 100], got {}",
                self.temperature
            )))
        }
    }
}

/// The teacher's recipe: the run's, without the distillation.
fn teacher_config(config: &TrainConfig) -> TrainConfig {
    TrainConfig { distill: None, ..config.clone() }
}

/// The student's recipe: the run's optimiser, schedule, epochs, batch size and augmentation;
/// its loss is the soft-label one (no loss defense, no mixup).
fn student_config(config: &TrainConfig) -> TrainConfig {
    TrainConfig { distill: None, mixup: None, defense: DefenseConfig::Erm, ..config.clone() }
}

/// The seed stream of the teacher, apart from the student's.
const TEACHER_STREAM: u64 = 0x7EAC_4E12;

/// Fits the teacher on `job.train`, then the student on `job.validation` (the transfer set)
/// against the teacher's posteriors at `distill.temperature`.
pub(crate) fn fit_student(
    job: &Job<'_>,
    base: &Device,
    resume: bool,
    observer: &mut dyn Observer,
    distill: DistillConfig,
) -> Result<Fitted, TrainError> {
    let (ds, transfer) = (job.ds, job.validation);
    if transfer.is_empty() {
        return Err(TrainError::Config(
            "distillation needs a transfer set disjoint from the members: pass --val N".into(),
        ));
    }
    let (teacher_checkpoints, teacher_metrics) = phase_folder(job.checkpoints.teacher())?;
    let config = teacher_config(job.config);
    let teacher_job = Job {
        config: &config,
        train: job.train,
        scored: job.train,
        validation: &[],
        checkpoints: &teacher_checkpoints,
        metrics: &teacher_metrics,
        seed: mix(job.seed, TEACHER_STREAM),
        ..*job
    };
    observer.on_phase("teacher");
    let teacher = fit_with(&teacher_job, base, resume, observer, None)?;
    let logits = predict(&teacher.model, ds, transfer, base)?;
    let soft = SoftTargets::new(&logits, transfer, ds.num_classes(), distill.temperature);
    let config = student_config(job.config);
    let student_job =
        Job { config: &config, train: transfer, scored: job.train, validation: &[], ..*job };
    observer.on_phase("student");
    let mut student = fit_with(&student_job, base, resume, observer, Some(&soft))?;
    // The run's cost is both models'.
    student.state.train_seconds += teacher.state.train_seconds;
    student.state.images += teacher.state.images;
    Ok(student)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mia_core::posterior;

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    #[test]
    fn the_student_loss_is_t_squared_soft_cross_entropy_at_temperature_t() {
        let teacher = [2.0f32, 0.0, -1.0, 0.5, 0.5, 1.5];
        let soft = SoftTargets::new(&teacher, &[7, 3], 3, 4.0);
        let student = [1.0f32, 2.0, 0.0, -1.0, 0.0, 1.0];
        let z = Tensor::<2>::from_data(TensorData::new(student.to_vec(), [2, 3]), &dev());
        // The batch holds the examples in another order than the table.
        let got =
            soft.loss(z, &[3, 7], &dev()).unwrap().into_data().try_to_vec::<f32>().unwrap()[0];
        let at_t = |z: &[f32]| z.iter().map(|v| v / 4.0).collect::<Vec<_>>();
        let ce = |s: &[f32], t: &[f32]| {
            let q = posterior::softmax(&at_t(t));
            let logp = posterior::log_softmax(&at_t(s));
            -q.iter().zip(&logp).map(|(q, l)| q * l).sum::<f32>()
        };
        let want =
            16.0 * (ce(&student[..3], &teacher[3..]) + ce(&student[3..], &teacher[..3])) / 2.0;
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    #[test]
    fn given_posteriors_are_the_targets_at_temperature_one() {
        let soft = SoftTargets::from_probs(vec![0.7, 0.2, 0.1], &[4], 3);
        let student = [0.5f32, -1.0, 2.0];
        let z = Tensor::<2>::from_data(TensorData::new(student.to_vec(), [1, 3]), &dev());
        let got = soft.loss(z, &[4], &dev()).unwrap().into_data().try_to_vec::<f32>().unwrap()[0];
        let logp = posterior::log_softmax(&student);
        let want = -(0.7 * logp[0] + 0.2 * logp[1] + 0.1 * logp[2]);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn an_example_outside_the_transfer_set_is_an_error() {
        let soft = SoftTargets::new(&[0.0, 1.0], &[5], 2, 2.0);
        let z = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0], [1, 2]), &dev());
        assert!(soft.loss(z, &[6], &dev()).is_err());
    }

    #[test]
    fn the_temperature_is_range_checked() {
        assert!(DistillConfig { temperature: 4.0 }.validate().is_ok());
        for t in [0.5, 0.0, f64::NAN, 1000.0] {
            assert!(DistillConfig { temperature: t }.validate().is_err(), "{t}");
        }
    }

    #[test]
    fn the_student_drops_the_teachers_loss_and_mixup() {
        let config = TrainConfig {
            defense: DefenseConfig::Ppb { lambda: 4.0 },
            mixup: Some(crate::config::MixupConfig::Mixup { alpha: 1.0 }),
            distill: Some(DistillConfig { temperature: 4.0 }),
            ..TrainConfig::default()
        };
        let teacher = teacher_config(&config);
        assert_eq!((teacher.defense.name(), teacher.mixup.is_some()), ("ppb", true));
        assert!(teacher.distill.is_none());
        let student = student_config(&config);
        assert_eq!((student.defense.name(), student.mixup, student.distill), ("erm", None, None));
        assert_eq!(student.epochs, config.epochs);
    }
}
