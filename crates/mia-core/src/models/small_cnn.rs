//! The small, fast CNN used by the browser demo: two 3×3 conv blocks (16 and 32 channels,
//! each followed by 2×2 max-pooling) and a 128-unit dense layer.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;

use super::flatten;
use crate::InputSpec;

/// See the module documentation.
#[derive(Module, Debug)]
pub struct SmallCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    dropout: Dropout,
    fc2: Linear,
    relu: Relu,
}

impl SmallCnn {
    /// Builds the network for `input` and `classes`, with `dropout` before the classifier.
    pub fn new(input: InputSpec, classes: usize, dropout: f64, device: &Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Same).init(device)
        };
        let flat = 32 * (input.height / 4) * (input.width / 4);
        Self {
            conv1: conv(input.channels, 16),
            conv2: conv(16, 32),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(flat, 128).init(device),
            dropout: DropoutConfig::new(dropout).init(),
            fc2: LinearConfig::new(128, classes).init(device),
            relu: Relu::new(),
        }
    }

    /// `[b, c, h, w]` → `[b, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc2.forward(self.dropout.forward(self.features(x))) // [b, classes]
    }

    /// Width of [`Self::features`] (128).
    pub fn feature_dim(&self) -> usize {
        self.fc1.weight.dims()[1]
    }

    /// `[b, c, h, w]` → `[b, 128]`: the activations the classifier layer reads.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.relu.forward(self.conv1.forward(x))); // [b, 16, h/2, w/2]
        let x = self.pool.forward(self.relu.forward(self.conv2.forward(x))); // [b, 32, h/4, w/4]
        self.relu.forward(self.fc1.forward(flatten(x))) // [b, 128]
    }
}
