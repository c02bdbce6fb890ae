//! VGG-16 with batch normalisation (Simonyan & Zisserman, ICLR 2015; BN as in the common
//! CIFAR adaptation): thirteen 3×3 conv layers in five blocks (64, 128, 256, 512, 512), a
//! 2×2 max-pool after each block while the feature map is at least 2×2, global average
//! pooling and one linear classifier.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;

use super::flatten;
use crate::InputSpec;

/// Channels per conv layer; `0` marks a max-pool.
pub(super) const CFG: [usize; 18] =
    [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];

/// See the module documentation.
#[derive(Module, Debug)]
pub struct Vgg16Bn {
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm>,
    /// After which conv layer (index) a pool follows.
    pool_after: Vec<usize>,
    pool: MaxPool2d,
    gap: AdaptiveAvgPool2d,
    dropout: Dropout,
    fc: Linear,
    relu: Relu,
}

impl Vgg16Bn {
    /// Builds the network for `input` and `classes`, with `dropout` before the classifier.
    pub fn new(input: InputSpec, classes: usize, dropout: f64, device: &Device) -> Self {
        let (mut convs, mut bns, mut pool_after) = (Vec::new(), Vec::new(), Vec::new());
        let (mut width, mut side) = (input.channels, input.height.min(input.width));
        for &c in &CFG {
            if c == 0 {
                if side >= 2 {
                    pool_after.push(convs.len() - 1);
                    side /= 2;
                }
                continue;
            }
            convs.push(
                Conv2dConfig::new([width, c], [3, 3])
                    .with_padding(PaddingConfig2d::Same)
                    .init(device),
            );
            bns.push(BatchNormConfig::new(c).init(device));
            width = c;
        }
        Self {
            convs,
            bns,
            pool_after,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(dropout).init(),
            fc: LinearConfig::new(512, classes).init(device),
            relu: Relu::new(),
        }
    }

    /// `[b, c, h, w]` → `[b, classes]`.
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for (i, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            x = self.relu.forward(bn.forward(conv.forward(x))); // [b, c_i, s, s]
            if self.pool_after.contains(&i) {
                x = self.pool.forward(x); // [b, c_i, s/2, s/2]
            }
        }
        let x = flatten(self.gap.forward(x)); // [b, 512]
        self.fc.forward(self.dropout.forward(x)) // [b, classes]
    }
}
