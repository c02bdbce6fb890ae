//! The defender's side of the adaptive attacker, written once for the CLI and the page: how
//! one model's outputs are released through a [`Chain`], with the per-model context its
//! defenses need and randomness seeded per model.
//!
//! The target is model [`TARGET`] and shadow `s` (0-based) is model [`shadow`]`(s)`; model `m`
//! draws its surrogate and its noise from `mix(seed, m)`, so every model's defense is
//! independent of every other's, as a real defender's is of the attacker's. The adaptive
//! attacker releases each shadow's outputs through the same chain with the shadow's own
//! members as the defense's context; the naive attacker uses the shadows as trained.
//!
//! `mia attack --inference-defense` (mia-attack's `defended`) and the page's Explore and lab
//! views (mia-web's `analysis` and `lab_run`) call [`Defender`]; the CLI's tests check that
//! both give the same scores on the same inputs.

use crate::CoreError;
use crate::inference::{Chain, ModelContext, Row, Surrogate, released_logits};
use crate::posterior::softmax;
use crate::rng::mix;

/// The model number of the target.
pub const TARGET: u64 = 0;

/// The model number of shadow `s` (0-based).
pub fn shadow(s: usize) -> u64 {
    s as u64 + 1
}

/// One model's outputs and what its defenses may need.
#[derive(Debug, Clone, Copy)]
pub struct ModelOutputs<'a> {
    /// Logits `[queries × rows × classes]`, query-major; query 0 is the identity query.
    pub logits: &'a [f32],
    /// Queries K (augmentations); 1 for the page.
    pub queries: usize,
    /// Rows: the `members.len()` candidates, then (optionally) population rows the model
    /// did not train on.
    pub rows: usize,
    /// Classes C.
    pub classes: usize,
    /// Which candidates the model trained on.
    pub members: &'a [bool],
    /// Its sorted (descending) posteriors on random inputs (HAMP); see [`sorted_posteriors`].
    pub references: &'a [Vec<f32>],
    /// ‖∇ₓ CE(f(x), ŷ)‖ for every query and row, `[≥ queries × rows]` (HyGA-ANI).
    pub gradient_norms: Option<&'a [f32]>,
}

impl<'a> ModelOutputs<'a> {
    /// A single-query model without gradient norms: what the page has.
    pub fn single(
        logits: &'a [f32],
        classes: usize,
        members: &'a [bool],
        references: &'a [Vec<f32>],
    ) -> Self {
        let rows = logits.len() / classes.max(1);
        Self { logits, queries: 1, rows, classes, members, references, gradient_norms: None }
    }

    fn check(&self) -> Result<(), CoreError> {
        let (k, r, c) = (self.queries, self.rows, self.classes);
        if c == 0 || self.logits.len() != k * r * c || self.members.len() > r {
            return Err(CoreError::Shape(format!(
                "{} logits and {} members for {k} queries × {r} rows × {c} classes",
                self.logits.len(),
                self.members.len()
            )));
        }
        Ok(())
    }

    fn row(&self, q: usize, i: usize) -> &'a [f32] {
        let at = (q * self.rows + i) * self.classes;
        &self.logits[at..at + self.classes]
    }

    /// Rows the model did not train on: the population rows, or, without any, the candidates
    /// it did not train on.
    fn held_out(&self) -> Vec<usize> {
        let n = self.members.len();
        if self.rows > n {
            (n..self.rows).collect()
        } else {
            (0..n).filter(|&i| !self.members[i]).collect()
        }
    }

    fn gradients(&self) -> Result<&'a [f32], CoreError> {
        let g = self.gradient_norms.ok_or_else(|| {
            CoreError::DefenseContext(
                "the defense needs input-gradient norms, which were not computed".into(),
            )
        })?;
        // Norms are cached for every cached query; an attack on the first K queries uses the
        // first K blocks.
        let need = self.queries * self.rows;
        if g.len() < need || self.rows == 0 || !g.len().is_multiple_of(self.rows) {
            return Err(CoreError::Shape(format!(
                "{} gradient norms for {} queries × {} rows",
                g.len(),
                self.queries,
                self.rows
            )));
        }
        Ok(&g[..need])
    }
}

/// The sorted (descending) posteriors of `[R × C]` random-input logits: HAMP's references.
pub fn sorted_posteriors(
    random_logits: &[f32],
    classes: usize,
) -> Result<Vec<Vec<f32>>, CoreError> {
    if classes == 0 || random_logits.is_empty() || !random_logits.len().is_multiple_of(classes) {
        return Err(CoreError::Shape(format!(
            "{} random-input logits for {classes} classes",
            random_logits.len()
        )));
    }
    Ok(random_logits
        .chunks(classes)
        .map(|z| {
            let mut p = softmax(z);
            p.sort_by(|a, b| b.total_cmp(a));
            p
        })
        .collect())
}

/// Releases models' outputs through one chain, each with its own seeded randomness.
#[derive(Debug, Clone, Copy)]
pub struct Defender<'a> {
    chain: &'a Chain,
    seed: u64,
}

impl<'a> Defender<'a> {
    /// A defender of `chain` with its seed.
    pub fn new(chain: &'a Chain, seed: u64) -> Self {
        Self { chain, seed }
    }

    /// The chain it applies.
    pub fn chain(&self) -> &'a Chain {
        self.chain
    }

    /// The context of model `model`: HAMP's references, a MemGuard surrogate fitted on its
    /// members against its held-out rows, HyGA-ANI's scale (the 95th percentile of the
    /// held-out rows' gradient norms).
    pub fn context(&self, m: &ModelOutputs<'_>, model: u64) -> Result<ModelContext, CoreError> {
        m.check()?;
        let needs = self.chain.needs();
        let mut ctx = ModelContext::default();
        if needs.references {
            if m.references.is_empty() {
                return Err(CoreError::DefenseContext(
                    "the defense needs random-input logits, which were not computed".into(),
                ));
            }
            ctx.references = m.references.to_vec();
        }
        let held_out = m.held_out();
        if needs.surrogate {
            let n = m.members.len();
            let rows: Vec<usize> =
                (0..n).filter(|&i| m.members[i]).chain(held_out.clone()).collect();
            let y: Vec<bool> = rows.iter().map(|&i| i < n && m.members[i]).collect();
            let x: Vec<f32> = rows.iter().flat_map(|&i| softmax(m.row(0, i))).collect();
            ctx.surrogate = Some(Surrogate::fit(&x, m.classes, &y, mix(self.seed, model)));
        }
        if needs.gradients {
            let g = m.gradients()?;
            let mut h: Vec<f32> = held_out.iter().map(|&i| g[i]).collect();
            h.sort_by(f32::total_cmp);
            let q = h.get(((h.len() as f64 * 0.95) as usize).min(h.len().saturating_sub(1)));
            ctx.gradient_scale = Some(q.copied().unwrap_or(1.0).max(1e-12));
        }
        Ok(ctx)
    }

    /// The released logits (`ln` of the released posteriors) of model `model`, in the layout
    /// of its logits; row `q * rows + i` draws its noise from its own stream.
    pub fn release(
        &self,
        m: &ModelOutputs<'_>,
        ctx: &ModelContext,
        model: u64,
    ) -> Result<Vec<f32>, CoreError> {
        m.check()?;
        let grads = if self.chain.needs().gradients { Some(m.gradients()?) } else { None };
        let seed = mix(self.seed, model);
        let mut out = Vec::with_capacity(m.logits.len());
        for q in 0..m.queries {
            for i in 0..m.rows {
                let id = (q * m.rows + i) as u64;
                let row = Row { id, gradient_norm: grads.map(|g| g[id as usize]) };
                out.extend(released_logits(&self.chain.apply(m.row(q, i), ctx, row, seed)?));
            }
        }
        Ok(out)
    }

    /// [`Self::context`] then [`Self::release`].
    pub fn release_model(&self, m: &ModelOutputs<'_>, model: u64) -> Result<Vec<f32>, CoreError> {
        let ctx = self.context(m, model)?;
        self.release(m, &ctx, model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs<'a>(logits: &'a [f32], members: &'a [bool]) -> ModelOutputs<'a> {
        ModelOutputs::single(logits, 2, members, &[])
    }

    #[test]
    fn each_model_gets_its_own_noise_and_the_same_model_the_same() {
        let chain = Chain::parse("gaussian:sigma=0.5").unwrap();
        let logits = [2.0, 0.0, 0.0, 1.0, 3.0, -1.0];
        let members = [true, false, true];
        let d = Defender::new(&chain, 7);
        let m = outputs(&logits, &members);
        let target = d.release_model(&m, TARGET).unwrap();
        assert_eq!(target, d.release_model(&m, TARGET).unwrap());
        assert_ne!(target, d.release_model(&m, shadow(0)).unwrap());
        assert_ne!(target, Defender::new(&chain, 8).release_model(&m, TARGET).unwrap());
    }

    #[test]
    fn hamp_without_references_and_hyga_without_norms_are_errors() {
        let logits = [2.0, 0.0];
        let members = [true];
        let m = outputs(&logits, &members);
        let hamp = Chain::parse("hamp").unwrap();
        let err = Defender::new(&hamp, 0).release_model(&m, TARGET).unwrap_err().to_string();
        assert!(err.contains("random-input logits"), "{err}");
        let hyga = Chain::parse("hyga").unwrap();
        let err = Defender::new(&hyga, 0).release_model(&m, TARGET).unwrap_err().to_string();
        assert!(err.contains("input-gradient norms"), "{err}");
    }

    #[test]
    fn logits_that_do_not_fill_the_rows_are_a_shape_error() {
        let logits = [2.0, 0.0, 1.0];
        let members = [true];
        let m = ModelOutputs { rows: 1, ..outputs(&logits, &members) };
        let chain = Chain::parse("round").unwrap();
        assert!(matches!(Defender::new(&chain, 0).release_model(&m, 0), Err(CoreError::Shape(_))));
    }

    #[test]
    fn sorted_posteriors_sort_each_row_downwards() {
        let p = sorted_posteriors(&[0.0, 2.0, 1.0, 1.0], 2).unwrap();
        assert!(p.iter().all(|r| r[0] >= r[1]));
        assert!((p[1][0] - 0.5).abs() < 1e-6);
        assert!(sorted_posteriors(&[0.0, 2.0, 1.0], 2).is_err());
    }
}
