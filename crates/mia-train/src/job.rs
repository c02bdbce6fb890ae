//! One model to fit ([`Job`]) and what every training recipe shares: input batches,
//! predictions, accuracy and loss, weight records, seeded initialisation. Below the epoch
//! loop ([`crate::epochs`]) and the recipes that change a step (AdvReg, DP-SGD, MMD) or run
//! the loop in phases (distillation, SELENA, pruning); it imports none of them.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use mia_core::layout::Checkpoints;
use mia_core::{Model, ModelConfig, Query, posterior};
use mia_data::{Dataset, Samples};
use rand_chacha::ChaCha8Rng;

use crate::masks::Masks;
use crate::run::write_atomic;
use crate::{TrainConfig, TrainError, augment};

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

pub(crate) fn evaluate(
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

pub(crate) fn backend_rng() -> std::sync::MutexGuard<'static, ()> {
    mia_core::rng::backend_lock()
}

pub(crate) fn backend_rng_seed(device: &Device, seed: u64) {
    let _rng = backend_rng();
    device.seed(seed);
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
