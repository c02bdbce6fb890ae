//! Differential-privacy accounting for DP-SGD: the Rényi-DP (RDP) accountant of the Poisson
//! subsampled Gaussian mechanism (Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of
//! the Sampled Gaussian Mechanism", Section 3.3) and the RDP → (ε, δ) conversion of Balle et
//! al. 2020 (Theorem 21), the pair Opacus and TF Privacy use. Each step samples every example
//! independently with probability `q` (Poisson sampling) and adds Gaussian noise of standard
//! deviation `σ·C` to the sum of per-example gradients clipped to norm `C`.
//!
//! Wasm-safe and dependency-free, so the browser lab and the native trainer report the same ε.

use crate::CoreError;

/// The RDP orders α the accountant evaluates: 1.1, 1.2, …, 10.9 and 12, 13, …, 63 (Opacus's
/// default set), where the optimum lies for the q, σ and step counts of practice.
pub fn default_orders() -> Vec<f64> {
    (1..100).map(|x| 1.0 + f64::from(x) / 10.0).chain((12..64).map(f64::from)).collect()
}

/// log(e^a + e^b).
fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY { hi } else { (lo - hi).exp().ln_1p() + hi }
}

/// log(e^a − e^b) for a ≥ b.
fn log_sub(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    if a <= b {
        return f64::NEG_INFINITY;
    }
    (a - b).exp_m1().ln() + b
}

/// log(erfc(x)), accurate far into the right tail.
fn log_erfc(x: f64) -> f64 {
    if x < 20.0 {
        return libm::erfc(x).ln();
    }
    // erfc(x) ≈ e^{−x²} / (x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶)).
    let x2 = x * x;
    -x2 - x.ln() - 0.5 * std::f64::consts::PI.ln()
        + (1.0 - 1.0 / (2.0 * x2) + 3.0 / (4.0 * x2 * x2) - 15.0 / (8.0 * x2 * x2 * x2)).ln()
}

/// log A_α for integer α: log Σ_i C(α, i) q^i (1−q)^{α−i} exp((i² − i) / 2σ²).
fn log_a_int(q: f64, sigma: f64, alpha: u32) -> f64 {
    let mut lb = 0.0f64; // log C(α, i)
    (0..=alpha).fold(f64::NEG_INFINITY, |acc, i| {
        let fi = f64::from(i);
        if i > 0 {
            lb += (f64::from(alpha) - fi + 1.0).ln() - fi.ln();
        }
        let term = lb
            + fi * q.ln()
            + (f64::from(alpha) - fi) * (1.0 - q).ln()
            + (fi * fi - fi) / (2.0 * sigma * sigma);
        log_add(acc, term)
    })
}

/// log A_α for fractional α: the two half-line integrals as alternating series, summed until
/// their terms fall below e^−30. The binomial coefficient C(α, i) is updated term by term.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (mut a0, mut a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let s2 = std::f64::consts::SQRT_2 * sigma;
    let (mut lb, mut positive) = (0.0f64, true); // log |C(α, 0)|, its sign
    for i in 0u32..100_000 {
        let fi = f64::from(i);
        if i > 0 {
            // C(α, i) = C(α, i − 1) · (α − i + 1) / i.
            let f = alpha - fi + 1.0;
            positive ^= f < 0.0;
            lb += f.abs().ln() - fi.ln();
        }
        let j = alpha - fi;
        let t0 = lb + fi * q.ln() + j * (1.0 - q).ln();
        let t1 = lb + j * q.ln() + fi * (1.0 - q).ln();
        let e0 = 0.5f64.ln() + log_erfc((fi - z0) / s2);
        let e1 = 0.5f64.ln() + log_erfc((z0 - j) / s2);
        let s0 = t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + e0;
        let s1 = t1 + (j * j - j) / (2.0 * sigma * sigma) + e1;
        if positive {
            a0 = log_add(a0, s0);
            a1 = log_add(a1, s1);
        } else {
            a0 = log_sub(a0, s0);
            a1 = log_sub(a1, s1);
        }
        if s0.max(s1) < -30.0 {
            break;
        }
    }
    log_add(a0, a1)
}

/// RDP at order `alpha` of one step of the sampled Gaussian mechanism with sampling rate `q`
/// and noise multiplier `sigma` (infinite without noise).
pub fn rdp_step(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        0.0
    } else if sigma == 0.0 {
        f64::INFINITY
    } else if q >= 1.0 {
        alpha / (2.0 * sigma * sigma)
    } else if alpha.fract() == 0.0 && alpha <= f64::from(u32::MAX) {
        log_a_int(q, sigma, alpha as u32) / (alpha - 1.0)
    } else {
        log_a_frac(q, sigma, alpha) / (alpha - 1.0)
    }
}

/// An RDP accountant: the RDP spent so far at each order.
#[derive(Debug, Clone, PartialEq)]
pub struct Accountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
    /// The last (q, σ) and its per-step RDP at every order (training repeats one setting).
    last: Option<(f64, f64, Vec<f64>)>,
}

impl Default for Accountant {
    fn default() -> Self {
        Self::new(default_orders())
    }
}

impl Accountant {
    /// An accountant over `orders` (each > 1), nothing spent yet.
    pub fn new(orders: Vec<f64>) -> Self {
        let rdp = vec![0.0; orders.len()];
        Self { orders, rdp, last: None }
    }

    /// Adds `steps` steps of the sampled Gaussian mechanism.
    pub fn step(&mut self, q: f64, sigma: f64, steps: u64) -> Result<(), CoreError> {
        if !(0.0..=1.0).contains(&q) || !sigma.is_finite() || sigma < 0.0 {
            return Err(CoreError::Parameter(format!(
                "DP-SGD needs a sampling rate in [0, 1] and a finite noise multiplier ≥ 0 (got q = {q}, σ = {sigma})"
            )));
        }
        let per_step = match self.last.take() {
            Some((lq, ls, v)) if lq == q && ls == sigma => v,
            _ => self.orders.iter().map(|&a| rdp_step(q, sigma, a)).collect(),
        };
        for (r, p) in self.rdp.iter_mut().zip(&per_step) {
            *r += p * steps as f64;
        }
        self.last = Some((q, sigma, per_step));
        Ok(())
    }

    /// (ε, the best order) at `delta` (Balle et al. 2020, Theorem 21).
    pub fn epsilon(&self, delta: f64) -> Result<(f64, f64), CoreError> {
        if !(delta > 0.0 && delta < 1.0) {
            return Err(CoreError::Parameter(format!("δ must lie in (0, 1), got {delta}")));
        }
        let best = self
            .orders
            .iter()
            .zip(&self.rdp)
            .map(|(&a, &r)| (r - (delta.ln() + a.ln()) / (a - 1.0) + ((a - 1.0) / a).ln(), a))
            .filter(|(e, _)| !e.is_nan())
            .min_by(|x, y| x.0.total_cmp(&y.0));
        Ok(best.map_or((f64::INFINITY, f64::NAN), |(e, a)| (e.max(0.0), a)))
    }
}

/// DP-SGD's Poisson schedule for batches of `batch` from `n` examples: the sampling rate
/// q = batch / n (at most 1) and the steps that make one epoch, round(1/q) (at least 1).
pub fn poisson_schedule(batch: usize, n: usize) -> (f64, usize) {
    let q = (batch as f64 / n.max(1) as f64).min(1.0);
    (q, (1.0 / q).round().max(1.0) as usize)
}

/// ε after `steps` steps at sampling rate `q` and noise multiplier `sigma`, at `delta`.
pub fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> Result<f64, CoreError> {
    let mut a = Accountant::default();
    a.step(q, sigma, steps)?;
    Ok(a.epsilon(delta)?.0)
}

/// The smallest noise multiplier (to 0.001 relative) that keeps ε ≤ `target` after `steps`
/// steps at sampling rate `q` and `delta`; an error when even σ = 1000 does not.
pub fn noise_for_epsilon(target: f64, q: f64, steps: u64, delta: f64) -> Result<f64, CoreError> {
    if !(target > 0.0 && target.is_finite()) {
        return Err(CoreError::Parameter(format!("the target ε must be positive, got {target}")));
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while epsilon(q, hi, steps, delta)? > target {
        hi *= 2.0;
        if hi > 1000.0 {
            return Err(CoreError::Parameter(format!(
                "ε = {target} cannot be reached with σ ≤ 1000 (q = {q}, {steps} steps)"
            )));
        }
    }
    while hi - lo > 1e-3 * hi {
        let mid = 0.5 * (lo + hi);
        if epsilon(q, mid, steps, delta)? > target { lo = mid } else { hi = mid }
    }
    Ok(hi)
}

/// The highest balanced accuracy (mean of TPR and TNR) any membership-inference attack can
/// reach against an (ε, δ)-DP training run: (e^ε + δ) / (1 + e^ε). It follows from the
/// hypothesis-testing form of DP (Kairouz, Oh & Viswanath 2015: TPR ≤ e^ε·FPR + δ and
/// TNR ≤ e^ε·(1 − TPR) + δ, added), so ε ≈ 1 caps an attack at 0.73, ε ≈ 8 at 0.9997.
pub fn max_attack_accuracy(epsilon: f64, delta: f64) -> f64 {
    if epsilon.is_nan() || epsilon == f64::INFINITY {
        return 1.0;
    }
    // (e^ε + δ) / (1 + e^ε) = (1 + δ·e^−ε) / (1 + e^−ε), stable for large ε.
    let inv = (-epsilon.max(0.0)).exp();
    ((1.0 + delta * inv) / (1.0 + inv)).min(1.0)
}

/// What an ε promises, on the scale of Ponomareva et al. 2023 ("How to DP-fy ML", JAIR,
/// Section 5.2: ε ≤ 1 strong, ε ≤ 10 reasonable, above that weak), with the ceiling it puts on
/// a membership-inference attack's balanced accuracy ([`max_attack_accuracy`]).
pub fn epsilon_meaning(epsilon: f64, delta: f64) -> String {
    let cap = max_attack_accuracy(epsilon, delta);
    let tier = if !epsilon.is_finite() {
        "no guarantee at all"
    } else if epsilon <= 1.0 {
        "a strong guarantee (ε ≤ 1)"
    } else if epsilon <= 10.0 {
        "a reasonable guarantee (1 < ε ≤ 10)"
    } else {
        "a weak guarantee that promises next to nothing by itself (ε > 10)"
    };
    let cap = if cap >= 0.9995 {
        "does not limit an attack's balanced accuracy below 1".to_string()
    } else {
        format!("caps any attack's balanced accuracy at {cap:.3}")
    };
    format!("{tier}: it {cap} (tiers of Ponomareva et al. 2023, \"How to DP-fy ML\")")
}

/// A warning when δ is not far below 1/N for N training examples: a mechanism that publishes
/// each example outright with probability δ is (0, δ)-DP, so δ ≥ 1/N allows leaking one
/// example in full and still "satisfying" the guarantee. Common practice is δ ≪ 1/N.
pub fn delta_warning(delta: f64, examples: usize) -> Option<String> {
    let n = examples.max(1) as f64;
    (delta * n >= 1.0).then(|| {
        format!(
            "δ = {delta:e} is at least 1/N = {:.3e} for N = {examples} training examples: at \
             such a δ a run may publish one example outright and still meet the guarantee; \
             choose δ well below 1/N (e.g. {:.0e})",
            1.0 / n,
            0.1 / n
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poisson_schedule_covers_an_epoch() {
        assert_eq!(poisson_schedule(32, 2500), (0.0128, 78));
        assert_eq!(poisson_schedule(16, 25), (0.64, 2));
        assert_eq!(poisson_schedule(64, 10), (1.0, 1), "q is at most 1");
        assert_eq!(poisson_schedule(8, 0).1, 1, "no examples: one step, no division by zero");
    }

    #[test]
    fn matches_opacus_for_sigma_1_5_q_0_04_over_90_epochs() {
        // Opacus's own test (opacus/tests/accountants_test.py): ε = 7.32911117143.
        let e = epsilon(0.04, 1.5, (90.0f64 / 0.04) as u64, 1e-5).unwrap();
        assert!((e - 7.329_111_171_43).abs() < 1e-6, "{e}");
    }

    #[test]
    fn matches_the_documented_composition_example() {
        // Opacus/TF Privacy rdp.py docstring: (q, σ, steps) = (1e-5, 1, 10) then (1e-4, 3, 4),
        // orders 2..=32, δ = 1e-5 → ε ≈ 0.336 at order 23.
        let mut a = Accountant::new((2..=32).map(f64::from).collect());
        a.step(1e-5, 1.0, 10).unwrap();
        a.step(1e-4, 3.0, 4).unwrap();
        let (e, order) = a.epsilon(1e-5).unwrap();
        assert!((e - 0.336).abs() < 5e-4, "{e}");
        assert_eq!(order, 23.0);
    }

    #[test]
    fn full_batches_are_the_plain_gaussian_mechanism_and_no_noise_is_no_privacy() {
        assert_eq!(rdp_step(1.0, 2.0, 3.0), 3.0 / 8.0);
        assert_eq!(rdp_step(0.1, 0.0, 3.0), f64::INFINITY);
        assert_eq!(epsilon(0.1, 0.0, 1, 1e-5).unwrap(), f64::INFINITY);
        assert_eq!(rdp_step(0.0, 1.0, 3.0), 0.0);
    }

    #[test]
    fn fractional_orders_sit_between_their_integer_neighbours() {
        let (q, s) = (0.01, 1.1);
        let (r2, r25, r3) = (rdp_step(q, s, 2.0), rdp_step(q, s, 2.5), rdp_step(q, s, 3.0));
        assert!(r2 < r25 && r25 < r3, "{r2} {r25} {r3}");
    }

    #[test]
    fn more_noise_and_fewer_steps_spend_less_and_the_search_inverts_epsilon() {
        let (q, steps, d) = (0.04, 2250, 1e-5);
        assert!(epsilon(q, 2.0, steps, d).unwrap() < epsilon(q, 1.5, steps, d).unwrap());
        assert!(epsilon(q, 1.5, 100, d).unwrap() < epsilon(q, 1.5, steps, d).unwrap());
        let sigma = noise_for_epsilon(8.0, q, steps, d).unwrap();
        // Opacus's get_noise_multiplier gives 1.4253 for this case (to its 0.01 ε tolerance).
        assert!((sigma - 1.4253).abs() < 0.01, "{sigma}");
        assert!(epsilon(q, sigma, steps, d).unwrap() <= 8.0);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(epsilon(1.5, 1.0, 1, 1e-5).is_err());
        assert!(epsilon(0.1, -1.0, 1, 1e-5).is_err());
        assert!(epsilon(0.1, 1.0, 1, 0.0).is_err());
        assert!(noise_for_epsilon(-1.0, 0.1, 10, 1e-5).is_err());
    }
    #[test]
    fn an_epsilon_caps_attack_accuracy_and_has_a_stated_meaning() {
        assert!((max_attack_accuracy(0.0, 0.0) - 0.5).abs() < 1e-12);
        let e1 = std::f64::consts::E / (1.0 + std::f64::consts::E);
        assert!((max_attack_accuracy(1.0, 0.0) - e1).abs() < 1e-12);
        assert_eq!(max_attack_accuracy(f64::INFINITY, 1e-5), 1.0);
        assert!(max_attack_accuracy(800.0, 1e-5) <= 1.0, "no overflow far out");
        assert!(epsilon_meaning(0.5, 1e-5).contains("strong"));
        assert!(epsilon_meaning(8.0, 1e-5).contains("reasonable"));
        let fifty = epsilon_meaning(50.0, 1e-5);
        assert!(fifty.contains("next to nothing") && fifty.contains("does not limit"), "{fifty}");
        assert!(epsilon_meaning(f64::INFINITY, 1e-5).contains("no guarantee"));
    }

    #[test]
    fn a_delta_of_one_over_n_or_more_is_flagged() {
        assert!(delta_warning(1e-5, 100).is_none());
        assert!(delta_warning(0.01, 100).is_some(), "δ = 1/N");
        assert!(delta_warning(0.1, 100).unwrap().contains("1/N"));
        assert!(delta_warning(1e-5, 200_000).is_some());
    }
}
