//! The training kernels MIA Lab patches into burn-flex (crates/vendor/burn-flex/PATCH.md):
//! conv2d forward, its input, weight and bias gradients through autodiff, and 2×2 max-pooling,
//! each against a direct sum computed here in f64. One behaviour per test.

use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::module::{conv2d, max_pool2d, max_pool2d_with_indices};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};

/// One convolution's shapes and options.
#[derive(Clone, Copy, Debug)]
struct Case {
    x: [usize; 4],
    w: [usize; 4],
    stride: [usize; 2],
    pad: [(usize, usize); 2],
    dilation: [usize; 2],
    groups: usize,
}

/// Shapes the models use (3×3, padding 1, 1×1 stride 2) and the corner cases: stride,
/// dilation, asymmetric padding, groups, depthwise, a kernel larger than the padding; a
/// stride-1 case whose output channels, kernel rows and output size are no multiple of the
/// direct weight gradient's blocks (4 channels, 3 rows, the SIMD width) and large enough
/// (17×19 outputs) to take that kernel; two with an im2col height (channels per group ×
/// kernel) that is a multiple of 16, the case in which gemm can read the im2col without
/// packing it; then two for the direct forward and input gradient (see their comments). Every
/// stride-1 case with 8 or more output channels takes the direct forward.
const CASES: [Case; 11] = [
    Case {
        x: [2, 3, 7, 6],
        w: [4, 3, 3, 3],
        stride: [1, 1],
        pad: [(1, 1), (1, 1)],
        dilation: [1, 1],
        groups: 1,
    },
    Case {
        x: [2, 4, 9, 8],
        w: [6, 2, 3, 2],
        stride: [2, 1],
        pad: [(1, 0), (0, 2)],
        dilation: [1, 2],
        groups: 2,
    },
    Case {
        x: [3, 2, 5, 5],
        w: [3, 2, 1, 1],
        stride: [2, 2],
        pad: [(0, 0), (0, 0)],
        dilation: [1, 1],
        groups: 1,
    },
    Case {
        x: [3, 5, 6, 7],
        w: [4, 5, 5, 3],
        stride: [1, 3],
        pad: [(2, 2), (1, 1)],
        dilation: [1, 1],
        groups: 1,
    },
    Case {
        x: [2, 4, 6, 6],
        w: [4, 1, 3, 3],
        stride: [1, 1],
        pad: [(1, 1), (1, 1)],
        dilation: [1, 1],
        groups: 4,
    },
    Case {
        x: [9, 2, 4, 4],
        w: [2, 2, 3, 3],
        stride: [1, 1],
        pad: [(1, 1), (1, 1)],
        dilation: [1, 1],
        groups: 1,
    },
    Case {
        x: [6, 3, 17, 19],
        w: [9, 3, 4, 2],
        stride: [1, 1],
        pad: [(2, 1), (0, 1)],
        dilation: [1, 1],
        groups: 1,
    },
    Case {
        x: [3, 16, 5, 5],
        w: [4, 16, 3, 3],
        stride: [1, 1],
        pad: [(1, 1), (1, 1)],
        dilation: [1, 1],
        groups: 1,
    },
    Case {
        x: [2, 16, 7, 6],
        w: [4, 8, 2, 3],
        stride: [2, 1],
        pad: [(1, 0), (0, 2)],
        dilation: [2, 2],
        groups: 2,
    },
    // The direct forward and input gradient (shifted copies): 10 and 9 output channels (a full
    // and a partial block of 8), 9×12 = 108 positions (two blocks of 3 vectors, then single
    // positions), padding kh − 1 on top (the input gradient's padding is 0 there).
    Case {
        x: [2, 9, 9, 11],
        w: [10, 9, 3, 3],
        stride: [1, 1],
        pad: [(2, 0), (1, 2)],
        dilation: [1, 1],
        groups: 1,
    },
    // Padding as tall as the kernel: the forward is direct, the input gradient falls back to GEMM.
    Case {
        x: [2, 3, 6, 6],
        w: [8, 3, 2, 2],
        stride: [1, 1],
        pad: [(2, 2), (0, 0)],
        dilation: [1, 1],
        groups: 1,
    },
];

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

impl Case {
    fn out(&self) -> [usize; 4] {
        let size = |d: usize| {
            (self.x[2 + d] + self.pad[d].0 + self.pad[d].1
                - self.dilation[d] * (self.w[2 + d] - 1)
                - 1)
                / self.stride[d]
                + 1
        };
        [self.x[0], self.w[0], size(0), size(1)]
    }

    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new_with_padding(self.stride, self.pad, self.dilation, self.groups)
    }

    /// y = conv(x, w) + bias as a direct sum in f64.
    fn direct(&self, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f64> {
        let ([b, ci, h, wd], [co, cig, kh, kw]) = (self.x, self.w);
        let [_, _, oh, ow] = self.out();
        let cog = co / self.groups;
        let mut y = vec![0f64; b * co * oh * ow];
        for (i, out) in y.iter_mut().enumerate() {
            let (bi, o, oy, ox) = (i / (co * oh * ow), i / (oh * ow) % co, i / ow % oh, i % ow);
            let mut acc = bias[o] as f64;
            for c in 0..cig {
                for ki in 0..kh {
                    for kj in 0..kw {
                        let iy = (oy * self.stride[0] + ki * self.dilation[0]) as isize
                            - self.pad[0].0 as isize;
                        let ix = (ox * self.stride[1] + kj * self.dilation[1]) as isize
                            - self.pad[1].0 as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                            continue;
                        }
                        let cc = o / cog * cig + c;
                        let xv = x[((bi * ci + cc) * h + iy as usize) * wd + ix as usize];
                        acc += xv as f64 * w[((o * cig + c) * kh + ki) * kw + kj] as f64;
                    }
                }
            }
            *out = acc;
        }
        y
    }
}

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

fn assert_close(name: &str, case: &Case, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name} {case:?}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() < 1e-4, "{name} {case:?}: element {i}: {g} against {w}");
    }
}

/// The case's gradients through autodiff for L = Σ y·gy: (dx, dw, dbias).
fn gradients(case: &Case, x: &[f32], w: &[f32], bias: &[f32], gy: &[f32]) -> [Vec<f32>; 3] {
    let device = Device::flex().autodiff();
    let xt = tensor(x.to_vec(), case.x, &device).require_grad();
    let wt = tensor(w.to_vec(), case.w, &device).require_grad();
    let bt = tensor(bias.to_vec(), [case.w[0]], &device).require_grad();
    let y = conv2d(xt.clone(), wt.clone(), Some(bt.clone()), case.options());
    let loss = (y * tensor(gy.to_vec(), case.out(), &device)).sum();
    let grads = loss.backward();
    let grad = |t: &Tensor<4>| read(t.grad(&grads).expect("gradient"));
    [grad(&xt), grad(&wt), read(bt.grad(&grads).expect("bias gradient"))]
}

/// The reference gradient of Σ y·gy along one unit direction: y is linear in x and in w.
fn directional(case: &Case, x: &[f32], w: &[f32], gy: &[f32]) -> f64 {
    let zero = vec![0f32; case.w[0]];
    let y = case.direct(x, w, &zero);
    y.iter().zip(gy).map(|(a, b)| a * *b as f64).sum()
}

struct Data {
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    gy: Vec<f32>,
}

fn data(case: &Case) -> Data {
    Data {
        x: values(case.x.iter().product(), 1),
        w: values(case.w.iter().product(), 2),
        bias: values(case.w[0], 3),
        gy: values(case.out().iter().product(), 4),
    }
}

#[test]
fn conv2d_forward_is_the_direct_sum() {
    let device = Device::flex();
    for case in &CASES {
        let d = data(case);
        let x = tensor(d.x.clone(), case.x, &device);
        let w = tensor(d.w.clone(), case.w, &device);
        let b = tensor(d.bias.clone(), [case.w[0]], &device);
        let y = read(conv2d(x, w, Some(b), case.options()));
        assert_close("forward", case, &y, &case.direct(&d.x, &d.w, &d.bias));
    }
}

#[test]
fn conv2d_input_gradient_is_the_adjoint() {
    for case in &CASES {
        let d = data(case);
        let [dx, _, _] = gradients(case, &d.x, &d.w, &d.bias, &d.gy);
        let want: Vec<f64> = (0..d.x.len())
            .map(|i| {
                let mut e = vec![0f32; d.x.len()];
                e[i] = 1.0;
                directional(case, &e, &d.w, &d.gy)
            })
            .collect();
        assert_close("input gradient", case, &dx, &want);
    }
}

#[test]
fn conv2d_weight_gradient_is_the_adjoint() {
    for case in &CASES {
        let d = data(case);
        let [_, dw, _] = gradients(case, &d.x, &d.w, &d.bias, &d.gy);
        let want: Vec<f64> = (0..d.w.len())
            .map(|j| {
                let mut e = vec![0f32; d.w.len()];
                e[j] = 1.0;
                directional(case, &d.x, &e, &d.gy)
            })
            .collect();
        assert_close("weight gradient", case, &dw, &want);
    }
}

#[test]
fn conv2d_bias_gradient_is_the_output_gradient_summed_per_channel() {
    for case in &CASES {
        let d = data(case);
        let [_, _, db] = gradients(case, &d.x, &d.w, &d.bias, &d.gy);
        let [b, co, oh, ow] = case.out();
        let want: Vec<f64> = (0..co)
            .map(|o| {
                (0..b)
                    .flat_map(|bi| (0..oh * ow).map(move |p| (bi * co + o) * oh * ow + p))
                    .map(|i| d.gy[i] as f64)
                    .sum()
            })
            .collect();
        assert_close("bias gradient", case, &db, &want);
    }
}

/// dx and dW of Σ y·gy by direct scatter sums in f64 (y has no bias: y is linear in x and w).
fn direct_gradients(case: &Case, x: &[f32], w: &[f32], gy: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let ([_, ci, h, wd], [co, cig, kh, kw]) = (case.x, case.w);
    let [_, _, oh, ow] = case.out();
    let cog = co / case.groups;
    let (mut dx, mut dw) = (vec![0f64; x.len()], vec![0f64; w.len()]);
    for (i, g) in gy.iter().enumerate() {
        let (bi, o, oy, ox) = (i / (co * oh * ow), i / (oh * ow) % co, i / ow % oh, i % ow);
        for c in 0..cig {
            for ki in 0..kh {
                for kj in 0..kw {
                    let iy = (oy * case.stride[0] + ki * case.dilation[0]) as isize
                        - case.pad[0].0 as isize;
                    let ix = (ox * case.stride[1] + kj * case.dilation[1]) as isize
                        - case.pad[1].0 as isize;
                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                        continue;
                    }
                    let xi = ((bi * ci + o / cog * cig + c) * h + iy as usize) * wd + ix as usize;
                    let wi = ((o * cig + c) * kh + ki) * kw + kj;
                    dx[xi] += *g as f64 * w[wi] as f64;
                    dw[wi] += *g as f64 * x[xi] as f64;
                }
            }
        }
    }
    (dx, dw)
}

/// The case's forward without bias and its input and weight gradients through flex, and the
/// same three by direct sums in f64.
fn without_bias(case: &Case) -> ([Vec<f32>; 3], [Vec<f64>; 3]) {
    let d = data(case);
    let zero = vec![0f32; case.w[0]];
    let device = Device::flex();
    let y = conv2d(
        tensor(d.x.clone(), case.x, &device),
        tensor(d.w.clone(), case.w, &device),
        None,
        case.options(),
    );
    let [dx, dw, _] = gradients(case, &d.x, &d.w, &zero, &d.gy);
    let (want_dx, want_dw) = direct_gradients(case, &d.x, &d.w, &d.gy);
    ([read(y), dx, dw], [case.direct(&d.x, &d.w, &zero), want_dx, want_dw])
}

/// An image whose im2col (576 × 1 600 values) exceeds the kernels' band of 2^18 values, so
/// forward and gradients are computed a band of output rows at a time.
#[test]
fn conv2d_on_an_image_larger_than_one_band_is_still_exact() {
    let case = Case { x: [2, 64, 40, 40], w: [3, 64, 3, 3], ..CASES[0] };
    let ([y, dx, dw], [want_y, want_dx, want_dw]) = without_bias(&case);
    assert_close("banded forward", &case, &y, &want_y);
    assert_close("banded input gradient", &case, &dx, &want_dx);
    assert_close("banded weight gradient", &case, &dw, &want_dw);
}

/// The models' own layer shapes (3×3, padding 1, 4 images), where the direct kernels run full
/// register blocks over whole CIFAR-sized planes: forward and both gradients against direct
/// sums in f64. The tolerance grows with the length of each sum (up to 4 096 terms for the
/// weight gradient), far below what a wrong tap or a skipped block would give.
#[test]
fn conv2d_at_the_models_layer_shapes_matches_the_direct_sums() {
    for (c_in, c_out, h) in [(3, 16, 32), (16, 16, 32), (16, 32, 16), (32, 32, 16), (64, 64, 8)] {
        let case = Case { x: [4, c_in, h, h], w: [c_out, c_in, 3, 3], ..CASES[0] };
        let ([y, dx, dw], [want_y, want_dx, want_dw]) = without_bias(&case);
        let near = |name: &str, got: &[f32], want: &[f64], tol: f64| {
            assert_eq!(got.len(), want.len(), "{name} {case:?}: length");
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() < tol,
                    "{name} {case:?}: element {i}: {g} against {w}"
                );
            }
        };
        near("forward", &y, &want_y, 1e-4);
        near("input gradient", &dx, &want_dx, 1e-4);
        near("weight gradient", &dw, &want_dw, 1e-3);
    }
}

/// f64 runs natively and f16 through f32: both agree with the direct sum to their precision.
#[test]
fn conv2d_and_batch_norm_run_in_f64_and_f16() {
    use burn::tensor::FloatDType;
    let case = CASES[0];
    let d = data(&case);
    let device = Device::flex();
    let want = case.direct(&d.x, &d.w, &d.bias);
    for (dtype, tol) in [(FloatDType::F64, 1e-9), (FloatDType::F16, 2e-2)] {
        let t = |v: Vec<f32>, shape: [usize; 4]| tensor(v, shape, &device).cast(dtype);
        let b = tensor(d.bias.clone(), [case.w[0]], &device).cast(dtype);
        let y = conv2d(t(d.x.clone(), case.x), t(d.w.clone(), case.w), Some(b), case.options());
        assert_eq!(y.dtype(), dtype.into(), "conv2d keeps {dtype:?}");
        let got: Vec<f64> = y.into_data().convert::<f64>().try_to_vec().expect("values");
        let err = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
        assert!(err < tol, "conv2d in {dtype:?}: error {err}");
        let c = case.x[1];
        let gamma = tensor(vec![1.0; c], [c], &device).cast(dtype);
        let beta = tensor(vec![0.0; c], [c], &device).cast(dtype);
        let bn = burn::tensor::module::batch_norm_train(t(d.x.clone(), case.x), gamma, beta, 1e-5);
        let out =
            bn.output.clone().into_data().convert::<f64>().try_to_vec::<f64>().expect("values");
        let sum: f64 = out.iter().sum();
        assert!(
            sum.abs() < tol * out.len() as f64 * 10.0,
            "batch norm in {dtype:?}: Σ output {sum}"
        );
        assert_eq!(bn.output.dtype(), dtype.into(), "batch norm keeps {dtype:?}");
    }
}

/// The weight gradient sums fixed chunks of images in order, the bias gradient fixed lanes of
/// each channel: the same bits on one thread or on several.
#[test]
fn conv2d_weight_and_bias_gradients_do_not_depend_on_the_thread_count() {
    let case = Case { x: [37, 8, 16, 16], w: [16, 8, 3, 3], ..CASES[0] };
    let d = data(&case);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| gradients(&case, &d.x, &d.w, &d.bias, &d.gy))
    };
    let (one, three) = (on(1), on(3));
    assert_eq!(one[1], three[1], "weight gradient");
    assert_eq!(one[2], three[2], "bias gradient");
}

/// 2×2 / stride-2 pooling: the window maximum; ties go to the first in row-major window
/// order, a NaN wins (the last NaN), odd edges are dropped; the gradient goes to that element.
#[test]
fn max_pool_2x2_takes_the_first_maximum_and_propagates_nan() {
    let device = Device::flex();
    #[rustfmt::skip]
    let x = vec![
        1.0, 5.0,  2.0, 2.0,   9.0,
        5.0, 0.0,  2.0, -1.0,  9.0,
        f32::NAN, 3.0,  -4.0, -3.0,  9.0,
        7.0, f32::NAN, -3.0, -5.0,  9.0,
        8.0, 8.0,  8.0, 8.0,   8.0,
    ];
    let opts = MaxPoolOptions::new([2, 2]).with_stride([2, 2]);
    let (y, idx) = max_pool2d_with_indices(tensor(x.clone(), [1, 1, 5, 5], &device), opts.clone());
    let y = read(y);
    assert_eq!([y[0], y[1], y[3]], [5.0, 2.0, -3.0]);
    assert!(y[2].is_nan());
    let idx: Vec<i64> = idx.into_data().convert::<i64>().try_to_vec().expect("indices");
    assert_eq!(idx, vec![1, 2, 16, 13]);
    let plain = read(max_pool2d(tensor(x, [1, 1, 5, 5], &device), opts));
    assert_eq!(plain[0], 5.0);
    assert!(plain[2].is_nan());
}

#[test]
fn max_pool_2x2_gradient_goes_to_the_maximum() {
    let device = Device::flex().autodiff();
    let x =
        tensor(vec![1.0, 4.0, 3.0, 2.0, 0.0, 8.0, 6.0, 7.0], [1, 2, 2, 2], &device).require_grad();
    let opts = MaxPoolOptions::new([2, 2]).with_stride([2, 2]);
    let y = max_pool2d(x.clone(), opts);
    let loss = (y * tensor(vec![10.0, 20.0], [1, 2, 1, 1], &device)).sum();
    let grads = loss.backward();
    let dx = read(x.grad(&grads).expect("gradient"));
    assert_eq!(dx, vec![0.0, 10.0, 0.0, 0.0, 0.0, 20.0, 0.0, 0.0]);
}

/// Batch norm with the batch's statistics in f64: the output for `x` [b, c, s].
fn batch_norm_direct(
    x: &[f64],
    (b, c, s): (usize, usize, usize),
    gamma: &[f32],
    beta: &[f32],
) -> Vec<f64> {
    let mut y = vec![0f64; x.len()];
    for ch in 0..c {
        let idx = || (0..b).flat_map(move |i| (0..s).map(move |j| (i * c + ch) * s + j));
        let n = (b * s) as f64;
        let mean = idx().map(|i| x[i]).sum::<f64>() / n;
        let var = idx().map(|i| (x[i] - mean).powi(2)).sum::<f64>() / n;
        for i in idx() {
            y[i] = (x[i] - mean) / (var + 1e-5).sqrt() * gamma[ch] as f64 + beta[ch] as f64;
        }
    }
    y
}

const BN_SHAPE: [usize; 4] = [3, 4, 2, 5];

/// (x, gamma, beta, gy) for the batch-norm tests; channel 2 is offset far from zero.
fn bn_data() -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let n: usize = BN_SHAPE.iter().product();
    let mut x = values(n, 5);
    for (i, v) in x.iter_mut().enumerate() {
        if i / 10 % 4 == 2 {
            *v = *v * 0.01 + 30.0;
        }
    }
    (x, values(4, 6).iter().map(|v| v + 1.0).collect(), values(4, 7), values(n, 8))
}

#[test]
fn batch_norm_train_normalises_with_the_batch_statistics() {
    let device = Device::flex().autodiff();
    let (x, gamma, beta, _) = bn_data();
    let out = burn::tensor::module::batch_norm_train(
        tensor(x.clone(), BN_SHAPE, &device),
        tensor(gamma.clone(), [4], &device),
        tensor(beta.clone(), [4], &device),
        1e-5,
    );
    let x64: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let want = batch_norm_direct(&x64, (3, 4, 10), &gamma, &beta);
    let case = CASES[0];
    assert_close("batch norm output", &case, &read(out.output), &want);
    let mean = read(out.mean);
    assert!((mean[2] - 30.0).abs() < 0.01, "channel 2's mean: {}", mean[2]);
}

/// The input, gamma and beta gradients of Σ y·gy against central differences of the f64
/// forward (h = 1e-3; the loss is quadratic in x along each direction to within 1e-6).
#[test]
fn batch_norm_train_gradients_are_the_derivatives() {
    let device = Device::flex().autodiff();
    let (x, gamma, beta, gy) = bn_data();
    let xt = tensor(x.clone(), BN_SHAPE, &device).require_grad();
    let gt = tensor(gamma.clone(), [4], &device).require_grad();
    let bt = tensor(beta.clone(), [4], &device).require_grad();
    let out = burn::tensor::module::batch_norm_train(xt.clone(), gt.clone(), bt.clone(), 1e-5);
    let grads = (out.output * tensor(gy.clone(), BN_SHAPE, &device)).sum().backward();
    let dx = read(xt.grad(&grads).expect("x gradient"));
    let dgamma = read(gt.grad(&grads).expect("gamma gradient"));
    let dbeta = read(bt.grad(&grads).expect("beta gradient"));
    let loss = |x: &[f64], gamma: &[f32], beta: &[f32]| -> f64 {
        let y = batch_norm_direct(x, (3, 4, 10), gamma, beta);
        y.iter().zip(&gy).map(|(a, b)| a * *b as f64).sum()
    };
    let x64: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let h = 1e-3;
    // Channel 2 (spread 0.003) is left to the forward test: h would not be small there.
    for i in (0..x.len()).step_by(3).filter(|i| i / 10 % 4 != 2) {
        let (mut up, mut down) = (x64.clone(), x64.clone());
        up[i] += h;
        down[i] -= h;
        let want = (loss(&up, &gamma, &beta) - loss(&down, &gamma, &beta)) / (2.0 * h);
        assert!((dx[i] as f64 - want).abs() < 2e-3, "dx[{i}]: {} against {want}", dx[i]);
    }
    for c in 0..4 {
        let (mut up, mut down) = (gamma.clone(), gamma.clone());
        up[c] += 1e-2;
        down[c] -= 1e-2;
        let want = (loss(&x64, &up, &beta) - loss(&x64, &down, &beta)) / 2e-2;
        assert!(
            (dgamma[c] as f64 - want).abs() < 1e-3,
            "dgamma[{c}]: {} against {want}",
            dgamma[c]
        );
        let want_beta: f64 = (0..3)
            .flat_map(|b| (0..10).map(move |j| (b * 4 + c) * 10 + j))
            .map(|i| gy[i] as f64)
            .sum();
        assert!((dbeta[c] as f64 - want_beta).abs() < 1e-4, "dbeta[{c}]");
    }
}

#[test]
fn batch_norm_with_given_statistics_uses_them() {
    let device = Device::flex();
    let x = tensor(vec![1.0, 3.0, 10.0, 14.0], [2, 2, 1, 1], &device);
    let stat = |v: Vec<f32>| tensor(v, [2], &device);
    let y = read(burn::tensor::module::batch_norm(
        x,
        stat(vec![2.0, 0.5]),
        stat(vec![1.0, -1.0]),
        stat(vec![2.0, 12.0]),
        stat(vec![4.0, 16.0]),
        0.0,
    ));
    // channel 0 (x = 1, 10): (x − 2) / 2 · 2 + 1; channel 1 (x = 3, 14): (x − 12) / 4 · 0.5 − 1
    assert_eq!(y, vec![0.0, -2.125, 9.0, -0.75]);
}
