//! The CNN of ML-Leaks (Salem et al., "ML-Leaks: Model and Data Independent Membership
//! Inference Attacks and Defenses on Machine Learning Models", NDSS 2019): two 5×5 conv layers
//! (32 and 64 filters) each followed by 2×2 max-pooling, a 128-unit hidden layer, softmax
//! output. ReLU activations.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;

use super::flatten;
use crate::InputSpec;

/// See the module documentation.
#[derive(Module, Debug)]
pub struct MlLeaksCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    dropout: Dropout,
    fc2: Linear,
    relu: Relu,
}

impl MlLeaksCnn {
    /// Builds the network for `input` and `classes`, with `dropout` before the classifier.
    pub fn new(input: InputSpec, classes: usize, dropout: f64, device: &Device) -> Self {
        // Valid 5×5 convolutions: h → h-4 → pool → (h-4)/2 - 4 → pool.
        let side = |s: usize| ((s - 4) / 2 - 4) / 2;
        let flat = 64 * side(input.height) * side(input.width);
        Self {
            conv1: Conv2dConfig::new([input.channels, 32], [5, 5]).init(device),
            conv2: Conv2dConfig::new([32, 64], [5, 5]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(flat, 128).init(device),
            dropout: DropoutConfig::new(dropout).init(),
            fc2: LinearConfig::new(128, classes).init(device),
            relu: Relu::new(),
        }
    }

    /// `[b, c, h, w]` → `[b, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.relu.forward(self.conv1.forward(x))); // [b, 32, (h-4)/2, ..]
        let x = self.pool.forward(self.relu.forward(self.conv2.forward(x))); // [b, 64, s, s]
        let x = self.relu.forward(self.fc1.forward(flatten(x))); // [b, 128]
        self.fc2.forward(self.dropout.forward(x)) // [b, classes]
    }
}
