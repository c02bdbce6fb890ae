//! The epoch loop ([`fit_with`]). Data order, augmentation and dropout are re-seeded from
//! `(seed, epoch)` at the start of every epoch, and a checkpoint (weights, optimiser state,
//! loop state) is written after every epoch, so a resumed run continues to the same weights
//! as one that was never stopped. A step takes the run's loss defense, and AdvReg's
//! adversary, the MMD term, a distilled student's soft targets, pruning masks or DP-SGD's
//! clipped and noised gradients when the recipe asks for them; the recipes that run the loop
//! in phases (distillation, SELENA, pruning) call it from above ([`crate::trainer`]).

use std::ops::ControlFlow;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use mia_core::Model;
use mia_core::layout::{Checkpoints, Generation};
use mia_core::rng::mix;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::advreg::{self, Adversary};
use crate::defense::TrainingDefense;
use crate::dp::{self, DpPlan};
use crate::job::{
    Job, backend_rng_seed, batch, evaluate, init_model, load_record, read_scalar, save_record,
};
use crate::mmd;
use crate::run::{read_json, write_atomic, write_json};
use crate::soft::SoftTargets;
use crate::{TrainConfig, TrainError};

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training objective (the defense's loss) over the epoch's batches.
    pub train_objective: f32,
    /// Accuracy on the members, evaluation mode, no augmentation.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_acc: f32,
    /// Mean cross-entropy on the members.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f32,
    /// Accuracy on the test set.
    #[serde(deserialize_with = "nan_if_null")]
    pub test_acc: f32,
    /// Mean cross-entropy on the test set.
    #[serde(deserialize_with = "nan_if_null")]
    pub test_loss: f32,
    /// Mean cross-entropy on the validation set, when there is one.
    pub val_loss: Option<f32>,
    /// Seconds spent in training steps this epoch.
    pub train_seconds: f64,
    /// Training throughput.
    pub images_per_s: f64,
    /// ε at δ spent so far (DP-SGD only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// Mean MMD² of the epoch's MMD term (mixup+MMD only; absent when the term was off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmd: Option<f64>,
}

/// JSON has no NaN: serde_json writes the metrics of an epoch that was not evaluated (shadow
/// models skip per-epoch evaluation) as `null`, so read `null` back as NaN or a resumed run
/// could not read its own checkpoint.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
}

/// Receives progress; the CLI draws a progress bar with it. Libraries never print.
pub trait Observer {
    /// Training starts (or resumes) at 0-based `first_epoch`.
    fn on_start(&mut self, _first_epoch: usize, _epochs: usize, _steps_per_epoch: usize) {}
    /// One optimisation step on `images` examples finished with objective `loss`.
    fn on_step(&mut self, _images: usize, _loss: f32) {}
    /// An epoch finished and its checkpoint is written; `Break` stops the run there.
    fn on_epoch(&mut self, _metrics: &EpochMetrics) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// A phase of a run with several models starts (`teacher`, `student` for distillation);
    /// the epochs that follow belong to it.
    fn on_phase(&mut self, _name: &str) {}
    /// Something the user should know that does not stop the run (e.g. an unreadable
    /// checkpoint was skipped for the previous one).
    fn on_warning(&mut self, _message: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LoopState {
    pub next_epoch: usize,
    pub best_val: Option<f32>,
    pub best_epoch: usize,
    pub bad_epochs: usize,
    pub stopped: bool,
    pub train_seconds: f64,
    pub images: u64,
    pub metrics: Vec<EpochMetrics>,
}

/// A fitted model (evaluation mode, the kept weights) and its loop state.
pub(crate) struct Fitted {
    pub model: Model,
    pub state: LoopState,
    pub kept_epoch: usize,
    /// DP-SGD as it ran (σ resolved from a target ε), when on.
    pub plan: Option<DpPlan>,
}

/// Checkpoint generations of the state after each epoch ([`Checkpoints`]): `eNNNN/` holding
/// `model.bpk`, `optim.bpk` and `state.json`, each written atomically and `state.json` last,
/// so a folder with `state.json` is complete. The newest two generations are kept: when the
/// newest turns out unreadable, `--resume` falls back to the one before and, training being
/// deterministic per epoch, reaches the same weights. (`best.bpk` for early stopping sits
/// beside them: a replayed epoch rewrites it with the same weights.)
fn save_checkpoint(
    checkpoints: &Checkpoints,
    (model, optim): (&Model, &ModuleOptimizer),
    adversary: Option<&Adversary>,
    state: &LoopState,
) -> Result<(), TrainError> {
    let generation = checkpoints.generation(state.next_epoch);
    std::fs::create_dir_all(&generation.dir).map_err(|e| TrainError::io(&generation.dir, e))?;
    save_record(model, &generation.weights())?;
    let optim_path = generation.optimizer();
    let bytes = optim.into_bytes().map_err(|e| TrainError::io(&optim_path, e))?;
    write_atomic(&optim_path, &bytes)?;
    if let Some(a) = adversary {
        a.save(&generation)?;
    }
    write_json(&generation.state(), state)?;
    for old in checkpoints.complete().into_iter().skip(2) {
        let removed = if checkpoints.is_flat(&old) {
            old.files().iter().try_for_each(std::fs::remove_file)
        } else {
            std::fs::remove_dir_all(&old.dir)
        };
        removed.map_err(|e| TrainError::io(&old.dir, e))?;
    }
    Ok(())
}

/// What a readable checkpoint restores.
struct Restored {
    state: LoopState,
    model: Model,
    optim: ModuleOptimizer,
    adversary: Option<Adversary>,
}

fn read_generation(
    generation: &Generation,
    (model, adversary): (&Model, Option<&Adversary>),
    config: &TrainConfig,
) -> Result<Restored, TrainError> {
    let state: LoopState = read_json(&generation.state())?;
    let model = load_record(model.clone(), &generation.weights())?;
    let optim_path = generation.optimizer();
    let bytes = std::fs::read(&optim_path).map_err(|e| TrainError::io(&optim_path, e))?;
    let optim = config
        .optimizer
        .build()
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| TrainError::io(&optim_path, e))?;
    let adversary = adversary.map(|a| a.load(generation)).transpose()?;
    Ok(Restored { state, model, optim, adversary })
}

/// The newest readable checkpoint (`None` when there is none). An unreadable one is
/// reported to the observer, naming the file, and the previous one is tried; when every
/// checkpoint is unreadable the error names the newest's problem.
fn restore_checkpoint(
    checkpoints: &Checkpoints,
    fresh: (&Model, Option<&Adversary>),
    config: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<Option<Restored>, TrainError> {
    let mut first_error = None;
    for generation in checkpoints.complete() {
        match read_generation(&generation, fresh, config) {
            Ok(restored) => return Ok(Some(restored)),
            Err(e) => {
                observer.on_warning(&format!(
                    "{e}; falling back to the previous checkpoint, if there is one"
                ));
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Ok(None),
        Some(e) => Err(TrainError::Resume {
            path: checkpoints.dir.clone(),
            reason: format!("no readable checkpoint ({e})"),
        }),
    }
}

/// The epoch loop; with `soft`, the loss is the distillation student's against those targets.
pub(crate) fn fit_with(
    job: &Job<'_>,
    base: &Device,
    resume: bool,
    observer: &mut dyn Observer,
    soft: Option<&SoftTargets>,
) -> Result<Fitted, TrainError> {
    let config = job.config;
    let device = base.clone().autodiff();
    let mut model = init_model(job.model_config, &device, job.seed)?;
    if let Some(weights) = job.init {
        model = load_record(model, weights)?;
    }
    if let Some(masks) = job.masks {
        model = masks.apply(model);
    }
    let mut optim: ModuleOptimizer = config.optimizer.build();
    let defense: Box<dyn TrainingDefense> = config.defense.build()?;
    let mut adversary =
        config.advreg.map(|a| Adversary::new(a, job.ds.num_classes(), &device, job.seed));
    let mut state = LoopState::default();
    let fresh = (&model, adversary.as_ref());
    if resume && let Some(restored) = restore_checkpoint(job.checkpoints, fresh, config, observer)?
    {
        (state, model, optim) = (restored.state, restored.model, restored.optim);
        adversary = restored.adversary;
    }
    let checkpoints = job.checkpoints;

    let plan = match &config.dp {
        None => None,
        Some(dp) => Some(dp.plan(job.train.len(), config.batch_size, config.epochs)?),
    };
    let steps = plan.map_or(job.train.len().div_ceil(config.batch_size), |p| p.steps);
    observer.on_start(state.next_epoch, config.epochs, steps);
    while state.next_epoch < config.epochs && !state.stopped {
        let epoch = state.next_epoch;
        let lr = config.schedule.lr(config.optimizer.lr, epoch, config.epochs);
        let started = Instant::now();
        let mut mmd = mmd::MmdTerm::for_epoch(job, &model, base, epoch)?;
        let gap_seconds = started.elapsed().as_secs_f64();
        let mut pass;
        let step = Step {
            optim: &mut optim,
            defense: defense.as_ref(),
            soft,
            adversary: adversary.as_mut(),
            mmd: mmd.as_mut(),
            device: &device,
        };
        (model, pass) = match &plan {
            None => train_epoch(job, model, step, (epoch, lr), observer)?,
            Some(p) => dp_epoch(job, model, step, (epoch, lr), observer, p)?,
        };
        pass.seconds += gap_seconds;
        state.train_seconds += pass.seconds;
        state.images += job.train.len() as u64;
        let mut metrics = epoch_metrics(job, &model, base, epoch, lr, &pass)?;
        metrics.epsilon = plan.map(|p| p.epsilon_after(epoch + 1)).transpose()?;
        metrics.mmd = mmd.as_ref().map(mmd::MmdTerm::mean);
        if let (Some(patience), Some(v)) = (config.early_stopping, metrics.val_loss) {
            if state.best_val.is_none_or(|b| v < b) {
                state.best_val = Some(v);
                state.best_epoch = epoch + 1;
                state.bad_epochs = 0;
                save_record(&model, &checkpoints.best())?;
            } else {
                state.bad_epochs += 1;
                state.stopped = state.bad_epochs >= patience;
            }
        }
        let (train_acc, test_acc, seconds) = (metrics.train_acc, metrics.test_acc, pass.seconds);
        tracing::info!(epoch = epoch + 1, train_acc, test_acc, seconds, "epoch done");
        state.metrics.push(metrics.clone());
        state.next_epoch = epoch + 1;
        save_checkpoint(checkpoints, (&model, &optim), adversary.as_ref(), &state)?;
        let lines: Vec<String> =
            state.metrics.iter().filter_map(|m| serde_json::to_string(m).ok()).collect();
        write_atomic(job.metrics, (lines.join("\n") + "\n").as_bytes())?;
        if observer.on_epoch(&metrics).is_break()
            && state.next_epoch < config.epochs
            && !state.stopped
        {
            return Err(TrainError::Interrupted { epoch: epoch + 1 });
        }
    }

    let mut kept_epoch = state.next_epoch;
    if config.early_stopping.is_some() && state.best_epoch > 0 {
        model = load_record(model, &checkpoints.best())?;
        kept_epoch = state.best_epoch;
    }
    Ok(Fitted { model: model.valid(), state, kept_epoch, plan })
}

/// One epoch's optimisation pass: the mean objective and the seconds it took.
struct EpochPass {
    objective: f64,
    seconds: f64,
}

/// What one optimisation step needs: the optimiser, the loss (the defense's, or a distilled
/// student's soft targets), AdvReg's adversary when it plays, the MMD term when it is on, and
/// the (autodiff) device.
struct Step<'a> {
    optim: &'a mut ModuleOptimizer,
    defense: &'a dyn TrainingDefense,
    soft: Option<&'a SoftTargets>,
    adversary: Option<&'a mut Adversary>,
    mmd: Option<&'a mut mmd::MmdTerm>,
    device: &'a Device,
}

/// One pass over the training examples in epoch `epoch`'s seeded order, in batches, at
/// learning rate `lr`.
fn train_epoch(
    job: &Job<'_>,
    mut model: Model,
    Step { optim, defense, soft, mut adversary, mut mmd, device }: Step<'_>,
    (epoch, lr): (usize, f64),
    observer: &mut dyn Observer,
) -> Result<(Model, EpochPass), TrainError> {
    let (config, ds) = (job.config, job.ds);
    backend_rng_seed(device, mix(job.seed, epoch as u64));
    let mut rng = ChaCha8Rng::seed_from_u64(mix(job.seed, epoch as u64));
    let mut order = job.train.to_vec();
    order.shuffle(&mut rng);
    let started = Instant::now();
    let mut objective = 0f64;
    adversary = adversary.filter(|a| a.plays(epoch));
    let mut adversary_rng = advreg::epoch_rng(job.seed, epoch);
    for chunk in order.chunks(config.batch_size) {
        if let Some(a) = adversary.as_deref_mut() {
            a.attack_steps(job, &model, &mut adversary_rng, device)?;
        }
        let (x, y) = batch(ds, chunk, config.augment.then_some(&mut rng), device)?;
        let clean = mmd.is_some().then(|| x.clone()); // [b, c, h, w]
        let loss = match (soft, &config.mixup, adversary.as_deref()) {
            (Some(s), ..) => s.loss(model.forward(x), chunk, device)?, // [1]
            (None, None, None) => defense.loss(model.forward(x), y, epoch), // [1]
            (None, None, Some(a)) => {
                let logits = model.forward(x); // [b, classes]
                defense.loss(logits.clone(), y.clone(), epoch) + a.penalty(logits, y) // [1]
            }
            (None, Some(m), _) => {
                let mix = m.draw(&mut rng, chunk.len(), (epoch, config.epochs));
                let logits = model.forward(mix.inputs(x)); // [b, classes]
                mix.loss(logits, y, |z, t| defense.loss(z, t, epoch)) // [1]
            }
        };
        let loss = match (mmd.as_deref_mut(), clean) {
            (Some(term), Some(x)) => loss + term.loss(job, &model, (chunk, x), device)?, // [1]
            _ => loss,
        };
        let value = read_scalar(loss.clone())?;
        if !value.is_finite() {
            return Err(TrainError::Diverged { epoch: epoch + 1, loss: value });
        }
        objective += f64::from(value) * chunk.len() as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
        if let Some(masks) = job.masks {
            model = masks.apply(model);
        }
        observer.on_step(chunk.len(), value);
    }
    let pass = EpochPass {
        objective: objective / order.len().max(1) as f64,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((model, pass))
}

/// One DP-SGD epoch ([`crate::dp`]): `plan.steps` Poisson batches, each example's gradient
/// clipped, the sum noised and divided by the expected batch size.
fn dp_epoch(
    job: &Job<'_>,
    mut model: Model,
    Step { optim, defense, device, .. }: Step<'_>,
    (epoch, lr): (usize, f64),
    observer: &mut dyn Observer,
    plan: &DpPlan,
) -> Result<(Model, EpochPass), TrainError> {
    let (config, ds) = (job.config, job.ds);
    backend_rng_seed(device, mix(job.seed, epoch as u64));
    let mut rng = ChaCha8Rng::seed_from_u64(mix(job.seed, epoch as u64));
    let started = Instant::now();
    let expected = plan.q * job.train.len() as f64;
    let (mut objective, mut seen) = (0f64, 0usize);
    for _ in 0..plan.steps {
        let rows = dp::poisson(job.train, plan.q, &mut rng);
        let mut examples = Vec::with_capacity(rows.len());
        for &i in &rows {
            examples.push(batch(ds, &[i], config.augment.then_some(&mut rng), device)?);
        }
        let (each, total) = dp::per_example(&model, defense, examples, epoch)?;
        if !total.is_finite() {
            return Err(TrainError::Diverged { epoch: epoch + 1, loss: total as f32 });
        }
        let sum = dp::clipped_sum(each, plan.clip)?;
        let grads = dp::noisy_step(&model, sum, plan, expected, &mut rng);
        model = optim.step(lr, model, grads);
        objective += total;
        seen += rows.len();
        observer.on_step(rows.len(), (total / rows.len().max(1) as f64) as f32);
    }
    let pass = EpochPass {
        objective: objective / seen.max(1) as f64,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((model, pass))
}

/// The epoch's metrics: accuracy and loss on the members and the test set (when the job
/// evaluates every epoch) and the validation loss (when there is a validation set).
fn epoch_metrics(
    job: &Job<'_>,
    model: &Model,
    base: &Device,
    epoch: usize,
    lr: f64,
    pass: &EpochPass,
) -> Result<EpochMetrics, TrainError> {
    let (ds, eval) = (job.ds, model.valid());
    let ((train_acc, train_loss), (test_acc, test_loss)) = if job.eval_each_epoch {
        (evaluate(&eval, ds, job.scored, base)?, evaluate(&eval, ds, job.test, base)?)
    } else {
        ((f32::NAN, f32::NAN), (f32::NAN, f32::NAN))
    };
    // The validation loss is for early stopping and, on evaluated runs, the metrics; a shadow
    // whose validation set is MMD's reference set or AdvReg's skips it.
    let wanted = job.eval_each_epoch || job.config.early_stopping.is_some();
    let val_loss = if job.validation.is_empty() || !wanted {
        None
    } else {
        Some(evaluate(&eval, ds, job.validation, base)?.1)
    };
    Ok(EpochMetrics {
        epoch: epoch + 1,
        lr,
        train_objective: pass.objective as f32,
        train_acc,
        train_loss,
        test_acc,
        test_loss,
        val_loss,
        train_seconds: pass.seconds,
        images_per_s: job.train.len() as f64 / pass.seconds.max(1e-9),
        epsilon: None,
        mmd: None,
    })
}
