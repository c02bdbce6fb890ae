//! `mia lab`: the browser lab's experiment, run natively and many times. Each run draws images
//! of the chosen classes from a bundle's reference non-members (the shipped model never trained
//! on them), splits each class into members and held-out images, trains the target head and
//! the shadow heads on the shipped model's features with the page's code (mia-core's `lab`),
//! and scores every attack with each model in turn as the target. Over many runs each attack's
//! mean AUC gets a standard error, so a mean below 0.5 can be told from noise.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::*;
use clap::Args;
use mia_core::bundle::{Manifest, ReferenceSample};
use mia_core::defense::{DefenseConfig, RelaxVariant, SmoothingForm};
use mia_core::lab::{
    AttackDraws, DpSgd, HeadConfig, LabAttack, Models, RunPlan, TrainSet, at_smoothing_target,
    normalize_features, rotate, run_heads, split_members,
};
use mia_core::rng::mix;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::hinted;

/// Arguments of `mia lab`.
#[derive(Args)]
pub struct LabArgs {
    /// Bundle folder (from `mia export`; the page's `pretrained/`).
    #[arg(long, default_value = "pretrained")]
    bundle: PathBuf,
    /// The model whose trunk gives the features (default: the bundle's first).
    #[arg(long)]
    model: Option<String>,
    /// Classes of the reference sample to draw images from, by index (e.g. `3,8`).
    #[arg(long, value_delimiter = ',', default_value = "3,8")]
    classes: Vec<usize>,
    /// Images per class in each run (half become members).
    #[arg(long, default_value_t = 20)]
    per_class: usize,
    /// Independent runs (new images, member split, shadow halves and initialisations each).
    #[arg(long, default_value_t = 25)]
    runs: usize,
    /// Shadow heads per run (even).
    #[arg(long, default_value_t = 16)]
    shadows: usize,
    /// Training defense: erm, label-smoothing, confidence-penalty, relaxloss or dp-sgd.
    #[arg(long, default_value = "erm")]
    defense: String,
    /// The defense's parameter: ε (label smoothing), β, α, or σ (DP-SGD).
    #[arg(long)]
    strength: Option<f32>,
    /// Epochs (the page's default 60).
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Learning rate (SGD, momentum 0.9).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Hidden units (0 = a linear head).
    #[arg(long, default_value_t = 0)]
    hidden: usize,
    /// L2 weight decay (0 = off).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Seed of the image draws, splits and heads.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write every run's per-draw AUCs as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the first run's inputs and outputs into this folder as .npy (features, labels,
    /// keep flags of the target and each shadow, every model's logits), for replicating it
    /// elsewhere (bench/lab_torch.py trains the same heads in PyTorch).
    #[arg(long)]
    dump: Option<PathBuf>,
}

/// One attack over every run.
#[derive(Serialize)]
struct AttackStudy {
    attack: &'static str,
    /// Mean over runs of the run's mean AUC (all draws), and its standard error over runs.
    mean_auc: f64,
    se: f64,
    /// Mean and standard error over runs of the one-draw AUC a student sees (the target's).
    own_auc: f64,
    own_se: f64,
    /// Share of all draws below 0.5.
    below_half: f64,
    /// Per run, per draw.
    aucs: Vec<Vec<f64>>,
}

impl LabArgs {
    fn head(&self) -> Result<HeadConfig> {
        let s = self.strength;
        let need = |what: &str| {
            s.ok_or_else(|| {
                hinted(format!("--defense {what} needs --strength"), "e.g. --strength 0.1")
            })
        };
        let (defense, dp) = match self.defense.as_str() {
            "erm" => (DefenseConfig::Erm, None),
            "label-smoothing" => (
                DefenseConfig::LabelSmoothing {
                    epsilon: need("label-smoothing")?,
                    form: SmoothingForm::Uniform,
                },
                None,
            ),
            "confidence-penalty" => {
                (DefenseConfig::ConfidencePenalty { beta: need("confidence-penalty")? }, None)
            }
            "relaxloss" => (
                DefenseConfig::Relaxloss {
                    alpha: need("relaxloss")?,
                    variant: RelaxVariant::Cifar,
                    upper: 1.0,
                },
                None,
            ),
            "dp-sgd" => {
                let sigma = need("dp-sgd")?;
                (
                    DefenseConfig::Erm,
                    Some(DpSgd { clip: 1.0, noise_multiplier: sigma, delta: 1e-5 }),
                )
            }
            other => {
                return Err(hinted(
                    format!("unknown lab defense `{other}`"),
                    "use erm, label-smoothing, confidence-penalty, relaxloss or dp-sgd",
                ));
            }
        };
        let cfg = HeadConfig {
            hidden: self.hidden,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            defense,
            dp,
            ..HeadConfig::default()
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<()> {
        if self.runs == 0 || self.runs > 100_000 {
            return Err(hinted("--runs must lie in 1..=100000", "e.g. --runs 25"));
        }
        if self.shadows < 2 || self.shadows > 256 || self.shadows % 2 == 1 {
            return Err(hinted("--shadows must be even and in 2..=256", "e.g. --shadows 16"));
        }
        if self.per_class < 4 || self.classes.len() < 2 {
            return Err(hinted(
                "a lab needs at least two classes of at least 4 images",
                "e.g. --classes 3,8 --per-class 20",
            ));
        }
        Ok(())
    }
}

/// The reference sample's non-members: features (normalised per image) and labels.
fn pool(args: &LabArgs, device: &Device) -> Result<(Vec<f32>, Vec<usize>, usize)> {
    let read = |name: &str| -> Result<Vec<u8>> {
        let path = args.bundle.join(name);
        std::fs::read(&path).map_err(|e| {
            hinted(
                format!("cannot read {}: {e}", path.display()),
                "pass --bundle with a folder written by `mia export` (the page's is pretrained/)",
            )
        })
    };
    let manifest = Manifest::parse(&String::from_utf8_lossy(&read("manifest.json")?))?;
    let entry = match &args.model {
        Some(id) => manifest.model(id),
        None => manifest.models.first(),
    }
    .ok_or_else(|| hinted("no such model in the bundle", "see its manifest.json for the ids"))?;
    let weights = read(&entry.weights.path)?;
    entry.weights.verify(&weights)?;
    let model = entry.config.load_bytes(weights, device)?;
    let bytes = read(&manifest.reference.file.path)?;
    manifest.reference.file.verify(&bytes)?;
    let reference = ReferenceSample::decode(&bytes, manifest.input)?;
    let rows: Vec<usize> = (0..reference.len()).filter(|&i| !reference.is_member[i]).collect();
    let (per, input) = (manifest.input.numel(), manifest.input);
    let mut features = Vec::new();
    for chunk in rows.chunks(100) {
        let mut values = Vec::with_capacity(chunk.len() * per);
        for &i in chunk {
            manifest.normalization.push_u8(reference.image(i), input, &mut values);
        }
        let x = Tensor::<1>::from_data(TensorData::new(values, [chunk.len() * per]), device)
            .reshape([chunk.len(), input.channels, input.height, input.width]);
        let f = model.features(x).context("this model exposes no features")?;
        features.extend(f.into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
    }
    let dim = features.len() / rows.len().max(1);
    normalize_features(&mut features, dim);
    let labels = rows.iter().map(|&i| usize::from(reference.labels[i])).collect();
    Ok((features, labels, dim))
}

/// One run's attacks over its draws, and label smoothing's fingerprint (the share of members
/// and of held-out images at the smoothed target) when the recipe smooths.
type RunOutcome = (Vec<AttackDraws>, Option<(f64, f64)>);

/// One run: images drawn, split, trained and rotated.
fn one_run(
    args: &LabArgs,
    cfg: &HeadConfig,
    (features, labels, dim): (&[f32], &[usize], usize),
    r: usize,
    device: &Device,
) -> Result<RunOutcome> {
    let seed = mix(args.seed, r as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen = Vec::new();
    for (k, &c) in args.classes.iter().enumerate() {
        let mut of: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        if of.len() < args.per_class {
            return Err(hinted(
                format!("class {c} has {} reference non-members, fewer than --per-class", of.len()),
                "lower --per-class",
            ));
        }
        of.shuffle(&mut rng);
        chosen.extend(of[..args.per_class].iter().map(|&i| (i, k)));
    }
    let x: Vec<f32> = chosen
        .iter()
        .flat_map(|&(i, _)| features[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    let y: Vec<usize> = chosen.iter().map(|&(_, k)| k).collect();
    let member = split_members(&y, 0.5, seed)?;
    // Each model's seed comes from the plan (the page's heads are seeded the same way).
    let plan = RunPlan::new(&member, args.shadows, seed, false, mix(seed, 0x4EAD));
    let classes = args.classes.len();
    let all = TrainSet { features: &x, dim, labels: &y, classes };
    let logits = run_heads(&plan, cfg, &all, device)?;
    if r == 0
        && let Some(dir) = &args.dump
    {
        dump(dir, (&x, dim), &y, &plan.keep, (&logits.logits, classes))?;
    }
    let models = Models { labels: &y, classes, logits: &logits.logits, keep: &plan.keep };
    let fingerprint = match cfg.defense {
        DefenseConfig::LabelSmoothing { epsilon, .. } => {
            let target = &logits.logits[..y.len() * classes];
            let share = |want| {
                at_smoothing_target(target, &y, classes, epsilon, (plan.member(), want), 0.01)
            };
            Some((share(true), share(false)))
        }
        _ => None,
    };
    Ok((rotate(&models)?, fingerprint))
}

/// One run's inputs and outputs as .npy files in `dir`.
fn dump(
    dir: &std::path::Path,
    (x, dim): (&[f32], usize),
    y: &[usize],
    keep: &[bool],
    (logits, classes): (&[f32], usize),
) -> Result<()> {
    use mia_core::npy::NpyArray;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (n, m) = (y.len(), keep.len() / y.len().max(1));
    let files = [
        ("features.npy", NpyArray::f32(vec![n, dim], x.to_vec())?),
        ("labels.npy", NpyArray::i64(vec![n], y.iter().map(|&v| v as i64).collect())?),
        ("keep.npy", NpyArray::bool(vec![m, n], keep.to_vec())?),
        ("logits.npy", NpyArray::f32(vec![m, n, classes], logits.to_vec())?),
    ];
    for (name, array) in files {
        mia_core::files::write_atomic(&dir.join(name), &array.to_bytes())?;
    }
    Ok(())
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// Runs `mia lab`.
pub fn run(args: LabArgs) -> Result<()> {
    args.check()?;
    let cfg = args.head()?;
    let device = Device::flex();
    let (features, labels, dim) = pool(&args, &device)?;
    let bar = indicatif::ProgressBar::new(args.runs as u64);
    let (mut per_run, mut prints) = (Vec::with_capacity(args.runs), Vec::new());
    for r in 0..args.runs {
        let (draws, fingerprint) = one_run(&args, &cfg, (&features, &labels, dim), r, &device)?;
        per_run.push(draws);
        prints.extend(fingerprint);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let study: Vec<AttackStudy> = LabAttack::ALL
        .iter()
        .map(|&a| {
            let aucs: Vec<Vec<f64>> = per_run
                .iter()
                .filter_map(|run| run.iter().find(|d| d.attack == a).map(|d| d.aucs.clone()))
                .collect();
            let means: Vec<f64> =
                aucs.iter().map(|v| v.iter().sum::<f64>() / v.len() as f64).collect();
            let own: Vec<f64> = aucs.iter().map(|v| v[0]).collect();
            let all: Vec<f64> = aucs.iter().flatten().copied().collect();
            let ((mean_auc, se), (own_auc, own_se)) = (mean_se(&means), mean_se(&own));
            let below_half =
                all.iter().filter(|&&x| x < 0.5).count() as f64 / all.len().max(1) as f64;
            AttackStudy { attack: a.name(), mean_auc, se, own_auc, own_se, below_half, aucs }
        })
        .collect();
    println!(
        "{} runs × {} draws, {} × {} images, {}{}:",
        args.runs,
        args.shadows + 1,
        args.classes.len(),
        args.per_class,
        args.defense,
        args.strength.map(|s| format!(" {s}")).unwrap_or_default()
    );
    println!("| attack | mean AUC ± SE (all draws) | target's own AUC ± SE | draws < 0.5 |");
    println!("|---|---|---|---|");
    for s in &study {
        println!(
            "| {} | {:.3} ± {:.3} | {:.3} ± {:.3} | {:.0} % |",
            s.attack,
            s.mean_auc,
            s.se,
            s.own_auc,
            s.own_se,
            100.0 * s.below_half
        );
    }
    if !prints.is_empty() {
        let k = prints.len() as f64;
        let (m, h) = prints.iter().fold((0.0, 0.0), |a, p| (a.0 + p.0 / k, a.1 + p.1 / k));
        println!(
            "label smoothing's fingerprint (the target's confidence within 0.01 of 1 − ε + ε/C): \
             {:.0} % of members, {:.0} % of held-out images",
            100.0 * m,
            100.0 * h
        );
    }
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&study)?;
        mia_core::files::write_atomic(out, text.as_bytes())?;
    }
    Ok(())
}
