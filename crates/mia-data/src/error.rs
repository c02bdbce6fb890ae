//! Errors of the data crate, each with a hint for the user.

use std::path::PathBuf;
use thiserror::Error;

/// What can go wrong reading, splitting or fetching data.
#[derive(Debug, Error)]
pub enum DataError {
    /// A required file is missing.
    #[error("missing dataset file {path}")]
    Missing {
        /// The path looked for.
        path: PathBuf,
        /// What to do.
        hint: String,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not what its format requires.
    #[error("corrupt or truncated file {path}: {reason}")]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An unknown dataset name.
    #[error("unknown dataset `{0}`")]
    UnknownDataset(String),
    /// A split cannot be drawn from the pool.
    #[error("cannot split {pool} examples: {reason}")]
    Split {
        /// Pool size.
        pool: usize,
        /// Why.
        reason: String,
    },
    /// A download failed.
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A downloaded or local file has the wrong checksum.
    #[error("checksum mismatch for {path}: expected md5 {expected}, got {actual}")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Expected md5.
        expected: String,
        /// Actual md5.
        actual: String,
    },
    /// Bad user-supplied option.
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// A suggestion for the user.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Missing { hint, .. } => hint.clone(),
            Self::Io { .. } => "check the path and its permissions".into(),
            Self::Corrupt { .. } => {
                "the file is damaged: delete it and run `mia data fetch <name> --dir DIR` again"
                    .into()
            }
            Self::UnknownDataset(_) => {
                "known datasets: cifar10, cifar100, mnist, fashion-mnist, folder, csv".into()
            }
            Self::Split { .. } => "lower --members, --non-members or --test".into(),
            Self::Download { url, .. } => format!(
                "are you offline? Download {url} by hand into the --dir folder and run the command again"
            ),
            Self::Checksum { .. } => "delete the file and download it again".into(),
            Self::Invalid(_) => "see `mia <command> --help` for the accepted values".into(),
        })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Corrupt { path: path.into(), reason: reason.into() }
    }
}
