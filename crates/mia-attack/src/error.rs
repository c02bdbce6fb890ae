//! Errors of the attack crate, each with a hint for the user.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong while loading signals or running attacks.
#[derive(Debug, Error)]
pub enum AttackError {
    /// A file cannot be read or written.
    #[error("cannot read or write {path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Arrays that do not fit together.
    #[error("inconsistent attack inputs: {0}")]
    Shape(String),
    /// A core computation failed.
    #[error(transparent)]
    Core(#[from] mia_core::CoreError),
    /// An attack option out of its range.
    #[error("{0}")]
    Option(String),
    /// An unknown attack name.
    #[error("unknown attack `{0}`")]
    UnknownAttack(String),
    /// SAMIA without the models' sensitivity.
    #[error(
        "attack `samia` needs the sensitivity of the target and of every shadow, computed from \
         their weights (not available for .npy input or through an inference-time defense)"
    )]
    NeedsSensitivity,
    /// The attack needs shadow models and there are none (or too few).
    #[error("attack `{attack}` needs {need}")]
    NeedsShadows {
        /// Attack name.
        attack: String,
        /// What is missing.
        need: String,
    },
}

impl AttackError {
    /// A suggestion for the user.
    pub fn hint(&self) -> String {
        match self {
            Self::Io { .. } => {
                "check the path; `mia train` and `mia shadows` write these files".into()
            }
            Self::Core(mia_core::CoreError::DefenseContext(_)) => {
                "HAMP and HyGA-ANI need the models' random-input logits and gradient norms, \
                 which `mia attack --run` with shadows computes"
                    .into()
            }
            Self::Core(mia_core::CoreError::BadDefense { .. }) => {
                "a defense is `name[:key=value,...]`, chained with `+`; see the inference-defense \
                  table in docs/cli.md or `mia attack --help`"
                    .into()
            }
            Self::Option(_) | Self::Core(mia_core::CoreError::Parameter(_)) => {
                "see `mia attack --help` for each option's range and default".into()
            }
            Self::Shape(_) | Self::Core(_) => {
                "logits are [N, C] or [K, N, C] float32, labels [N] int64, membership [N] bool, \
                 shadow logits [S, N, C] or [S, K, N, C], shadow keep [S, N] bool"
                    .into()
            }
            Self::UnknownAttack(_) => "see `mia attack --help` for the attack names".into(),
            Self::NeedsSensitivity => {
                "attack a run directory with shadows: `mia attack --run RUN --attacks samia` \
                 computes the sensitivity from the target's and the shadows' weights"
                    .into()
            }
            Self::NeedsShadows { .. } => {
                "train shadow models first: `mia shadows --run RUN --count 16`".into()
            }
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io { path: path.into(), reason: e.to_string() }
    }
}
