//! `mia shadows`: trains (this shard's share of) the shadow models of a target run and caches
//! their keep-masks and logits for `mia attack`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use mia_core::layout::RunLayout;
use mia_train::shadows::ShadowSummary;
use mia_train::{DefenseConfig, EpochMetrics, Observer, ShadowObserver, ShadowOptions, Shard};

use super::train::Progress;

/// Arguments of `mia shadows`.
#[derive(Args)]
pub struct ShadowsArgs {
    /// Target run directory (from `mia train`).
    #[arg(long)]
    run: PathBuf,
    /// Shadow models wanted in total; finished ones are reused.
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// Train only shard I of K (shadows i with i mod K = I), e.g. `--shard
    /// $SLURM_ARRAY_TASK_ID/16` or `--shard $JOB_COMPLETION_INDEX/16`.
    #[arg(long, default_value = "0/1")]
    shard: Shard,
    /// Augmented queries per example: 1 = identity, 2 = + mirror, up to 18 (mirror × shifts).
    /// Default: an existing folder's; else the target's training augmentation decides (1
    /// without augmentation, 4 with crop-and-flip).
    #[arg(long)]
    queries: Option<usize>,
    /// Population examples (RMIA's z) queried besides the candidates, from the shadow pool.
    #[arg(long, default_value_t = 2000)]
    population: usize,
    /// Train the shadows without the target's training-time defense (a naive attacker);
    /// default folder `RUN/shadows-undefended`.
    #[arg(long)]
    undefended: bool,
    /// Shadow folder (default `RUN/shadows`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Device: cpu (flex), ndarray, wgpu, cuda (default: the target's).
    #[arg(long)]
    device: Option<String>,
    /// Shadows trained at once, one thread each (default: one per core, at most 8, on CPU
    /// backends; 1 on GPUs). Results do not depend on it.
    #[arg(long)]
    jobs: Option<usize>,
    /// Dataset folder, when it moved since the target was trained.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

struct ShadowProgress(Progress);

impl Observer for ShadowProgress {
    fn on_start(&mut self, first_epoch: usize, epochs: usize, steps: usize) {
        self.0.on_start(first_epoch, epochs, steps);
    }
    fn on_step(&mut self, images: usize, loss: f32) {
        self.0.on_step(images, loss);
    }
    fn on_epoch(&mut self, m: &EpochMetrics) -> std::ops::ControlFlow<()> {
        self.0.on_epoch(m)
    }
    fn on_warning(&mut self, message: &str) {
        self.0.on_warning(message);
    }
}

impl ShadowObserver for ShadowProgress {
    fn on_shadow(&mut self, index: usize, position: usize, total: usize) {
        self.0.bar.set_prefix(format!("shadow {index:03} ({}/{total}) ", position + 1));
    }
    fn on_shadow_done(&mut self, s: &ShadowSummary) {
        self.0.line(format!(
            "shadow {:03}: train acc {:.4}, test acc {:.4}, {:.1} s training, {:.1} s queries",
            s.index, s.train_acc, s.test_acc, s.train_seconds, s.query_seconds
        ));
    }
}

/// Runs `mia shadows`.
pub fn run(args: ShadowsArgs) -> Result<()> {
    let dir = args
        .dir
        .clone()
        .or_else(|| args.undefended.then(|| RunLayout::new(&args.run).undefended_shadows().root));
    let options = ShadowOptions {
        count: args.count,
        shard: args.shard,
        queries: args.queries,
        population: args.population,
        defense: args.undefended.then_some(DefenseConfig::Erm),
        device: args.device.as_deref().map(str::parse).transpose()?,
        data_dir: args.data_dir.clone(),
        jobs: args.jobs,
        dir,
    };
    let mut progress = ShadowProgress(Progress::new(false));
    let report = mia_train::shadows(&args.run, &options, &mut progress)?;
    progress.0.bar.finish_and_clear();
    println!(
        "{} trained, {} already done, {} left to other shards; shadows in {}",
        report.trained.len(),
        report.reused,
        report.other_shards,
        report.dir.display()
    );
    Ok(())
}
