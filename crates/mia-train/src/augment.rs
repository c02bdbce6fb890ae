//! Data augmentation on raw CHW `u8` images: random crop after zero padding, and horizontal
//! flip, both driven by the caller's seeded RNG so runs are reproducible.

use mia_core::InputSpec;
use rand::Rng;

/// Pads by `pad` zeros, crops a random `h × w` window and flips horizontally with p = 0.5.
pub fn crop_flip(src: &[u8], input: InputSpec, pad: usize, rng: &mut impl Rng, out: &mut Vec<u8>) {
    let (h, w) = (input.height, input.width);
    let dy = rng.random_range(0..=2 * pad) as isize - pad as isize;
    let dx = rng.random_range(0..=2 * pad) as isize - pad as isize;
    let flip = rng.random_bool(0.5);
    for c in 0..input.channels {
        let plane = &src[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            let sy = y as isize + dy;
            for x in 0..w {
                let xx = if flip { w - 1 - x } else { x } as isize;
                let sx = xx + dx;
                let v = if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                    0
                } else {
                    plane[sy as usize * w + sx as usize]
                };
                out.push(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn crops_and_flips_keep_shape_and_content() {
        let input = InputSpec::new(1, 4, 4);
        let img: Vec<u8> = (1..=16).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut seen_flip = false;
        for _ in 0..50 {
            let mut out = Vec::new();
            crop_flip(&img, input, 0, &mut rng, &mut out);
            assert_eq!(out.len(), 16);
            if out != img {
                assert_eq!(&out[..4], &[4, 3, 2, 1]);
                seen_flip = true;
            }
        }
        assert!(seen_flip);
        let mut out = Vec::new();
        crop_flip(&img, input, 2, &mut rng, &mut out);
        assert_eq!(out.len(), 16);
        assert!(out.iter().all(|v| *v == 0 || img.contains(v)));
    }
}
