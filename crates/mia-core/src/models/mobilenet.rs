//! MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
//! CVPR 2018) in its common CIFAR form: a stride-1 3×3 stem with 32 channels, the paper's
//! seven bottleneck stages (t, c, n, s) with the second stage's stride set to 1 for 32×32
//! inputs, a 1×1 conv to 1280 channels, global average pooling and a linear classifier.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::relu6;

use super::flatten;
use crate::InputSpec;

/// (expansion t, output channels c, repeats n, first stride s).
pub(super) const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

fn conv_bn(
    i: usize,
    o: usize,
    k: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> (Conv2d, BatchNorm) {
    let pad = k / 2;
    (
        Conv2dConfig::new([i, o], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_groups(groups)
            .with_bias(false)
            .init(device),
        BatchNormConfig::new(o).init(device),
    )
}

/// An inverted residual block: 1×1 expansion, 3×3 depthwise, linear 1×1 projection.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    expand: Option<(Conv2d, BatchNorm)>,
    depthwise: (Conv2d, BatchNorm),
    project: (Conv2d, BatchNorm),
    residual: bool,
}

impl InvertedResidual {
    fn new(i: usize, o: usize, stride: usize, t: usize, device: &Device) -> Self {
        let hidden = i * t;
        Self {
            expand: (t != 1).then(|| conv_bn(i, hidden, 1, 1, 1, device)),
            depthwise: conv_bn(hidden, hidden, 3, stride, hidden, device),
            project: conv_bn(hidden, o, 1, 1, 1, device),
            residual: stride == 1 && i == o,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let Some((conv, bn)) = &self.expand {
            h = relu6(bn.forward(conv.forward(h))); // [b, i*t, s, s]
        }
        h = relu6(self.depthwise.1.forward(self.depthwise.0.forward(h))); // [b, i*t, s/stride, ..]
        h = self.project.1.forward(self.project.0.forward(h)); // [b, o, s/stride, ..]
        if self.residual { h + x } else { h }
    }
}

/// See the module documentation.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    stem: (Conv2d, BatchNorm),
    blocks: Vec<InvertedResidual>,
    head: (Conv2d, BatchNorm),
    pool: AdaptiveAvgPool2d,
    dropout: Dropout,
    fc: Linear,
}

impl MobileNetV2 {
    /// Builds the network for `input` and `classes`, with `dropout` before the classifier.
    pub fn new(input: InputSpec, classes: usize, dropout: f64, device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut width = 32;
        for (t, c, n, s) in STAGES {
            for r in 0..n {
                blocks.push(InvertedResidual::new(width, c, if r == 0 { s } else { 1 }, t, device));
                width = c;
            }
        }
        Self {
            stem: conv_bn(input.channels, 32, 3, 1, 1, device),
            blocks,
            head: conv_bn(320, 1280, 1, 1, 1, device),
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(dropout).init(),
            fc: LinearConfig::new(1280, classes).init(device),
        }
    }

    /// `[b, c, h, w]` → `[b, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu6(self.stem.1.forward(self.stem.0.forward(x))); // [b, 32, h, w]
        for block in &self.blocks {
            x = block.forward(x); // [b, c, h/8 at the end, ..]
        }
        let x = relu6(self.head.1.forward(self.head.0.forward(x))); // [b, 1280, h/8, w/8]
        let x = flatten(self.pool.forward(x)); // [b, 1280]
        self.fc.forward(self.dropout.forward(x)) // [b, classes]
    }
}
