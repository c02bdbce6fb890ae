//! Errors of the core crate.

use thiserror::Error;

/// What can go wrong in wasm-safe core code.
#[derive(Debug, Error)]
pub enum CoreError {
    /// A model cannot be built for the requested input.
    #[error("model {arch} cannot take input {input}: {reason}")]
    BadModelInput {
        /// Architecture name.
        arch: String,
        /// Input description.
        input: String,
        /// Why.
        reason: String,
    },
    /// An unknown architecture name.
    #[error("unknown model architecture `{0}`")]
    UnknownArchitecture(String),
    /// The weights do not decode into the architecture.
    #[error("weights do not match the {arch} architecture: {reason}")]
    BadWeights {
        /// Architecture name.
        arch: String,
        /// Decoder message.
        reason: String,
    },
    /// A malformed `.npy` buffer.
    #[error("invalid .npy data: {0}")]
    Npy(String),
    /// A shape or length mismatch.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An inference-time defense spec that does not parse or has out-of-range parameters.
    #[error("bad inference defense `{spec}`: {reason}")]
    BadDefense {
        /// The spec as given.
        spec: String,
        /// Why.
        reason: String,
    },
    /// A web bundle that does not match its manifest or this version.
    #[error("bundle: {0}")]
    Bundle(String),
    /// An attack parameter out of its range.
    #[error("bad attack parameter: {0}")]
    Parameter(String),
    /// A defense lacks per-model context it needs (reference outputs, surrogate, gradients).
    #[error("inference defense: {0}")]
    DefenseContext(String),
}
