//! 2×2, stride-2 max-pooling (no padding, no dilation): the pooling of most small CNNs.
//!
//! Added by MIA Lab (see `PATCH.md`), written to go upstream. flex's general pooling
//! computes each window's valid range and walks it through a 3D index per output value; here the
//! two input rows of a window are read side by side. Results, indices, tie-breaking (the first
//! maximum in row-major window order) and NaN handling (a NaN wins; the last NaN's index) are
//! those of the general kernel.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// Whether these pooling options are the 2×2 / stride-2 case on an f32 or f64 tensor.
pub fn applies(
    x: &FlexTensor,
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> bool {
    let shape = x.layout().shape();
    let even = shape[2] % 2 == 0 && shape[3] % 2 == 0;
    matches!(x.dtype(), DType::F32 | DType::F64)
        && kernel_size == [2, 2]
        && stride == [2, 2]
        && padding == [0, 0]
        && dilation == [1, 1]
        && (!ceil_mode || even)
}

/// `(best, at)` after offering `(v, i)`: `v` wins when greater or NaN. Written as selects, not
/// branches: on real activations the comparison is a coin flip, and mispredicted branches were
/// most of this kernel's time.
#[inline(always)]
fn offer<T: num_traits::Float>((best, at): (T, usize), v: T, i: usize) -> (T, usize) {
    let take = (v > best) | v.is_nan();
    (if take { v } else { best }, if take { i } else { at })
}

/// One plane: the maxima of its 2×2 windows and their flat indices in the plane.
fn pool_plane<T: num_traits::Float>(plane: &[T], w: usize, out: &mut [T], idx: &mut [i64]) {
    let ow = w / 2;
    if ow == 0 {
        return;
    }
    for (oy, (out_row, idx_row)) in out.chunks_mut(ow).zip(idx.chunks_mut(ow)).enumerate() {
        let base0 = 2 * oy * w;
        let (r0, r1) = (&plane[base0..base0 + w], &plane[base0 + w..base0 + 2 * w]);
        let windows = r0.chunks_exact(2).zip(r1.chunks_exact(2));
        for (ox, ((top, bottom), (o, i))) in
            windows.zip(out_row.iter_mut().zip(idx_row.iter_mut())).enumerate()
        {
            let c = base0 + 2 * ox;
            let m = offer((top[0], c), top[1], c + 1);
            let m = offer(m, bottom[0], c + w);
            let (best, at) = offer(m, bottom[1], c + w + 1);
            *o = best;
            *i = at as i64;
        }
    }
}

fn pool_impl<T: num_traits::Float + bytemuck::Pod + Send + Sync>(
    x: &[T],
    planes: usize,
    h: usize,
    w: usize,
) -> (Vec<T>, Vec<i64>) {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![T::zero(); planes * oh * ow];
    let mut idx = vec![0i64; planes * oh * ow];
    let per = oh * ow;
    if per == 0 {
        return (out, idx);
    }
    let run = |p: usize, o: &mut [T], i: &mut [i64]| pool_plane(&x[p * h * w..][..h * w], w, o, i);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(per)
            .zip(idx.par_chunks_mut(per))
            .enumerate()
            .for_each(|(p, (o, i))| run(p, o, i));
    }
    #[cfg(not(feature = "rayon"))]
    for (p, (o, i)) in out.chunks_mut(per).zip(idx.chunks_mut(per)).enumerate() {
        run(p, o, i);
    }
    (out, idx)
}

/// One row of windows, values only: `out[ox]` is the max of `r0[2ox..2ox+2]` and `r1[2ox..2ox+2]`
/// in the order and with the NaN rule of [`offer`].
fn pool_row_values<T: num_traits::Float>(r0: &[T], r1: &[T], out: &mut [T]) {
    let take = |best: T, v: T| if (v > best) | v.is_nan() { v } else { best };
    for ((top, bottom), o) in r0.chunks_exact(2).zip(r1.chunks_exact(2)).zip(out.iter_mut()) {
        *o = take(take(take(top[0], top[1]), bottom[0]), bottom[1]);
    }
}

/// [`pool_row_values`] for f32, four windows at a time with wasm's simd128 (the page's build is
/// optimised for size, which leaves the scalar loop scalar).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn pool_row_values_f32(r0: &[f32], r1: &[f32], out: &mut [f32]) {
    use core::arch::wasm32::*;
    // `v` where it is greater than `best` or NaN, else `best`: offer's rule, lane by lane.
    let take =
        |best: v128, v: v128| v128_bitselect(v, best, v128_or(f32x4_gt(v, best), f32x4_ne(v, v)));
    let n = out.len().min(r0.len() / 2).min(r1.len() / 2);
    let lanes = n / 4 * 4;
    for ox in (0..lanes).step_by(4) {
        let (t, b) = (&r0[2 * ox..2 * ox + 8], &r1[2 * ox..2 * ox + 8]);
        // SAFETY: every slice passed holds 4 f32 (16 bytes); v128 loads may be unaligned.
        let load = |s: &[f32]| unsafe { v128_load(s[..4].as_ptr().cast()) };
        let (t0, t1, b0, b1) = (load(&t[..4]), load(&t[4..]), load(&b[..4]), load(&b[4..]));
        let m = take(i32x4_shuffle::<0, 2, 4, 6>(t0, t1), i32x4_shuffle::<1, 3, 5, 7>(t0, t1));
        let m = take(m, i32x4_shuffle::<0, 2, 4, 6>(b0, b1));
        let m = take(m, i32x4_shuffle::<1, 3, 5, 7>(b0, b1));
        let o = &mut out[ox..ox + 4];
        // SAFETY: `o` holds 4 f32 (16 bytes); v128 stores may be unaligned.
        unsafe { v128_store(o.as_mut_ptr().cast(), m) };
    }
    pool_row_values(&r0[2 * lanes..], &r1[2 * lanes..], &mut out[lanes..]);
}

fn values_impl<T: num_traits::Float + bytemuck::Pod + Send + Sync>(
    x: &[T],
    planes: usize,
    h: usize,
    w: usize,
    row: fn(&[T], &[T], &mut [T]),
) -> Vec<T> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![T::zero(); planes * oh * ow];
    if ow == 0 {
        return out;
    }
    // Output row `r` of the whole batch reads input rows 2r and 2r + 1 of the same plane.
    let run = |r: usize, o: &mut [T]| {
        let (p, oy) = (r / oh, r % oh);
        let base = p * h * w + 2 * oy * w;
        row(&x[base..base + w], &x[base + w..base + 2 * w], o);
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(ow).enumerate().for_each(|(r, o)| run(r, o));
    }
    #[cfg(not(feature = "rayon"))]
    for (r, o) in out.chunks_mut(ow).enumerate() {
        run(r, o);
    }
    out
}

/// Max-pool without indices (inference), for the options [`applies`] accepts: the values of
/// [`max_pool2d_with_indices`], without writing an i64 index per output.
pub fn max_pool2d(x: FlexTensor) -> FlexTensor {
    let x = x.to_contiguous();
    let s = x.layout().shape();
    let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
    let out_shape = Shape::from(vec![b, c, h / 2, w / 2]);
    let dtype = x.dtype();
    let out = match dtype {
        DType::F64 => {
            Bytes::from_elems(values_impl::<f64>(x.storage(), b * c, h, w, pool_row_values))
        }
        _ => {
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            let row: fn(&[f32], &[f32], &mut [f32]) = pool_row_values_f32;
            #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
            let row: fn(&[f32], &[f32], &mut [f32]) = pool_row_values;
            Bytes::from_elems(values_impl::<f32>(x.storage(), b * c, h, w, row))
        }
    };
    FlexTensor::new(out, Layout::contiguous(out_shape), dtype)
}

/// Max-pool with indices (i64, flat within each [h, w] plane), for the options [`applies`] accepts.
pub fn max_pool2d_with_indices(x: FlexTensor) -> (FlexTensor, FlexTensor) {
    let x = x.to_contiguous();
    let s = x.layout().shape();
    let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
    let out_shape = Shape::from(vec![b, c, h / 2, w / 2]);
    let dtype = x.dtype();
    let (out, idx) = match dtype {
        DType::F64 => {
            let (o, i) = pool_impl::<f64>(x.storage(), b * c, h, w);
            (Bytes::from_elems(o), i)
        }
        _ => {
            let (o, i) = pool_impl::<f32>(x.storage(), b * c, h, w);
            (Bytes::from_elems(o), i)
        }
    };
    (
        FlexTensor::new(out, Layout::contiguous(out_shape.clone()), dtype),
        FlexTensor::new(Bytes::from_elems(idx), Layout::contiguous(out_shape), DType::I64),
    )
}
