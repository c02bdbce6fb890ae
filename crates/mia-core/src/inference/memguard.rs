//! MemGuard (Jia et al., CCS 2019): the defender trains its own membership classifier
//! (the *surrogate*) on its model's outputs, then releases, for every query, a posterior
//! that the surrogate cannot tell apart (its score driven to 0.5) without changing the label,
//! within an expected L1 distortion budget.
//!
//! - **Surrogate**: logistic regression on the sorted posterior (label-free, like ML-Leaks'
//!   adversary 1), fitted on the defender's members against held-out examples.
//! - **Phase I**: noise `e` on the logits; Newton steps on the surrogate's logit
//!   `u(softmax(z + e))` towards 0, each step halved until the argmax is unchanged, at most
//!   100 steps or until |u| < 10⁻³. The paper's solver weighs the same three terms (surrogate
//!   at 0.5, label kept, small distortion) with penalties; taking the smallest Newton steps
//!   from `e = 0` keeps the distortion small directly.
//! - **Phase II**: with d = ‖s − p‖₁, the noisy `s` is released with probability
//!   min(1, budget / d), otherwise `p`, so the expected distortion is at most the budget.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::classifier::{Classifier, ClassifierKind, TrainSettings};
use crate::posterior::{argmax, softmax};

use super::ranking;

/// The defender's attack model: `u(p) = w · sort_desc(p) + b` (member logit).
#[derive(Debug, Clone, PartialEq)]
pub struct Surrogate {
    /// Weights on the sorted posterior.
    pub w: Vec<f32>,
    /// Bias.
    pub b: f32,
}

impl Surrogate {
    /// Fits the surrogate on posteriors `[n × k]` of the defender's own members
    /// (`is_member`) and held-out examples.
    pub fn fit(posteriors: &[f32], k: usize, is_member: &[bool], seed: u64) -> Self {
        let mut x = Vec::with_capacity(posteriors.len());
        for p in posteriors.chunks(k) {
            let mut s = p.to_vec();
            s.sort_by(|a, b| b.total_cmp(a));
            x.extend(s);
        }
        let settings = TrainSettings { seed, ..TrainSettings::default() };
        let model = Classifier::fit(&x, k, is_member, ClassifierKind::Logistic, settings);
        let (w, b) = model.linear().unwrap_or((vec![0.0; k], 0.0));
        Surrogate { w, b }
    }

    /// The member logit of a posterior.
    pub fn logit(&self, p: &[f32]) -> f32 {
        ranking(p).iter().zip(&self.w).map(|(&i, w)| w * p[i]).sum::<f32>() + self.b
    }
}

/// The released posterior for logits `z`.
pub fn defend(s: &Surrogate, z: &[f32], budget: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let p = softmax(z);
    let label = argmax(&p);
    let mut e = vec![0f32; z.len()];
    let shifted = |e: &[f32]| -> Vec<f32> { z.iter().zip(e).map(|(a, b)| a + b).collect() };
    let mut q = p.clone();
    for _ in 0..100 {
        let u = s.logit(&q);
        if u.abs() < 1e-3 {
            break;
        }
        // ∂u/∂e_j = q_j (v_j − Σ v_i q_i), v_j the weight of class j's sorted slot.
        let mut v = vec![0f32; q.len()];
        ranking(&q).iter().zip(&s.w).for_each(|(&i, &w)| v[i] = w);
        let mean: f32 = v.iter().zip(&q).map(|(a, b)| a * b).sum();
        let g: Vec<f32> = q.iter().zip(&v).map(|(qj, vj)| qj * (vj - mean)).collect();
        let norm2: f32 = g.iter().map(|x| x * x).sum();
        if norm2 < 1e-12 {
            break;
        }
        let mut step = u / norm2;
        let mut moved = false;
        for _ in 0..20 {
            let cand: Vec<f32> = e.iter().zip(&g).map(|(a, b)| a - step * b).collect();
            let cq = softmax(&shifted(&cand));
            if argmax(&cq) == label && (s.logit(&cq).abs() < u.abs()) {
                e = cand;
                q = cq;
                moved = true;
                break;
            }
            step /= 2.0;
        }
        if !moved {
            break;
        }
    }
    let d: f32 = q.iter().zip(&p).map(|(a, b)| (a - b).abs()).sum();
    if d <= budget || rng.random::<f32>() < budget / d { q } else { p }
}
