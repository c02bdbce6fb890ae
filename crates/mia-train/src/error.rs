//! Errors of the trainer, each with a hint for the user.

use std::path::PathBuf;
use thiserror::Error;

/// What can go wrong while training.
#[derive(Debug, Error)]
pub enum TrainError {
    /// Data could not be read or split.
    #[error(transparent)]
    Data(#[from] mia_data::DataError),
    /// A model problem.
    #[error(transparent)]
    Core(#[from] mia_core::CoreError),
    /// A bad configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A device is not available.
    #[error("device `{device}` is not available: {reason}")]
    Device {
        /// The device asked for.
        device: String,
        /// Why.
        reason: String,
    },
    /// File-system trouble in the run directory.
    #[error("cannot write or read {path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A backend failure (e.g. reading a tensor back).
    #[error("backend error: {0}")]
    Backend(String),
    /// Resuming a run with another configuration.
    #[error("cannot resume {path}: {reason}")]
    Resume {
        /// The run directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A shadow folder holds shadows made with other options.
    #[error(
        "the shadows in {path} were made with other options (queries, population, defense or target split) or by another version of mia"
    )]
    ShadowMismatch {
        /// The shadow folder.
        path: PathBuf,
    },
    /// The run was stopped by its observer (e.g. Ctrl-C) after a checkpoint.
    #[error("training interrupted after epoch {epoch}")]
    Interrupted {
        /// Last completed epoch (1-based).
        epoch: usize,
    },
    /// DP-SGD asked for with no noise.
    #[error(
        "DP-SGD with --dp-noise 0 adds no noise: ε is infinite and the run promises no privacy"
    )]
    NoNoise,
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}: the loss is {loss}")]
    Diverged {
        /// Epoch.
        epoch: usize,
        /// Loss value.
        loss: f32,
    },
}

impl TrainError {
    /// A suggestion for the user.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Data(e) => return e.hint(),
            Self::Core(mia_core::CoreError::Parameter(_)) => {
                "see `mia train --help` and the defense table in docs/cli.md for each parameter's range"
                    .into()
            }
            Self::Core(_) => "check --model against the dataset's input shape".into(),
            Self::Config(_) => "see `mia train --help` and the config file example in docs/cli.md".into(),
            Self::Device { device, .. } if device == "cuda" => {
                "build with `cargo build --release --features cuda` on a machine with CUDA".into()
            }
            Self::Device { .. } => {
                "use --device cpu; for wgpu without a GPU install a software Vulkan driver (mesa-vulkan-drivers)".into()
            }
            Self::Io { .. } => "check the --out directory and free disk space".into(),
            Self::Backend(_) => "try --device cpu".into(),
            Self::Resume { .. } => "resume with the same options, or start a new run with another --out".into(),
            Self::Diverged { .. } => "lower --lr".into(),
            Self::NoNoise => "pass --dp-noise σ > 0 (e.g. 1) or --target-epsilon, or leave out \
                              --dp-clip to train without DP-SGD"
                .into(),
            Self::ShadowMismatch { .. } => {
                "repeat the options of the first `mia shadows` call (see pool.json there), or pass another --dir".into()
            }
            Self::Interrupted { .. } => "run the same command with --resume to continue".into(),
        })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io { path: path.into(), reason: e.to_string() }
    }
}
