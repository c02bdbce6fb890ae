//! Multi-layer perceptron for tabular data, as used on Purchase-100 and Texas-100 by Nasr et
//! al. (CCS 2018) and RelaxLoss: hidden layers 1024-512-256-128 with tanh activations.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, Tanh};
use burn::prelude::*;

use super::flatten;
use crate::InputSpec;

/// See the module documentation.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    dropout: Dropout,
    out: Linear,
    act: Tanh,
}

impl Mlp {
    /// Hidden-layer widths.
    pub const HIDDEN: [usize; 4] = [1024, 512, 256, 128];

    /// Builds the network for `input` (flattened) and `classes`.
    pub fn new(input: InputSpec, classes: usize, dropout: f64, device: &Device) -> Self {
        let mut width = input.numel();
        let hidden = Self::HIDDEN
            .iter()
            .map(|&h| {
                let l = LinearConfig::new(width, h).init(device);
                width = h;
                l
            })
            .collect();
        Self {
            hidden,
            dropout: DropoutConfig::new(dropout).init(),
            out: LinearConfig::new(width, classes).init(device),
            act: Tanh::new(),
        }
    }

    /// `[b, c, h, w]` → `[b, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = flatten(x); // [b, features]
        for layer in &self.hidden {
            x = self.act.forward(layer.forward(x)); // [b, width]
        }
        self.out.forward(self.dropout.forward(x)) // [b, classes]
    }
}
