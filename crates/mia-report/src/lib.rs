//! MIA Lab reports. From the folders `mia attack` writes, [`report::write`] produces a
//! Markdown report and a self-contained HTML copy, a CSV of every metric, and the plots as SVG
//! ([`plots`], drawn with the small deterministic kit in [`svg`]) and PNG ([`png`], rendered
//! with the bundled font).

pub mod plots;
pub mod png;
mod render;
pub mod report;
pub mod runs;
mod sections;
pub mod svg;

pub use report::write;
pub use runs::{ReportOptions, RunResults};

use std::path::PathBuf;

/// What can go wrong while writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A run folder without readable attack results.
    #[error("cannot read attack results in {path}: {reason}")]
    Input {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The output folder cannot be written.
    #[error("cannot write {path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An SVG could not be rendered.
    #[error("cannot render a plot: {0}")]
    Render(String),
}

impl ReportError {
    /// A suggestion for the user.
    pub fn hint(&self) -> String {
        match self {
            Self::Input { .. } => {
                "run `mia attack --run RUN` first; it writes attacks.json there".into()
            }
            Self::Io { .. } => "check the --out folder and free disk space".into(),
            Self::Render(_) => "pass --no-png to write the SVG plots only".into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io { path: path.into(), reason: e.to_string() }
    }
}
