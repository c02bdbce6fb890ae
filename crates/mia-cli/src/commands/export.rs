//! `mia export`: turns attacked runs into the web bundle the browser lab opens
//! (`pretrained/`): `manifest.json`, each model's weights, one reference sample of members
//! and non-members shared by every model (they must share one split), per-example LiRA
//! statistics of that sample from each run's shadows, the attack results measured natively,
//! with the thresholds the browser's verdicts use, and the index of every member's image hash
//! that lets the page recognise them among uploads. See `mia_core::bundle`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use mia_attack::{AttackInput, AttackReport};
use mia_core::ModelConfig;
use mia_core::bundle::{FileRef, MembersIndexEntry, ModelEntry, ReferenceEntry, ReferenceSample};
use mia_core::layout::RunLayout;
use mia_core::preprocess::Normalization;
use mia_data::Split;
use mia_train::{Summary, TrainConfig};

pub use super::bundle_write::Precision;
use super::bundle_write::{
    BundleAbout, Destination, REFERENCE_FILE, complete_entry, reference_counts, stored_weights,
    write, write_manifest,
};
use super::export_imported::{self, FromOutputs};
use super::index::INDEX_FILE;
use super::{decimal, hinted};

/// Arguments of `mia export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Run directories (trained, with shadows, attacked); the first is the default model.
    /// The folder name becomes the model id.
    #[arg(long = "run", required_unless_present = "model")]
    runs: Vec<PathBuf>,
    /// A model trained elsewhere (`mia import --out`), exported with the attacks computed
    /// here on its own outputs: --logits, --labels, --membership, optionally
    /// --shadow-logits and --shadow-keep (the .npy contract of `mia attack --logits`), and
    /// --images, the same rows' images.
    #[arg(long, conflicts_with = "runs", requires_all = ["logits", "labels", "membership", "images"])]
    model: Option<PathBuf>,
    /// Target logits .npy, [N, C] float32 (with --model).
    #[arg(long, requires = "model")]
    logits: Option<PathBuf>,
    /// Labels .npy, [N] integers (with --model).
    #[arg(long, requires = "model")]
    labels: Option<PathBuf>,
    /// Membership .npy, [N] bool (with --model).
    #[arg(long, requires = "model")]
    membership: Option<PathBuf>,
    /// Shadow logits .npy, [S, N, C] float32 (with --model).
    #[arg(long, requires_all = ["model", "shadow_keep"])]
    shadow_logits: Option<PathBuf>,
    /// Shadow keep-masks .npy, [S, N] bool (with --shadow-logits).
    #[arg(long, requires = "shadow_logits")]
    shadow_keep: Option<PathBuf>,
    /// The N images of those rows, in order: a uint8 .npy [N, H, W, C] or [N, C, H, W], or a
    /// folder of PNG/JPEG files sorted by name (with --model).
    #[arg(long, requires = "model")]
    images: Option<PathBuf>,
    /// Largest difference allowed between the imported model's logits on the reference
    /// images and --logits (the page recomputes them from the weights).
    #[arg(long, default_value_t = 1e-3)]
    logit_tolerance: f32,
    /// Output folder (the demo reads `pretrained/`).
    #[arg(long)]
    out: PathBuf,
    /// Reference examples, members and non-members of the shared split together.
    #[arg(long, default_value_t = 1000)]
    reference: usize,
    /// How many of the reference examples are members (default: half). Fewer members leave
    /// room for more non-members in the same bytes: the smallest false-positive rate the page
    /// can resolve is one over the non-members.
    #[arg(long)]
    reference_members: Option<usize>,
    /// Dataset folder, when it moved since training.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Free text stored as the bundle's provenance (how it was made).
    #[arg(long, default_value = "")]
    provenance: String,
    /// How to cite the work the bundle accompanies (e.g. the paper's reference); the page's
    /// "about this model" panel shows it.
    #[arg(long)]
    citation: Option<String>,
    /// How the weights are stored: f16 halves the bundle's weights and is kept only where the
    /// reference sample's loss and confidence AUCs move by at most 0.002 (else f32, said so).
    #[arg(long, value_enum, default_value_t = Precision::F16)]
    weights: Precision,
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Runs `mia export`: from run directories, or (`--model`) from a model trained elsewhere.
pub fn run(args: ExportArgs) -> Result<()> {
    match &args.model {
        Some(model) => from_outputs(&args, model),
        None => from_runs(&args),
    }
}

/// Where the bundle goes and what its manifest says of its making.
fn destination(args: &ExportArgs) -> Destination<'_> {
    Destination {
        out: &args.out,
        provenance: &args.provenance,
        citation: args.citation.as_deref(),
        reference: args.reference,
    }
}

/// `mia export --model`: the imported model with the paper's own outputs.
fn from_outputs(args: &ExportArgs, model: &Path) -> Result<()> {
    let need = |p: &Option<PathBuf>, flag: &str| {
        p.clone().ok_or_else(|| {
            hinted(format!("{flag} is required with --model"), "see `mia export --help`")
        })
    };
    export_imported::run(&FromOutputs {
        model: model.to_path_buf(),
        logits: need(&args.logits, "--logits")?,
        labels: need(&args.labels, "--labels")?,
        membership: need(&args.membership, "--membership")?,
        shadow_logits: args.shadow_logits.clone(),
        shadow_keep: args.shadow_keep.clone(),
        images: need(&args.images, "--images")?,
        logit_tolerance: args.logit_tolerance,
        reference: (args.reference, args.reference_members),
        weights: args.weights,
        to: destination(args),
    })
}

/// `mia export --run …`: attacked run directories that share one split.
fn from_runs(args: &ExportArgs) -> Result<()> {
    let (n_members, n_non) = reference_counts(args.reference, args.reference_members)?;
    let first = &args.runs[0];
    let first_layout = RunLayout::new(first);
    let split = Split::load(&first_layout.split())?;
    if split.members.len() < n_members || split.non_members.len() < n_non {
        return Err(hinted(
            format!(
                "the split has {} members and {} non-members, fewer than the {n_members} and \
                 {n_non} asked for",
                split.members.len(),
                split.non_members.len()
            ),
            "lower --reference or --reference-members",
        ));
    }
    let mut config: TrainConfig = json(&first_layout.config())?;
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    let ds = config.dataset.load(&config.data_dir, &config.load)?;
    let (rows, sample) = reference_sample(&ds, &split, (n_members, n_non))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ref_bytes = sample.encode();
    write(&args.out.join(REFERENCE_FILE), &ref_bytes)?;

    let mut models = Vec::new();
    for run in &args.runs {
        let id = run
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into());
        let other = Split::load(&RunLayout::new(run).split())?;
        if other.sha256 != split.sha256 {
            return Err(hinted(
                format!("{} has another split than {}", run.display(), first.display()),
                "train every exported model with the same dataset, --members and --seed",
            ));
        }
        let precision = (args.weights, &sample, &ds.normalization);
        models.push(export_model(run, &id, &rows, &args.out, precision)?);
    }
    let members_index = match super::index::hashable(ds.input) {
        true => {
            let index = super::index::build(&ds, &split.members)?;
            let bytes = index.encode();
            write(&args.out.join(INDEX_FILE), &bytes)?;
            Some(MembersIndexEntry {
                file: FileRef::describe(INDEX_FILE, &bytes),
                members: index.len(),
            })
        }
        false => {
            println!(
                "note: {} images are too small to hash: no index of the training images (the \
                 page will say it cannot tell whether an upload was trained on)",
                ds.input
            );
            None
        }
    };
    let about = BundleAbout {
        dataset: ds.name.clone(),
        class_names: ds.class_names.clone(),
        input: ds.input,
        normalization: ds.normalization.clone(),
    };
    let reference = ReferenceEntry {
        file: FileRef::describe(REFERENCE_FILE, &ref_bytes),
        members: n_members,
        non_members: n_non,
    };
    write_manifest(&destination(args), about, models, reference, members_index)
}

/// The reference sample of the split: the first `n_members` members, then the first `n_non`
/// non-members, with their candidate rows (candidates are members then non-members).
fn reference_sample(
    ds: &mia_data::Dataset,
    split: &Split,
    (n_members, n_non): (usize, usize),
) -> Result<(Vec<usize>, ReferenceSample)> {
    // Candidate rows of the reference: the first `n_members` members, then the first `n_non`
    // non-members (candidates are members then non-members).
    let m = split.members.len();
    let rows: Vec<usize> = (0..n_members).chain(m..m + n_non).collect();
    let dataset_index: Vec<usize> =
        split.members[..n_members].iter().chain(&split.non_members[..n_non]).copied().collect();
    let mut pixels = Vec::with_capacity((n_members + n_non) * ds.input.numel());
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
    Ok((rows, sample))
}

fn export_model(
    run: &Path,
    id: &str,
    rows: &[usize],
    out: &Path,
    (precision, sample, norm): (Precision, &ReferenceSample, &Normalization),
) -> Result<ModelEntry> {
    let layout = RunLayout::new(run);
    let config: TrainConfig = json(&layout.config())?;
    let model_config: ModelConfig = json(&layout.model_config())?;
    let summary: Summary = json(&layout.summary())?;
    if !layout.attacks().exists() {
        return Err(hinted(
            format!("{} has no attack results", run.display()),
            format!("run `mia shadows --run {0}` and `mia attack --run {0}` first", run.display()),
        ));
    }
    let (report, _) = AttackReport::read(run)?;
    let weights = std::fs::read(layout.weights())?;
    let (weights, half) = stored_weights(id, &model_config, weights, (precision, sample, norm))?;
    let input = AttackInput::from_run(run, None)?;
    let defense = serde_json::to_value(&config.defense)?;
    let mut label = defense.get("name").and_then(|v| v.as_str()).unwrap_or("erm").to_string();
    if config.dropout > 0.0 {
        label = format!("{label} + dropout {}", config.dropout);
    }
    let entry = ModelEntry {
        id: id.into(),
        label,
        config: model_config,
        training_defense: serde_json::json!({ "loss": defense, "dropout": config.dropout }),
        train_acc: decimal(summary.train_acc),
        test_acc: decimal(summary.test_acc),
        attacks: Vec::new(),
        weights: FileRef::describe("", &[]),
        lira: None,
        shadow_outputs: None,
        shadows: 0,
    };
    complete_entry(entry, (&weights, half), &report, &input, rows, out)
}
