//! Per-model signals that some inference-time defenses need besides the cached logits,
//! computed once for the target and every finished shadow of a shadow folder and cached next
//! to their logits (see [`mia_core::layout::DefenseSignalFiles`] for the file names):
//!
//! - logits on [`RANDOM_INPUTS`] uniform-noise images (HAMP's output modification draws the
//!   released confidence values from these);
//! - ‖∇ₓ CE(f(x), ŷ)‖ for every query of every candidate and population row (HyGA-ANI),
//!   through burn's autodiff with the model frozen.

use std::path::Path;

use burn::prelude::*;
use mia_core::ModelConfig;
use mia_core::inference::{RANDOM_INPUTS, hyga};
use mia_core::layout::{DefenseSignalFiles, RunLayout, ShadowLayout};
use mia_core::npy::NpyArray;
use mia_core::rng::mix;
use mia_data::Split;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::run::{read_json, write_npy};
use crate::shadows::PoolSpec;
use crate::trainer::{for_each_query_batch, read_f32};
use crate::{DeviceChoice, TrainConfig, TrainError};

/// Which signals to make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalRequest {
    /// Logits on random inputs.
    pub random_logits: bool,
    /// Input-gradient norms.
    pub gradient_norms: bool,
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
    let models: Vec<(std::path::PathBuf, DefenseSignalFiles)> =
        std::iter::once((paths.weights(), pool.target_defense_signals()))
            .chain(shadows.iter().map(|&i| {
                let s = pool.shadow(i);
                (s.weights(), s.defense_signals())
            }))
            .collect();
    let todo = |files: &DefenseSignalFiles| {
        (request.random_logits && !files.random_logits.exists())
            || (request.gradient_norms && !files.gradient_norms.exists())
    };
    if !models.iter().any(|(_, f)| todo(f)) {
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
    for (m, (weights, files)) in models.iter().enumerate() {
        progress(m, models.len());
        if !todo(files) {
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
            let frozen = hyga::for_gradients(model, &device);
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
    }
    progress(models.len(), models.len());
    Ok(shadows)
}
