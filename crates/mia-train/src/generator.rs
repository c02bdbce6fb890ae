//! A small class-conditional GAN that MIA Lab trains itself, for SynthShield's synthetic
//! fine-tuning images ([`crate::prune`], `--synthetic-dir`).
//!
//! Why this generator: it must train with burn on 2 CPU cores in well under an hour and
//! condition on the class. A conditional DCGAN (Radford et al. 2016; Mirza & Osindero 2014)
//! is the smallest model family that does both: the generator maps a 64-d Gaussian latent
//! and a one-hot label through a linear layer to 128 maps at a quarter of the image side, then
//! two stride-2 transposed convolutions (64 maps, then the image's channels, `tanh`); the
//! discriminator reads the image with the label as constant one-hot planes through two
//! stride-2 convolutions (64, 128 maps, leaky ReLU 0.2) and a linear layer to one logit. Loss:
//! the non-saturating GAN loss from logits (softplus), Adam at 2·10⁻⁴ with β₁ = 0.5 (DCGAN's
//! settings). No batch normalisation, so sampling needs no running statistics. A diffusion
//! model would draw better images but costs hours on a CPU; these images are recognisable
//! at best, which is the point of measuring what fine-tuning on them buys.
//!
//! The images it trains on must be disjoint from the target's members: `mia generate` takes
//! them from the run's shadow pool (public data the attacker also has) or its validation part.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{LeakyRelu, LeakyReluConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::{softplus, tanh};
use mia_core::InputSpec;
use mia_core::defense::one_hot;
use mia_core::rng::mix;
use mia_data::{Dataset, Samples};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::job::{load_record, read_f32, read_scalar, save_record};
use crate::run::{read_json, write_atomic, write_json};

/// Latent dimension.
pub const LATENT: usize = 64;

/// The generator's training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Passes over the training images (1 to 500).
    pub epochs: usize,
    /// Mini-batch size (8 to 1024).
    pub batch_size: usize,
    /// Adam learning rate of both networks (0 < lr ≤ 0.01).
    pub lr: f64,
    /// Seed of initialisation, order and latents.
    pub seed: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self { epochs: 20, batch_size: 64, lr: 2e-4, seed: 0 }
    }
}

impl GeneratorConfig {
    /// Range checks.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if !(1..=500).contains(&self.epochs) {
            return bad(format!("the generator trains 1 to 500 epochs, got {}", self.epochs));
        }
        if !(8..=1024).contains(&self.batch_size) {
            return bad(format!(
                "the generator's batch size must lie in [8, 1024], got {}",
                self.batch_size
            ));
        }
        if !(self.lr > 0.0 && self.lr <= 0.01) {
            return bad(format!(
                "the generator's learning rate must lie in (0, 0.01], got {}",
                self.lr
            ));
        }
        Ok(())
    }
}

/// Image side the two stride-2 layers need: a multiple of 4 from 8 to 64, square.
fn check_input(input: InputSpec) -> Result<(), TrainError> {
    let side = input.height;
    if input.width != side || !side.is_multiple_of(4) || !(8..=64).contains(&side) {
        return Err(TrainError::Config(format!(
            "the generator draws square images with a side that is a multiple of 4 in [8, 64]; \
             this dataset's are {}×{}",
            input.height, input.width
        )));
    }
    Ok(())
}

/// The conditional generator: `[b, LATENT]` latents and `[b]` labels → `[b, c, s, s]` in
/// [−1, 1].
#[derive(Module, Debug)]
pub struct Generator {
    project: Linear,
    up1: ConvTranspose2d,
    up2: ConvTranspose2d,
    relu: Relu,
    classes: usize,
    side: usize,
}

impl Generator {
    /// A generator for `input` images of `classes` classes.
    pub fn new(input: InputSpec, classes: usize, device: &Device) -> Self {
        let q = input.height / 4;
        let up = |i, o| {
            ConvTranspose2dConfig::new([i, o], [4, 4])
                .with_stride([2, 2])
                .with_padding([1, 1])
                .init(device)
        };
        Self {
            project: LinearConfig::new(LATENT + classes, 128 * q * q).init(device),
            up1: up(128, 64),
            up2: up(64, input.channels),
            relu: Relu::new(),
            classes,
            side: input.height,
        }
    }

    /// Images for latents `z` `[b, LATENT]` and labels `[b]`.
    pub fn forward(&self, z: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<4> {
        let [b, _] = z.dims();
        let q = self.side / 4;
        let h = self.project.forward(Tensor::cat(vec![z, one_hot(labels, self.classes)], 1));
        let h = self.relu.forward(h).reshape([b, 128, q, q]); // [b, 128, s/4, s/4]
        let h = self.relu.forward(self.up1.forward(h)); // [b, 64, s/2, s/2]
        tanh(self.up2.forward(h)) // [b, c, s, s]
    }
}

/// The conditional discriminator: `[b, c, s, s]` images and `[b]` labels → `[b]` logits.
#[derive(Module, Debug)]
pub struct Discriminator {
    down1: Conv2d,
    down2: Conv2d,
    out: Linear,
    act: LeakyRelu,
    classes: usize,
}

impl Discriminator {
    /// A discriminator for `input` images of `classes` classes.
    pub fn new(input: InputSpec, classes: usize, device: &Device) -> Self {
        let q = input.height / 4;
        let down = |i, o| {
            Conv2dConfig::new([i, o], [4, 4])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            down1: down(input.channels + classes, 64),
            down2: down(64, 128),
            out: LinearConfig::new(128 * q * q, 1).init(device),
            act: LeakyReluConfig::new().with_negative_slope(0.2).init(),
            classes,
        }
    }

    /// Real-vs-generated logits.
    pub fn forward(&self, x: Tensor<4>, labels: Tensor<1, Int>) -> Tensor<1> {
        let [b, _, h, w] = x.dims();
        let planes = one_hot(labels, self.classes).reshape([b, self.classes, 1, 1]).expand([
            b,
            self.classes,
            h,
            w,
        ]); // [b, classes, s, s]
        let x = self.act.forward(self.down1.forward(Tensor::cat(vec![x, planes], 1)));
        let x = self.act.forward(self.down2.forward(x)); // [b, 128, s/4, s/4]
        let [b, c, h, w] = x.dims();
        self.out.forward(x.reshape([b, c * h * w])).reshape([b]) // [b]
    }
}

/// The discriminator's loss: `mean softplus(−D(real)) + mean softplus(D(fake))`; `[1]`.
pub fn discriminator_loss(real: Tensor<1>, fake: Tensor<1>) -> Tensor<1> {
    softplus(real.neg(), 1.0).mean() + softplus(fake, 1.0).mean()
}

/// The generator's non-saturating loss: `mean softplus(−D(fake))`; `[1]`.
pub fn generator_loss(fake: Tensor<1>) -> Tensor<1> {
    softplus(fake.neg(), 1.0).mean()
}

/// Where a generator run keeps its state: `OUT/.generator/` (weights, optimisers,
/// `state.json` written last) so a stopped `mia generate` resumes at its last epoch.
struct GeneratorCheckpoint {
    dir: PathBuf,
}

impl GeneratorCheckpoint {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A generator run's progress (`state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GeneratorState {
    /// Epochs done.
    pub next_epoch: usize,
    /// Training seconds so far.
    pub seconds: f64,
    /// Per epoch: mean discriminator and generator losses.
    pub losses: Vec<(f64, f64)>,
}

/// The two networks and their optimisers.
struct Gan {
    g: Generator,
    d: Discriminator,
    g_optim: ModuleOptimizer,
    d_optim: ModuleOptimizer,
}

fn adam() -> ModuleOptimizer {
    AdamConfig::new().with_beta_1(0.5).init()
}

impl Gan {
    fn new(input: InputSpec, classes: usize, device: &Device, seed: u64) -> Self {
        let _rng = mia_core::rng::backend_lock();
        device.seed(mix(seed, 0x6A4E));
        let g = Generator::new(input, classes, device);
        g.visit(&mut mia_core::rng::Materialize);
        let d = Discriminator::new(input, classes, device);
        d.visit(&mut mia_core::rng::Materialize);
        Self { g, d, g_optim: adam(), d_optim: adam() }
    }

    fn save(&self, ck: &GeneratorCheckpoint, state: &GeneratorState) -> Result<(), TrainError> {
        std::fs::create_dir_all(&ck.dir).map_err(|e| TrainError::io(&ck.dir, e))?;
        save_record(&self.g, &ck.file("generator.bpk"))?;
        save_record(&self.d, &ck.file("discriminator.bpk"))?;
        for (optim, name) in
            [(&self.g_optim, "generator-optim.bpk"), (&self.d_optim, "discriminator-optim.bpk")]
        {
            let path = ck.file(name);
            write_atomic(&path, &optim.into_bytes().map_err(|e| TrainError::io(&path, e))?)?;
        }
        write_json(&ck.file("state.json"), state)
    }

    fn load(self, ck: &GeneratorCheckpoint) -> Result<(Self, GeneratorState), TrainError> {
        let state: GeneratorState = read_json(&ck.file("state.json"))?;
        let g = load_record(self.g, &ck.file("generator.bpk"))?;
        let d = load_record(self.d, &ck.file("discriminator.bpk"))?;
        let read = |name: &str| -> Result<ModuleOptimizer, TrainError> {
            let path = ck.file(name);
            let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
            adam()
                .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| TrainError::io(&path, e))
        };
        let (g_optim, d_optim) = (read("generator-optim.bpk")?, read("discriminator-optim.bpk")?);
        Ok((Self { g, d, g_optim, d_optim }, state))
    }
}

/// `[b, c, s, s]` images of `indices` scaled to [−1, 1], and their labels.
fn real_batch(
    ds: &Dataset,
    indices: &[usize],
    device: &Device,
) -> Result<(Tensor<4>, Tensor<1, Int>), TrainError> {
    let input = ds.input;
    let mut values = Vec::with_capacity(indices.len() * input.numel());
    for &i in indices {
        let px = ds.pixels(i).ok_or_else(|| TrainError::Backend(format!("no example {i}")))?;
        values.extend(px.iter().map(|&p| f32::from(p) / 127.5 - 1.0));
    }
    let shape = [indices.len(), input.channels, input.height, input.width];
    let x = Tensor::<4>::from_data(TensorData::new(values, shape), device);
    let labels: Vec<i64> = indices.iter().map(|&i| i64::from(ds.labels[i])).collect();
    Ok((x, Tensor::<1, Int>::from_data(TensorData::new(labels, [indices.len()]), device)))
}

fn latents(rng: &mut ChaCha8Rng, b: usize, device: &Device) -> Tensor<2> {
    let z: Vec<f32> = (0..b * LATENT).map(|_| mia_core::rng::normal(rng)).collect();
    Tensor::<2>::from_data(TensorData::new(z, [b, LATENT]), device)
}

/// One epoch of alternating discriminator and generator steps; the mean losses.
fn gan_epoch(
    gan: Gan,
    ds: &Dataset,
    train: &[usize],
    (config, epoch): (&GeneratorConfig, usize),
    device: &Device,
) -> Result<(Gan, (f64, f64)), TrainError> {
    let Gan { mut g, mut d, mut g_optim, mut d_optim } = gan;
    let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, epoch as u64));
    let mut order = train.to_vec();
    order.shuffle(&mut rng);
    let (mut d_sum, mut g_sum, mut steps) = (0f64, 0f64, 0usize);
    for chunk in order.chunks(config.batch_size) {
        let (x, y) = real_batch(ds, chunk, device)?;
        let fake = g.forward(latents(&mut rng, chunk.len(), device), y.clone()).detach();
        let d_loss = discriminator_loss(d.forward(x, y.clone()), d.forward(fake, y.clone()));
        d_sum += f64::from(read_scalar(d_loss.clone())?);
        let grads = GradientsParams::from_grads(d_loss.backward(), &d);
        d = d_optim.step(config.lr, d, grads);

        let fake = g.forward(latents(&mut rng, chunk.len(), device), y.clone());
        let g_loss = generator_loss(d.forward(fake, y));
        g_sum += f64::from(read_scalar(g_loss.clone())?);
        let grads = GradientsParams::from_grads(g_loss.backward(), &g);
        g = g_optim.step(config.lr, g, grads);
        steps += 1;
    }
    let n = steps.max(1) as f64;
    if !(d_sum.is_finite() && g_sum.is_finite()) {
        return Err(TrainError::Diverged { epoch: epoch + 1, loss: f32::NAN });
    }
    Ok((Gan { g, d, g_optim, d_optim }, (d_sum / n, g_sum / n)))
}

/// Trains (or, with a checkpoint in `out/.generator/`, continues) the generator on the
/// images `train` of `ds`; `progress(epoch, losses)` after every epoch. Returns the generator
/// (without autodiff) and the run's state.
pub fn train_generator(
    ds: &Dataset,
    train: &[usize],
    config: &GeneratorConfig,
    out: &Path,
    device: &Device,
    progress: &mut dyn FnMut(usize, (f64, f64)),
) -> Result<(Generator, GeneratorState), TrainError> {
    config.validate()?;
    check_input(ds.input)?;
    if !matches!(ds.samples, Samples::U8(_)) {
        return Err(TrainError::Config("the generator draws images, not CSV rows".into()));
    }
    if train.len() < config.batch_size {
        return Err(TrainError::Config(format!(
            "{} training images is fewer than one batch of {}",
            train.len(),
            config.batch_size
        )));
    }
    let device = device.clone().autodiff();
    let ck = GeneratorCheckpoint { dir: out.join(".generator") };
    let mut gan = Gan::new(ds.input, ds.num_classes(), &device, config.seed);
    let mut state = GeneratorState::default();
    if ck.file("state.json").exists() {
        (gan, state) = gan.load(&ck)?;
    }
    while state.next_epoch < config.epochs {
        let started = Instant::now();
        let losses;
        (gan, losses) = gan_epoch(gan, ds, train, (config, state.next_epoch), &device)?;
        state.seconds += started.elapsed().as_secs_f64();
        state.losses.push(losses);
        state.next_epoch += 1;
        gan.save(&ck, &state)?;
        progress(state.next_epoch, losses);
    }
    Ok((gan.g.valid(), state))
}

/// `per_class` images of every class from `generator`, as CHW `u8`, class by class.
pub fn sample(
    generator: &Generator,
    input: InputSpec,
    classes: usize,
    per_class: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<(u32, Vec<u8>)>, TrainError> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0x5A3E));
    let mut out = Vec::with_capacity(classes * per_class);
    for class in 0..classes {
        let mut left = per_class;
        while left > 0 {
            let b = left.min(256);
            let labels =
                Tensor::<1, Int>::from_data(TensorData::new(vec![class as i64; b], [b]), device);
            let x = generator.forward(latents(&mut rng, b, device), labels); // [b, c, s, s]
            let values = read_f32(x.reshape([b, input.numel()]))?;
            for img in values.chunks(input.numel()) {
                let px = img.iter().map(|v| ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8);
                out.push((class as u32, px.collect()));
            }
            left -= b;
        }
    }
    Ok(out)
}

/// Encodes a CHW `u8` image as PNG bytes.
pub fn png(chw: &[u8], input: InputSpec) -> Result<Vec<u8>, TrainError> {
    let (c, h, w) = (input.channels, input.height, input.width);
    let mut bytes = Vec::new();
    let cursor = &mut std::io::Cursor::new(&mut bytes);
    let hwc: Vec<u8> = (0..h * w).flat_map(|p| (0..c).map(move |ch| chw[ch * h * w + p])).collect();
    let result = if c == 1 {
        image::GrayImage::from_raw(w as u32, h as u32, hwc)
            .map(|i| i.write_to(cursor, image::ImageFormat::Png))
    } else {
        image::RgbImage::from_raw(w as u32, h as u32, hwc)
            .map(|i| i.write_to(cursor, image::ImageFormat::Png))
    };
    match result {
        Some(Ok(())) => Ok(bytes),
        Some(Err(e)) => Err(TrainError::Backend(format!("encoding a PNG: {e}"))),
        None => Err(TrainError::Backend("an image of the wrong size".into())),
    }
}

/// A grid of the first `columns` images of every class (one row per class), CHW `u8`, and
/// its input spec.
pub fn grid(
    images: &[(u32, Vec<u8>)],
    input: InputSpec,
    classes: usize,
    columns: usize,
) -> (Vec<u8>, InputSpec) {
    let (c, s) = (input.channels, input.height);
    let spec = InputSpec::new(c, classes * s, columns * s);
    let (gh, gw) = (spec.height, spec.width);
    let mut out = vec![0u8; c * gh * gw];
    for class in 0..classes {
        let row = images.iter().filter(|(l, _)| *l as usize == class).take(columns);
        for (col, (_, img)) in row.enumerate() {
            for ch in 0..c {
                for y in 0..s {
                    for x in 0..s {
                        out[ch * gh * gw + (class * s + y) * gw + col * s + x] =
                            img[ch * s * s + y * s + x];
                    }
                }
            }
        }
    }
    (out, spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    fn softplus64(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    fn vec1(v: &[f32]) -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev())
    }

    #[test]
    fn the_gan_losses_are_the_non_saturating_ones_and_finite_in_the_tails() {
        let (real, fake) = ([1.5f32, -0.5], [0.3f32, -2.0]);
        let d = read_scalar(discriminator_loss(vec1(&real), vec1(&fake))).unwrap();
        let want =
            (softplus64(-1.5) + softplus64(0.5)) / 2.0 + (softplus64(0.3) + softplus64(-2.0)) / 2.0;
        assert!((f64::from(d) - want).abs() < 1e-5, "{d} vs {want}");
        let g = read_scalar(generator_loss(vec1(&fake))).unwrap();
        let want = (softplus64(-0.3) + softplus64(2.0)) / 2.0;
        assert!((f64::from(g) - want).abs() < 1e-5, "{g} vs {want}");
        let tail = read_scalar(discriminator_loss(vec1(&[-300.0]), vec1(&[300.0]))).unwrap();
        assert!((tail - 600.0).abs() < 1e-2, "{tail}");
    }

    #[test]
    fn the_networks_have_the_image_and_logit_shapes() {
        let input = InputSpec::new(3, 32, 32);
        let g = Generator::new(input, 10, &dev());
        let d = Discriminator::new(input, 10, &dev());
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 9, 3], [3]), &dev());
        let x = g.forward(latents(&mut ChaCha8Rng::seed_from_u64(1), 3, &dev()), y.clone());
        assert_eq!(x.dims(), [3, 3, 32, 32]);
        let v = read_f32(x.clone().reshape([3, 3 * 32 * 32])).unwrap();
        assert!(v.iter().all(|p| (-1.0..=1.0).contains(p)));
        assert_eq!(d.forward(x, y).dims(), [3]);
    }

    #[test]
    fn inputs_the_generator_cannot_draw_are_refused() {
        assert!(check_input(InputSpec::new(1, 28, 28)).is_ok());
        for bad in [InputSpec::new(3, 30, 30), InputSpec::new(3, 32, 16), InputSpec::new(1, 4, 4)] {
            assert!(check_input(bad).is_err(), "{bad:?}");
        }
        let ok = GeneratorConfig::default();
        assert!(ok.validate().is_ok());
        assert!(GeneratorConfig { epochs: 0, ..ok }.validate().is_err());
        assert!(GeneratorConfig { batch_size: 4, ..ok }.validate().is_err());
        assert!(GeneratorConfig { lr: 0.0, ..ok }.validate().is_err());
    }

    #[test]
    fn the_grid_puts_class_k_in_row_k() {
        let input = InputSpec::new(1, 2, 2);
        let images = vec![(0, vec![10; 4]), (1, vec![20; 4]), (0, vec![30; 4]), (1, vec![40; 4])];
        let (g, spec) = grid(&images, input, 2, 2);
        assert_eq!((spec.height, spec.width), (4, 4));
        assert_eq!(g, vec![10, 10, 30, 30, 10, 10, 30, 30, 20, 20, 40, 40, 20, 20, 40, 40]);
        let png = png(&g, spec).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(back.into_raw(), g);
    }
}
