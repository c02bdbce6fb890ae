//! Recognising a bundle's training images among uploads.
//!
//! CIFAR-10 is public, so a student will upload its images, some of them the shipped model's
//! members. The page must not call such an image "never seen": it looks the upload up in an
//! index of the members ([`MembersIndex`], one file of the bundle, fetched at the first
//! upload) and says "one of the model's training images" when it is there.
//!
//! Each image is reduced to a perceptual hash ([`ImageHash`]): the signs, against their median,
//! of the 255 lowest-frequency DCT coefficients of its luminance (a 16 × 16 block without the
//! constant term; pHash's construction on a larger block). Re-encoding (PNG, JPEG, upscaling
//! and the page's resize back to the model's input) moves few of those bits; another photo
//! moves about half. [`MATCH_DISTANCE`] is chosen from measurements on CIFAR-10
//! (docs/results.md, "Recognising the model's training images"); a horizontally mirrored copy
//! is looked up too.

use crate::InputSpec;
use crate::error::CoreError;

/// The DCT block's side: coefficients `(u, v)` with `u, v < BLOCK` make the hash.
pub const BLOCK: usize = 16;
/// Bits in a hash: the block without its constant term.
pub const HASH_BITS: usize = BLOCK * BLOCK - 1;
/// The largest Hamming distance still called the same image. CIFAR-10 members upscaled to
/// 1024 × 1024, saved as JPEG and resized back stay within 8 bits (2 000 of 2 000); the 23 of
/// 30 000 non-members within 16 bits of a member are each the same photo as that member,
/// recoloured, shifted or mirrored (measured with `mia index --check`, docs/results.md).
pub const MATCH_DISTANCE: u32 = 16;

const MAGIC: &[u8; 8] = b"MIAIDX01";

/// A 255-bit perceptual hash (bit `k` of word `k / 64`; the last bit is always 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageHash(pub [u64; 4]);

impl ImageHash {
    /// Bits that differ.
    pub fn distance(&self, other: &ImageHash) -> u32 {
        self.0.iter().zip(&other.0).map(|(a, b)| (a ^ b).count_ones()).sum()
    }

    /// The hash of one image given as CHW `u8` pixels of `input` (luminance for RGB).
    pub fn of(pixels: &[u8], input: InputSpec) -> Result<Self, CoreError> {
        let (h, w) = (input.height, input.width);
        if input.channels != 1 && input.channels != 3 {
            return Err(CoreError::Shape(format!(
                "an image hash needs 1 or 3 channels, not {}",
                input.channels
            )));
        }
        if h < BLOCK || w < BLOCK {
            return Err(CoreError::Shape(format!(
                "an image hash needs at least {BLOCK} × {BLOCK} pixels, not {h} × {w}"
            )));
        }
        if pixels.len() != input.numel() {
            return Err(CoreError::Shape(format!(
                "{} pixel values for a {input} image",
                pixels.len()
            )));
        }
        Ok(Self::from_luma(&luma(pixels, input, false), h, w))
    }

    /// The hash of the image mirrored left to right.
    pub fn of_mirrored(pixels: &[u8], input: InputSpec) -> Result<Self, CoreError> {
        Self::of(pixels, input)?;
        Ok(Self::from_luma(&luma(pixels, input, true), input.height, input.width))
    }

    fn from_luma(g: &[f64], h: usize, w: usize) -> Self {
        let coef = dct_block(g, h, w);
        let ac = &coef[1..];
        let mut sorted = ac.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[HASH_BITS / 2];
        let mut words = [0u64; 4];
        for (k, &c) in ac.iter().enumerate() {
            if c > median {
                words[k / 64] |= 1 << (k % 64);
            }
        }
        ImageHash(words)
    }
}

/// Luminance (ITU-R BT.601 weights) row by row, optionally mirrored.
fn luma(pixels: &[u8], input: InputSpec, mirror: bool) -> Vec<f64> {
    let (h, w) = (input.height, input.width);
    let plane = h * w;
    let mut g = vec![0.0; plane];
    for y in 0..h {
        for x in 0..w {
            let src = y * w + if mirror { w - 1 - x } else { x };
            g[y * w + x] = if input.channels == 1 {
                f64::from(pixels[src])
            } else {
                0.299 * f64::from(pixels[src])
                    + 0.587 * f64::from(pixels[plane + src])
                    + 0.114 * f64::from(pixels[2 * plane + src])
            };
        }
    }
    g
}

/// Orthonormal DCT-II basis: `BLOCK` rows of length `n`.
fn basis(n: usize) -> Vec<f64> {
    let mut b = vec![0.0; BLOCK * n];
    for u in 0..BLOCK {
        let scale = if u == 0 { (1.0 / n as f64).sqrt() } else { (2.0 / n as f64).sqrt() };
        for i in 0..n {
            let angle = std::f64::consts::PI * (2 * i + 1) as f64 * u as f64 / (2 * n) as f64;
            b[u * n + i] = scale * angle.cos();
        }
    }
    b
}

/// The `BLOCK × BLOCK` lowest-frequency 2-D DCT coefficients of an `h × w` plane, row-major.
fn dct_block(g: &[f64], h: usize, w: usize) -> Vec<f64> {
    let (by, bx) = (basis(h), basis(w));
    // rows: BLOCK × w = By (BLOCK × h) · g (h × w)
    let mut rows = vec![0.0; BLOCK * w];
    for u in 0..BLOCK {
        for y in 0..h {
            let c = by[u * h + y];
            for x in 0..w {
                rows[u * w + x] += c * g[y * w + x];
            }
        }
    }
    // out: BLOCK × BLOCK = rows · Bxᵀ
    let mut out = vec![0.0; BLOCK * BLOCK];
    for u in 0..BLOCK {
        for v in 0..BLOCK {
            out[u * BLOCK + v] = (0..w).map(|x| rows[u * w + x] * bx[v * w + x]).sum::<f64>();
        }
    }
    out
}

/// An upload found in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Position in the index (the order the members were given in).
    pub position: usize,
    /// The member's label.
    pub label: u8,
    /// Bits between the upload's hash and the member's.
    pub distance: u32,
    /// The upload is the member mirrored left to right.
    pub mirrored: bool,
}

/// The hashes and labels of a model's training images (`members.index.bin` in a bundle).
#[derive(Debug, Clone, PartialEq)]
pub struct MembersIndex {
    /// One hash per member.
    pub hashes: Vec<ImageHash>,
    /// One label per member.
    pub labels: Vec<u8>,
}

impl MembersIndex {
    /// The index of `count` images given as consecutive CHW pixel blocks of `input`.
    pub fn build(pixels: &[u8], labels: &[u8], input: InputSpec) -> Result<Self, CoreError> {
        let n = input.numel();
        if n == 0 || pixels.len() != labels.len() * n {
            return Err(CoreError::Shape(format!(
                "{} pixel values for {} images of {input}",
                pixels.len(),
                labels.len()
            )));
        }
        let hashes =
            pixels.chunks_exact(n).map(|p| ImageHash::of(p, input)).collect::<Result<_, _>>()?;
        Ok(Self { hashes, labels: labels.to_vec() })
    }

    /// Members in the index.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether it holds no member.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The nearest member within [`MATCH_DISTANCE`] of the image or of its mirror image.
    pub fn find(&self, pixels: &[u8], input: InputSpec) -> Result<Option<Match>, CoreError> {
        Ok(self.nearest(pixels, input)?.filter(|m| m.distance <= MATCH_DISTANCE))
    }

    /// The nearest member to the image or to its mirror image, however far (None: an empty
    /// index). Ties go to the straight image, then to the first member.
    pub fn nearest(&self, pixels: &[u8], input: InputSpec) -> Result<Option<Match>, CoreError> {
        let straight = ImageHash::of(pixels, input)?;
        let mirrored = ImageHash::of_mirrored(pixels, input)?;
        let best = |h: &ImageHash, mirrored: bool| {
            self.hashes
                .iter()
                .enumerate()
                .map(|(position, m)| Match {
                    position,
                    label: self.labels[position],
                    distance: h.distance(m),
                    mirrored,
                })
                .min_by_key(|m| m.distance)
        };
        Ok([best(&straight, false), best(&mirrored, true)]
            .into_iter()
            .flatten()
            .min_by_key(|m| (m.distance, m.mirrored)))
    }

    /// `MIAIDX01`, the count (u32 LE), the hashes (4 × u64 LE each), then the labels.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.len() * 33);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for h in &self.hashes {
            for w in h.0 {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out.extend_from_slice(&self.labels);
        out
    }

    /// Reads [`MembersIndex::encode`]'s bytes.
    pub fn decode(b: &[u8]) -> Result<Self, CoreError> {
        let bad = |why: &str| CoreError::Bundle(format!("members index: {why}"));
        if b.len() < 12 || &b[..8] != MAGIC {
            return Err(bad("not a MIAIDX01 file"));
        }
        let n = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
        if b.len() != 12 + n * 33 {
            return Err(bad(&format!("{} bytes for {n} members", b.len())));
        }
        let hashes = b[12..12 + 32 * n]
            .chunks_exact(32)
            .map(|c| {
                let mut words = [0u64; 4];
                for (w, bytes) in words.iter_mut().zip(c.chunks_exact(8)) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(bytes);
                    *w = u64::from_le_bytes(a);
                }
                ImageHash(words)
            })
            .collect();
        Ok(Self { hashes, labels: b[12 + 32 * n..].to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const RGB: InputSpec = InputSpec { channels: 3, height: 32, width: 32 };

    /// A photo-like image: a few random smooth waves per channel, plus pixel noise.
    fn photo(seed: u64) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let waves: Vec<[f64; 4]> = (0..8)
            .map(|_| {
                let (fy, fx) = (rng.random_range(-1.2..1.2), rng.random_range(-1.2..1.2));
                [fy, fx, rng.random_range(0.0..6.3), rng.random_range(4.0..14.0)]
            })
            .collect();
        let mut px = vec![0u8; RGB.numel()];
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let v: f64 = 120.0
                        + waves
                            .iter()
                            .enumerate()
                            .map(|(k, [fy, fx, ph, a])| {
                                let tilt = 1.0 + 0.2 * (c as f64 - 1.0) * (k % 2) as f64;
                                tilt * a * (fy * y as f64 + fx * x as f64 + ph).sin()
                            })
                            .sum::<f64>()
                        + rng.random_range(-4.0..4.0);
                    px[(c * 32 + y) * 32 + x] = v.clamp(0.0, 255.0) as u8;
                }
            }
        }
        px
    }

    fn index(n: u64) -> MembersIndex {
        let pixels: Vec<u8> = (0..n).flat_map(photo).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        MembersIndex::build(&pixels, &labels, RGB).expect("index")
    }

    #[test]
    fn a_member_is_found_exactly_with_its_label() {
        let idx = index(50);
        let m = idx.find(&photo(17), RGB).expect("find").expect("a match");
        assert_eq!((m.position, m.label, m.distance, m.mirrored), (17, 7, 0, false));
    }

    #[test]
    fn a_re_encoded_member_is_still_found() {
        // JPEG-like damage: every pixel moved by up to ±3 levels, and the whole image
        // brightened by 10 (a re-encode and a colour shift).
        let idx = index(50);
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let noisy: Vec<u8> = photo(23)
            .iter()
            .map(|&p| (f64::from(p) + 10.0 + rng.random_range(-3.0..3.0)).clamp(0.0, 255.0) as u8)
            .collect();
        let m = idx.find(&noisy, RGB).expect("find").expect("a match");
        assert_eq!(m.position, 23);
        assert!(m.distance > 0 && m.distance <= MATCH_DISTANCE, "distance {}", m.distance);
    }

    #[test]
    fn a_mirrored_member_is_found_as_mirrored() {
        let idx = index(50);
        let p = photo(5);
        let mut flipped = p.clone();
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    flipped[(c * 32 + y) * 32 + x] = p[(c * 32 + y) * 32 + 31 - x];
                }
            }
        }
        let m = idx.find(&flipped, RGB).expect("find").expect("a match");
        assert_eq!((m.position, m.distance, m.mirrored), (5, 0, true));
    }

    #[test]
    fn other_images_are_not_found() {
        let idx = index(200);
        let found =
            (1000..1200).filter(|&s| idx.find(&photo(s), RGB).expect("find").is_some()).count();
        assert_eq!(found, 0);
        let nearest = (1000..1200)
            .map(|s| {
                let h = ImageHash::of(&photo(s), RGB).expect("hash");
                idx.hashes.iter().map(|m| m.distance(&h)).min().unwrap_or(0)
            })
            .min()
            .unwrap_or(0);
        assert!(nearest > 2 * MATCH_DISTANCE, "nearest other image {nearest} bits away");
    }

    #[test]
    fn a_hash_has_half_its_bits_set() {
        let h = ImageHash::of(&photo(3), RGB).expect("hash");
        let set: u32 = h.0.iter().map(|w| w.count_ones()).sum();
        assert_eq!(set as usize, HASH_BITS / 2);
        assert_eq!(h.0[3] >> 63, 0, "bit 255 is unused");
    }

    #[test]
    fn grayscale_images_hash_by_their_single_channel() {
        let gray = InputSpec { channels: 1, height: 28, width: 28 };
        let px: Vec<u8> = (0..28 * 28).map(|i| ((i * 37) % 251) as u8).collect();
        let a = ImageHash::of(&px, gray).expect("hash");
        let rgb = InputSpec { channels: 3, ..gray };
        let tripled: Vec<u8> = px.iter().chain(&px).chain(&px).copied().collect();
        let b = ImageHash::of(&tripled, rgb).expect("hash");
        assert_eq!(a.distance(&b), 0);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let small = InputSpec { channels: 3, height: 8, width: 8 };
        assert!(ImageHash::of(&[0; 192], small).is_err());
        assert!(ImageHash::of(&[0; 10], RGB).is_err());
        let four = InputSpec { channels: 4, height: 32, width: 32 };
        assert!(ImageHash::of(&vec![0; four.numel()], four).is_err());
        assert!(MembersIndex::build(&[0; 100], &[1], RGB).is_err());
    }

    #[test]
    fn the_index_round_trips_through_its_bytes() {
        let idx = index(12);
        let bytes = idx.encode();
        assert_eq!(bytes.len(), 12 + 12 * 33);
        assert_eq!(MembersIndex::decode(&bytes).expect("decode"), idx);
    }

    #[test]
    fn damaged_index_bytes_are_errors() {
        let bytes = index(3).encode();
        assert!(MembersIndex::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(MembersIndex::decode(&wrong).is_err());
        assert!(MembersIndex::decode(&[]).is_err());
    }
}
