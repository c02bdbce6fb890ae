//! The A/B of the burn-flex patch (crates/vendor/burn-flex/PATCH.md), op by op in one
//! run: each training op of the small CNN and ResNet-20 as burn-flex 0.22.1 computes it (its
//! own conv2d / pooling kernels, still in the crate, and burn's default compositions for the
//! conv gradients and batch norm) against the patched op that training now calls. Best of
//! `REPEATS` in ms, batch 128.
//!
//! `cargo run --release -p mia-train --example flex_ab [-- REPEATS]`

use std::time::Instant;

use burn::tensor::TensorData;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn_backend::Scalar;
use burn_backend::ops::conv::calculate_padding_out;
use burn_backend::ops::{FloatTensorOps, ModuleOps};
use burn_flex::{Flex, FlexTensor};
use burn_std::{IntDType, Shape};

fn values(shape: &[usize], seed: u64) -> FlexTensor {
    let mut s = seed;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

fn best(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn row(op: &str, shape: &str, before: f64, after: f64) {
    println!("| {op} | {shape} | {before:.2} | {after:.2} | {:.2}× |", before / after);
}

/// burn's default weight gradient: a convolution of the batch-swapped input with the
/// batch-swapped output gradient as kernel, on flex's own conv2d.
fn weight_grad_before(x: FlexTensor, dy: FlexTensor, o: &ConvOptions<2>) -> FlexTensor {
    let opts = ConvOptions::new(o.dilation, o.padding_begin(), o.stride, 1);
    let w = burn_flex::ops::conv::conv2d_f32(
        Flex::float_swap_dims(x, 0, 1),
        Flex::float_swap_dims(dy, 0, 1),
        None,
        &opts,
    );
    Flex::float_swap_dims(w, 0, 1)
}

fn conv(repeats: usize, [b, ci, h]: [usize; 3], co: usize) {
    let (x, w, dy) =
        (values(&[b, ci, h, h], 1), values(&[co, ci, 3, 3], 2), values(&[b, co, h, h], 3));
    let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let shape = format!("{ci}→{co}, {h}×{h}");
    let fwd0 =
        best(repeats, || drop(burn_flex::ops::conv::conv2d_f32(x.clone(), w.clone(), None, &o)));
    let fwd1 = best(repeats, || drop(Flex::conv2d(x.clone(), w.clone(), None, o.clone())));
    row("conv forward", &shape, fwd0, fwd1);
    let dw0 = best(repeats, || drop(weight_grad_before(x.clone(), dy.clone(), &o)));
    let dw1 = best(repeats, || {
        drop(Flex::conv2d_weight_backward(x.clone(), w.clone(), dy.clone(), o.clone()))
    });
    row("conv weight gradient", &shape, dw0, dw1);
    let pad = calculate_padding_out(3, 1, 1, 1, h, h);
    let t = ConvTransposeOptions::new([1, 1], [1, 1], [pad, pad], [1, 1], 1);
    let dx0 =
        best(repeats, || drop(Flex::conv_transpose2d(dy.clone(), w.clone(), None, t.clone())));
    let dx1 = best(repeats, || {
        drop(Flex::conv2d_x_backward(x.clone(), w.clone(), dy.clone(), o.clone()))
    });
    row("conv input gradient", &shape, dx0, dx1);
}

/// burn's default bias gradient: swap batch and channels (a copy), then a sum per row.
fn bias_grad_before(dy: FlexTensor, c: usize) -> FlexTensor {
    let n = dy.layout().shape().iter().product::<usize>() / c;
    let rows = Flex::float_reshape(Flex::float_swap_dims(dy, 0, 1), Shape::new([c, n]));
    Flex::float_reshape(Flex::float_sum_dim(rows, 1), Shape::new([c]))
}

fn bias_grad(repeats: usize, [b, c, h]: [usize; 3]) {
    let (dy, bias) = (values(&[b, c, h, h], 8), values(&[c], 9));
    let before = best(repeats, || drop(bias_grad_before(dy.clone(), c)));
    let after =
        best(repeats, || drop(Flex::conv2d_bias_backward(dy.clone(), bias.clone(), dy.clone())));
    row("conv bias gradient", &format!("{c}×{h}×{h}"), before, after);
}

fn pool(repeats: usize, [b, c, h]: [usize; 3]) {
    let x = values(&[b, c, h, h], 4);
    let before = best(repeats, || {
        drop(burn_flex::ops::pool::max_pool2d_with_indices_f32(
            x.clone(),
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            false,
        ))
    });
    let after = best(repeats, || {
        drop(Flex::max_pool2d_with_indices(
            x.clone(),
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            false,
            IntDType::I64,
        ))
    });
    row("max-pool 2×2 with indices", &format!("{c}×{h}×{h}"), before, after);
}

/// burn's default `batch_norm_train`, composed from flex's tensor ops.
fn batch_norm_before(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor) -> FlexTensor {
    let shape = x.layout().shape().clone();
    let c = shape[1];
    let flat = Shape::new([c, shape.iter().product::<usize>() / c]);
    let per_channel = Shape::new([1, c, 1, 1]);
    let mean_of = |t: FlexTensor| {
        let m = Flex::float_mean_dim(
            Flex::float_reshape(Flex::float_swap_dims(t, 0, 1), flat.clone()),
            1,
        );
        Flex::float_reshape(m, per_channel.clone())
    };
    let mean = mean_of(x.clone());
    let centered = Flex::float_sub(x.clone(), mean.clone());
    let var = mean_of(Flex::float_mul(centered.clone(), centered));
    let std = Flex::float_sqrt(Flex::float_add_scalar(var, Scalar::Float(1e-5)));
    let normalized = Flex::float_div(Flex::float_sub(x, mean), std);
    let scaled = Flex::float_mul(normalized, Flex::float_reshape(gamma, per_channel.clone()));
    Flex::float_add(scaled, Flex::float_reshape(beta, per_channel))
}

fn batch_norm(repeats: usize, [b, c, h]: [usize; 3]) {
    let (x, gamma, beta) = (values(&[b, c, h, h], 5), values(&[c], 6), values(&[c], 7));
    let before = best(repeats, || drop(batch_norm_before(x.clone(), gamma.clone(), beta.clone())));
    let after = best(repeats, || {
        drop(Flex::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5))
    });
    row("batch norm (training, forward)", &format!("{c}×{h}×{h}"), before, after);
}

fn main() {
    let repeats = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    println!("| op (batch 128) | shape | burn-flex 0.22.1 ms | patched ms | speed-up |");
    println!("|---|---|---|---|---|");
    // The small CNN's two convolutions and pools, then ResNet-20's three stages.
    conv(repeats, [128, 3, 32], 16);
    conv(repeats, [128, 16, 16], 32);
    pool(repeats, [128, 16, 32]);
    pool(repeats, [128, 32, 16]);
    bias_grad(repeats, [128, 16, 32]);
    bias_grad(repeats, [128, 32, 16]);
    for (c, h) in [(16, 32), (32, 16), (64, 8)] {
        conv(repeats, [128, c, h], c);
        batch_norm(repeats, [128, c, h]);
    }
}
