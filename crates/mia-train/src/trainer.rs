//! The training loop. Data order, augmentation and dropout are re-seeded from `(seed, epoch)`
//! at the start of every epoch, and a checkpoint (weights, optimiser state, loop state) is
//! written after every epoch, so a resumed run continues to the same weights as one that was
//! never stopped.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use mia_core::layout::{Checkpoints, Generation, RunLayout, Signals};
use mia_core::npy::NpyArray;
use mia_core::rng::mix;
use mia_core::{Model, ModelConfig, Query, posterior};
use mia_data::{Dataset, Samples, Split};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::advreg::{self, Adversary};
use crate::defense::TrainingDefense;
use crate::distill::SoftTargets;
use crate::dp::{self, DpPlan};
use crate::mmd;
use crate::prune::Masks;
use crate::run::{read_json, write_atomic, write_json, write_npy};
use crate::{TrainConfig, TrainError, augment};

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

/// Builds a normalised input tensor and label tensor for `indices`.
pub(crate) fn batch(
    ds: &Dataset,
    indices: &[usize],
    augment_rng: Option<&mut ChaCha8Rng>,
    device: &Device,
) -> Result<(Tensor<4>, Tensor<1, Int>), TrainError> {
    let mut values = Vec::with_capacity(indices.len() * ds.input.numel());
    match (augment_rng, &ds.samples) {
        (Some(rng), Samples::U8(_)) => {
            let mut buf = Vec::with_capacity(ds.input.numel());
            for &i in indices {
                buf.clear();
                let px =
                    ds.pixels(i).ok_or_else(|| TrainError::Backend(format!("no example {i}")))?;
                augment::crop_flip(px, ds.input, 4, rng, &mut buf);
                ds.normalization.push_u8(&buf, ds.input, &mut values);
            }
        }
        _ => indices.iter().for_each(|&i| ds.push_normalized(i, &mut values)),
    }
    let x = mia_core::preprocess::batch_tensor(values, indices.len(), ds.input, device)?;
    let labels: Vec<i64> = indices.iter().map(|&i| i64::from(ds.labels[i])).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [indices.len()]), device);
    Ok((x, y))
}

/// The value of a `[1]` tensor (NaN when it is empty).
pub(crate) fn read_scalar(t: Tensor<1>) -> Result<f32, TrainError> {
    let v = t.try_into_data().map_err(|e| TrainError::Backend(format!("{e:?}")))?;
    let v = v.try_to_vec::<f32>().map_err(|e| TrainError::Backend(format!("{e:?}")))?;
    Ok(v.first().copied().unwrap_or(f32::NAN))
}

pub(crate) fn read_f32(t: Tensor<2>) -> Result<Vec<f32>, TrainError> {
    t.try_into_data()
        .map_err(|e| TrainError::Backend(format!("{e:?}")))?
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Backend(format!("{e:?}")))
}

/// Logits of `model` (evaluation mode) on `indices`, row-major `[n, classes]`.
pub fn predict(
    model: &Model,
    ds: &Dataset,
    indices: &[usize],
    device: &Device,
) -> Result<Vec<f32>, TrainError> {
    let mut out = Vec::with_capacity(indices.len() * ds.num_classes());
    for chunk in indices.chunks(256) {
        let (x, _) = batch(ds, chunk, None, device)?;
        out.extend(read_f32(model.forward(x))?);
    }
    Ok(out)
}

/// Logits of `model` on every query in `queries` of each example in `indices`, row-major
/// `[queries, n, classes]`. Queries other than the identity need image data.
pub fn predict_queries(
    model: &Model,
    ds: &Dataset,
    indices: &[usize],
    queries: &[Query],
    device: &Device,
) -> Result<Vec<f32>, TrainError> {
    let mut out = Vec::with_capacity(queries.len() * indices.len() * ds.num_classes());
    for_each_query_batch(ds, indices, queries, device, |x| {
        out.extend(read_f32(model.forward(x))?);
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with normalised input batches (at most 256 examples) covering every query of
/// `queries` (outer) and example of `indices` (inner), in that order.
pub fn for_each_query_batch(
    ds: &Dataset,
    indices: &[usize],
    queries: &[Query],
    device: &Device,
    mut f: impl FnMut(Tensor<4>) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let mut buf = Vec::with_capacity(ds.input.numel());
    for q in queries {
        for chunk in indices.chunks(256) {
            if *q == Query::IDENTITY {
                f(batch(ds, chunk, None, device)?.0)?;
                continue;
            }
            let mut values = Vec::with_capacity(chunk.len() * ds.input.numel());
            for &i in chunk {
                let px = ds.pixels(i).ok_or_else(|| {
                    TrainError::Config("augmented queries need image data (use --queries 1)".into())
                })?;
                buf.clear();
                q.apply(px, ds.input, &mut buf);
                ds.normalization.push_u8(&buf, ds.input, &mut values);
            }
            f(mia_core::preprocess::batch_tensor(values, chunk.len(), ds.input, device)?)?;
        }
    }
    Ok(())
}

/// (accuracy, mean cross-entropy) of logits against the labels of `indices`.
pub fn accuracy_and_loss(logits: &[f32], ds: &Dataset, indices: &[usize]) -> (f32, f32) {
    let c = ds.num_classes();
    let (mut correct, mut loss) = (0usize, 0f64);
    for (row, &i) in logits.chunks(c).zip(indices) {
        let y = ds.labels[i] as usize;
        correct += usize::from(posterior::argmax(row) == y);
        loss += f64::from(posterior::cross_entropy(row, y));
    }
    let n = indices.len().max(1) as f32;
    (correct as f32 / n, (loss / n as f64) as f32)
}

fn evaluate(
    model: &Model,
    ds: &Dataset,
    idx: &[usize],
    device: &Device,
) -> Result<(f32, f32), TrainError> {
    Ok(accuracy_and_loss(&predict(model, ds, idx, device)?, ds, idx))
}

pub(crate) fn save_record<M: Module>(model: &M, path: &Path) -> Result<(), TrainError> {
    let bytes = model.clone().into_record().into_bytes().map_err(|e| TrainError::io(path, e))?;
    write_atomic(path, &bytes)
}

pub(crate) fn load_record<M: Module>(model: M, path: &Path) -> Result<M, TrainError> {
    let record = ModuleRecord::load(path).map_err(|e| TrainError::io(path, e))?;
    model.try_load_record(record).map_err(|e| TrainError::io(path, e))
}

fn create_dirs(paths: &RunLayout) -> Result<(), TrainError> {
    for dir in [paths.checkpoint().dir, paths.signals().dir] {
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    Ok(())
}

/// One model to fit: the epoch loop shared by the target and the shadow models.
pub(crate) struct Job<'a> {
    /// Recipe (optimiser, schedule, defense, epochs, batch size, augmentation).
    pub config: &'a TrainConfig,
    /// Architecture and shapes.
    pub model_config: &'a ModelConfig,
    /// The data.
    pub ds: &'a Dataset,
    /// Training examples.
    pub train: &'a [usize],
    /// The examples whose accuracy and loss are `train_acc`/`train_loss`: the training
    /// examples, or a distilled student's teacher's (the run's members).
    pub scored: &'a [usize],
    /// Early-stopping examples (may be empty).
    pub validation: &'a [usize],
    /// Utility examples.
    pub test: &'a [usize],
    /// Checkpoint folder: generations `eNNNN/` (weights, optimiser, state) and `best.bpk`.
    pub checkpoints: &'a Checkpoints,
    /// Where `metrics.jsonl` goes.
    pub metrics: &'a Path,
    /// Seed of initialisation, order, augmentation and dropout.
    pub seed: u64,
    /// Weights to start from instead of a fresh initialisation (a pruned run's dense model).
    pub init: Option<&'a Path>,
    /// Pruning masks, applied to the starting weights and after every optimiser step.
    pub masks: Option<&'a Masks>,
    /// Evaluate members and test set after every epoch (otherwise their metrics are NaN and
    /// only the validation loss is computed, when early stopping needs it).
    pub eval_each_epoch: bool,
}

/// A phase of a run with several models (a distilled run's teacher, SELENA's sub-models, a
/// pruned run's dense model): its checkpoint folder, created, and its `metrics.jsonl`.
pub(crate) fn phase_folder(checkpoints: Checkpoints) -> Result<(Checkpoints, PathBuf), TrainError> {
    std::fs::create_dir_all(&checkpoints.dir).map_err(|e| TrainError::io(&checkpoints.dir, e))?;
    let metrics = checkpoints.metrics();
    Ok((checkpoints, metrics))
}

/// A fitted model (evaluation mode, the kept weights) and its loop state.
pub(crate) struct Fitted {
    pub model: Model,
    pub state: LoopState,
    pub kept_epoch: usize,
    /// DP-SGD as it ran (σ resolved from a target ε), when on.
    pub plan: Option<DpPlan>,
}

fn backend_rng() -> std::sync::MutexGuard<'static, ()> {
    mia_core::rng::backend_lock()
}

fn backend_rng_seed(device: &Device, seed: u64) {
    let _rng = backend_rng();
    device.seed(seed);
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

/// A freshly initialised model of `model_config` on `device`, its parameters drawn from `seed`
/// under the backend-RNG lock (the same seed gives the same weights, also with threads).
pub(crate) fn init_model(
    model_config: &ModelConfig,
    device: &Device,
    seed: u64,
) -> Result<Model, TrainError> {
    let _rng = backend_rng();
    device.seed(seed);
    let model = model_config.init(device)?;
    // burn initialises parameters lazily, on first use: draw them now, under the lock.
    model.visit(&mut mia_core::rng::Materialize);
    Ok(model)
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
