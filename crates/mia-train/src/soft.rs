//! Soft targets: the posteriors a distilled student (or SELENA's final model) trains
//! against instead of the labels, and the loss `T² · CE(softmax(z/T), targets)` the epoch loop
//! computes with them.

use std::collections::HashMap;

use burn::prelude::*;
use mia_core::defense::soft_cross_entropy_per_example;
use mia_core::posterior;

use crate::TrainError;

/// The teacher's posteriors at temperature `T` on the transfer set, looked up by dataset
/// index.
pub(crate) struct SoftTargets {
    temperature: f32,
    classes: usize,
    row_of: HashMap<usize, usize>,
    probs: Vec<f32>,
}

impl SoftTargets {
    /// Softmax of `logits / T` (row-major `[n, classes]`) for the examples `indices`.
    pub(crate) fn new(logits: &[f32], indices: &[usize], classes: usize, temperature: f64) -> Self {
        let t = temperature as f32;
        let probs = logits
            .chunks(classes)
            .flat_map(|row| posterior::softmax(&row.iter().map(|z| z / t).collect::<Vec<_>>()))
            .collect();
        let row_of = indices.iter().enumerate().map(|(r, &i)| (i, r)).collect();
        Self { temperature: t, classes, row_of, probs }
    }

    /// Posteriors given as they are (row-major `[n, classes]`, temperature 1) for the examples
    /// `indices`: SELENA's Split-AI outputs.
    pub(crate) fn from_probs(probs: Vec<f32>, indices: &[usize], classes: usize) -> Self {
        let row_of = indices.iter().enumerate().map(|(r, &i)| (i, r)).collect();
        Self { temperature: 1.0, classes, row_of, probs }
    }

    /// The student's loss on a batch of the transfer set: `T² · CE(softmax(z/T), targets)`,
    /// averaged; shape `[1]`.
    pub(crate) fn loss(
        &self,
        logits: Tensor<2>,
        chunk: &[usize],
        device: &Device,
    ) -> Result<Tensor<1>, TrainError> {
        let c = self.classes;
        let mut targets = Vec::with_capacity(chunk.len() * c);
        for i in chunk {
            let r = self.row_of.get(i).ok_or_else(|| {
                TrainError::Backend(format!("example {i} is not in the transfer set"))
            })?;
            targets.extend_from_slice(&self.probs[r * c..(r + 1) * c]);
        }
        let targets = Tensor::<2>::from_data(TensorData::new(targets, [chunk.len(), c]), device);
        let t = self.temperature;
        Ok(soft_cross_entropy_per_example(logits / t, targets).mean() * (t * t))
    }
}
