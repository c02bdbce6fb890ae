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
