//! `mia export --model`: the bundle of a model trained elsewhere, from a paper's own outputs.
//! The imported weights (`mia import`), the .npy contract of `mia attack --logits` (target
//! logits, labels, membership, shadow logits and keep masks) and the same rows' images become
//! the bundle `mia export --run` writes: every attack computed here on those outputs, the
//! reference sample drawn from the images, the shadows' outputs and LiRA statistics for the
//! page. Before anything is written the imported model's logits on the reference images are
//! compared with the given ones, so the page, which recomputes them, shows the same numbers.

use std::path::PathBuf;

use anyhow::Result;
use mia_attack::{AttackInput, AttackKind, AttackOptions, AttackReport};
use mia_core::bundle::{FileRef, MembersIndexEntry, ModelEntry, ReferenceEntry, ReferenceSample};
use mia_core::layout::ImportedLayout;
use mia_core::recognise::MembersIndex;

use super::bundle_write::{
    BundleAbout, Destination, Precision, REFERENCE_FILE, complete_entry, reference_counts,
    stored_weights, write, write_manifest,
};
use super::hinted;
use super::import::{ImportedModel, logits_on, read_images};
use super::index::{INDEX_FILE, hashable};

/// What `mia export --model` was given (see `mia export --help`).
pub struct FromOutputs<'a> {
    /// The imported-model folder.
    pub model: PathBuf,
    /// Target logits .npy.
    pub logits: PathBuf,
    /// Labels .npy.
    pub labels: PathBuf,
    /// Membership .npy.
    pub membership: PathBuf,
    /// Shadow logits .npy.
    pub shadow_logits: Option<PathBuf>,
    /// Shadow keep masks .npy.
    pub shadow_keep: Option<PathBuf>,
    /// The rows' images.
    pub images: PathBuf,
    /// Largest logit difference allowed on the reference images.
    pub logit_tolerance: f32,
    /// Reference examples and how many are members.
    pub reference: (usize, Option<usize>),
    /// How the weights are stored.
    pub weights: Precision,
    /// Where the bundle goes.
    pub to: Destination<'a>,
}

/// Runs `mia export --model`.
pub fn run(args: &FromOutputs<'_>) -> Result<()> {
    let dir = args.model.as_path();
    let about = ImportedModel::read(dir)?;
    let weights = std::fs::read(ImportedLayout::new(dir).weights())?;
    let (input, pixels) = read_outputs(args, &about)?;
    let counts = reference_counts(args.reference.0, args.reference.1)?;
    let (members, rows) = reference_rows(&input, counts)?;
    let numel = about.model.input.numel();
    let sample = ReferenceSample {
        input: about.model.input,
        labels: rows.iter().map(|&r| input.labels[r] as u8).collect(),
        is_member: rows.iter().map(|&r| input.is_member[r]).collect(),
        pixels: gather(&pixels, &rows, numel),
    };
    check_logits(args, &about, &weights, &sample, &input, &rows)?;

    let id = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "imported".into());
    let report = attacks(&input, &id)?;
    std::fs::create_dir_all(args.to.out)?;
    let ref_bytes = sample.encode();
    write(&args.to.out.join(REFERENCE_FILE), &ref_bytes)?;
    let (weights, half) =
        stored_weights(&id, &about.model, weights, (args.weights, &sample, &about.normalization))?;
    let entry = entry_of(id, &about, &input);
    let entry = complete_entry(entry, (&weights, half), &report, &input, &rows, args.to.out)?;
    let members_index = if hashable(about.model.input) {
        let labels: Vec<u8> = members.iter().map(|&r| input.labels[r] as u8).collect();
        let index =
            MembersIndex::build(&gather(&pixels, &members, numel), &labels, about.model.input)?;
        let bytes = index.encode();
        write(&args.to.out.join(INDEX_FILE), &bytes)?;
        Some(MembersIndexEntry {
            file: FileRef::describe(INDEX_FILE, &bytes),
            members: members.len(),
        })
    } else {
        None
    };
    let bundle = BundleAbout {
        dataset: about.dataset.clone(),
        class_names: about.class_names.clone(),
        input: about.model.input,
        normalization: about.normalization.clone(),
    };
    let reference = ReferenceEntry {
        file: FileRef::describe(REFERENCE_FILE, &ref_bytes),
        members: counts.0,
        non_members: counts.1,
    };
    write_manifest(&args.to, bundle, vec![entry], reference, members_index)
}

/// The paper's .npy outputs and the rows' CHW pixels, checked against each other and the model.
fn read_outputs(args: &FromOutputs<'_>, about: &ImportedModel) -> Result<(AttackInput, Vec<u8>)> {
    let input = AttackInput::from_npy(
        &args.logits,
        &args.labels,
        &args.membership,
        args.shadow_logits.as_deref(),
        args.shadow_keep.as_deref(),
    )?;
    let classes = about.model.num_classes;
    if input.target.classes != classes || input.labels.iter().any(|&y| y >= classes.min(256)) {
        return Err(hinted(
            format!(
                "--logits has {} classes and labels up to {:?}; the model has {classes}",
                input.target.classes,
                input.labels.iter().max()
            ),
            "give the outputs of the imported model",
        ));
    }
    let (images, pixels) = read_images(&args.images, about.model.input)?;
    let n = input.candidates();
    if images != n {
        return Err(hinted(
            format!("--images has {images} images, --labels {n} rows"),
            "give the images of exactly the rows of --logits, in the same order",
        ));
    }
    Ok((input, pixels))
}

/// (every member row, the reference rows): the first `n_members` members, then the first
/// `n_non` non-members.
fn reference_rows(
    input: &AttackInput,
    (n_members, n_non): (usize, usize),
) -> Result<(Vec<usize>, Vec<usize>)> {
    let n = input.candidates();
    let (members, non): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| input.is_member[i]);
    if members.len() < n_members || non.len() < n_non {
        return Err(hinted(
            format!(
                "{} members and {} non-members, fewer than the {n_members} and {n_non} asked for",
                members.len(),
                non.len()
            ),
            "lower --reference or --reference-members",
        ));
    }
    let rows = members[..n_members].iter().chain(&non[..n_non]).copied().collect();
    Ok((members, rows))
}

/// The CHW pixels of `rows` (`numel` bytes each).
fn gather(pixels: &[u8], rows: &[usize], numel: usize) -> Vec<u8> {
    rows.iter().flat_map(|&r| pixels[r * numel..(r + 1) * numel].iter().copied()).collect()
}

/// The manifest's entry before its files are written: where the model came from and its
/// accuracy on the paper's members and non-members (from --logits).
fn entry_of(id: String, about: &ImportedModel, input: &AttackInput) -> ModelEntry {
    let accuracy = |member: bool| {
        let rows: Vec<usize> =
            (0..input.candidates()).filter(|&i| input.is_member[i] == member).collect();
        let right = rows
            .iter()
            .filter(|&&r| mia_core::posterior::argmax(input.target.row(0, r)) == input.labels[r])
            .count();
        super::decimal(right as f32 / rows.len().max(1) as f32)
    };
    ModelEntry {
        id,
        label: format!("{} ({})", about.model.arch, about.source),
        config: about.model.clone(),
        training_defense: serde_json::json!({ "imported": about.source, "sha256": about.source_sha256 }),
        train_acc: accuracy(true),
        test_acc: accuracy(false),
        attacks: Vec::new(),
        weights: FileRef::describe("", &[]),
        lira: None,
        shadow_outputs: None,
        shadows: 0,
    }
}

/// The imported model must give --logits on the reference images: the page recomputes them.
fn check_logits(
    args: &FromOutputs<'_>,
    about: &ImportedModel,
    weights: &[u8],
    sample: &ReferenceSample,
    input: &AttackInput,
    rows: &[usize],
) -> Result<()> {
    let model =
        about.model.load_bytes(weights.to_vec(), &mia_train::DeviceChoice::Flex.device()?)?;
    let got = logits_on(&model, about, rows.len(), sample.pixels.clone())?;
    let classes = about.model.num_classes;
    let diff = rows
        .iter()
        .zip(got.chunks(classes))
        .flat_map(|(&r, z)| input.target.row(0, r).iter().zip(z).map(|(a, b)| (a - b).abs()))
        .fold(0.0f32, f32::max);
    println!(
        "the imported model reproduces --logits on the {} reference images within {diff:.2e}",
        rows.len()
    );
    if diff.is_nan() || diff > args.logit_tolerance {
        return Err(hinted(
            format!(
                "the imported model's logits differ from --logits by up to {diff:.3e} (tolerance {:.0e})",
                args.logit_tolerance
            ),
            "check that --images are the rows of --logits in order, and the import's --mean, --std and --input",
        ));
    }
    Ok(())
}

/// Every attack on the paper's outputs, as `mia attack --logits` runs them.
fn attacks(input: &AttackInput, id: &str) -> Result<AttackReport> {
    let template = AttackReport {
        version: 1,
        source: id.to_string(),
        label: id.to_string(),
        dataset: None,
        model: None,
        defense: None,
        test_acc: None,
        train_acc: None,
        candidates: input.candidates(),
        members: input.is_member.iter().filter(|m| **m).count(),
        shadows: input.shadows.len(),
        queries: input.target.queries,
        query_note: None,
        population: input.population(),
        skipped: Vec::new(),
        attacks: Vec::new(),
        inference: None,
    };
    super::attack::attack_set(input, &AttackKind::all(), true, &AttackOptions::default(), template)
}
