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
use mia_core::bundle::{
    AttackSummary, BrowserAttack, FORMAT_VERSION, FileRef, LiraStats, Manifest, MembersIndexEntry,
    ModelEntry, ReferenceEntry, ReferenceSample, ShadowOutputs,
};
use mia_core::layout::RunLayout;
use mia_core::lira;
use mia_core::metrics;
use mia_core::preprocess::Normalization;
use mia_data::Split;
use mia_train::{DeviceChoice, Summary, TrainConfig};

use super::index::INDEX_FILE;
use super::{decimal, hinted};

/// Arguments of `mia export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Run directories (trained, with shadows, attacked); the first is the default model.
    /// The folder name becomes the model id.
    #[arg(long = "run", required_unless_present = "model")]
    pub(super) runs: Vec<PathBuf>,
    /// A model trained elsewhere (`mia import --out`), exported with the attacks computed
    /// here on its own outputs: --logits, --labels, --membership, optionally
    /// --shadow-logits and --shadow-keep (the .npy contract of `mia attack --logits`), and
    /// --images, the same rows' images.
    #[arg(long, conflicts_with = "runs", requires_all = ["logits", "labels", "membership", "images"])]
    pub(super) model: Option<PathBuf>,
    /// Target logits .npy, [N, C] float32 (with --model).
    #[arg(long, requires = "model")]
    pub(super) logits: Option<PathBuf>,
    /// Labels .npy, [N] integers (with --model).
    #[arg(long, requires = "model")]
    pub(super) labels: Option<PathBuf>,
    /// Membership .npy, [N] bool (with --model).
    #[arg(long, requires = "model")]
    pub(super) membership: Option<PathBuf>,
    /// Shadow logits .npy, [S, N, C] float32 (with --model).
    #[arg(long, requires_all = ["model", "shadow_keep"])]
    pub(super) shadow_logits: Option<PathBuf>,
    /// Shadow keep-masks .npy, [S, N] bool (with --shadow-logits).
    #[arg(long, requires = "shadow_logits")]
    pub(super) shadow_keep: Option<PathBuf>,
    /// The N images of those rows, in order: a uint8 .npy [N, H, W, C] or [N, C, H, W], or a
    /// folder of PNG/JPEG files sorted by name (with --model).
    #[arg(long, requires = "model")]
    pub(super) images: Option<PathBuf>,
    /// Largest difference allowed between the imported model's logits on the reference
    /// images and --logits (the page recomputes them from the weights).
    #[arg(long, default_value_t = 1e-3)]
    pub(super) logit_tolerance: f32,
    /// Output folder (the demo reads `pretrained/`).
    #[arg(long)]
    pub(super) out: PathBuf,
    /// Reference examples, members and non-members of the shared split together.
    #[arg(long, default_value_t = 1000)]
    pub(super) reference: usize,
    /// How many of the reference examples are members (default: half). Fewer members leave
    /// room for more non-members in the same bytes: the smallest false-positive rate the page
    /// can resolve is one over the non-members.
    #[arg(long)]
    pub(super) reference_members: Option<usize>,
    /// Dataset folder, when it moved since training.
    #[arg(long)]
    pub(super) data_dir: Option<PathBuf>,
    /// Free text stored as the bundle's provenance (how it was made).
    #[arg(long, default_value = "")]
    pub(super) provenance: String,
    /// How to cite the work the bundle accompanies (e.g. the paper's reference); the page's
    /// "about this model" panel shows it.
    #[arg(long)]
    pub(super) citation: Option<String>,
    /// How the weights are stored: f16 halves the bundle's weights and is kept only where the
    /// reference sample's loss and confidence AUCs move by at most 0.002 (else f32, said so).
    #[arg(long, value_enum, default_value_t = Precision::F16)]
    pub(super) weights: Precision,
}

/// How a bundle stores weights.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    /// As trained.
    F32,
    /// Half precision where the AUCs do not move (see [`half_if_harmless`]).
    F16,
}

/// The reference sample's file name in a bundle (the current encoding, `MIAREF02`).
pub const REFERENCE_FILE: &str = "reference.02.bin";

/// A model's weights file name in a bundle: `<id>.f16.bpk` when stored at f16.
pub fn weights_file(id: &str, half: bool) -> String {
    if half { format!("{id}.f16.bpk") } else { format!("{id}.bpk") }
}

/// The largest change of the reference sample's loss or confidence AUC that storing a model's
/// weights at f16 may cause.
pub const F16_MAX_AUC_SHIFT: f64 = 0.002;

/// `weights` stored at f16 when the reference sample's loss and confidence AUCs move by at
/// most [`F16_MAX_AUC_SHIFT`], else unchanged: the bytes, whether they are f16, and the
/// largest AUC change measured.
pub fn half_if_harmless(
    config: &ModelConfig,
    weights: Vec<u8>,
    sample: &ReferenceSample,
    norm: &Normalization,
) -> Result<(Vec<u8>, bool, f64)> {
    let device = DeviceChoice::Flex.device()?;
    let half = config.weights_to_f16(weights.clone())?;
    let aucs = |bytes: &[u8]| -> Result<[f64; 2]> {
        let model = config.load_bytes(bytes.to_vec(), &device)?;
        Ok(sample.threshold_aucs(&sample.logits(&model, norm, &device)?, config.num_classes)?)
    };
    let (full, small) = (aucs(&weights)?, aucs(&half)?);
    let shift = full.iter().zip(&small).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    Ok(if shift <= F16_MAX_AUC_SHIFT { (half, true, shift) } else { (weights, false, shift) })
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub(super) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    mia_core::files::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// (members, non-members) of a reference sample of `total` examples, `members` of them members
/// (default: half, which needs an even total); each count at least 1.
pub(super) fn reference_counts(total: usize, members: Option<usize>) -> Result<(usize, usize)> {
    let members = match members {
        Some(m) => m,
        None if total.is_multiple_of(2) => total / 2,
        None => {
            return Err(hinted(
                "--reference must be even when half of it are members",
                "e.g. --reference 1000, or give --reference-members",
            ));
        }
    };
    if members == 0 || members >= total {
        return Err(hinted(
            format!(
                "a reference of {total} examples with {members} members has no members or no non-members"
            ),
            "e.g. --reference 1250 --reference-members 250",
        ));
    }
    Ok((members, total - members))
}

/// Runs `mia export`.
pub fn run(args: ExportArgs) -> Result<()> {
    if args.model.is_some() {
        return super::export_imported::run(&args);
    }
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
    // Candidate rows of the reference: the first `n_members` members, then the first `n_non`
    // non-members (candidates are members then non-members).
    let m = split.members.len();
    let rows: Vec<usize> = (0..n_members).chain(m..m + n_non).collect();
    let dataset_index: Vec<usize> =
        split.members[..n_members].iter().chain(&split.non_members[..n_non]).copied().collect();
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
    write_manifest(&args, about, models, reference, members_index)
}

/// What a bundle says of its data.
pub(super) struct BundleAbout {
    pub dataset: String,
    pub class_names: Vec<String>,
    pub input: mia_core::InputSpec,
    pub normalization: Normalization,
}

/// Writes `manifest.json` last (after every file it names) and says what was written.
pub(super) fn write_manifest(
    args: &ExportArgs,
    about: BundleAbout,
    models: Vec<ModelEntry>,
    reference: ReferenceEntry,
    members_index: Option<MembersIndexEntry>,
) -> Result<()> {
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        dataset: about.dataset,
        class_names: about.class_names,
        input: about.input,
        normalization: about.normalization,
        models,
        reference,
        provenance: args.provenance.clone(),
        citation: args.citation.clone(),
        members_index,
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

/// The weights as the bundle stores them, and whether at f16. They must decode into the
/// architecture before they are shipped (the f16 check decodes both versions itself).
pub(super) fn stored_weights(
    id: &str,
    config: &ModelConfig,
    weights: Vec<u8>,
    (precision, sample, norm): (Precision, &ReferenceSample, &Normalization),
) -> Result<(Vec<u8>, bool)> {
    Ok(if precision == Precision::F16 {
        let (bytes, half, shift) = half_if_harmless(config, weights, sample, norm)?;
        if !half {
            println!(
                "{id}: f16 weights move an AUC by {shift:.4} (> {F16_MAX_AUC_SHIFT}): kept f32"
            );
        }
        (bytes, half)
    } else {
        config.load_bytes(weights.clone(), &DeviceChoice::Flex.device()?)?;
        (weights, false)
    })
}

/// Writes a model's weights, shadow outputs and LiRA statistics and fills in its entry: the
/// attacks `report` measured natively, with the page's reference-sample AUCs and thresholds
/// from `input` on the reference `rows`.
pub(super) fn complete_entry(
    mut entry: ModelEntry,
    (weights, half): (&[u8], bool),
    report: &AttackReport,
    input: &AttackInput,
    rows: &[usize],
    out: &Path,
) -> Result<ModelEntry> {
    let id = entry.id.clone();
    let weights_name = weights_file(&id, half);
    write(&out.join(&weights_name), weights)?;
    // Reference-sample scores from the target's own logits (identity query), and the shadows
    // for thresholds and LiRA statistics.
    let shadow_outputs = shadow_outputs(input, rows, &id, out)?;
    let lira = lira_statistics(input, rows, &id, out)?;
    let reference = Reference {
        input,
        rows,
        member: rows.iter().map(|&r| input.is_member[r]).collect(),
        lira_scores: lira.as_ref().map(|l| l.1.clone()),
    };
    entry.attacks =
        report.attacks.iter().map(|a| reference.summary(a)).collect::<Result<Vec<_>>>()?;
    entry.weights = FileRef::describe(&weights_name, weights);
    entry.lira = lira.map(|l| l.0);
    entry.shadow_outputs = shadow_outputs;
    entry.shadows = input.shadows.len();
    Ok(entry)
}

/// Writes `<id>.shadows.bin`: every shadow's identity-query logits on the reference rows and
/// whether it trained on each (the page's adaptive attacker). `None` without shadows.
fn shadow_outputs(
    input: &AttackInput,
    rows: &[usize],
    id: &str,
    out: &Path,
) -> Result<Option<FileRef>> {
    if input.shadows.is_empty() {
        return Ok(None);
    }
    let outputs = ShadowOutputs {
        shadows: input.shadows.len(),
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
    Ok(Some(FileRef::describe(&name, &bytes)))
}

/// Writes `<id>.lira.bin` (the page's LiRA statistics, fitted on the shadows) and returns it
/// with the target's online LiRA scores on the reference rows. `None` under two shadows.
fn lira_statistics(
    input: &AttackInput,
    rows: &[usize],
    id: &str,
    out: &Path,
) -> Result<Option<(FileRef, Vec<f32>)>> {
    let s = input.shadows.len();
    if s < 2 {
        return Ok(None);
    }
    let phi_of =
        |l: &mia_attack::Logits, r: usize| lira::logit_confidence(l.row(0, r), input.labels[r]);
    let mut phi = Vec::with_capacity(s * rows.len());
    let mut keep = Vec::with_capacity(s * rows.len());
    for sh in &input.shadows {
        phi.extend(rows.iter().map(|&r| phi_of(&sh.logits, r)));
        keep.extend(rows.iter().map(|&r| sh.keep[r]));
    }
    let stats = LiraStats::fit(&phi, &keep, s, rows.len())?;
    let scores =
        rows.iter().enumerate().map(|(i, &r)| stats.online(i, phi_of(&input.target, r))).collect();
    let bytes = stats.encode();
    let name = format!("{id}.lira.bin");
    write(&out.join(&name), &bytes)?;
    Ok(Some((FileRef::describe(&name, &bytes), scores)))
}

/// The reference sample as the page sees it: which candidate rows, their membership, and the
/// target's online LiRA scores on them (when there are statistics).
struct Reference<'a> {
    input: &'a AttackInput,
    rows: &'a [usize],
    member: Vec<bool>,
    lira_scores: Option<Vec<f32>>,
}

impl Reference<'_> {
    /// The manifest's entry for attack `a`: its native numbers and, for an attack the page
    /// recomputes, its AUC on the reference sample and its threshold calibrated on shadows.
    fn summary(&self, a: &mia_attack::AttackResult) -> Result<AttackSummary> {
        let (reference_auc, threshold) = match BrowserAttack::parse(&a.name) {
            Some(browser) => self.browser(browser)?,
            None => (None, None),
        };
        Ok(AttackSummary {
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
        })
    }

    /// (reference-sample AUC, shadow-calibrated threshold) of a browser attack.
    fn browser(&self, attack: BrowserAttack) -> Result<(Option<f64>, Option<f32>)> {
        let input = self.input;
        let scores = match attack.score_kind() {
            Some(kind) => Some(
                self.rows
                    .iter()
                    .map(|&r| kind.score(input.target.row(0, r), input.labels[r]))
                    .collect::<Vec<f32>>(),
            ),
            None => self.lira_scores.clone(),
        };
        let Some(scores) = scores else { return Ok((None, None)) };
        let threshold = if input.shadows.is_empty() {
            None
        } else {
            let (n, c) = (input.candidates(), input.target.classes);
            let shadows = input.shadows.iter().map(|sh| &sh.logits.data[..n * c]);
            let keep: Vec<bool> =
                input.shadows.iter().flat_map(|sh| sh.keep[..n].iter().copied()).collect();
            Some(attack.shadow_threshold(shadows, c, &input.labels[..n], &keep)?)
        };
        Ok((Some(metrics::evaluate(&scores, &self.member)?.auc), threshold))
    }
}
