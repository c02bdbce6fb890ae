//! `mia generate`: trains MIA Lab's class-conditional generator ([`mia_train::generator`]) on
//! images of a run's pool that are not its members, and writes synthetic images, one
//! sub-folder per class number, for `mia train --prune S --synthetic-dir DIR` (SynthShield).
//! Also writes `grid.png` (ten samples per class, one row per class) and `generator.json`
//! (settings, source, losses, seconds). A stopped run continues from `DIR/.generator/`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mia_core::files::write_atomic;
use mia_core::layout::RunLayout;
use mia_data::Split;
use mia_train::generator::{self, GeneratorConfig};
use mia_train::{DeviceChoice, TrainConfig};
use serde::Serialize;

use super::hinted;

/// Which of the run's non-member images the generator learns from.
#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Source {
    /// The shadow pool: public data, which the attacker has too.
    Pool,
    /// The validation part: the defender's own images outside the members.
    Val,
}

/// Arguments of `mia generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// A trained run: its split says which images are members (never used).
    #[arg(long)]
    run: PathBuf,
    /// Output folder: `0/`, `1/`, … with PNG images, `grid.png`, `generator.json`.
    #[arg(long)]
    out: PathBuf,
    /// Train on the run's shadow pool or its validation part.
    #[arg(long, value_enum, default_value = "pool")]
    from: Source,
    /// At most this many training images (the first of the part, in the split's random order).
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    /// Synthetic images per class (1 to 100 000).
    #[arg(long, default_value_t = 500)]
    per_class: usize,
    /// Generator epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam learning rate of both networks.
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Seed of initialisation, order, latents and samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dataset folder, when it moved since the run was trained.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Device (default: the run's): flex, ndarray, wgpu.
    #[arg(long)]
    device: Option<String>,
}

/// What `generator.json` records.
#[derive(Serialize)]
struct Record<'a> {
    config: &'a GeneratorConfig,
    source: Source,
    training_images: usize,
    per_class: usize,
    seconds: f64,
    losses: &'a [(f64, f64)],
    run: String,
}

/// Runs `mia generate`.
pub fn run(args: GenerateArgs) -> Result<()> {
    if !(1..=100_000).contains(&args.per_class) {
        return Err(hinted(
            format!("--per-class must lie in [1, 100000], got {}", args.per_class),
            "500 per class is SynthShield-sized for CIFAR-10",
        ));
    }
    let layout = RunLayout::new(&args.run);
    let mut config: TrainConfig = mia_train::run::read_json(&layout.config()).map_err(|e| {
        hinted(
            format!("{} holds no readable config.json ({e})", args.run.display()),
            "pass --run with a directory written by `mia train`",
        )
    })?;
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    let split = Split::load(&layout.split())?;
    let part = match args.from {
        Source::Pool => &split.shadow_pool,
        Source::Val => &split.validation,
    };
    let train: Vec<usize> = part.iter().copied().take(args.images).collect();
    let ds = config.dataset.load(&config.data_dir, &config.load)?;
    let choice: DeviceChoice = match &args.device {
        Some(d) => d.parse()?,
        None => config.device,
    };
    let device = choice.device()?;
    let gen_config = GeneratorConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut progress = |epoch: usize, (d, g): (f64, f64)| {
        eprintln!("generator epoch {epoch}/{}: D loss {d:.4}, G loss {g:.4}", args.epochs);
    };
    let (model, state) =
        generator::train_generator(&ds, &train, &gen_config, &args.out, &device, &mut progress)
            .map_err(|e| match e {
                mia_train::TrainError::Config(m) => hinted(m, "see `mia generate --help`"),
                e => e.into(),
            })?;
    let images =
        generator::sample(&model, ds.input, ds.num_classes(), args.per_class, args.seed, &device)?;
    let mut counters = vec![0usize; ds.num_classes()];
    for (class, chw) in &images {
        let dir = args.out.join(class.to_string());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let n = &mut counters[*class as usize];
        write_atomic(&dir.join(format!("{n:05}.png")), &generator::png(chw, ds.input)?)?;
        *n += 1;
    }
    let (grid, spec) = generator::grid(&images, ds.input, ds.num_classes(), args.per_class.min(10));
    write_atomic(&args.out.join("grid.png"), &generator::png(&grid, spec)?)?;
    let record = Record {
        config: &gen_config,
        source: args.from,
        training_images: train.len(),
        per_class: args.per_class,
        seconds: state.seconds,
        losses: &state.losses,
        run: args.run.display().to_string(),
    };
    let text = serde_json::to_string_pretty(&record)?;
    write_atomic(&args.out.join("generator.json"), text.as_bytes())?;
    println!(
        "trained the generator on {} images ({:.0} s); wrote {} images per class and grid.png to {}",
        train.len(),
        state.seconds,
        args.per_class,
        args.out.display()
    );
    Ok(())
}
