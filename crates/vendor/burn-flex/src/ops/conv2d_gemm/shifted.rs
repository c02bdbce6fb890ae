//! Stride-1, dilation-1, single-group f32 convolutions (every 3×3 layer of the small CNN and
//! ResNet-20 except ResNet's downsampling ones) without im2col and without GEMM.
//!
//! The input is copied once per kernel column, shifted and zero-padded:
//! `xs[(c, kj)][r·ow + ox] = x[c, r − ph, ox + kj − pw]` for `r < oh + kh − 1`. Tap `(ki, kj)` of
//! every output position `p = oy·ow + ox` is then `xs[(c, kj)][ki·ow + p]`, one contiguous run
//! over all positions. The copies are `kw` times the input where an im2col is `kh·kw` times.
//!
//! - **Forward**: `y[o, p] = bias[o] + Σ_(c, ki, kj) W[o, c, ki, kj] · xs[(c, kj)][ki·ow + p]`, an
//!   implicit GEMM whose right operand is read in place: a register block of [`OUT_BLOCK`]
//!   output channels × 3 vectors of positions accumulates over every tap, weights broadcast,
//!   and is stored once. Only with 16-lane vectors (AVX-512, see [`wide`]).
//! - **Input gradient**: for stride 1, `dx` is the same correlation of `dy` with the kernel
//!   transposed and flipped (`K[c, o, ki, kj] = W[o, c, kh − 1 − ki, kw − 1 − kj]`) and padding
//!   `kh − 1 − ph` (applies when `ph < kh` and `pw < kw`), so it runs the forward's kernel.
//! - **Weight gradient**: `dW[o, (c, ki, kj)] = Σ_b dy[b, o, ·] · xs[b, (c, kj)][ki·ow ..]`, dot
//!   products of two contiguous vectors; a register block of 4 output channels × 3 kernel rows
//!   shares its loads and runs over every image of a chunk of [`WEIGHT_CHUNK`] before it is
//!   reduced.
//!
//! Every output is computed by one thread in a fixed order, and the weight gradient's chunks,
//! lanes and blocks are fixed, so results do not depend on the thread count (they do depend on
//! the SIMD width, like any vector sum).

use alloc::vec;
use alloc::vec::Vec;
use macerator::{Scalar, Simd, Vector, vload_unaligned, vstore_unaligned};

use super::{BAND_ELEMS, GemmFloat, Geom, WEIGHT_CHUNK, for_each_chunk, valid_range};

/// Output channels per register block of the weight gradient.
const CO_BLOCK: usize = 4;
/// Kernel rows per register block of the weight gradient.
const KI_BLOCK: usize = 3;
/// Fewest output positions per image for the weight gradient. Below it each register block runs
/// too few vector iterations between its setup and its reductions, and GEMM is faster
/// (`flex_ab`, 2 cores with AVX-512: 64→64 channels at 8×8 took 17.5–29.5 ms here against
/// 14.0–16.3 ms through GEMM; 16×16 and 32×32 layers were 1.2–2.3× faster here).
const MIN_POSITIONS: usize = 256;
/// Output channels per register block of the forward (and input-gradient) kernel. Correlations
/// with fewer output channels stay on GEMM: most of each block's accumulators would idle
/// (`flex_ab`, release build: the input gradient of 3→16 channels at 32×32, 3 output channels
/// here, took 2.1–2.4 ms this way against 1.2–1.3 ms through GEMM).
const OUT_BLOCK: usize = 8;

/// A stride-1 correlation of `c_in` planes of `h × w` into `c_out` planes of `oh × ow`:
/// `out[o, oy, ox] = Σ K[o, c, ki, kj] · in[c, oy + ki − ph, ox + kj − pw]`, zero outside `in`.
#[derive(Clone, Copy, Debug)]
struct Corr {
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
}

impl Corr {
    /// The convolution `g` itself (the caller checks stride, dilation and groups).
    fn forward(g: &Geom) -> Self {
        Self {
            c_in: g.c_in,
            h: g.h,
            w: g.w,
            c_out: g.c_out,
            kh: g.kh,
            kw: g.kw,
            ph: g.ph,
            pw: g.pw,
            oh: g.oh,
            ow: g.ow,
        }
    }

    /// The input gradient of `g`: `dy` correlated with the transposed, flipped kernel.
    fn input_gradient(g: &Geom) -> Option<Self> {
        if g.ph >= g.kh || g.pw >= g.kw {
            return None;
        }
        Some(Self {
            c_in: g.c_out,
            h: g.oh,
            w: g.ow,
            c_out: g.c_in,
            kh: g.kh,
            kw: g.kw,
            ph: g.kh - 1 - g.ph,
            pw: g.kw - 1 - g.pw,
            oh: g.h,
            ow: g.w,
        })
    }

    fn hw_in(&self) -> usize {
        self.h * self.w
    }
    fn hw_out(&self) -> usize {
        self.oh * self.ow
    }
    fn taps(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    /// Values of one shifted copy: every input row a tap of an output row reads, padding
    /// included.
    fn plane(&self) -> usize {
        (self.oh + self.kh - 1) * self.ow
    }
    /// Values of one image's shifted copies.
    fn per_image(&self) -> usize {
        self.c_in * self.kw * self.plane()
    }
}

/// Whether the widest SIMD here has 16 f32 lanes (AVX-512), which the forward and
/// input-gradient kernel's register block (8 × 3 vectors, 24 of its 32 registers) is sized for.
/// Narrower vectors keep GEMM: with wasm's simd128 (4 lanes, no fused multiply-add) an 8 × 1
/// block made the page's whole-network fine-tuning 1.27× slower (28.3 s against 22.3 s,
/// `tests/e2e/labbench.mjs`); AVX2 and NEON were not measured.
#[macerator::with_simd]
fn wide<S: Simd>() -> bool {
    f32::lanes::<S>() >= 16
}

fn is_f32<T: 'static>() -> bool {
    core::any::TypeId::of::<T>() == core::any::TypeId::of::<f32>()
}

/// Stride 1, dilation 1, one group, and one image's copies at most [`BAND_ELEMS`] values (large
/// images stay on the banded im2col path).
fn applies<T: 'static>(g: &Geom, c: &Corr) -> bool {
    is_f32::<T>()
        && (g.sh, g.sw, g.dh, g.dw, g.groups) == (1, 1, 1, 1, 1)
        && c.hw_out() > 0
        && c.per_image() <= BAND_ELEMS
}

/// The shifted copies of one image (see the module's documentation) into `xs`.
fn shift_copies(img: &[f32], c: &Corr, xs: &mut [f32]) {
    let plane = c.plane();
    for ch in 0..c.c_in {
        let src = &img[ch * c.hw_in()..][..c.hw_in()];
        for kj in 0..c.kw {
            let dst = &mut xs[(ch * c.kw + kj) * plane..][..plane];
            let (x0, x1) = valid_range(c.ow, 1, kj, c.pw, c.w);
            for (r, row) in dst.chunks_exact_mut(c.ow).enumerate() {
                let iy = r as isize - c.ph as isize;
                if iy < 0 || iy >= c.h as isize || x0 >= x1 {
                    row.fill(0.0);
                    continue;
                }
                row[..x0].fill(0.0);
                row[x1..].fill(0.0);
                let first = iy as usize * c.w + x0 + kj - c.pw;
                row[x0..x1].copy_from_slice(&src[first..first + (x1 - x0)]);
            }
        }
    }
}

/// `y = x ⋆ W + bias` when the kernel applies to `g` and `T`; `None` otherwise.
pub(super) fn forward<T: GemmFloat>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    g: &Geom,
) -> Option<Vec<T>> {
    let c = Corr::forward(g);
    if !applies::<T>(g, &c) || c.c_out < OUT_BLOCK || !wide() {
        return None;
    }
    // `applies` checked that T is f32, so these casts reinterpret f32 as f32.
    let (x, w) = (bytemuck::cast_slice::<T, f32>(x), bytemuck::cast_slice::<T, f32>(w));
    let bias = bias.map(bytemuck::cast_slice::<T, f32>);
    let taps = c.kh * c.kw;
    let packed = pack(&c, |o, ch, ki, kj| w[(o * c.c_in + ch) * taps + ki * c.kw + kj]);
    let mut y = vec![T::zero(); g.batch * c.c_out * c.hw_out()];
    correlate_batch(x, &c, &packed, bias, bytemuck::cast_slice_mut::<T, f32>(&mut y));
    Some(y)
}

/// `dx` of `g` from `dy` when the kernel applies to `g` and `T`; `None` otherwise.
pub(super) fn x_backward<T: GemmFloat>(w: &[T], dy: &[T], g: &Geom) -> Option<Vec<T>> {
    let c = Corr::input_gradient(g)?;
    if !applies::<T>(g, &c) || c.c_out < OUT_BLOCK || !wide() {
        return None;
    }
    // `applies` checked that T is f32, so these casts reinterpret f32 as f32.
    let (w, dy) = (bytemuck::cast_slice::<T, f32>(w), bytemuck::cast_slice::<T, f32>(dy));
    // K[ci, o, ki, kj] = W[o, ci, kh − 1 − ki, kw − 1 − kj]
    let packed = pack(&c, |ci, o, ki, kj| {
        w[((o * g.c_in + ci) * g.kh + g.kh - 1 - ki) * g.kw + g.kw - 1 - kj]
    });
    let mut dx = vec![T::zero(); g.batch * c.c_out * c.hw_out()];
    correlate_batch(dy, &c, &packed, None, bytemuck::cast_slice_mut::<T, f32>(&mut dx));
    Some(dx)
}

/// The kernel `K[o, c, ki, kj] = kernel(o, c, ki, kj)` in blocks of [`OUT_BLOCK`] output
/// channels (zero past `c_out`), each block tap by tap in [`block`]'s order `(c, kj, ki)`:
/// `packed[(((blk·c_in + c)·kw + kj)·kh + ki)·OUT_BLOCK + a]` is output channel
/// `blk·OUT_BLOCK + a`.
fn pack(c: &Corr, kernel: impl Fn(usize, usize, usize, usize) -> f32) -> Vec<f32> {
    let blocks = c.c_out.div_ceil(OUT_BLOCK);
    let mut packed = vec![0.0; blocks * c.taps() * OUT_BLOCK];
    for (i, v) in packed.iter_mut().enumerate() {
        let (a, tap) = (i % OUT_BLOCK, i / OUT_BLOCK);
        let (ki, kj) = (tap % c.kh, tap / c.kh % c.kw);
        let (ch, blk) = (tap / (c.kh * c.kw) % c.c_in, tap / c.taps());
        let o = blk * OUT_BLOCK + a;
        if o < c.c_out {
            *v = kernel(o, ch, ki, kj);
        }
    }
    packed
}

/// Every image of `input` correlated into `out`, images in parallel.
fn correlate_batch(
    input: &[f32],
    c: &Corr,
    packed: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (per_in, per_out) = (c.c_in * c.hw_in(), c.c_out * c.hw_out());
    for_each_chunk(out, per_out, c.per_image(), |b, y, xs| {
        shift_copies(&input[b * per_in..][..per_in], c, xs);
        correlate(xs, c, packed, bias.unwrap_or_default(), y);
    });
}

/// One image's output `y` ([c_out, oh·ow]) from its shifted copies `xs`; `bias` is empty for
/// none (`with_simd` cannot take an `Option` of a reference).
#[macerator::with_simd]
fn correlate<S: Simd>(xs: &[f32], c: &Corr, packed: &[f32], bias: &[f32], y: &mut [f32]) {
    let bias = (!bias.is_empty()).then_some(bias);
    // 8 × 3 accumulators: 24 of AVX-512's 32 registers (callers checked `wide`).
    positions::<S, 3>(xs, c, packed, bias, y);
}

/// Blocks of `PV` vectors of positions, then single vectors, then single positions.
#[inline(always)]
fn positions<S: Simd, const PV: usize>(
    xs: &[f32],
    c: &Corr,
    packed: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let lanes = f32::lanes::<S>();
    let hw = c.hw_out();
    let blocks = c.c_out.div_ceil(OUT_BLOCK);
    let mut p0 = 0;
    while p0 + PV * lanes <= hw {
        for blk in 0..blocks {
            block::<S, PV>(xs, c, packed, bias, [blk, p0], y);
        }
        p0 += PV * lanes;
    }
    while p0 + lanes <= hw {
        for blk in 0..blocks {
            block::<S, 1>(xs, c, packed, bias, [blk, p0], y);
        }
        p0 += lanes;
    }
    for p in p0..hw {
        position(xs, c, packed, bias, p, y);
    }
}

/// Output channels `blk·OUT_BLOCK ..` (those below `c_out`) at positions `p0 .. p0 + PV·lanes`:
/// `OUT_BLOCK · PV` vector accumulators over every tap, stored once.
#[inline(always)]
fn block<S: Simd, const PV: usize>(
    xs: &[f32],
    c: &Corr,
    packed: &[f32],
    bias: Option<&[f32]>,
    [blk, p0]: [usize; 2],
    y: &mut [f32],
) {
    let lanes = f32::lanes::<S>();
    let (hw, plane) = (c.hw_out(), c.plane());
    let o0 = blk * OUT_BLOCK;
    let valid = OUT_BLOCK.min(c.c_out - o0);
    let weights = &packed[blk * c.taps() * OUT_BLOCK..][..c.taps() * OUT_BLOCK];
    // Every load below reads `xs[(ch·kw + kj)·plane + ki·ow + p0 ..][.. PV·lanes]`, inside
    // copy `(ch, kj)` because `p0 + PV·lanes ≤ oh·ow` and `ki·ow + oh·ow ≤ plane`.
    assert!(p0 + PV * lanes <= hw && xs.len() >= c.per_image());
    let mut acc: [[Vector<S, f32>; PV]; OUT_BLOCK] = core::array::from_fn(|a| {
        let b = match bias {
            Some(b) if a < valid => b[o0 + a],
            _ => 0.0,
        };
        [b.splat::<S>(); PV]
    });
    let mut taps = weights.chunks_exact(OUT_BLOCK);
    for ch in 0..c.c_in {
        for kj in 0..c.kw {
            let copy = xs[(ch * c.kw + kj) * plane..].as_ptr();
            for ki in 0..c.kh {
                let row = copy.wrapping_add(ki * c.ow + p0);
                // SAFETY: in bounds by the assert above.
                let xv: [Vector<S, f32>; PV] =
                    core::array::from_fn(|v| unsafe { vload_unaligned(row.add(v * lanes)) });
                let Some(tap) = taps.next() else { return };
                for (acc, &wt) in acc.iter_mut().zip(tap) {
                    let wv = wt.splat::<S>();
                    for (acc, xv) in acc.iter_mut().zip(&xv) {
                        *acc = wv.mul_add(*xv, *acc);
                    }
                }
            }
        }
    }
    for (a, acc) in acc.iter().enumerate().take(valid) {
        let dst = &mut y[(o0 + a) * hw + p0..][..PV * lanes];
        for (v, acc) in acc.iter().enumerate() {
            // SAFETY: `v·lanes + lanes ≤ PV·lanes = dst.len()`.
            unsafe { vstore_unaligned(dst.as_mut_ptr().add(v * lanes), *acc) };
        }
    }
}

/// Every output channel at position `p` (the positions after the last full vector).
fn position(xs: &[f32], c: &Corr, packed: &[f32], bias: Option<&[f32]>, p: usize, y: &mut [f32]) {
    let plane = c.plane();
    for o in 0..c.c_out {
        let (blk, a) = (o / OUT_BLOCK, o % OUT_BLOCK);
        let weights = &packed[blk * c.taps() * OUT_BLOCK..][..c.taps() * OUT_BLOCK];
        let mut sum = bias.map_or(0.0, |b| b[o]);
        let mut tap = 0;
        for ch in 0..c.c_in {
            for kj in 0..c.kw {
                for ki in 0..c.kh {
                    sum += weights[tap * OUT_BLOCK + a] * xs[(ch * c.kw + kj) * plane + ki * c.ow + p];
                    tap += 1;
                }
            }
        }
        y[o * c.hw_out() + p] = sum;
    }
}

/// Fill `partial` (one weight gradient per chunk of images) and return true when the weight
/// gradient's kernel applies to `g` and `T`; leave it untouched and return false otherwise.
pub(super) fn weight_backward<T: GemmFloat>(
    x: &[T],
    dy: &[T],
    g: &Geom,
    partial: &mut [T],
) -> bool {
    let c = Corr::forward(g);
    if !applies::<T>(g, &c) || g.hw_out() < MIN_POSITIONS {
        return false;
    }
    // `applies` checked that T is f32, so these casts reinterpret f32 as f32.
    let (x, dy) = (bytemuck::cast_slice::<T, f32>(x), bytemuck::cast_slice::<T, f32>(dy));
    let partial = bytemuck::cast_slice_mut::<T, f32>(partial);
    let w_len = g.c_out * g.col_len();
    let per_image = c.per_image();
    let (hw_in, hw_out) = (g.hw_in(), g.hw_out());
    for_each_chunk(partial, w_len, WEIGHT_CHUNK * per_image, |chunk, dw, xs| {
        let b0 = chunk * WEIGHT_CHUNK;
        let images = WEIGHT_CHUNK.min(g.batch - b0);
        for i in 0..images {
            let x_img = &x[(b0 + i) * g.c_in * hw_in..][..g.c_in * hw_in];
            shift_copies(x_img, &c, &mut xs[i * per_image..][..per_image]);
        }
        let dy = &dy[b0 * g.c_out * hw_out..][..images * g.c_out * hw_out];
        chunk_gradient(dy, &xs[..images * per_image], &c, images, dw);
    });
    true
}

/// One chunk's weight gradient `dw` ([c_out, c_in·kh·kw]) from its images' output gradients
/// `dy` and shifted copies `xs`.
#[macerator::with_simd]
fn chunk_gradient<S: Simd>(dy: &[f32], xs: &[f32], c: &Corr, images: usize, dw: &mut [f32]) {
    let full = c.c_out / CO_BLOCK * CO_BLOCK;
    for o0 in (0..full).step_by(CO_BLOCK) {
        channel_block::<S, CO_BLOCK>(dy, xs, c, images, o0, dw);
    }
    for o0 in full..c.c_out {
        channel_block::<S, 1>(dy, xs, c, images, o0, dw);
    }
}

/// Output channels `o0 .. o0 + CB`, every input channel and tap.
#[inline(always)]
fn channel_block<S: Simd, const CB: usize>(
    dy: &[f32],
    xs: &[f32],
    c: &Corr,
    images: usize,
    o0: usize,
    dw: &mut [f32],
) {
    let full = c.kh / KI_BLOCK * KI_BLOCK;
    for ch in 0..c.c_in {
        for kj in 0..c.kw {
            for ki0 in (0..full).step_by(KI_BLOCK) {
                tap_block::<S, CB, KI_BLOCK>(dy, xs, c, images, [o0, ch, ki0, kj], dw);
            }
            for ki0 in full..c.kh {
                tap_block::<S, CB, 1>(dy, xs, c, images, [o0, ch, ki0, kj], dw);
            }
        }
    }
}

/// `dw[o0 + a, (ch, ki0 + t, kj)]` for `a < CB`, `t < KB`: `CB·KB` vector accumulators over
/// every position of every image in the chunk, each reduced once at the end.
#[inline(always)]
fn tap_block<S: Simd, const CB: usize, const KB: usize>(
    dy: &[f32],
    xs: &[f32],
    c: &Corr,
    images: usize,
    [o0, ch, ki0, kj]: [usize; 4],
    dw: &mut [f32],
) {
    let lanes = f32::lanes::<S>();
    let hw = c.hw_out();
    let plane = c.plane();
    let simd_len = hw / lanes * lanes;
    let mut acc = [[0f32.splat::<S>(); KB]; CB];
    let mut tail = [[0f32; KB]; CB];
    for img in 0..images {
        let dy_img = &dy[img * c.c_out * hw..][..c.c_out * hw];
        let xs_img = &xs[((img * c.c_in + ch) * c.kw + kj) * plane..][..plane];
        let d: [&[f32]; CB] = core::array::from_fn(|a| &dy_img[(o0 + a) * hw..][..hw]);
        let xr: [&[f32]; KB] = core::array::from_fn(|t| &xs_img[(ki0 + t) * c.ow..][..hw]);
        let mut p = 0;
        while p < simd_len {
            // SAFETY: `p + lanes <= hw`, the length of every slice in `d` and `xr`.
            let xv: [Vector<S, f32>; KB] =
                core::array::from_fn(|t| unsafe { vload_unaligned(xr[t].as_ptr().add(p)) });
            for (row, dr) in acc.iter_mut().zip(&d) {
                // SAFETY: as above.
                let dv: Vector<S, f32> = unsafe { vload_unaligned(dr.as_ptr().add(p)) };
                for (a, xv) in row.iter_mut().zip(&xv) {
                    *a = dv.mul_add(*xv, *a);
                }
            }
            p += lanes;
        }
        for p in simd_len..hw {
            for (row, dr) in tail.iter_mut().zip(&d) {
                for (a, xr) in row.iter_mut().zip(&xr) {
                    *a += dr[p] * xr[p];
                }
            }
        }
    }
    let taps = c.kh * c.kw;
    for (a, (row, trow)) in acc.iter().zip(&tail).enumerate() {
        for (t, (v, tv)) in row.iter().zip(trow).enumerate() {
            dw[(o0 + a) * c.c_in * taps + (ch * c.kh + ki0 + t) * c.kw + kj] = v.reduce_add() + tv;
        }
    }
}
