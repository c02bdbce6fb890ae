//! ResNet-20 for CIFAR-sized inputs (He et al., "Deep Residual Learning for Image
//! Recognition", CVPR 2016, §4.2): a 3×3 stem with 16 channels, three stages of three basic
//! blocks (16, 32, 64 channels; stages 2 and 3 halve the resolution), global average pooling
//! and a linear classifier. Down-sampling shortcuts are 1×1 convolutions with batch norm
//! (the paper's option B).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;

use super::flatten;
use crate::InputSpec;

fn conv3(i: usize, o: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([i, o], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// A basic residual block: two 3×3 convs with batch norm.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<(Conv2d, BatchNorm)>,
    relu: Relu,
}

impl BasicBlock {
    fn new(i: usize, o: usize, stride: usize, device: &Device) -> Self {
        let shortcut = (stride != 1 || i != o).then(|| {
            (
                Conv2dConfig::new([i, o], [1, 1])
                    .with_stride([stride, stride])
                    .with_bias(false)
                    .init(device),
                BatchNormConfig::new(o).init(device),
            )
        });
        Self {
            conv1: conv3(i, o, stride, device),
            bn1: BatchNormConfig::new(o).init(device),
            conv2: conv3(o, o, 1, device),
            bn2: BatchNormConfig::new(o).init(device),
            shortcut,
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self.relu.forward(self.bn1.forward(self.conv1.forward(x.clone()))); // [b, o, h/s, w/s]
        let out = self.bn2.forward(self.conv2.forward(out)); // [b, o, h/s, w/s]
        let skip = match &self.shortcut {
            Some((conv, bn)) => bn.forward(conv.forward(x)), // [b, o, h/s, w/s]
            None => x,
        };
        self.relu.forward(out + skip)
    }
}

/// See the module documentation.
#[derive(Module, Debug)]
pub struct ResNet20 {
    stem: Conv2d,
    bn: BatchNorm,
    blocks: Vec<BasicBlock>,
    pool: AdaptiveAvgPool2d,
    dropout: Dropout,
    fc: Linear,
    relu: Relu,
}

impl ResNet20 {
    /// Builds the network for `input` and `classes`, with `dropout` before the classifier.
    pub fn new(input: InputSpec, classes: usize, dropout: f64, device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut width = 16;
        for (stage, out) in [16, 32, 64].into_iter().enumerate() {
            for b in 0..3 {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(width, out, stride, device));
                width = out;
            }
        }
        Self {
            stem: conv3(input.channels, 16, 1, device),
            bn: BatchNormConfig::new(16).init(device),
            blocks,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(dropout).init(),
            fc: LinearConfig::new(64, classes).init(device),
            relu: Relu::new(),
        }
    }

    /// `[b, c, h, w]` → `[b, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.relu.forward(self.bn.forward(self.stem.forward(x))); // [b, 16, h, w]
        for block in &self.blocks {
            x = block.forward(x); // [b, 16|32|64, h|h/2|h/4, ..]
        }
        let x = flatten(self.pool.forward(x)); // [b, 64]
        self.fc.forward(self.dropout.forward(x)) // [b, classes]
    }
}
