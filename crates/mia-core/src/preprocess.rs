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

/// One deterministic augmented query of an image: an optional horizontal flip, then a shift by
/// `(dy, dx)` pixels with zero fill. LiRA queries a model on several of these and label-only
/// attacks count how many of them it still classifies correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Mirror left-right first.
    pub flip: bool,
    /// Rows to shift down (negative: up).
    pub dy: i32,
    /// Columns to shift right (negative: left).
    pub dx: i32,
}

/// The shifts of the standard query list, in order (LiRA's mirror × shift grid, ±2 pixels).
const SHIFTS: [(i32, i32); 9] =
    [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2), (2, 2), (-2, -2), (2, -2), (-2, 2)];

impl Query {
    /// The unmodified image.
    pub const IDENTITY: Query = Query { flip: false, dy: 0, dx: 0 };

    /// The first `k` standard queries (at most 18): identity, mirror, then shifted copies of
    /// both. The same `k` always gives the same list, so cached signals stay comparable.
    pub fn standard(k: usize) -> Vec<Query> {
        SHIFTS
            .iter()
            .flat_map(|&(dy, dx)| [false, true].map(|flip| Query { flip, dy, dx }))
            .take(k)
            .collect()
    }

    /// The largest `k` [`Query::standard`] accepts.
    pub const MAX_STANDARD: usize = 2 * SHIFTS.len();

    /// Appends the transformed CHW image to `out`.
    pub fn apply(&self, src: &[u8], input: InputSpec, out: &mut Vec<u8>) {
        let (h, w) = (input.height as i64, input.width as i64);
        let plane = (h * w) as usize;
        for c in 0..input.channels {
            let Some(p) = src.get(c * plane..(c + 1) * plane) else { return };
            for y in 0..h {
                for x in 0..w {
                    let (sy, sx0) = (y - i64::from(self.dy), x - i64::from(self.dx));
                    let sx = if self.flip { w - 1 - sx0 } else { sx0 };
                    let inside = (0..h).contains(&sy) && (0..w).contains(&sx);
                    out.push(if inside { p[(sy * w + sx) as usize] } else { 0 });
                }
            }
        }
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

    #[test]
    fn queries_flip_and_shift_with_zero_fill() {
        let input = InputSpec::new(1, 2, 3);
        let img = [1, 2, 3, 4, 5, 6];
        let run = |q: Query| {
            let mut out = Vec::new();
            q.apply(&img, input, &mut out);
            out
        };
        assert_eq!(run(Query::IDENTITY), img);
        assert_eq!(run(Query { flip: true, dy: 0, dx: 0 }), [3, 2, 1, 6, 5, 4]);
        assert_eq!(run(Query { flip: false, dy: 0, dx: 1 }), [0, 1, 2, 0, 4, 5]);
        assert_eq!(run(Query { flip: false, dy: -1, dx: 0 }), [4, 5, 6, 0, 0, 0]);
        let qs = Query::standard(Query::MAX_STANDARD + 5);
        assert_eq!(qs.len(), 18);
        assert_eq!(&qs[..2], &[Query::IDENTITY, Query { flip: true, dy: 0, dx: 0 }]);
        let mut dedup = qs.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), 18);
    }
}
