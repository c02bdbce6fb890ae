//! The forward convolution's GEMM for f32 on wasm32's simd128 (added by MIA Lab, see
//! `PATCH.md`). gemm's simd128 kernel keeps 12 accumulators, 3 left-hand vectors and a broadcast
//! in registers: 16 vectors, one more than V8 gives wasm code on x86-64 (it keeps one for
//! itself), so its inner loop spills. This kernel keeps 4 output channels × 8 positions: 8
//! accumulators, 2 vectors of the im2col row and one broadcast weight, and reads both operands
//! where they lie (no packing: a convolution's operands are small).

use core::arch::wasm32::*;

/// Rows of the output (channels) per register block.
const ROWS: usize = 4;
/// Columns of the output (positions) per register block: two vectors.
const COLS: usize = 8;

/// A row-major matrix in a slice: `offset` of its first value and `stride` between rows.
#[derive(Clone, Copy)]
pub(super) struct Mat {
    pub offset: usize,
    pub stride: usize,
}

impl Mat {
    fn end(&self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 { 0 } else { self.offset + (rows - 1) * self.stride + cols }
    }
}

/// `dst[m × n] += lhs[m × k] · rhs[k × n]`; each dot product sums over `k` in order from zero
/// before it is added to `dst`.
pub(super) fn gemm_acc(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    d: Mat,
    lhs: &[f32],
    l: Mat,
    rhs: &[f32],
    r: Mat,
) {
    assert!(d.end(m, n) <= dst.len(), "simd128 gemm: dst out of bounds");
    assert!(l.end(m, k) <= lhs.len(), "simd128 gemm: lhs out of bounds");
    assert!(r.end(k, n) <= rhs.len(), "simd128 gemm: rhs out of bounds");
    let (m4, n8) = (m / ROWS * ROWS, n / COLS * COLS);
    for p in (0..n8).step_by(COLS) {
        for co in (0..m4).step_by(ROWS) {
            // SAFETY: rows co..co+4 < m, columns p..p+8 ≤ n and every kk < k lie within the
            // extents asserted above.
            unsafe { block(k, (co, p), dst, d, lhs, l, rhs, r) };
        }
        for co in m4..m {
            for j in p..p + COLS {
                dst[d.offset + co * d.stride + j] += dot(k, co, j, lhs, l, rhs, r);
            }
        }
    }
    for co in 0..m {
        for j in n8..n {
            dst[d.offset + co * d.stride + j] += dot(k, co, j, lhs, l, rhs, r);
        }
    }
}

fn dot(k: usize, co: usize, j: usize, lhs: &[f32], l: Mat, rhs: &[f32], r: Mat) -> f32 {
    let mut acc = 0.0f32;
    for kk in 0..k {
        acc += lhs[l.offset + co * l.stride + kk] * rhs[r.offset + kk * r.stride + j];
    }
    acc
}

/// One 4 × 8 block of `dst` at (`co`, `p`).
///
/// # Safety
/// Rows `co..co + 4` of `dst` and `lhs`, columns `p..p + 8` of `dst` and `rhs` and `k` columns
/// of `lhs` / rows of `rhs` must lie within the slices.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn block(
    k: usize,
    (co, p): (usize, usize),
    dst: &mut [f32],
    d: Mat,
    lhs: &[f32],
    l: Mat,
    rhs: &[f32],
    r: Mat,
) {
    // Written out by hand: in the size-optimised page build an array of accumulators indexed
    // in a loop stays in memory.
    unsafe {
        let w0 = lhs.as_ptr().add(l.offset + co * l.stride);
        let (w1, w2, w3) = (w0.add(l.stride), w0.add(2 * l.stride), w0.add(3 * l.stride));
        let mut x = rhs.as_ptr().add(r.offset + p);
        let z = f32x4_splat(0.0);
        let (mut a00, mut a01, mut a10, mut a11) = (z, z, z, z);
        let (mut a20, mut a21, mut a30, mut a31) = (z, z, z, z);
        // One step of k: two vectors of the im2col row times four broadcast weights.
        macro_rules! step {
            ($kk:expr) => {{
                let x0 = v128_load(x.cast());
                let x1 = v128_load(x.add(4).cast());
                let b = v128_load32_splat(w0.add($kk).cast());
                a00 = f32x4_add(a00, f32x4_mul(b, x0));
                a01 = f32x4_add(a01, f32x4_mul(b, x1));
                let b = v128_load32_splat(w1.add($kk).cast());
                a10 = f32x4_add(a10, f32x4_mul(b, x0));
                a11 = f32x4_add(a11, f32x4_mul(b, x1));
                let b = v128_load32_splat(w2.add($kk).cast());
                a20 = f32x4_add(a20, f32x4_mul(b, x0));
                a21 = f32x4_add(a21, f32x4_mul(b, x1));
                let b = v128_load32_splat(w3.add($kk).cast());
                a30 = f32x4_add(a30, f32x4_mul(b, x0));
                a31 = f32x4_add(a31, f32x4_mul(b, x1));
                x = x.wrapping_add(r.stride);
            }};
        }
        // Two steps per iteration: the loop's own instructions were a tenth of its body.
        let mut kk = 0;
        while kk + 2 <= k {
            step!(kk);
            step!(kk + 1);
            kk += 2;
        }
        if kk < k {
            step!(kk);
            let _ = x; // the step moved `x` past the last row
        }
        for (i, (lo, hi)) in
            [(a00, a01), (a10, a11), (a20, a21), (a30, a31)].into_iter().enumerate()
        {
            let out = dst.as_mut_ptr().add(d.offset + (co + i) * d.stride + p);
            v128_store(out.cast(), f32x4_add(v128_load(out.cast()), lo));
            let out = out.add(4);
            v128_store(out.cast(), f32x4_add(v128_load(out.cast()), hi));
        }
    }
}
