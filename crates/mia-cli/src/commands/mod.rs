//! One module per subcommand, and what several share: errors with a hint, reading a bundle.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mia_core::bundle::{FileRef, Manifest};

pub mod attack;
pub mod bench;
pub mod bundle_write;
pub mod data;
pub mod export;
pub mod export_imported;
pub mod generate;
pub mod import;
pub mod index;
pub mod lab;
pub mod prepare_lab;
pub mod report;
pub mod shadows;
pub mod shrink;
pub mod train;

/// An error raised by the CLI itself, with a hint.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// The f32's shortest decimal as an f64 (0.53, not 0.5299999713897705), as `summary.json`
/// shows it.
pub fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Builds a [`Hinted`] error.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hinted { message: message.into(), hint: hint.into() }.into()
}

/// Reads `DIR/manifest.json` of a bundle `mia export` wrote: its path and the parsed manifest.
pub fn read_manifest(dir: &Path) -> Result<(PathBuf, Manifest)> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        hinted(
            format!("cannot read {}: {e}", path.display()),
            "pass --bundle with a folder written by `mia export`",
        )
    })?;
    let manifest = Manifest::parse(&text)?;
    Ok((path, manifest))
}

/// Reads a bundle's file and checks it against its size and hash in the manifest.
pub fn read_checked(dir: &Path, f: &FileRef) -> Result<Vec<u8>> {
    let bytes = std::fs::read(dir.join(&f.path))
        .with_context(|| format!("reading {}", dir.join(&f.path).display()))?;
    f.verify(&bytes).map_err(|_| {
        hinted(
            format!("{} does not match its size and hash in manifest.json", f.path),
            "export the bundle again with `mia export`",
        )
    })?;
    Ok(bytes)
}
