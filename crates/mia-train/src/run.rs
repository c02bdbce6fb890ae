//! Reading and writing the run directory's files (JSON, npy, burnpack), each written
//! atomically ([`write_atomic`]), so a killed process leaves complete files only. Which file
//! lives where is [`mia_core::layout`]'s to say.

use std::path::Path;

use mia_core::npy::NpyArray;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TrainError;

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
