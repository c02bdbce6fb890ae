//! Per-model signals that some inference-time defenses need besides the cached logits,
//! computed once for the target and every finished shadow of a shadow folder and cached next
//! to their logits (see [`mia_core::layout::DefenseSignalFiles`] for the file names):
//!
//! - logits on [`RANDOM_INPUTS`] uniform-noise images (HAMP's output modification draws the
//!   released confidence values from these);
//! - ‖∇ₓ CE(f(x), ŷ)‖ for every query of every candidate and population row (HyGA-ANI),
//!   through burn's autodiff with the model frozen;
//! - SAMIA's sensitivity of every class posterior on every candidate's identity query, for the
//!   target and the first shadows (SAMIA trains on as many as its row budget needs)
//!   ([`mia_core::posterior::sensitivity`] over [`SENSITIVITY_DRAWS`] Gaussian perturbations
//!   of step [`SENSITIVITY_EPSILON`] in the normalised input space, seeded by model).

use std::path::Path;

use burn::prelude::*;
use mia_core::ModelConfig;
use mia_core::inference::{RANDOM_INPUTS, hyga};
use mia_core::layout::{DefenseSignalFiles, RunLayout, ShadowLayout};
use mia_core::models::Model;
use mia_core::npy::NpyArray;
use mia_core::posterior::{SENSITIVITY_DRAWS, SENSITIVITY_EPSILON, sensitivity};
use mia_core::rng::mix;
use mia_data::{Dataset, Split};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::job::{batch, for_each_query_batch, read_f32};
use crate::run::{read_json, write_npy};
use crate::shadows::PoolSpec;
use crate::{DeviceChoice, TrainConfig, TrainError};

/// Which signals to make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalRequest {
    /// Logits on random inputs.
    pub random_logits: bool,
    /// Input-gradient norms.
    pub gradient_norms: bool,
    /// SAMIA's posterior sensitivity on the candidates: of the target and of the first this
    /// many finished shadows (0: none).
    pub sensitivity_shadows: usize,
}

/// Computes the missing signals of the target of `run` and of every finished shadow in
/// `dir`; `progress(done, total)` after each model. Returns the finished shadow indices.
pub fn defense_signals(
    run: &Path,
    dir: &Path,
    request: SignalRequest,
    device: Option<DeviceChoice>,
    data_dir: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<usize>, TrainError> {
    let pool = ShadowLayout::new(dir);
    let shadows = pool.finished();
    if request == SignalRequest::default() {
        return Ok(shadows);
    }
    let paths = RunLayout::new(run);
    let mut config: TrainConfig = read_json(&paths.config())?;
    if let Some(d) = data_dir {
        config.data_dir = d.to_path_buf();
    }
    let model_config: ModelConfig = read_json(&paths.model_config())?;
    let spec: PoolSpec = read_json(&pool.spec())?;
    let split = Split::load(&paths.split())?;
    let device = device.unwrap_or(config.device).device()?;
    // (weights, signal files, the model's seed key: u64::MAX for the target, else the shadow index)
    let models: Vec<(std::path::PathBuf, DefenseSignalFiles, u64)> =
        std::iter::once((paths.weights(), pool.target_defense_signals(), u64::MAX))
            .chain(shadows.iter().map(|&i| {
                let s = pool.shadow(i);
                (s.weights(), s.defense_signals(), i as u64)
            }))
            .collect();
    // Model m (0: the target, then the finished shadows in order) needs SAMIA's sensitivity.
    let sensitive = |m: usize| request.sensitivity_shadows > 0 && m <= request.sensitivity_shadows;
    let todo = |m: usize, files: &DefenseSignalFiles| {
        (request.random_logits && !files.random_logits.exists())
            || (request.gradient_norms && !files.gradient_norms.exists())
            || (sensitive(m) && !files.sensitivity.exists())
    };
    if !models.iter().enumerate().any(|(m, (_, f, _))| todo(m, f)) {
        return Ok(shadows);
    }
    let ds = config.dataset.load(&config.data_dir, &config.load)?;
    if split.pool_size != ds.len() {
        return Err(TrainError::Resume {
            path: run.into(),
            reason: "the dataset differs from the one the target was trained on".into(),
        });
    }
    let queried: Vec<usize> =
        split.members.iter().chain(&split.non_members).chain(&spec.population).copied().collect();
    let candidates = split.members.len() + split.non_members.len();
    for (m, (weights, files, key)) in models.iter().enumerate() {
        progress(m, models.len());
        if !todo(m, files) {
            continue;
        }
        let bytes = std::fs::read(weights)
            .map_err(|e| TrainError::Io { path: weights.clone(), reason: e.to_string() })?;
        let model = model_config.load_bytes(bytes, &device)?;
        let random_path = &files.random_logits;
        if request.random_logits && !random_path.exists() {
            let input = ds.input;
            let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed ^ 0x4A3B, m as u64));
            let pixels: Vec<u8> =
                (0..RANDOM_INPUTS * input.numel()).map(|_| rng.random::<u8>()).collect();
            let mut values = Vec::with_capacity(pixels.len());
            for px in pixels.chunks(input.numel()) {
                ds.normalization.push_u8(px, input, &mut values);
            }
            let x = mia_core::preprocess::batch_tensor(values, RANDOM_INPUTS, input, &device)?;
            let logits = read_f32(model.valid().forward(x))?;
            let shape = vec![RANDOM_INPUTS, ds.num_classes()];
            write_npy(random_path, &NpyArray::f32(shape, logits)?)?;
        }
        let grad_path = &files.gradient_norms;
        if request.gradient_norms && !grad_path.exists() {
            let frozen = hyga::for_gradients(model.clone(), &device);
            let mut norms = Vec::with_capacity(spec.queries.len() * queried.len());
            for_each_query_batch(&ds, &queried, &spec.queries, &device, |x| {
                let g = hyga::input_gradient_norms(&frozen, x);
                let data = g.try_into_data().map_err(|e| TrainError::Backend(format!("{e:?}")))?;
                norms.extend(
                    data.try_to_vec::<f32>().map_err(|e| TrainError::Backend(format!("{e:?}")))?,
                );
                Ok(())
            })?;
            let shape = vec![spec.queries.len(), queried.len()];
            write_npy(grad_path, &NpyArray::f32(shape, norms)?)?;
        }
        if sensitive(m) && !files.sensitivity.exists() {
            let seed = mix(config.seed ^ 0x5A31A, *key);
            let values = model_sensitivity(&model, &ds, &queried[..candidates], seed, &device)?;
            let shape = vec![candidates, ds.num_classes()];
            write_npy(&files.sensitivity, &NpyArray::f32(shape, values)?)?;
        }
    }
    progress(models.len(), models.len());
    Ok(shadows)
}

/// SAMIA's sensitivity of `model` on the identity query of `rows`, `[rows × C]`: each row's
/// input and its [`SENSITIVITY_DRAWS`] perturbed copies go through the model in one batch.
fn model_sensitivity(
    model: &Model,
    ds: &Dataset,
    rows: &[usize],
    seed: u64,
    device: &Device,
) -> Result<Vec<f32>, TrainError> {
    let (m, c) = (SENSITIVITY_DRAWS, ds.num_classes());
    let model = model.valid();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(rows.len() * c);
    for chunk in rows.chunks(32) {
        let b = chunk.len();
        let x = batch(ds, chunk, None, device)?.0; // [b, ch, h, w]
        let dims = x.dims();
        let numel = dims[1] * dims[2] * dims[3];
        let noise: Vec<f32> = (0..m * b * numel).map(|_| mia_core::rng::normal(&mut rng)).collect();
        let noise = Tensor::<4>::from_data(
            TensorData::new(noise, [m * b, dims[1], dims[2], dims[3]]),
            device,
        );
        let perturbed = x.clone().repeat_dim(0, m) + noise.mul_scalar(SENSITIVITY_EPSILON);
        // Rows: the b originals, then copy j of row r at b + j·b + r.
        let logits = read_f32(model.forward(Tensor::cat(vec![x, perturbed], 0)))?;
        let mut copies = Vec::with_capacity(m * c);
        for r in 0..b {
            copies.clear();
            for j in 0..m {
                let at = (b + j * b + r) * c;
                copies.extend_from_slice(&logits[at..at + c]);
            }
            let base = &logits[r * c..(r + 1) * c];
            let s =
                sensitivity(base, &copies, f64::from(SENSITIVITY_EPSILON)).ok_or_else(|| {
                    TrainError::Backend("sensitivity of a malformed logit row".into())
                })?;
            out.extend(s);
        }
    }
    Ok(out)
}
