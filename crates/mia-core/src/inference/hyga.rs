//! HyGA-ANI (hybrid gradient-aware adaptive noise injection), re-derived here because its
//! public code does not run. The defense adds Gaussian noise to the logits, more of it where
//! the model is *sensitive* at the query, and shrinks the noise until the released posterior
//! stays within a KL budget of the clean one.
//!
//! **Derivation.**
//! 1. *Sensitivity.* For a query x with predicted label ŷ = argmax f(x) (the defender does
//!    not know the true label), g(x) = ‖∇ₓ CE(f(x), ŷ)‖₂: how fast the loss at the released
//!    label changes as the input moves. Fitted (member-like) points sit in flat, low-loss
//!    regions and have small g. The defender normalises it with its own scale s (the 95th
//!    percentile of g on held-out data it owns): φ = min(g / s, 1) ∈ [0, 1].
//! 2. *Noise level.* σ = min(α·φ² + β, σ_max): a floor β for every query, growing
//!    quadratically with sensitivity, capped at σ_max.
//! 3. *Draw.* n = σ·ε with ε ~ N(0, I_k) on the logits z.
//! 4. *Utility bound.* K(t) = KL(p ‖ softmax(z + t·n)) = Σ p log p − Σ pᵢ(zᵢ + t·nᵢ) +
//!    logsumexp(z + t·n). The logsumexp is convex in t and the rest is linear, so K is convex;
//!    K(0) = 0 and K'(0) = −Σ pᵢnᵢ + Σ pᵢnᵢ = 0, so K is non-decreasing on t ≥ 0. The largest
//!    t ∈ [0, 1] with K(t) ≤ κ is therefore found by bisection (40 halvings), and the release is
//!    softmax(z + t*·n): full noise when it already meets the bound, less otherwise, never more
//!    than KL κ away from the clean posterior.
//!
//! The input gradient needs autodiff at inference: [`input_gradient_norms`] runs the model on
//! an autodiff device with its parameters frozen (dropout off, batch norm on running
//! statistics), natively and in the browser alike.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::models::Model;
use crate::posterior::softmax;

use crate::rng::normal;

/// HyGA-ANI's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HygaParams {
    /// Weight of the squared sensitivity α.
    pub alpha: f32,
    /// Noise floor β.
    pub beta: f32,
    /// Largest standard deviation σ_max.
    pub sigma_max: f32,
    /// KL budget κ (nats).
    pub kappa: f32,
}

impl Default for HygaParams {
    fn default() -> Self {
        Self { alpha: 2.0, beta: 0.05, sigma_max: 1.5, kappa: 0.1 }
    }
}

impl HygaParams {
    pub(super) fn spec(&self) -> String {
        format!(
            "alpha={},beta={},sigma-max={},kappa={}",
            self.alpha, self.beta, self.sigma_max, self.kappa
        )
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.alpha < 0.0 || self.beta < 0.0 || self.sigma_max < 0.0 || self.kappa < 0.0 {
            return Err("alpha, beta, sigma-max and kappa must be ≥ 0".into());
        }
        Ok(())
    }

    /// σ for a gradient norm `g` and the defender's scale.
    pub fn sigma(&self, g: f32, scale: f32) -> f32 {
        let phi = if scale > 0.0 { (g / scale).clamp(0.0, 1.0) } else { 1.0 };
        (self.alpha * phi * phi + self.beta).min(self.sigma_max)
    }

    /// The perturbed logits for logits `z` with gradient norm `g`.
    pub fn perturb(&self, z: &[f32], g: f32, scale: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let sigma = self.sigma(g, scale);
        let noise: Vec<f32> = z.iter().map(|_| sigma * normal(rng)).collect();
        let at = |t: f32| -> Vec<f32> { z.iter().zip(&noise).map(|(a, n)| a + t * n).collect() };
        let p = softmax(z);
        let within = |t: f32| kl(&p, &softmax(&at(t))) <= self.kappa;
        let t = if within(1.0) {
            1.0
        } else {
            let (mut lo, mut hi) = (0f32, 1f32);
            for _ in 0..40 {
                let mid = 0.5 * (lo + hi);
                if within(mid) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        at(t)
    }
}

/// KL(p ‖ q) in nats (terms with p = 0 contribute 0).
pub fn kl(p: &[f32], q: &[f32]) -> f32 {
    p.iter()
        .zip(q)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| a * (a.ln() - b.max(1e-38).ln()))
        .sum::<f32>()
        .max(0.0)
}

/// Moves a model to the autodiff version of `device` with every parameter frozen, ready for
/// [`input_gradient_norms`].
pub fn for_gradients(model: Model, device: &Device) -> Model {
    model.to_device(&device.clone().autodiff()).freeze()
}

/// ‖∇ₓ CE(f(x), ŷ)‖₂ for every example of the batch `x [b, c, h, w]`, ŷ the predicted label.
/// `model` comes from [`for_gradients`] on `x`'s device; the result lives on the plain device.
pub fn input_gradient_norms(model: &Model, x: Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = x.dims();
    let x = x.autodiff().require_grad(); // [b, c, h, w]
    let logits = model.forward(x.clone()); // [b, k]
    let labels = logits.clone().detach().argmax(1); // [b, 1]
    let picked = log_softmax(logits, 1).gather(1, labels); // [b, 1]
    // Examples are independent (frozen model), so the gradient of the summed loss with
    // respect to each input is that example's own gradient.
    let grads = picked.sum().neg().backward();
    match x.grad(&grads) {
        Some(g) => g.reshape([b, c * h * w]).powi_scalar(2).sum_dim(1).sqrt().reshape([b]), // [b]
        None => Tensor::zeros([b], &x.device().inner()),
    }
}
