//! Seeds and draws, in one place for the trainer, the attacks, the defenses and the browser:
//! every random stream in MIA Lab is a ChaCha8 stream seeded from [`mix`] of a run seed and
//! what the stream is for (an epoch, a shadow, a model, an example), so that the same seed
//! gives the same numbers on every platform, natively and in wasm32.

use rand::Rng;

/// SplitMix64's finaliser of `a` and `b`: decorrelates (seed, id, step) into one stream seed.
/// Nearby inputs (epoch 3 and 4, shadow 7 and 8) give unrelated outputs.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A standard normal draw (Box–Muller in f64; platform-independent given the stream).
pub fn normal(rng: &mut impl Rng) -> f32 {
    let u1 = rng.random::<f64>().max(1e-300);
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// A Gamma(`shape`, 1) draw (Marsaglia & Tsang 2000; shapes below 1 boosted by `U^(1/shape)`).
/// `shape` must be positive and finite (callers range-check it).
pub fn gamma(rng: &mut impl Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = rng.random::<f64>().max(1e-300);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = f64::from(normal(rng));
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.random::<f64>().max(1e-300);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A Beta(`a`, `b`) draw, from two Gamma draws.
pub fn beta(rng: &mut impl Rng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    if x + y > 0.0 { x / (x + y) } else { 0.5 }
}

/// burn's backends keep one process-wide RNG. Whoever seeds it and draws from it (initial
/// weights: the native trainer's shadows on threads, the lab's heads) takes this lock, so no
/// thread's draws interleave with another's and every model is the same as when built alone.
/// (Dropout in the native trainer draws from it during training too, which is why
/// `mia shadows` trains dropout models one at a time; the lab's heads draw their dropout masks
/// from their own seeded generator instead.)
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds burn's process-wide RNG (see [`BACKEND_RNG`]).
pub fn backend_lock() -> std::sync::MutexGuard<'static, ()> {
    BACKEND_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Touches every parameter so its lazy initialiser runs (burn draws initial weights on first
/// use: under [`backend_lock`], they must be drawn before the lock is released).
pub struct Materialize;

impl burn::module::ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::Tensor<D>>) {
        let _ = param.val();
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn beta_draws_have_the_right_mean_and_variance() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (a, b) in [(0.2, 0.2), (1.0, 1.0), (2.0, 5.0)] {
            let n = 40_000;
            let xs: Vec<f64> = (0..n).map(|_| beta(&mut rng, a, b)).collect();
            assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let (m, v) = (a / (a + b), a * b / ((a + b).powi(2) * (a + b + 1.0)));
            assert!((mean - m).abs() < 0.01, "Beta({a}, {b}): mean {mean} vs {m}");
            assert!((var - v).abs() < 0.01, "Beta({a}, {b}): variance {var} vs {v}");
        }
    }

    #[test]
    fn mix_separates_neighbouring_inputs() {
        let a = mix(7, 3);
        let b = mix(7, 4);
        // About half the bits differ between neighbours (an avalanche, not a counter).
        assert!((a ^ b).count_ones() > 16, "{a:x} vs {b:x}");
        assert_ne!(mix(7, 3), mix(3, 7));
        assert_eq!(mix(7, 3), a, "deterministic");
    }

    #[test]
    fn normal_draws_have_unit_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x: Vec<f64> = (0..20_000).map(|_| f64::from(normal(&mut rng))).collect();
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
