//! The run directory, the hand-off between the trainer and the attack tools:
//!
//! | file | content |
//! |---|---|
//! | `config.json` | the [`crate::TrainConfig`] |
//! | `model.json` | the [`mia_core::ModelConfig`] (architecture, input, classes, dropout) |
//! | `split.json` | the [`mia_data::Split`]: who is a member, with a hash |
//! | `model.bpk` | final weights (burnpack) |
//! | `metrics.jsonl` | one [`crate::EpochMetrics`] per line |
//! | `summary.json` | the [`crate::Summary`] |
//! | `signals/indices.npy` | `int64 [N]` pool indices: the members, then the non-members |
//! | `signals/logits.npy` | `float32 [N, C]` target logits on those examples |
//! | `signals/labels.npy` | `int64 [N]` true labels |
//! | `signals/is_member.npy` | `bool [N]` membership |
//! | `checkpoint/eNNNN/` | `model.bpk`, `optim.bpk`, `state.json` after epoch NNNN (for `--resume`; the newest two are kept) |
//!
//! Every file is written atomically ([`write_atomic`]), so a killed process leaves complete
//! files only.

use std::path::{Path, PathBuf};

use mia_core::npy::NpyArray;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TrainError;

/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// The run directory.
    pub root: PathBuf,
}

impl RunPaths {
    /// Paths under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    /// `model.json`.
    pub fn model_config(&self) -> PathBuf {
        self.root.join("model.json")
    }
    /// `split.json`.
    pub fn split(&self) -> PathBuf {
        self.root.join("split.json")
    }
    /// `model.bpk`.
    pub fn weights(&self) -> PathBuf {
        self.root.join("model.bpk")
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// `summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }
    /// `signals/`.
    pub fn signals(&self) -> PathBuf {
        self.root.join("signals")
    }
    /// `checkpoint/`.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint")
    }
}

/// Writes pretty JSON atomically (write to a temporary file, then rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::io(path, e))?;
    write_atomic(path, text.as_bytes())
}

/// Reads JSON.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::io(path, e))
}

/// Writes bytes atomically ([`mia_core::files::write_atomic`]): a killed process never
/// leaves a truncated file, and shards writing the same file at once each rename a complete
/// copy.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    mia_core::files::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Writes a `.npy` file.
pub fn write_npy(path: &Path, array: &NpyArray) -> Result<(), TrainError> {
    write_atomic(path, &array.to_bytes())
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    Ok(NpyArray::from_bytes(&bytes)?)
}
