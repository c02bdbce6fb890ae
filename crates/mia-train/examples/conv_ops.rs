//! Where a small-CNN training step's convolution time goes, op by op, on the CPU backend
//! (flex), at the shapes `mia bench` trains (batch 128, 3×32×32): each conv layer's forward,
//! a transposed convolution (burn's default input gradient, which the burn-flex patch in
//! crates/vendor replaced by one GEMM per image), its weight gradient (`conv2d_weight_backward`,
//! the patch's per-image GEMM; before it, burn's default convolution with the output gradient
//! as kernel), the 2×2 max-pool (the patch's 2×2 kernel; the same maximum as reshape +
//! `max_dim` was tried and rejected in the training step) and the dense layer. The patch's
//! profile; see docs/benchmarks.md.
//!
//! `cargo run -p mia-train --example conv_ops [-- BATCH REPEATS]` (add `--release` for a
//! release build; the recorded table used the dev profile, whose dependencies are optimised)

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::{
    conv_transpose2d, conv2d, conv2d_weight_backward, max_pool2d_with_indices,
};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, MaxPoolOptions};
use mia_train::DeviceChoice;

fn best_ms(repeats: usize, mut f: impl FnMut() -> Tensor<4>) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t = Instant::now();
        let out = f();
        // flex is eager: the op has run; reading one value makes sure of it.
        let _ = out.slice([0..1, 0..1, 0..1, 0..1]).into_data();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    best
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (batch, repeats) =
        (args.first().copied().unwrap_or(128), args.get(1).copied().unwrap_or(5));
    let device = DeviceChoice::Flex.device()?;
    let normal = Distribution::Normal(0.0, 1.0);
    println!("| op | shape | ms (best of {repeats}) |\n|---|---|---|");
    for (cin, cout, size) in [(3, 16, 32), (16, 32, 16)] {
        let x = Tensor::<4>::random([batch, cin, size, size], normal, &device);
        let w = Tensor::<4>::random([cout, cin, 3, 3], normal, &device);
        let g = Tensor::<4>::random([batch, cout, size, size], normal, &device);
        let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let shape = format!("{cin}→{cout}, {size}×{size}");
        let fwd = best_ms(repeats, || conv2d(x.clone(), w.clone(), None, opts.clone()));
        let tr = ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1);
        let dx = best_ms(repeats, || conv_transpose2d(g.clone(), w.clone(), None, tr.clone()));
        let dw = best_ms(repeats, || {
            conv2d_weight_backward(x.clone(), w.clone(), g.clone(), opts.clone())
        });
        let pool_opts = MaxPoolOptions::new([2, 2]).with_stride([2, 2]);
        let pool = best_ms(repeats, || max_pool2d_with_indices(g.clone(), pool_opts.clone()).0);
        let reshaped = best_ms(repeats, || {
            let h = size / 2;
            g.clone()
                .reshape([batch, cout, h, 2, h, 2])
                .max_dim(5)
                .max_dim(3)
                .reshape([batch, cout, h, h])
        });
        println!("| conv forward | {shape} | {fwd:.2} |");
        println!("| transposed conv (burn's default input gradient) | {shape} | {dx:.2} |");
        println!("| conv weight gradient | {shape} | {dw:.2} |");
        println!("| max-pool 2×2 with indices | {cout}×{size}×{size} | {pool:.2} |");
        println!("| 2×2 max as reshape + max_dim | {cout}×{size}×{size} | {reshaped:.2} |");
    }
    let a = Tensor::<2>::random([batch, 2048], normal, &device);
    let b = Tensor::<2>::random([2048, 128], normal, &device);
    let dense = best_ms(repeats, || a.clone().matmul(b.clone()).unsqueeze::<4>());
    println!("| dense matmul | {batch}×2048 · 2048×128 | {dense:.2} |");
    Ok(())
}
