//! 2D convolution for training: forward, input gradient, weight gradient and bias gradient,
//! each as one GEMM per image on an im2col matrix in channels-first order.
//!
//! Added by MIA Lab (see `PATCH.md`), written to go upstream. burn's default
//! `conv2d_weight_backward` turns the weight gradient into a convolution whose kernel is the
//! whole batch's output gradient; flex then reorders that "kernel" and both swapped operands on
//! one thread and runs a GEMM with a `batch · H · W`-long reduction over a handful of rows. The
//! input gradient goes through `conv_transpose2d`, and the forward converts the input to
//! channels-last on one thread at every call.
//!
//! Here every image `b` of a group-`g` convolution is three small GEMMs on
//! `cols[(c, ki, kj), (oy, ox)] = x[b, c, oy·s + ki·d − p, ox·s + kj·d − p]` (zero outside):
//!
//! - forward: `y[b] = W · cols + bias`, written straight into the NCHW output;
//! - input gradient: `dx[b] = col2im(Wᵀ · dy[b])`;
//! - weight gradient: `dW = Σ_b dy[b] · colsᵀ`, summed per fixed chunk of images and the chunks
//!   added in order, so the result does not depend on the number of threads.
//!
//! For f32 with stride 1, dilation 1 and one group (and the `simd` feature), the module
//! [`shifted`] computes all three without im2col or GEMM, on copies of the input shifted by
//! each kernel column: the forward and the input gradient as a direct correlation with a
//! register block of output channels × positions, the weight gradient as dot products.
//!
//! `cols` is built for a band of output rows at a time (at most [`BAND_ELEMS`] values), so the
//! scratch stays in cache and is bounded for large images. Images run in parallel (rayon).

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use num_traits::{One, Zero};

use crate::FlexTensor;
use crate::ops::module::{float_tensor, in_float};

/// Largest im2col band, in values (1 MiB of f32): whole images for CIFAR-sized layers.
const BAND_ELEMS: usize = 1 << 18;

/// Images per partial weight gradient. Fixed, so the summation order (and the result) does not
/// depend on the thread count.
const WEIGHT_CHUNK: usize = 4;

/// Element types the kernels run in natively; f16 and bf16 go through f32.
pub(crate) trait GemmFloat:
    bytemuck::Pod + Copy + Zero + One + core::ops::AddAssign + Send + Sync + 'static
{
}
impl GemmFloat for f32 {}
impl GemmFloat for f64 {}

/// Shapes and options of one 2D convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
    oh: usize,
    ow: usize,
    groups: usize,
}

impl Geom {
    /// `x`: [batch, c_in, h, w]; `w`: [c_out, c_in / groups, kh, kw]; `out_hw`: the output's
    /// spatial size (the forward computes it, the backward passes read it from `dy`).
    fn new(x: &[usize], w: &[usize], out_hw: [usize; 2], options: &ConvOptions<2>) -> Self {
        let [ph, pw] = options.padding_begin();
        Self {
            batch: x[0],
            c_in: x[1],
            h: x[2],
            w: x[3],
            c_out: w[0],
            kh: w[2],
            kw: w[3],
            sh: options.stride[0],
            sw: options.stride[1],
            ph,
            pw,
            dh: options.dilation[0],
            dw: options.dilation[1],
            oh: out_hw[0],
            ow: out_hw[1],
            groups: options.groups,
        }
    }

    /// The forward output size, with padding on both sides (asymmetric allowed).
    fn forward_out_hw(x: &[usize], w: &[usize], options: &ConvOptions<2>) -> [usize; 2] {
        let size = |i: usize, k: usize, dim: usize| {
            let (pb, pe) = options.padding[dim];
            let span = options.dilation[dim] * (k - 1) + 1;
            let padded = i + pb + pe;
            if padded < span { 0 } else { (padded - span) / options.stride[dim] + 1 }
        };
        [size(x[2], w[2], 0), size(x[3], w[3], 1)]
    }

    fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }
    fn cout_g(&self) -> usize {
        self.c_out / self.groups
    }
    fn col_len(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }
    fn hw_in(&self) -> usize {
        self.h * self.w
    }
    fn hw_out(&self) -> usize {
        self.oh * self.ow
    }
    /// Output rows per im2col band.
    fn band_rows(&self) -> usize {
        let per_row = (self.col_len() * self.ow).max(1);
        (BAND_ELEMS / per_row).clamp(1, self.oh.max(1))
    }
    fn scratch_len(&self) -> usize {
        self.col_len() * self.band_rows() * self.ow
    }
    /// The bands of output rows, `[start, end)`.
    fn bands(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let step = self.band_rows();
        (0..self.oh).step_by(step).map(move |y0| (y0, (y0 + step).min(self.oh)))
    }
}

/// Output positions `o` in `[0, out)` with `0 <= o·stride + offset − pad < size`.
fn valid_range(
    out: usize,
    stride: usize,
    offset: usize,
    pad: usize,
    size: usize,
) -> (usize, usize) {
    let start = if pad > offset { (pad - offset).div_ceil(stride) } else { 0 };
    let end =
        if size + pad <= offset { 0 } else { ((size + pad - offset - 1) / stride + 1).min(out) };
    (start.min(end), end)
}

/// Fill `cols` ([col_len, (y1 − y0)·ow]) for one image's group `grp` and output rows `[y0, y1)`.
fn im2col<T: GemmFloat>(x: &[T], g: &Geom, grp: usize, (y0, y1): (usize, usize), cols: &mut [T]) {
    if g.sh == 1 && g.sw == 1 && g.ow == g.w {
        return im2col_same_width(x, g, grp, (y0, y1), cols);
    }
    let len = (y1 - y0) * g.ow;
    for cl in 0..g.cin_g() {
        let plane = &x[(grp * g.cin_g() + cl) * g.hw_in()..][..g.hw_in()];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let r = (cl * g.kh + ki) * g.kw + kj;
                let row = &mut cols[r * len..(r + 1) * len];
                let (x0, x1) = valid_range(g.ow, g.sw, kj * g.dw, g.pw, g.w);
                for oy in y0..y1 {
                    let dst = &mut row[(oy - y0) * g.ow..][..g.ow];
                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize || x0 >= x1 {
                        dst.fill(T::zero());
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..][..g.w];
                    dst[..x0].fill(T::zero());
                    dst[x1..].fill(T::zero());
                    let first = x0 * g.sw + kj * g.dw - g.pw;
                    if g.sw == 1 {
                        dst[x0..x1].copy_from_slice(&src[first..first + (x1 - x0)]);
                    } else {
                        for (i, v) in dst[x0..x1].iter_mut().enumerate() {
                            *v = src[first + i * g.sw];
                        }
                    }
                }
            }
        }
    }
}

/// [`im2col`] for stride 1 when the output keeps the input's width ("same" padding): each row
/// of `cols` is then the plane shifted by one offset, so one copy fills all its output rows
/// and only the columns that fall in the padding are zeroed after. Row by row, the copies of
/// 16–32 values were most of im2col's time in wasm, where each `memory.copy` is a call into the
/// engine.
fn im2col_same_width<T: GemmFloat>(
    x: &[T],
    g: &Geom,
    grp: usize,
    (y0, y1): (usize, usize),
    cols: &mut [T],
) {
    let (w, len) = (g.w, (y1 - y0) * g.w);
    for cl in 0..g.cin_g() {
        let plane = &x[(grp * g.cin_g() + cl) * g.hw_in()..][..g.hw_in()];
        for ki in 0..g.kh {
            // Output rows whose input row `oy + ki·dh − ph` lies in the plane.
            let (a, b) = valid_range(g.oh, 1, ki * g.dh, g.ph, g.h);
            let (a, b) = (a.clamp(y0, y1), b.clamp(y0, y1));
            for kj in 0..g.kw {
                let r = (cl * g.kh + ki) * g.kw + kj;
                let row = &mut cols[r * len..(r + 1) * len];
                let (x0, x1) = valid_range(g.ow, 1, kj * g.dw, g.pw, w);
                if a >= b || x0 >= x1 {
                    row.fill(T::zero());
                    continue;
                }
                row[..(a - y0) * w].fill(T::zero());
                row[(b - y0) * w..].fill(T::zero());
                // dst (oy, ox) ← plane[(oy + ki·dh − ph)·w + ox + kj·dw − pw]: one shift for all.
                let shift = (ki * g.dh * w + kj * g.dw) as isize - (g.ph * w + g.pw) as isize;
                let (d0, d1) = ((a - y0) * w, (b - y0) * w);
                let src0 = (a * w) as isize + shift;
                // Clip to the plane; what is clipped is padding, zeroed below.
                let lo = (-src0).max(0) as usize;
                let hi = (d1 - d0).min((plane.len() as isize - src0).max(0) as usize);
                if lo < hi {
                    let s = (src0 + lo as isize) as usize;
                    row[d0 + lo..d0 + hi].copy_from_slice(&plane[s..s + (hi - lo)]);
                }
                for oy in a..b {
                    let out = &mut row[(oy - y0) * w..(oy - y0 + 1) * w];
                    zero_few(&mut out[..x0]);
                    zero_few(&mut out[x1..]);
                }
            }
        }
    }
}

/// Zeroes a few values (a kernel's reach into the padding) with plain stores: a loop the
/// compiler turns into `memset` becomes, in wasm, a call into the engine per row.
#[inline(always)]
fn zero_few<T: GemmFloat>(v: &mut [T]) {
    for x in v.iter_mut() {
        // SAFETY: `x` is a valid, aligned, exclusive reference.
        unsafe { core::ptr::write_volatile(x, T::zero()) };
    }
}

/// The adjoint of [`im2col`]: add `cols` back into one image's input gradient `dx`.
fn col2im<T: GemmFloat>(cols: &[T], g: &Geom, grp: usize, (y0, y1): (usize, usize), dx: &mut [T]) {
    let len = (y1 - y0) * g.ow;
    let hw_in = g.hw_in();
    for cl in 0..g.cin_g() {
        let plane = &mut dx[(grp * g.cin_g() + cl) * hw_in..][..hw_in];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let r = (cl * g.kh + ki) * g.kw + kj;
                let row = &cols[r * len..(r + 1) * len];
                let (x0, x1) = valid_range(g.ow, g.sw, kj * g.dw, g.pw, g.w);
                if x0 >= x1 {
                    continue;
                }
                for oy in y0..y1 {
                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let src = &row[(oy - y0) * g.ow..][x0..x1];
                    let first = x0 * g.sw + kj * g.dw - g.pw;
                    let dst = &mut plane[iy as usize * g.w..][..g.w];
                    if g.sw == 1 {
                        for (d, s) in dst[first..first + src.len()].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (i, s) in src.iter().enumerate() {
                            dst[first + i * g.sw] += *s;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major view for [`gemm`]: base offset into a slice, row stride, column stride.
#[derive(Clone, Copy)]
struct View {
    offset: usize,
    rs: usize,
    cs: usize,
}

impl View {
    fn rows(offset: usize, rs: usize) -> Self {
        Self { offset, rs, cs: 1 }
    }
    fn cols(offset: usize, cs: usize) -> Self {
        Self { offset, rs: 1, cs }
    }
    /// The last element an `r × c` block touches, plus one (0 for an empty block).
    fn extent(&self, r: usize, c: usize) -> usize {
        if r == 0 || c == 0 { 0 } else { self.offset + (r - 1) * self.rs + (c - 1) * self.cs + 1 }
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]`, single-threaded (callers parallelise over images).
#[allow(clippy::too_many_arguments)]
fn gemm<T: GemmFloat>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    d: View,
    accumulate: bool,
    lhs: &[T],
    l: View,
    rhs: &[T],
    r: View,
) {
    assert!(d.extent(m, n) <= dst.len(), "conv2d_gemm: dst out of bounds");
    assert!(l.extent(m, k) <= lhs.len(), "conv2d_gemm: lhs out of bounds");
    assert!(r.extent(k, n) <= rhs.len(), "conv2d_gemm: rhs out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[d.offset + i * d.rs + j * d.cs] = T::zero();
                }
            }
        }
        return;
    }
    // SAFETY: the three asserts above bound every element the m×n, m×k and k×n blocks touch;
    // `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(d.offset),
            d.cs as isize,
            d.rs as isize,
            accumulate,
            lhs.as_ptr().add(l.offset),
            l.cs as isize,
            l.rs as isize,
            rhs.as_ptr().add(r.offset),
            r.cs as isize,
            r.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Run `f(index, chunk, scratch)` over `out.chunks_mut(per)`, in parallel when rayon is on,
/// with one scratch buffer of `scratch` values per worker.
fn for_each_chunk<T: GemmFloat>(
    out: &mut [T],
    per: usize,
    scratch: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Send + Sync,
) {
    if per == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(per)
            .enumerate()
            .for_each_init(|| vec![T::zero(); scratch], |buf, (i, chunk)| f(i, chunk, buf));
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut buf = vec![T::zero(); scratch];
        for (i, chunk) in out.chunks_mut(per).enumerate() {
            f(i, chunk, &mut buf);
        }
    }
}

/// `x` as f32 values when `T` is f32.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn f32s<T: GemmFloat>(x: &[T]) -> Option<&[f32]> {
    (core::any::TypeId::of::<T>() == core::any::TypeId::of::<f32>())
        .then(|| bytemuck::cast_slice(x))
}

/// `x` as f32 values when `T` is f32.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn f32s_mut<T: GemmFloat>(x: &mut [T]) -> Option<&mut [f32]> {
    (core::any::TypeId::of::<T>() == core::any::TypeId::of::<f32>())
        .then(|| bytemuck::cast_slice_mut(x))
}

fn forward_impl<T: GemmFloat>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Geom) -> Vec<T> {
    #[cfg(feature = "simd")]
    if let Some(y) = shifted::forward(x, w, bias, g) {
        return y;
    }
    let (hw_out, col_len, cout_g) = (g.hw_out(), g.col_len(), g.cout_g());
    let mut out = vec![T::zero(); g.batch * g.c_out * hw_out];
    for_each_chunk(&mut out, g.c_out * hw_out, g.scratch_len(), |b, y, cols| {
        let x_img = &x[b * g.c_in * g.hw_in()..][..g.c_in * g.hw_in()];
        if let Some(bias) = bias {
            for (plane, &v) in y.chunks_mut(hw_out).zip(bias) {
                plane.fill(v);
            }
        }
        for grp in 0..g.groups {
            for band in g.bands() {
                let len = (band.1 - band.0) * g.ow;
                im2col(x_img, g, grp, band, cols);
                let (d, l) = (grp * cout_g * hw_out + band.0 * g.ow, grp * cout_g * col_len);
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                if let (Some(y), Some(w), Some(cols)) = (f32s_mut(y), f32s(w), f32s(cols)) {
                    use simd128::{Mat, gemm_acc};
                    let m = |offset, stride| Mat { offset, stride };
                    // `y` holds the bias or zeros: accumulating is the same as writing.
                    gemm_acc(
                        (cout_g, len, col_len),
                        y,
                        m(d, hw_out),
                        w,
                        m(l, col_len),
                        cols,
                        m(0, len),
                    );
                    continue;
                }
                gemm(
                    (cout_g, len, col_len),
                    y,
                    View::rows(d, hw_out),
                    bias.is_some(),
                    w,
                    View::rows(l, col_len),
                    cols,
                    View::rows(0, len),
                );
            }
        }
    });
    out
}

fn x_backward_impl<T: GemmFloat>(w: &[T], dy: &[T], g: &Geom) -> Vec<T> {
    #[cfg(feature = "simd")]
    if let Some(dx) = shifted::x_backward(w, dy, g) {
        return dx;
    }
    let (hw_out, col_len, cout_g) = (g.hw_out(), g.col_len(), g.cout_g());
    let mut dx = vec![T::zero(); g.batch * g.c_in * g.hw_in()];
    for_each_chunk(&mut dx, g.c_in * g.hw_in(), g.scratch_len(), |b, dx_img, cols| {
        let dy_img = &dy[b * g.c_out * hw_out..][..g.c_out * hw_out];
        for grp in 0..g.groups {
            for band in g.bands() {
                let len = (band.1 - band.0) * g.ow;
                // cols[col_len × len] = W_grpᵀ · dy[grp rows, band]
                gemm(
                    (col_len, len, cout_g),
                    cols,
                    View::rows(0, len),
                    false,
                    w,
                    View::cols(grp * cout_g * col_len, col_len),
                    dy_img,
                    View::rows(grp * cout_g * hw_out + band.0 * g.ow, hw_out),
                );
                col2im(cols, g, grp, band, dx_img);
            }
        }
    });
    dx
}

fn weight_backward_impl<T: GemmFloat>(x: &[T], dy: &[T], g: &Geom) -> Vec<T> {
    let w_len = g.c_out * g.col_len();
    let chunks = g.batch.div_ceil(WEIGHT_CHUNK);
    let mut partial = vec![T::zero(); chunks * w_len];
    // Without the simd feature every weight gradient goes through GEMM.
    #[cfg(feature = "simd")]
    let done = shifted::weight_backward(x, dy, g, &mut partial);
    #[cfg(not(feature = "simd"))]
    let done = false;
    if !done {
        weight_backward_gemm(x, dy, g, &mut partial);
    }
    let mut dw = vec![T::zero(); w_len];
    for part in partial.chunks(w_len) {
        for (acc, v) in dw.iter_mut().zip(part) {
            *acc += *v;
        }
    }
    dw
}

/// One partial weight gradient per chunk of [`WEIGHT_CHUNK`] images, as GEMMs on the im2col.
fn weight_backward_gemm<T: GemmFloat>(x: &[T], dy: &[T], g: &Geom, partial: &mut [T]) {
    let (hw_out, col_len, cout_g) = (g.hw_out(), g.col_len(), g.cout_g());
    let w_len = g.c_out * col_len;
    for_each_chunk(partial, w_len, g.scratch_len(), |chunk, dw, cols| {
        let mut first = true;
        for b in chunk * WEIGHT_CHUNK..((chunk + 1) * WEIGHT_CHUNK).min(g.batch) {
            let x_img = &x[b * g.c_in * g.hw_in()..][..g.c_in * g.hw_in()];
            let dy_img = &dy[b * g.c_out * hw_out..][..g.c_out * hw_out];
            for band in g.bands() {
                let len = (band.1 - band.0) * g.ow;
                for grp in 0..g.groups {
                    im2col(x_img, g, grp, band, cols);
                    // dW[grp rows] (+)= dy[grp rows, band] · colsᵀ
                    gemm(
                        (cout_g, col_len, len),
                        dw,
                        View::rows(grp * cout_g * col_len, col_len),
                        !first,
                        dy_img,
                        View::rows(grp * cout_g * hw_out + band.0 * g.ow, hw_out),
                        cols,
                        View::cols(0, len),
                    );
                }
                first = false;
            }
        }
    });
}

/// Lanes of partial sums per plane in [`bias_backward_impl`]: independent accumulators the
/// compiler can keep in vector registers (one running sum is a serial dependency chain).
const SUM_LANES: usize = 16;

/// One channel's sum over every image's plane, in a fixed order (lane by lane, then the lanes
/// in order), so the result does not depend on the thread count.
fn channel_sum<T: GemmFloat>(dy: &[T], batch: usize, c_out: usize, hw: usize, ch: usize) -> T {
    let mut lanes = [T::zero(); SUM_LANES];
    let mut tail = T::zero();
    for b in 0..batch {
        let plane = &dy[(b * c_out + ch) * hw..][..hw];
        let mut blocks = plane.chunks_exact(SUM_LANES);
        for block in &mut blocks {
            for (acc, v) in lanes.iter_mut().zip(block) {
                *acc += *v;
            }
        }
        for v in blocks.remainder() {
            tail += *v;
        }
    }
    let mut total = tail;
    for v in lanes {
        total += v;
    }
    total
}

fn bias_backward_impl<T: GemmFloat>(dy: &[T], batch: usize, c_out: usize, hw: usize) -> Vec<T> {
    let mut db = vec![T::zero(); c_out];
    let sum = |(ch, acc): (usize, &mut T)| *acc = channel_sum(dy, batch, c_out, hw, ch);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        db.par_iter_mut().enumerate().for_each(sum);
    }
    #[cfg(not(feature = "rayon"))]
    db.iter_mut().enumerate().for_each(sum);
    db
}

/// `$f::<f32 or f64>(args)` by `$dtype`, as a tensor of `$shape`.
macro_rules! native {
    ($dtype:expr, $shape:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            DType::F64 => float_tensor($f::<f64>($($arg),*), $shape, $dtype),
            _ => float_tensor($f::<f32>($($arg),*), $shape, $dtype),
        }
    };
}

/// Whether the forward goes through this module: not for depthwise convolutions, which flex's
/// own direct kernel handles without im2col.
pub fn handles_forward(x_shape: &[usize], w_shape: &[usize], options: &ConvOptions<2>) -> bool {
    let c_in = x_shape[1];
    let depthwise =
        options.groups > 1 && options.groups == c_in && w_shape[0] == c_in && w_shape[1] == 1;
    !depthwise
}

/// `conv2d` forward. x: [batch, c_in, h, w], weight: [c_out, c_in / groups, kh, kw].
pub fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    let [y] = in_float(inputs, |t| {
        let (xs, ws) = (t[0].layout().shape(), t[1].layout().shape());
        let g = Geom::new(xs, ws, Geom::forward_out_hw(xs, ws, options), options);
        let shape = [g.batch, g.c_out, g.oh, g.ow];
        let (x, w, b) = (&t[0], &t[1], t.get(2));
        // The bias slice's element type differs per arm, so it is spelled inside the macro call.
        [native!(
            x.dtype(),
            &shape,
            forward_impl(x.storage(), w.storage(), b.map(|b| b.storage()), &g)
        )]
    });
    y
}

/// Gradient of `conv2d` with respect to its input.
pub fn conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x_shape = x.layout().shape().to_vec();
    let [dx] = in_float(vec![weight, output_grad], |t| {
        let (ws, ys) = (t[0].layout().shape(), t[1].layout().shape());
        let g = Geom::new(&x_shape, ws, [ys[2], ys[3]], options);
        [native!(t[0].dtype(), &x_shape, x_backward_impl(t[0].storage(), t[1].storage(), &g))]
    });
    dx
}

/// Gradient of `conv2d` with respect to its weight.
pub fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let w_shape = weight.layout().shape().to_vec();
    let [dw] = in_float(vec![x, output_grad], |t| {
        let (xs, ys) = (t[0].layout().shape(), t[1].layout().shape());
        let g = Geom::new(xs, &w_shape, [ys[2], ys[3]], options);
        [native!(t[0].dtype(), &w_shape, weight_backward_impl(t[0].storage(), t[1].storage(), &g))]
    });
    dw
}

/// Gradient of `conv2d` with respect to its bias: the output gradient summed per channel.
pub fn conv2d_bias_backward(output_grad: FlexTensor, bias: FlexTensor) -> FlexTensor {
    let b_shape = bias.layout().shape().to_vec();
    let [db] = in_float(vec![output_grad], |t| {
        let ys = t[0].layout().shape();
        let (batch, c_out, hw) = (ys[0], ys[1], ys[2] * ys[3]);
        [native!(t[0].dtype(), &b_shape, bias_backward_impl(t[0].storage(), batch, c_out, hw))]
    });
    db
}

#[cfg(feature = "simd")]
mod shifted;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
