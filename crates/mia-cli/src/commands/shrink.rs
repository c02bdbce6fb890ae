//! `mia shrink`: makes an exported bundle smaller in place, without the runs it was exported
//! from: each model's weights at f16 where that does not move the reference sample's attack
//! AUCs (by more than [`F16_MAX_AUC_SHIFT`]), and the reference sample in the current,
//! residual-coded format (`MIAREF02`). What `mia export` writes for a new bundle.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mia_core::bundle::{FileRef, Manifest, ReferenceSample};

use super::bundle_write::{F16_MAX_AUC_SHIFT, REFERENCE_FILE, half_if_harmless, weights_file};
use super::{read_checked, read_manifest};

/// Arguments of `mia shrink`.
#[derive(Args)]
pub struct ShrinkArgs {
    /// The bundle folder (written by `mia export`).
    #[arg(long)]
    bundle: PathBuf,
}

/// Runs `mia shrink`.
pub fn run(args: ShrinkArgs) -> Result<()> {
    let dir = &args.bundle;
    let (path, mut manifest) = read_manifest(dir)?;
    let stored = read_checked(dir, &manifest.reference.file)?;
    let reference = ReferenceSample::decode(&stored, manifest.input)?;
    let mut replaced = Vec::new();
    let encoded = reference.encode();
    if ReferenceSample::decode(&encoded, manifest.input)? != reference {
        anyhow::bail!(
            "the reference sample does not survive its encoding (a bug: please report it)"
        );
    }
    if encoded[..8] != stored[..8] {
        let name = REFERENCE_FILE.to_string();
        mia_core::files::write_atomic(&dir.join(&name), &encoded)?;
        replaced.push(
            std::mem::replace(&mut manifest.reference.file, FileRef::describe(&name, &encoded))
                .path,
        );
        println!("reference sample: re-encoded (MIAREF02), {} bytes", encoded.len());
    }
    for m in &mut manifest.models {
        let before = read_checked(dir, &m.weights)?;
        let size = before.len();
        let (bytes, half, shift) =
            half_if_harmless(&m.config, before, &reference, &manifest.normalization)?;
        if !half {
            println!(
                "{}: f16 moves an AUC by {shift:.4} (> {F16_MAX_AUC_SHIFT}): kept as it is",
                m.id
            );
            continue;
        }
        // A new file name, so that the manifest never points at a file being rewritten.
        let name = weights_file(&m.id, true);
        if name != m.weights.path {
            mia_core::files::write_atomic(&dir.join(&name), &bytes)?;
            replaced.push(m.weights.path.clone());
        }
        m.weights = FileRef::describe(&name, &bytes);
        println!(
            "{}: {size} → {} bytes (f16), loss/confidence AUC moved by {shift:.4}",
            m.id,
            bytes.len()
        );
    }
    let text = serde_json::to_string_pretty(&manifest)?;
    Manifest::parse(&text)?;
    mia_core::files::write_atomic(&path, text.as_bytes())?;
    for old in replaced {
        // Only after the manifest points at the new files.
        std::fs::remove_file(dir.join(&old)).with_context(|| format!("removing {old}"))?;
    }
    Ok(())
}
