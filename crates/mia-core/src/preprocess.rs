//! The one preprocessing path shared by the trainer and the browser: `u8` pixels in CHW order
//! become normalised `f32` tensors, `(x/255 - mean[c]) / std[c]`.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Shape of one model input: channels, height, width. Tabular data is `1 × 1 × features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Channels (1 for grayscale, 3 for RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels (feature count for tabular data).
    pub width: usize,
}

impl InputSpec {
    /// A new input spec.
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Self { channels, height, width }
    }

    /// Number of values in one example.
    pub fn numel(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl std::fmt::Display for InputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// Per-channel normalisation applied after scaling pixels to `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

impl Normalization {
    /// CIFAR-10 training-set statistics.
    pub fn cifar10() -> Self {
        Self { mean: vec![0.4914, 0.4822, 0.4465], std: vec![0.2470, 0.2435, 0.2616] }
    }
    /// CIFAR-100 training-set statistics.
    pub fn cifar100() -> Self {
        Self { mean: vec![0.5071, 0.4865, 0.4409], std: vec![0.2673, 0.2564, 0.2762] }
    }
    /// MNIST training-set statistics.
    pub fn mnist() -> Self {
        Self { mean: vec![0.1307], std: vec![0.3081] }
    }
    /// Fashion-MNIST training-set statistics.
    pub fn fashion_mnist() -> Self {
        Self { mean: vec![0.2860], std: vec![0.3530] }
    }
    /// Maps `[0, 1]` to `[-1, 1]` on every channel (users' image folders).
    pub fn symmetric(channels: usize) -> Self {
        Self { mean: vec![0.5; channels], std: vec![0.5; channels] }
    }
    /// No change (tabular features are used as they are).
    pub fn identity() -> Self {
        Self { mean: vec![0.0], std: vec![1.0] }
    }

    fn channel(&self, c: usize) -> (f32, f32) {
        let i = c.min(self.mean.len().saturating_sub(1));
        (self.mean.get(i).copied().unwrap_or(0.0), self.std.get(i).copied().unwrap_or(1.0))
    }

    /// Appends the normalised values of one CHW `u8` image to `out`.
    pub fn push_u8(&self, pixels: &[u8], input: InputSpec, out: &mut Vec<f32>) {
        let plane = input.height * input.width;
        for (c, chunk) in pixels.chunks(plane.max(1)).enumerate() {
            let (m, s) = self.channel(c);
            out.extend(chunk.iter().map(|&p| (f32::from(p) / 255.0 - m) / s));
        }
    }

    /// Appends normalised raw feature values (already real-valued) to `out`.
    pub fn push_f32(&self, values: &[f32], out: &mut Vec<f32>) {
        let (m, s) = self.channel(0);
        out.extend(values.iter().map(|&v| (v - m) / s));
    }
}

/// Builds a `[n, c, h, w]` tensor from flat normalised values.
pub fn batch_tensor(
    values: Vec<f32>,
    n: usize,
    input: InputSpec,
    device: &Device,
) -> Result<Tensor<4>, CoreError> {
    if values.len() != n * input.numel() {
        return Err(CoreError::Shape(format!("{} values for {n} inputs of {input}", values.len())));
    }
    let data = TensorData::new(values, [n, input.channels, input.height, input.width]);
    Ok(Tensor::from_data(data, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_each_channel_with_its_statistics() {
        let n = Normalization { mean: vec![0.5, 0.0], std: vec![0.5, 1.0] };
        let mut out = Vec::new();
        n.push_u8(&[255, 0, 255, 0], InputSpec::new(2, 1, 2), &mut out);
        assert_eq!(out, vec![1.0, -1.0, 1.0, 0.0]);
    }
}
