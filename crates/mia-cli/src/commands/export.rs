//! `mia export`: turns attacked runs into the web bundle the browser lab opens
//! (`pretrained/`): `manifest.json`, each model's weights, one reference sample of members
//! and non-members shared by every model (they must share one split), per-example LiRA
//! statistics of that sample from each run's shadows, and the attack results measured
//! natively, with the thresholds the browser's verdicts use. See `mia_core::bundle`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use mia_attack::{AttackInput, AttackReport};
use mia_core::ModelConfig;
use mia_core::bundle::{
    AttackSummary, FORMAT_VERSION, FileRef, LiraStats, Manifest, ModelEntry, ReferenceEntry,
    ReferenceSample, ShadowOutputs,
};
use mia_core::lira;
use mia_core::metrics;
use mia_core::scores::{ScoreKind, calibrate};
use mia_data::Split;
use mia_train::{DeviceChoice, TrainConfig};

use super::hinted;

/// Arguments of `mia export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Run directories (trained, with shadows, attacked); the first is the default model.
    /// The folder name becomes the model id.
    #[arg(long = "run", required = true)]
    runs: Vec<PathBuf>,
    /// Output folder (the demo reads `pretrained/`).
    #[arg(long)]
    out: PathBuf,
    /// Reference examples: half members, half non-members of the shared split.
    #[arg(long, default_value_t = 1000)]
    reference: usize,
    /// Dataset folder, when it moved since training.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Free text stored as the bundle's provenance (how it was made).
    #[arg(long, default_value = "")]
    provenance: String,
}

/// The attacks the browser recomputes, with the score it uses.
pub const BROWSER_ATTACKS: [(&str, Option<ScoreKind>); 4] = [
    ("confidence", Some(ScoreKind::Confidence)),
    ("loss", Some(ScoreKind::Loss)),
    ("modified-entropy", Some(ScoreKind::ModifiedEntropy)),
    ("lira-online-fixed", None),
];

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    mia_core::files::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `mia export`.
pub fn run(args: ExportArgs) -> Result<()> {
    if args.reference < 2 || args.reference % 2 == 1 {
        return Err(hinted("--reference must be an even number ≥ 2", "e.g. --reference 1000"));
    }
    let first = &args.runs[0];
    let split = Split::load(&first.join("split.json"))?;
    let half = args.reference / 2;
    if split.members.len() < half || split.non_members.len() < half {
        return Err(hinted(
            format!(
                "the split has {} members and {} non-members, fewer than {half} each",
                split.members.len(),
                split.non_members.len()
            ),
            "lower --reference",
        ));
    }
    let mut config: TrainConfig = json(&first.join("config.json"))?;
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    let ds = config.dataset.load(&config.data_dir, &config.load)?;
    // Candidate rows of the reference: the first `half` members, then the first `half`
    // non-members (candidates are members then non-members).
    let m = split.members.len();
    let rows: Vec<usize> = (0..half).chain(m..m + half).collect();
    let dataset_index: Vec<usize> =
        split.members[..half].iter().chain(&split.non_members[..half]).copied().collect();
    let mut pixels = Vec::with_capacity(args.reference * ds.input.numel());
    for &i in &dataset_index {
        pixels.extend_from_slice(ds.pixels(i).ok_or_else(|| {
            hinted("the bundle needs image data", "export an image dataset (CIFAR-10, MNIST, …)")
        })?);
    }
    let sample = ReferenceSample {
        input: ds.input,
        labels: dataset_index.iter().map(|&i| ds.labels[i] as u8).collect(),
        is_member: rows.iter().map(|&r| r < m).collect(),
        pixels,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ref_bytes = sample.encode();
    write(&args.out.join("reference.bin"), &ref_bytes)?;

    let mut models = Vec::new();
    for run in &args.runs {
        let id = run
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into());
        let other = Split::load(&run.join("split.json"))?;
        if other.sha256 != split.sha256 {
            return Err(hinted(
                format!("{} has another split than {}", run.display(), first.display()),
                "train every exported model with the same dataset, --members and --seed",
            ));
        }
        models.push(export_model(run, &id, &rows, &args.out)?);
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        dataset: ds.name.clone(),
        class_names: ds.class_names.clone(),
        input: ds.input,
        normalization: ds.normalization.clone(),
        models,
        reference: ReferenceEntry {
            file: FileRef::describe("reference.bin", &ref_bytes),
            members: half,
            non_members: half,
        },
        provenance: args.provenance.clone(),
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    Manifest::parse(&text)?;
    write(&args.out.join("manifest.json"), text.as_bytes())?;
    let total: u64 = std::fs::read_dir(&args.out)?
        .flatten()
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .sum();
    println!(
        "wrote {} models and {} reference examples to {} ({:.1} MB)",
        manifest.models.len(),
        args.reference,
        args.out.display(),
        total as f64 / 1e6
    );
    Ok(())
}

fn export_model(run: &Path, id: &str, rows: &[usize], out: &Path) -> Result<ModelEntry> {
    let config: TrainConfig = json(&run.join("config.json"))?;
    let model_config: ModelConfig = json(&run.join("model.json"))?;
    let summary: serde_json::Value = json(&run.join("summary.json"))?;
    let report_path = run.join("attacks.json");
    if !report_path.exists() {
        return Err(hinted(
            format!("{} has no attack results", run.display()),
            format!("run `mia shadows --run {0}` and `mia attack --run {0}` first", run.display()),
        ));
    }
    let (report, _) = AttackReport::read(run)?;
    let weights = std::fs::read(run.join("model.bpk"))?;
    // The weights must decode into the architecture before they are shipped.
    model_config.load_bytes(weights.clone(), &DeviceChoice::Flex.device()?)?;
    let weights_name = format!("{id}.bpk");
    write(&out.join(&weights_name), &weights)?;

    // Reference-sample scores from the target's own logits (identity query), and the shadows
    // for thresholds and LiRA statistics.
    let input = AttackInput::from_run(run, None)?;
    let labels: Vec<usize> = rows.iter().map(|&r| input.labels[r]).collect();
    let member: Vec<bool> = rows.iter().map(|&r| input.is_member[r]).collect();
    let n = input.candidates();
    let s = input.shadows.len();
    let mut lira_file = None;
    let mut lira_scores = None;
    let mut shadow_file = None;
    if s > 0 {
        let outputs = ShadowOutputs {
            shadows: s,
            examples: rows.len(),
            classes: input.target.classes,
            keep: input.shadows.iter().flat_map(|sh| rows.iter().map(|&r| sh.keep[r])).collect(),
            logits: input
                .shadows
                .iter()
                .flat_map(|sh| rows.iter().flat_map(|&r| sh.logits.row(0, r).to_vec()))
                .collect(),
        };
        let bytes = outputs.encode();
        let name = format!("{id}.shadows.bin");
        write(&out.join(&name), &bytes)?;
        shadow_file = Some(FileRef::describe(&name, &bytes));
    }
    if s >= 2 {
        let mut phi = Vec::with_capacity(s * rows.len());
        let mut keep = Vec::with_capacity(s * rows.len());
        for sh in &input.shadows {
            for &r in rows {
                phi.push(lira::logit_confidence(sh.logits.row(0, r), input.labels[r]));
                keep.push(sh.keep[r]);
            }
        }
        let stats = LiraStats::fit(&phi, &keep, s, rows.len())?;
        let target: Vec<f32> = rows
            .iter()
            .map(|&r| lira::logit_confidence(input.target.row(0, r), input.labels[r]))
            .collect();
        lira_scores = Some((0..rows.len()).map(|i| stats.online(i, target[i])).collect::<Vec<_>>());
        let bytes = stats.encode();
        let name = format!("{id}.lira.bin");
        write(&out.join(&name), &bytes)?;
        lira_file = Some(FileRef::describe(&name, &bytes));
    }
    let mut attacks = Vec::new();
    for a in &report.attacks {
        let browser = BROWSER_ATTACKS.iter().find(|(name, _)| *name == a.name);
        let (reference_auc, threshold) = match browser {
            Some((_, Some(kind))) => {
                let scores: Vec<f32> = rows
                    .iter()
                    .zip(&labels)
                    .map(|(&r, &y)| kind.score(input.target.row(0, r), y))
                    .collect();
                let auc = metrics::evaluate(&scores, &member)?.auc;
                let threshold = if s > 0 {
                    let (mut pooled, mut keep) = (Vec::new(), Vec::new());
                    for sh in &input.shadows {
                        for i in 0..n {
                            pooled.push(kind.score(sh.logits.row(0, i), input.labels[i]));
                            keep.push(sh.keep[i]);
                        }
                    }
                    Some(calibrate(&pooled, &keep)?)
                } else {
                    None
                };
                (Some(auc), threshold)
            }
            // LiRA's likelihood ratio decides "member" above 0 (equal priors).
            Some((_, None)) => match &lira_scores {
                Some(scores) => (Some(metrics::evaluate(scores, &member)?.auc), Some(0.0)),
                None => (None, None),
            },
            None => (None, None),
        };
        attacks.push(AttackSummary {
            name: a.name.clone(),
            auc: a.evaluation.auc,
            advantage: a.evaluation.advantage,
            tpr_at_0_1pct_fpr: a
                .evaluation
                .tpr_at_low_fpr
                .iter()
                .find(|t| (t.fpr - 0.001).abs() < 1e-9)
                .map_or(0.0, |t| t.tpr),
            reference_auc,
            threshold,
        });
    }
    let number = |k: &str| summary.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let defense = serde_json::to_value(&config.defense)?;
    let mut label = defense.get("name").and_then(|v| v.as_str()).unwrap_or("erm").to_string();
    if config.dropout > 0.0 {
        label = format!("{label} + dropout {}", config.dropout);
    }
    Ok(ModelEntry {
        id: id.into(),
        label,
        config: model_config,
        training_defense: serde_json::json!({ "loss": defense, "dropout": config.dropout }),
        train_acc: number("train_acc"),
        test_acc: number("test_acc"),
        attacks,
        weights: FileRef::describe(&weights_name, &weights),
        lira: lira_file,
        shadow_outputs: shadow_file,
        shadows: s,
    })
}
