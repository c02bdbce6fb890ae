//! Batch normalisation in one pass per statistic: `batch_norm`, `batch_norm_train` and
//! `batch_norm_train_backward`.
//!
//! Added by MIA Lab (see `PATCH.md`), written to go upstream. burn's defaults build
//! these from tensor operations: a `swap_dims` copy of the input (and of the output gradient)
//! for every per-channel reduction, and one full-size temporary per broadcast operation. Here the
//! per-channel sums run over the `[batch, channels, rest…]` layout in place (channels in
//! parallel, accumulated in f64) and each output is written in one pass (planes in parallel).

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use num_traits::{Float, NumCast};

use crate::FlexTensor;
use crate::ops::module::{float_tensor as tensor, in_float};

/// `[batch, channels, spatial]` of a `[batch, channels, …]` tensor.
fn dims(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

fn to_f64<T: Float>(v: T) -> f64 {
    <f64 as NumCast>::from(v).unwrap_or(f64::NAN)
}

fn from_f64<T: Float>(v: f64) -> T {
    <T as NumCast>::from(v).unwrap_or_else(T::nan)
}

/// `f(c)` for every channel, in parallel when rayon is on.
fn per_channel<R: Send>(channels: usize, f: impl Fn(usize) -> R + Send + Sync) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        (0..channels).map(f).collect()
    }
}

/// Fill `out` plane by plane: `f(channel, plane_index, out_plane)`, planes in parallel.
fn per_plane<T: Send>(
    out: &mut [T],
    spatial: usize,
    f: impl Fn(usize, usize, &mut [T]) + Send + Sync,
    channels: usize,
) {
    if spatial == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(spatial).enumerate().for_each(|(p, o)| f(p % channels, p, o));
    }
    #[cfg(not(feature = "rayon"))]
    for (p, o) in out.chunks_mut(spatial).enumerate() {
        f(p % channels, p, o);
    }
}

/// Channel `c`'s values, plane by plane.
fn planes<T>(x: &[T], (b, c, s): (usize, usize, usize), ch: usize) -> impl Iterator<Item = &[T]> {
    (0..b).map(move |i| &x[(i * c + ch) * s..][..s])
}

/// The mean and biased variance of every channel (two passes, f64).
fn stats<T: Float + Send + Sync>(x: &[T], d: (usize, usize, usize)) -> Vec<(f64, f64)> {
    let n = (d.0 * d.2) as f64;
    per_channel(d.1, |ch| {
        let sum: f64 = planes(x, d, ch).flat_map(|p| p.iter()).map(|v| to_f64(*v)).sum();
        let mean = sum / n;
        let sq: f64 =
            planes(x, d, ch).flat_map(|p| p.iter()).map(|v| (to_f64(*v) - mean).powi(2)).sum();
        (mean, sq / n)
    })
}

/// `out = (x − mean) · gamma / sqrt(var + eps) + beta`, per channel.
fn normalize<T: Float + Send + Sync>(
    x: &[T],
    d: (usize, usize, usize),
    mean: &[f64],
    var: &[f64],
    gamma: &[T],
    beta: &[T],
    eps: f64,
) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    let coef: Vec<(f64, f64, f64)> = (0..d.1)
        .map(|c| {
            let scale = to_f64(gamma[c]) / (var[c] + eps).sqrt();
            (mean[c], scale, to_f64(beta[c]))
        })
        .collect();
    // In f64: x − mean cancels when the mean is far from zero against the spread.
    per_plane(
        &mut out,
        d.2,
        |c, p, o| {
            let (m, k, b) = coef[c];
            for (y, v) in o.iter_mut().zip(&x[p * d.2..][..d.2]) {
                *y = from_f64((to_f64(*v) - m) * k + b);
            }
        },
        d.1,
    );
    out
}

/// Gradients of `batch_norm_train` for input, gamma and beta.
fn backward<T: Float + Send + Sync>(
    x: &[T],
    dy: &[T],
    d: (usize, usize, usize),
    (mean, var): (&[T], &[T]),
    gamma: &[T],
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let n = (d.0 * d.2) as f64;
    let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (to_f64(*v) + eps).sqrt()).collect();
    // (Σ dy, Σ dy · x̂) per channel
    let sums = per_channel(d.1, |ch| {
        let (m, k) = (to_f64(mean[ch]), inv_std[ch]);
        let mut s = (0f64, 0f64);
        for (xp, gp) in planes(x, d, ch).zip(planes(dy, d, ch)) {
            for (xv, gv) in xp.iter().zip(gp) {
                let g = to_f64(*gv);
                s.0 += g;
                s.1 += g * (to_f64(*xv) - m) * k;
            }
        }
        s
    });
    let coef: Vec<(f64, f64, f64, f64, f64)> = (0..d.1)
        .map(|c| {
            let k = inv_std[c];
            let (mean_dy, mean_dy_xhat) = (sums[c].0 / n, sums[c].1 / n);
            (to_f64(mean[c]), k, to_f64(gamma[c]) * k, mean_dy, mean_dy_xhat)
        })
        .collect();
    let mut dx = vec![T::zero(); x.len()];
    per_plane(
        &mut dx,
        d.2,
        |c, p, o| {
            let (m, k, scale, mean_dy, mean_dy_xhat) = coef[c];
            let (xp, gp) = (&x[p * d.2..][..d.2], &dy[p * d.2..][..d.2]);
            for ((r, xv), gv) in o.iter_mut().zip(xp).zip(gp) {
                let xhat = (to_f64(*xv) - m) * k;
                *r = from_f64(scale * (to_f64(*gv) - mean_dy - xhat * mean_dy_xhat));
            }
        },
        d.1,
    );
    let dgamma = sums.iter().map(|s| from_f64(s.1)).collect();
    let dbeta = sums.iter().map(|s| from_f64(s.0)).collect();
    (dx, dgamma, dbeta)
}

macro_rules! by_dtype {
    ($dtype:expr, $body:ident) => {
        match $dtype {
            DType::F64 => $body!(f64),
            _ => $body!(f32),
        }
    };
}

/// Batch norm with given statistics: `(x − mean) · gamma / sqrt(var + eps) + beta`.
pub fn batch_norm(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    eps: f64,
) -> FlexTensor {
    let [out] = in_float(vec![x, gamma, beta, mean, var], |t| {
        let shape = t[0].layout().shape();
        let d = dims(shape);
        let dt = t[0].dtype();
        macro_rules! run {
            ($T:ty) => {{
                let stat =
                    |i: usize| t[i].storage::<$T>().iter().map(|v| to_f64(*v)).collect::<Vec<_>>();
                let (m, v) = (stat(3), stat(4));
                let out =
                    normalize::<$T>(t[0].storage(), d, &m, &v, t[1].storage(), t[2].storage(), eps);
                [tensor(out, shape, dt)]
            }};
        }
        by_dtype!(dt, run)
    });
    out
}

/// Batch norm with the batch's own statistics: `[output, mean, biased variance]`.
pub fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    eps: f64,
) -> [FlexTensor; 3] {
    in_float(vec![x, gamma, beta], |t| {
        let shape = t[0].layout().shape();
        let d = dims(shape);
        let dt = t[0].dtype();
        macro_rules! run {
            ($T:ty) => {{
                let x = t[0].storage::<$T>();
                let st = stats(x, d);
                let (m, v): (Vec<f64>, Vec<f64>) = st.into_iter().unzip();
                let out = normalize::<$T>(x, d, &m, &v, t[1].storage(), t[2].storage(), eps);
                let cast = |s: &[f64]| s.iter().map(|v| from_f64::<$T>(*v)).collect::<Vec<_>>();
                [tensor(out, shape, dt), tensor(cast(&m), &[d.1], dt), tensor(cast(&v), &[d.1], dt)]
            }};
        }
        by_dtype!(dt, run)
    })
}

/// Gradients of [`batch_norm_train`]: `[x_grad, gamma_grad, beta_grad]`.
pub fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    eps: f64,
    output_grad: FlexTensor,
) -> [FlexTensor; 3] {
    in_float(vec![x, gamma, mean, var, output_grad], |t| {
        let shape = t[0].layout().shape();
        let d = dims(shape);
        let dt = t[0].dtype();
        macro_rules! run {
            ($T:ty) => {{
                let stats = (t[2].storage::<$T>(), t[3].storage::<$T>());
                let (dx, dg, db) =
                    backward::<$T>(t[0].storage(), t[4].storage(), d, stats, t[1].storage(), eps);
                [tensor(dx, shape, dt), tensor(dg, &[d.1], dt), tensor(db, &[d.1], dt)]
            }};
        }
        by_dtype!(dt, run)
    })
}
