//! The in-memory dataset every reader produces (the dispatch from a dataset name to its
//! reader is in `kind`).

use std::path::Path;

use mia_core::{InputSpec, Normalization};

use crate::DataError;

/// Example storage: raw pixels or real-valued features.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// `u8` pixels, each example CHW, concatenated.
    U8(Vec<u8>),
    /// Real-valued features, concatenated.
    F32(Vec<f32>),
}

/// A labelled dataset held in memory: the pool MIA experiments draw from.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Dataset name (e.g. `cifar10`).
    pub name: String,
    /// Shape of one example.
    pub input: InputSpec,
    /// Class names, one per class.
    pub class_names: Vec<String>,
    /// The examples.
    pub samples: Samples,
    /// One label per example.
    pub labels: Vec<u32>,
    /// Normalisation the models use for this dataset.
    pub normalization: Normalization,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Raw pixels of example `i` (None for tabular data).
    pub fn pixels(&self, i: usize) -> Option<&[u8]> {
        let n = self.input.numel();
        match &self.samples {
            Samples::U8(v) => v.get(i * n..(i + 1) * n),
            Samples::F32(_) => None,
        }
    }

    /// Appends the normalised values of example `i` to `out`.
    pub fn push_normalized(&self, i: usize, out: &mut Vec<f32>) {
        let n = self.input.numel();
        match &self.samples {
            Samples::U8(v) => self.normalization.push_u8(&v[i * n..(i + 1) * n], self.input, out),
            Samples::F32(v) => self.normalization.push_f32(&v[i * n..(i + 1) * n], out),
        }
    }

    /// Examples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Concatenates two datasets of the same kind (e.g. the official train and test files).
    pub(crate) fn append(&mut self, other: Dataset) {
        match (&mut self.samples, other.samples) {
            (Samples::U8(a), Samples::U8(b)) => a.extend(b),
            (Samples::F32(a), Samples::F32(b)) => a.extend(b),
            _ => unreachable!("datasets of one reader share a sample type"),
        }
        self.labels.extend(other.labels);
    }

    /// Checks labels are in range and the sample count matches the labels.
    pub(crate) fn validate(self, path: &Path) -> Result<Self, DataError> {
        let n = self.input.numel();
        let len = match &self.samples {
            Samples::U8(v) => v.len(),
            Samples::F32(v) => v.len(),
        };
        if len != self.labels.len() * n {
            return Err(DataError::corrupt(path, "sample and label counts differ"));
        }
        if let Some(bad) = self.labels.iter().find(|&&l| l as usize >= self.num_classes()) {
            return Err(DataError::corrupt(
                path,
                format!("label {bad} is out of range for {} classes", self.num_classes()),
            ));
        }
        Ok(self)
    }
}

/// Reads a whole file, mapping a missing file to [`DataError::Missing`].
pub(crate) fn read_file(path: &Path, dataset: &str) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing {
                path: path.to_path_buf(),
                hint: format!(
                    "run `mia data fetch {dataset} --dir DIR` and pass that DIR as --data-dir"
                ),
            }
        } else {
            DataError::io(path, e)
        }
    })
}
