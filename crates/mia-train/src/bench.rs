//! Training throughput for `mia bench`: one epoch of the real training loop (the same `fit` the
//! trainer and the shadows use) on synthetic data of a dataset's shape, and several
//! shadow-sized models trained one after another or side by side on threads.

use std::path::Path;
use std::time::Instant;

use mia_core::layout::Checkpoints;
use mia_core::{InputSpec, ModelConfig, Normalization};
use mia_data::{Dataset, Samples};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::epochs::Silent;
use crate::job::{Job, batch, init_model, read_scalar};
use crate::trainer::fit;
use crate::{TrainConfig, TrainError};

/// What one timed training run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Images in the timed epoch.
    pub images: usize,
    /// Seconds spent in training steps (forward, backward, optimiser), without checkpoints.
    pub seconds: f64,
}

impl Throughput {
    /// Images per second.
    pub fn images_per_s(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }
}

/// A synthetic labelled dataset: `n` random `u8` images of shape `input` in `classes` classes.
pub fn synthetic_dataset(input: InputSpec, classes: usize, n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pixels: Vec<u8> = (0..n * input.numel()).map(|_| rng.random()).collect();
    let labels = (0..n).map(|_| rng.random_range(0..classes as u32)).collect();
    Dataset {
        name: "synthetic".into(),
        input,
        class_names: (0..classes).map(|c| format!("class {c}")).collect(),
        samples: Samples::U8(pixels),
        labels,
        normalization: Normalization {
            mean: vec![0.5; input.channels],
            std: vec![0.25; input.channels],
        },
    }
}

/// Trains one model of `config` for one epoch over every example of `ds` and times the
/// training steps. A warm-up epoch over two batches runs first (kernel autotuning, buffer
/// pools), on a fresh model. `scratch` holds the checkpoints and is left in place.
pub fn epoch_throughput(
    config: &TrainConfig,
    ds: &Dataset,
    scratch: &Path,
    seed: u64,
) -> Result<Throughput, TrainError> {
    let base = config.device.device()?;
    let model_config =
        ModelConfig::new(config.model, ds.input, ds.num_classes()).with_dropout(config.dropout);
    let all: Vec<usize> = (0..ds.len()).collect();
    let one_epoch = TrainConfig { epochs: 1, ..config.clone() };
    let warm = &all[..all.len().min(2 * config.batch_size)];
    run_epoch(&one_epoch, &model_config, ds, warm, &scratch.join("warm-up"), seed, &base)?;
    let started = Instant::now();
    let seconds =
        run_epoch(&one_epoch, &model_config, ds, &all, &scratch.join("timed"), seed, &base)?;
    tracing::debug!(wall = started.elapsed().as_secs_f64(), seconds, "timed epoch");
    Ok(Throughput { images: all.len(), seconds })
}

fn run_epoch(
    config: &TrainConfig,
    model_config: &ModelConfig,
    ds: &Dataset,
    train: &[usize],
    dir: &Path,
    seed: u64,
    base: &burn::prelude::Device,
) -> Result<f64, TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let metrics = dir.join("metrics.jsonl");
    let checkpoints = Checkpoints { dir: dir.to_path_buf() };
    let job = Job {
        config,
        model_config,
        ds,
        train,
        scored: train,
        validation: &[],
        test: &[],
        checkpoints: &checkpoints,
        metrics: &metrics,
        seed,
        init: None,
        masks: None,
        eval_each_epoch: false,
    };
    Ok(fit(&job, base, false, &mut Silent)?.state.train_seconds)
}

/// Milliseconds per training step spent in each phase of the real step (`train_epoch`'s),
/// summed over the timed steps and divided by their number.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepPhases {
    /// Building the normalised input and label tensors from the dataset.
    pub batch_ms: f64,
    /// The forward pass and the loss, including reading the loss back.
    pub forward_ms: f64,
    /// `loss.backward()` and collecting the parameters' gradients.
    pub backward_ms: f64,
    /// The optimiser's update.
    pub optimizer_ms: f64,
    /// Steps timed.
    pub steps: usize,
}

impl StepPhases {
    /// The whole step.
    pub fn total_ms(&self) -> f64 {
        self.batch_ms + self.forward_ms + self.backward_ms + self.optimizer_ms
    }
}

/// Times each phase of `steps` training steps of `config`'s model on batches of `ds` (after
/// two untimed warm-up steps). The backend runs every operation eagerly on the CPU, so the
/// time of a phase is the time of its operations; on a GPU backend work may be queued and
/// surface in a later phase, so these numbers are for CPU backends.
pub fn step_phases(
    config: &TrainConfig,
    ds: &Dataset,
    steps: usize,
) -> Result<StepPhases, TrainError> {
    use burn::optim::GradientsParams;

    let device = config.device.device()?.autodiff();
    let model_config =
        ModelConfig::new(config.model, ds.input, ds.num_classes()).with_dropout(config.dropout);
    let mut model = init_model(&model_config, &device, config.seed)?;
    let mut optim = config.optimizer.build();
    let defense = config.defense.build()?;
    let b = config.batch_size.clamp(1, ds.len().max(1));
    let lr = config.optimizer.lr;
    let mut phases = StepPhases::default();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    for step in 0..steps + 2 {
        let start = step * b % ds.len().max(1);
        let indices: Vec<usize> = (start..start + b).map(|i| i % ds.len()).collect();
        let t = Instant::now();
        let (x, y) = batch(ds, &indices, None, &device)?;
        let batch_ms = ms(t);
        let t = Instant::now();
        let loss = defense.loss(model.forward(x), y, 0); // [1]
        read_scalar(loss.clone())?;
        let forward_ms = ms(t);
        let t = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let backward_ms = ms(t);
        let t = Instant::now();
        model = optim.step(lr, model, grads);
        let optimizer_ms = ms(t);
        if step >= 2 {
            phases.batch_ms += batch_ms;
            phases.forward_ms += forward_ms;
            phases.backward_ms += backward_ms;
            phases.optimizer_ms += optimizer_ms;
            phases.steps += 1;
        }
    }
    let n = phases.steps.max(1) as f64;
    phases.batch_ms /= n;
    phases.forward_ms /= n;
    phases.backward_ms /= n;
    phases.optimizer_ms /= n;
    Ok(phases)
}

/// How `models` shadow-sized models were trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One after another on the calling thread.
    Sequential,
    /// All at once, one thread each, sharing the device.
    Threads,
}

/// Trains `models` models of `config` (all its epochs, on every example of `ds`) with
/// `strategy` and returns the wall time in seconds for all of them.
pub fn shadow_wall_time(
    config: &TrainConfig,
    ds: &Dataset,
    models: usize,
    strategy: Strategy,
    scratch: &Path,
) -> Result<f64, TrainError> {
    let base = config.device.device()?;
    let model_config =
        ModelConfig::new(config.model, ds.input, ds.num_classes()).with_dropout(config.dropout);
    let all: Vec<usize> = (0..ds.len()).collect();
    let one = |m: usize| {
        run_epoch(
            config,
            &model_config,
            ds,
            &all,
            &scratch.join(format!("{m:03}")),
            m as u64,
            &base,
        )
    };
    let started = Instant::now();
    match strategy {
        Strategy::Sequential => (0..models).try_for_each(|m| one(m).map(|_| ()))?,
        Strategy::Threads => std::thread::scope(|s| {
            let handles: Vec<_> = (0..models)
                .map(|m| s.spawn(move || crate::shadows::on_one_core(|| one(m))))
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| TrainError::Backend("a training thread panicked".into()))?
                    .map(|_| ())
            })
        })?,
    }
    Ok(started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_on_synthetic_data_trains_every_image() {
        let ds = synthetic_dataset(InputSpec::new(3, 8, 8), 4, 24, 1);
        assert_eq!((ds.len(), ds.pixels(23).map(<[u8]>::len)), (24, Some(192)));
        let dir = std::env::temp_dir().join(format!("mia-bench-test-{}", std::process::id()));
        let config = TrainConfig { batch_size: 8, ..TrainConfig::default() };
        let t = epoch_throughput(&config, &ds, &dir, 0).unwrap();
        assert_eq!(t.images, 24);
        assert!(t.seconds > 0.0 && t.images_per_s().is_finite());
        let seq = shadow_wall_time(&config, &ds, 2, Strategy::Sequential, &dir.join("s")).unwrap();
        let par = shadow_wall_time(&config, &ds, 2, Strategy::Threads, &dir.join("t")).unwrap();
        assert!(seq > 0.0 && par > 0.0);
        let last = format!("t/001/e{:04}/state.json", config.epochs);
        assert!(dir.join(last).exists(), "the last epoch is checkpointed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_phase_of_a_step_is_timed() {
        let ds = synthetic_dataset(InputSpec::new(3, 8, 8), 4, 24, 1);
        let config = TrainConfig { batch_size: 8, ..TrainConfig::default() };
        let p = step_phases(&config, &ds, 3).unwrap();
        assert_eq!(p.steps, 3);
        for (name, v) in [("forward", p.forward_ms), ("backward", p.backward_ms)] {
            assert!(v > 0.0 && v.is_finite(), "{name}: {v}");
        }
        assert!(p.optimizer_ms >= 0.0 && p.batch_ms >= 0.0);
        assert!(
            (p.total_ms() - (p.batch_ms + p.forward_ms + p.backward_ms + p.optimizer_ms)).abs()
                < 1e-9
        );
    }
}
