//! Writing a web bundle's files, whatever the models came from (`mia export --run` from run
//! directories, `mia export --model` from a model trained elsewhere; `mia shrink` re-stores
//! weights): weights at f16 where harmless, each model's shadow outputs and LiRA statistics,
//! the manifest's attack summaries with the page's reference AUCs and thresholds, and the
//! manifest itself, written last.

use std::path::Path;

use anyhow::{Context, Result};
use mia_attack::{AttackInput, AttackReport};
use mia_core::ModelConfig;
use mia_core::bundle::{
    AttackSummary, BrowserAttack, FORMAT_VERSION, FileRef, LiraStats, Manifest, MembersIndexEntry,
    ModelEntry, ReferenceEntry, ReferenceSample, ShadowOutputs,
};
use mia_core::lira;
use mia_core::metrics;
use mia_core::preprocess::Normalization;
use mia_train::DeviceChoice;

use super::hinted;

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

/// What a bundle says of its data.
pub struct BundleAbout {
    pub dataset: String,
    pub class_names: Vec<String>,
    pub input: mia_core::InputSpec,
    pub normalization: Normalization,
}

/// Where a bundle goes and what its manifest says of its making.
pub struct Destination<'a> {
    pub out: &'a Path,
    pub provenance: &'a str,
    pub citation: Option<&'a str>,
    /// Reference examples (for the summary line).
    pub reference: usize,
}

/// Writes `manifest.json` last (after every file it names) and says what was written.
pub(super) fn write_manifest(
    to: &Destination<'_>,
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
        provenance: to.provenance.to_string(),
        citation: to.citation.map(str::to_string),
        members_index,
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    Manifest::parse(&text)?;
    write(&to.out.join("manifest.json"), text.as_bytes())?;
    let total: u64 = std::fs::read_dir(to.out)?
        .flatten()
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .sum();
    println!(
        "wrote {} models and {} reference examples to {} ({:.1} MB)",
        manifest.models.len(),
        to.reference,
        to.out.display(),
        total as f64 / 1e6
    );
    Ok(())
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
