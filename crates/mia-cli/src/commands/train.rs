//! `mia train`: flags and an optional TOML config file become a [`TrainConfig`]; progress is
//! shown with an indicatif bar (hidden when stderr is not a terminal) and one line per epoch.

use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mia_core::layout::RunLayout;
use mia_train::advreg::AdvRegConfig;
use mia_train::config::{MixupConfig, OptimizerKind, Schedule};
use mia_train::defense::{RelaxVariant, SmoothingForm};
use mia_train::distill::DistillConfig;
use mia_train::dp::DpConfig;
use mia_train::mmd::MmdConfig;
use mia_train::prune::{FinetuneSource, PruneConfig};
use mia_train::selena::SelenaConfig;
use mia_train::{DefenseConfig, EpochMetrics, Observer, TrainConfig};

use super::hinted;

#[derive(Clone, Copy, ValueEnum)]
enum DefenseName {
    Erm,
    LabelSmoothing,
    ConfidencePenalty,
    Relaxloss,
    Ppb,
    Hamp,
}

#[derive(Clone, Copy, ValueEnum)]
enum FinetuneSourceArg {
    Members,
    Val,
    Synthetic,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScheduleName {
    Constant,
    Cosine,
    Step,
}

/// Arguments of `mia train`. Every option overrides the `--config` file; a repeated option
/// takes its last value.
#[derive(Args)]
#[command(args_override_self = true)]
pub struct TrainArgs {
    /// TOML config file (keys as in the run's config.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset: cifar10, cifar100, mnist, fashion-mnist, folder, csv.
    #[arg(long)]
    dataset: Option<String>,
    /// Folder holding the dataset (the CSV file for csv).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Architecture: small-cnn, ml-leaks-cnn, resnet20, vgg16-bn, mobilenet-v2, mlp.
    #[arg(long)]
    model: Option<String>,
    /// Training-time defense.
    #[arg(long, value_enum)]
    defense: Option<DefenseName>,
    /// RelaxLoss target loss α; HAMP's entropy-regulariser weight α.
    #[arg(long)]
    alpha: Option<f32>,
    /// RelaxLoss variant: cifar (ascent + flattening) or tabular (ascent only).
    #[arg(long)]
    relax_variant: Option<String>,
    /// RelaxLoss clamp of the kept true-class confidence.
    #[arg(long)]
    upper: Option<f32>,
    /// Label-smoothing ε.
    #[arg(long)]
    epsilon: Option<f32>,
    /// Label-smoothing form: uniform (ε/C) or other (ε/(C−1)).
    #[arg(long)]
    smoothing_form: Option<String>,
    /// Confidence-penalty β.
    #[arg(long)]
    beta: Option<f32>,
    /// PPB's weight λ on the paired sorted posteriors' KL (default 4, as mia_prune).
    #[arg(long)]
    lambda: Option<f32>,
    /// HAMP's entropy threshold γ (soft label entropy as a share of ln C; default 0.9).
    #[arg(long)]
    hamp_gamma: Option<f32>,
    /// Mixup on the training batches with λ ~ Beta(α, α) (combines with --defense).
    #[arg(long, value_name = "ALPHA", conflicts_with = "adamixup")]
    mixup: Option<f64>,
    /// AdaMixup: the partner's weight starts at this value (≤ 0.5) and decays linearly.
    #[arg(long, value_name = "START")]
    adamixup: Option<f64>,
    /// DP-SGD: per-example gradient clip norm C (turns DP-SGD on; needs --dp-noise or
    /// --target-epsilon).
    #[arg(long, value_name = "C")]
    dp_clip: Option<f64>,
    /// DP-SGD: noise multiplier σ.
    #[arg(long, value_name = "SIGMA", requires = "dp_clip", conflicts_with = "target_epsilon")]
    dp_noise: Option<f64>,
    /// DP-SGD: the ε to reach after the planned epochs (σ is chosen for it).
    #[arg(long, value_name = "EPSILON", requires = "dp_clip")]
    target_epsilon: Option<f64>,
    /// DP-SGD: δ at which ε is reported (default 1e-5).
    #[arg(long, value_name = "DELTA", requires = "dp_clip")]
    dp_delta: Option<f64>,
    /// Mixup+MMD (Li, Li & Ribeiro 2021): weight λ of MMD² between each batch's posteriors and
    /// those of class-matched validation examples, added to the training loss (needs --val;
    /// combine with --mixup 1 for the paper's defense).
    #[arg(long, value_name = "LAMBDA")]
    mmd: Option<f64>,
    /// MMD's Gaussian-kernel bandwidth on posteriors (default 1).
    #[arg(long, value_name = "SIGMA", requires = "mmd")]
    mmd_sigma: Option<f64>,
    /// The MMD term is on in an epoch when the members' and the validation set's accuracies
    /// differ by at least this much at its start (default 0.03).
    #[arg(long, value_name = "GAP", requires = "mmd")]
    mmd_gap: Option<f64>,
    /// Distillation: a teacher trains on the members, the run's model on the validation set
    /// (needs --val) against the teacher's posteriors at this temperature.
    #[arg(long, value_name = "T")]
    distill: Option<f64>,
    /// AdvReg (Nasr et al. 2018): weight λ of the inference model's membership probability in
    /// the classifier's loss (needs --val, the inference model's reference set).
    #[arg(long, value_name = "LAMBDA")]
    advreg: Option<f64>,
    /// AdvReg: inference-model steps per classifier step (k, default 1).
    #[arg(long, value_name = "K", requires = "advreg")]
    advreg_k: Option<usize>,
    /// AdvReg: epochs of plain training before the game (default 3).
    #[arg(long, value_name = "EPOCHS", requires = "advreg")]
    advreg_warmup: Option<usize>,
    /// SELENA (Tang et al. 2022): Split-AI's K sub-models (the paper's K = 25), then the run's
    /// model self-distilled from them on the members.
    #[arg(long, value_name = "K")]
    selena: Option<usize>,
    /// SELENA: the sub-models each member is left out of (L; default the paper's L/K = 10/25,
    /// rounded up).
    #[arg(long, value_name = "L", requires = "selena")]
    selena_excluded: Option<usize>,
    /// Pruning: after training, zero this fraction of the convolution and linear weights by
    /// magnitude (global L1), then fine-tune with the pruned weights held at zero.
    #[arg(long, value_name = "S")]
    prune: Option<f64>,
    /// Pruning: zero whole convolution filters (least L1 norm, per layer) instead of weights.
    #[arg(long, requires = "prune")]
    structured: bool,
    /// Pruning: fine-tuning epochs after pruning (default 10; 0 keeps the pruned model as is).
    #[arg(long, value_name = "EPOCHS", requires = "prune")]
    finetune_epochs: Option<usize>,
    /// Pruning: fine-tuning learning rate (default a tenth of --lr), constant.
    #[arg(long, value_name = "LR", requires = "prune")]
    finetune_lr: Option<f64>,
    /// Pruning: fine-tune on the members (default), the validation part (`val`, needs --val)
    /// or the images of --synthetic-dir (`synthetic`).
    #[arg(long, value_name = "SOURCE", requires = "prune")]
    finetune_on: Option<FinetuneSourceArg>,
    /// Pruning: a folder of images, one sub-folder per class (named after the class or its
    /// number), to fine-tune on (implies --finetune-on synthetic).
    #[arg(long, value_name = "DIR", requires = "prune")]
    synthetic_dir: Option<PathBuf>,
    /// Dropout rate before the classifier.
    #[arg(long)]
    dropout: Option<f64>,
    /// L2 weight decay.
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Early-stopping patience in epochs (needs --val).
    #[arg(long)]
    early_stopping: Option<usize>,
    /// Validation examples for early stopping.
    #[arg(long)]
    val: Option<usize>,
    /// Target members (its training set size).
    #[arg(long)]
    members: Option<usize>,
    /// Target non-members (default: as many as members).
    #[arg(long)]
    non_members: Option<usize>,
    /// Test examples (default: min(5000, members)).
    #[arg(long)]
    test: Option<usize>,
    /// Epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Optimiser: sgd or adam.
    #[arg(long)]
    optimizer: Option<String>,
    /// SGD momentum.
    #[arg(long)]
    momentum: Option<f64>,
    /// Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    schedule: Option<ScheduleName>,
    /// Step schedule: epochs between decays.
    #[arg(long, default_value_t = 30)]
    step_size: usize,
    /// Step schedule: decay factor.
    #[arg(long, default_value_t = 0.1)]
    gamma: f64,
    /// Random crop and horizontal flip.
    #[arg(long, overrides_with = "no_augment")]
    augment: bool,
    /// No augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Seed (split, init, order, dropout, augmentation).
    #[arg(long)]
    seed: Option<u64>,
    /// Device: cpu (flex), ndarray, wgpu, cuda.
    #[arg(long)]
    device: Option<String>,
    /// Folder images are resized to this side length.
    #[arg(long)]
    image_size: Option<usize>,
    /// Convert folder images to grayscale.
    #[arg(long)]
    grayscale: bool,
    /// CSV label column.
    #[arg(long)]
    label_column: Option<String>,
    /// Run directory.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
}

/// Overwrites `slot` when a flag was given.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn parse_kebab<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string())).map_err(|_| {
        hinted(
            format!("unknown {what} `{value}`"),
            format!("see `mia train --help` for the {what} values"),
        )
    })
}

impl TrainArgs {
    /// The configuration the flags override: the `--config` file, the saved one when
    /// resuming, else the defaults.
    fn base_config(&self) -> Result<TrainConfig> {
        Ok(match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    hinted(
                        format!("cannot read config file {}: {e}", path.display()),
                        "check the --config path",
                    )
                })?;
                TrainConfig::from_toml(&text)
                    .with_context(|| format!("in config file {}", path.display()))?
            }
            None if self.resume => mia_train::run::read_json(&RunLayout::new(&self.out).config())?,
            None => TrainConfig::default(),
        })
    }

    /// The training-time defense `--defense` names, with its parameters' flags.
    fn defense_config(&self, d: DefenseName) -> Result<DefenseConfig> {
        Ok(match d {
            DefenseName::Erm => DefenseConfig::Erm,
            DefenseName::LabelSmoothing => DefenseConfig::LabelSmoothing {
                epsilon: self.epsilon.unwrap_or(0.1),
                form: match &self.smoothing_form {
                    Some(f) => parse_kebab::<SmoothingForm>("smoothing form", f)?,
                    None => SmoothingForm::Uniform,
                },
            },
            DefenseName::ConfidencePenalty => {
                DefenseConfig::ConfidencePenalty { beta: self.beta.unwrap_or(0.1) }
            }
            DefenseName::Relaxloss => DefenseConfig::Relaxloss {
                alpha: self.alpha.unwrap_or(1.0),
                variant: match &self.relax_variant {
                    Some(v) => parse_kebab::<RelaxVariant>("relaxloss variant", v)?,
                    None => RelaxVariant::Cifar,
                },
                upper: self.upper.unwrap_or(1.0),
            },
            DefenseName::Ppb => DefenseConfig::Ppb { lambda: self.lambda.unwrap_or(4.0) },
            DefenseName::Hamp => DefenseConfig::Hamp {
                gamma: self.hamp_gamma.unwrap_or(0.9),
                alpha: self.alpha.unwrap_or(0.01),
            },
        })
    }

    /// Mixup, DP-SGD, MMD, distillation, AdvReg, SELENA and pruning, as the flags ask.
    fn apply_training_modes(&self, c: &mut TrainConfig) {
        if let Some(alpha) = self.mixup {
            c.mixup = Some(MixupConfig::Mixup { alpha });
        }
        if let Some(start) = self.adamixup {
            c.mixup = Some(MixupConfig::Adamixup { start });
        }
        if let Some(clip) = self.dp_clip {
            c.dp = Some(DpConfig {
                clip,
                noise_multiplier: self.dp_noise,
                target_epsilon: self.target_epsilon,
                delta: self.dp_delta.unwrap_or(1e-5),
            });
        }
        if let Some(lambda) = self.mmd {
            c.mmd = Some(MmdConfig {
                lambda,
                sigma: self.mmd_sigma.unwrap_or(1.0),
                gap: self.mmd_gap.unwrap_or(0.03),
            });
        }
        if let Some(temperature) = self.distill {
            c.distill = Some(DistillConfig { temperature });
        }
        if let Some(lambda) = self.advreg {
            c.advreg = Some(AdvRegConfig {
                lambda,
                attack_steps: self.advreg_k.unwrap_or(1),
                warmup: self.advreg_warmup.unwrap_or(3),
            });
        }
        if let Some(models) = self.selena {
            let excluded = self.selena_excluded.unwrap_or(SelenaConfig::paper_ratio(models));
            c.selena = Some(SelenaConfig { models, excluded });
        }
        if self.prune.is_some() {
            c.prune = self.prune_config();
        }
    }

    /// `--prune` and its fine-tuning options (`None` without `--prune`).
    fn prune_config(&self) -> Option<PruneConfig> {
        let sparsity = self.prune?;
        let source = match (self.finetune_on, &self.synthetic_dir) {
            (Some(FinetuneSourceArg::Members), _) => FinetuneSource::Members,
            (Some(FinetuneSourceArg::Val), _) => FinetuneSource::Validation,
            (Some(FinetuneSourceArg::Synthetic), _) | (None, Some(_)) => FinetuneSource::Synthetic,
            (None, None) => FinetuneSource::Members,
        };
        Some(PruneConfig {
            sparsity,
            structured: self.structured,
            epochs: self.finetune_epochs.unwrap_or(10),
            lr: self.finetune_lr,
            source,
            synthetic_dir: self.synthetic_dir.clone(),
        })
    }

    /// The run's configuration: the base one with every flag given applied on top.
    fn config(&self) -> Result<TrainConfig> {
        let mut c = self.base_config()?;
        if let Some(d) = &self.dataset {
            c.dataset = d.parse()?;
        }
        match &self.data_dir {
            Some(d) => c.data_dir = d.clone(),
            None if self.config.is_none() && !self.resume => {
                return Err(hinted(
                    "--data-dir is required",
                    "point it at the dataset folder, e.g. --data-dir data/cifar-10",
                ));
            }
            None => {}
        }
        if let Some(m) = &self.model {
            c.model = m.parse()?;
        }
        if let Some(d) = self.defense {
            c.defense = self.defense_config(d)?;
        }
        self.apply_training_modes(&mut c);
        set(&mut c.dropout, self.dropout);
        set(&mut c.optimizer.weight_decay, self.weight_decay);
        set(&mut c.split.members, self.members);
        set(&mut c.split.validation, self.val);
        set(&mut c.epochs, self.epochs);
        set(&mut c.batch_size, self.batch_size);
        set(&mut c.optimizer.lr, self.lr);
        set(&mut c.optimizer.momentum, self.momentum);
        set(&mut c.seed, self.seed);
        set(&mut c.load.image_size, self.image_size);
        if self.non_members.is_some() {
            c.split.non_members = self.non_members;
        }
        if self.test.is_some() {
            c.split.test = self.test;
        }
        if self.early_stopping.is_some() {
            c.early_stopping = self.early_stopping;
        }
        if self.nesterov {
            c.optimizer.nesterov = true;
        }
        if self.grayscale {
            c.load.grayscale = true;
        }
        if self.label_column.is_some() {
            c.load.label_column = self.label_column.clone();
        }
        if let Some(o) = &self.optimizer {
            c.optimizer.kind = parse_kebab::<OptimizerKind>("optimizer", o)?;
        }
        if let Some(s) = self.schedule {
            c.schedule = match s {
                ScheduleName::Constant => Schedule::Constant,
                ScheduleName::Cosine => Schedule::Cosine,
                ScheduleName::Step => {
                    Schedule::Step { step_size: self.step_size, gamma: self.gamma }
                }
            };
        }
        if self.augment {
            c.augment = true;
        }
        if self.no_augment {
            c.augment = false;
        }
        if let Some(d) = &self.device {
            c.device = d.parse()?;
        }
        Ok(c)
    }
}

/// A step bar plus one line per epoch (printed even when the bar is hidden).
pub(crate) struct Progress {
    pub(crate) bar: ProgressBar,
    images: u64,
    started: std::time::Instant,
    /// Print a line per epoch.
    pub(crate) epoch_lines: bool,
}

impl Progress {
    /// A bar on stderr.
    pub(crate) fn new(epoch_lines: bool) -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}{bar:30} {pos}/{len} steps · {elapsed} · eta {eta} · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar, images: 0, started: std::time::Instant::now(), epoch_lines }
    }

    /// Prints a line above the bar (or alone when the bar is hidden).
    pub(crate) fn line(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

impl Observer for Progress {
    fn on_start(&mut self, first_epoch: usize, epochs: usize, steps: usize) {
        self.bar.reset();
        self.bar.set_length(((epochs - first_epoch.min(epochs)) * steps) as u64);
    }
    fn on_step(&mut self, images: usize, loss: f32) {
        self.images += images as u64;
        let rate = self.images as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!("loss {loss:.3} · {rate:.0} img/s"));
        self.bar.inc(1);
    }
    fn on_epoch(&mut self, m: &EpochMetrics) -> ControlFlow<()> {
        if !self.epoch_lines {
            return ControlFlow::Continue(());
        }
        let line = format!(
            "epoch {:>3}  objective {:.4}  train acc {:.4}  test acc {:.4}  gap {:+.4}{}  {:.0} img/s",
            m.epoch,
            m.train_objective,
            m.train_acc,
            m.test_acc,
            m.train_acc - m.test_acc,
            m.val_loss.map(|v| format!("  val loss {v:.4}")).unwrap_or_default()
                + &m.mmd.map(|v| format!("  mmd² {v:.4}")).unwrap_or_default(),
            m.images_per_s
        );
        // The bar hides itself when stderr is not a terminal; the epoch lines must not.
        self.line(line);
        ControlFlow::Continue(())
    }
    fn on_phase(&mut self, name: &str) {
        if self.epoch_lines {
            self.line(format!("== {name}"));
        }
    }
    fn on_warning(&mut self, message: &str) {
        self.line(format!("warning: {message}"));
    }
}

/// Runs `mia train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let config = args.config()?;
    let mut progress = Progress::new(true);
    let summary = mia_train::train(&config, &args.out, args.resume, &mut progress)?;
    progress.bar.finish_and_clear();
    println!(
        "{} / {} / {}: train acc {:.4}, test acc {:.4}, gap {:.4}, {} epochs, {:.1} s, {:.0} img/s on {}",
        summary.dataset,
        summary.model,
        summary.defense,
        summary.train_acc,
        summary.test_acc,
        summary.generalization_gap,
        summary.epochs,
        summary.wall_seconds,
        summary.images_per_s,
        summary.device
    );
    if let Some(dp) = &summary.dp {
        println!(
            "DP-SGD: ε = {:.3} at δ = {:e} (σ = {:.4}, C = {}, q = {:.5}; RDP accountant, every \
             step taken counted)",
            dp.epsilon, dp.delta, dp.noise_multiplier, dp.clip, dp.sampling_rate
        );
        println!("  {}", mia_core::privacy::epsilon_meaning(dp.epsilon, dp.delta));
    }
    if let Some(s) = summary.sparsity {
        println!("pruned: {:.2} % of the convolution and linear weights are zero", 100.0 * s);
    }
    println!("run directory: {}", args.out.display());
    Ok(())
}
