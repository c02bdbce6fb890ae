//! Inference-time (output-perturbation) defenses: what a model's owner can do to the vector
//! it releases, without retraining. Each acts on one example's logits or posterior, is
//! deterministic given a seed and the example's id, declares whether it keeps the predicted
//! label, and composes in a [`Chain`] (`temperature:t=2+round:d=2`). The browser toggles the
//! same code live; `mia attack --inference-defense` runs every attack through it twice (naive
//! and adaptive attacker).
//!
//! The defenses, their parameters' defaults and ranges and whether each keeps the label are
//! listed once, in [`catalogue`]; docs/cli.md's table (with what each releases and its source)
//! is tested against it.
//!
//! HAMP, MemGuard and HyGA-ANI need more than the logits; [`ModelContext`] carries what they
//! need per model (random-input posteriors, the defender's surrogate, the gradient scale) and
//! [`Row`] per example (its id and gradient norm).

pub mod catalogue;
pub mod defender;
pub mod hyga;
pub mod memguard;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::posterior::{argmax, entropy, softmax};
use crate::rng::{mix, normal};

pub use memguard::Surrogate;

/// Cached per-model signals next to a model's logits (`target_` prefix for the target in a
/// shadow folder): logits on random inputs `float32 [R, C]` (HAMP) …
pub const RANDOM_LOGITS_FILE: &str = "random_logits.npy";
/// … and input-gradient norms `float32 [K, rows]` (HyGA-ANI).
pub const GRADIENT_NORMS_FILE: &str = "gradient_norms.npy";
/// Random inputs whose outputs HAMP draws from.
pub const RANDOM_INPUTS: usize = 256;

/// Smallest posterior turned into a logit (`ln` of it), so released zeros stay finite.
pub const FLOOR: f32 = 1e-30;

/// One inference-time defense with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Defense {
    /// Top-k release.
    TopK {
        /// Posteriors released.
        k: usize,
    },
    /// Label-only release.
    Label,
    /// Rounding to `d` decimals.
    Round {
        /// Decimals kept.
        d: u32,
    },
    /// Confidence cap with redistribution.
    Cap {
        /// Largest posterior released, in (1/k, 1].
        c: f32,
    },
    /// Clip-renormalise (the broken cap).
    Clip {
        /// Clip level.
        c: f32,
    },
    /// Temperature scaling.
    Temperature {
        /// Temperature T > 0.
        t: f32,
    },
    /// Gaussian noise on the posterior.
    Gaussian {
        /// Standard deviation.
        sigma: f32,
    },
    /// IBM ART's reverse sigmoid.
    ReverseSigmoid {
        /// Perturbation magnitude β.
        beta: f32,
        /// Convergence γ.
        gamma: f32,
    },
    /// DynaNoise.
    DynaNoise {
        /// Base variance σ₀².
        sigma2: f32,
        /// Risk scaling λ.
        lambda: f32,
        /// Softmax temperature T.
        t: f32,
        /// Draws averaged.
        m: usize,
    },
    /// HAMP's output modification.
    Hamp,
    /// MemGuard.
    MemGuard {
        /// Expected L1 distortion allowed.
        budget: f32,
    },
    /// HyGA-ANI.
    Hyga(hyga::HygaParams),
}

/// What a chain needs besides the logits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Posteriors of the model on random inputs (HAMP).
    pub references: bool,
    /// A defender-trained surrogate attack (MemGuard).
    pub surrogate: bool,
    /// Input-gradient norms (HyGA-ANI).
    pub gradients: bool,
}

/// Per-model context of the defenses that need it.
#[derive(Debug, Clone, Default)]
pub struct ModelContext {
    /// Sorted (descending) posteriors of the model on random inputs (HAMP).
    pub references: Vec<Vec<f32>>,
    /// The defender's attack model (MemGuard).
    pub surrogate: Option<Surrogate>,
    /// Gradient norm that maps to φ = 1 (HyGA-ANI).
    pub gradient_scale: Option<f32>,
}

/// One example: its id (for the per-example random stream) and, for HyGA-ANI, the norm of
/// the input gradient of the loss at its predicted label.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row {
    /// Stable id (e.g. `query * rows + row`).
    pub id: u64,
    /// ‖∇ₓ CE(f(x), ŷ)‖₂.
    pub gradient_norm: Option<f32>,
}

/// The vector being released, as logits or as probabilities.
enum Carrier {
    Logits(Vec<f32>),
    Probs(Vec<f32>),
}

impl Carrier {
    fn logits(self) -> Vec<f32> {
        match self {
            Carrier::Logits(z) => z,
            Carrier::Probs(p) => p.iter().map(|v| v.max(FLOOR).ln()).collect(),
        }
    }
    fn probs(self) -> Vec<f32> {
        match self {
            Carrier::Logits(z) => softmax(&z),
            Carrier::Probs(p) => p,
        }
    }
}

/// The k largest posteriors; the rest of the mass spread evenly over the other classes.
fn top_k(p: &[f32], k: usize) -> Vec<f32> {
    let order = ranking(p);
    let k = k.min(p.len());
    let kept: f32 = order[..k].iter().map(|&i| p[i]).sum();
    let rest = if k < p.len() { (1.0 - kept).max(0.0) / (p.len() - k) as f32 } else { 0.0 };
    let mut out = vec![rest; p.len()];
    order[..k].iter().for_each(|&i| out[i] = p[i]);
    out
}

/// Lee et al.'s reverse sigmoid: p − β(σ(γ·logit p) − ½), clipped and renormalised.
fn reverse_sigmoid(p: &[f32], beta: f32, gamma: f32) -> Vec<f32> {
    let mut out: Vec<f32> = p
        .iter()
        .map(|&v| {
            let v = v.clamp(1e-9, 1.0 - 1e-9);
            let logit = (v / (1.0 - v)).ln();
            let r = beta * (1.0 / (1.0 + (-gamma * logit).exp()) - 0.5);
            (v - r).clamp(0.0, 1.0)
        })
        .collect();
    renormalise(&mut out);
    out
}

/// DynaNoise: logit noise with variance σ₀²(1 + λR), R the risk 1 − H/log k, then a
/// temperature-T softmax, averaged over `m` draws.
fn dynanoise(
    z: &[f32],
    sigma2: f32,
    lambda: f32,
    t: f32,
    m: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let k = z.len() as f32;
    let risk = 1.0 - entropy(&softmax(z)) / k.ln();
    let sd = (sigma2 * (1.0 + lambda * risk)).max(0.0).sqrt();
    let mut mean = vec![0f32; z.len()];
    for _ in 0..m {
        let noisy: Vec<f32> = z.iter().map(|v| (v + sd * normal(rng)) / t).collect();
        softmax(&noisy).iter().zip(&mut mean).for_each(|(p, s)| *s += p / m as f32);
    }
    mean
}

/// HAMP's output modification: a random reference posterior, re-ordered to `p`'s ranking.
fn hamp(p: &[f32], ctx: &ModelContext, rng: &mut ChaCha8Rng) -> Result<Vec<f32>, CoreError> {
    if ctx.references.is_empty() {
        return Err(CoreError::DefenseContext(
            "hamp needs the model's posteriors on random inputs".into(),
        ));
    }
    let r = &ctx.references[rng.random_range(0..ctx.references.len())];
    if r.len() != p.len() {
        return Err(CoreError::DefenseContext(format!(
            "hamp reference has {} classes, the model {}",
            r.len(),
            p.len()
        )));
    }
    let mut out = vec![0f32; p.len()];
    ranking(p).iter().zip(r).for_each(|(&i, &v)| out[i] = v);
    Ok(out)
}

fn renormalise(p: &mut [f32]) {
    let s: f32 = p.iter().sum();
    if s > 0.0 {
        p.iter_mut().for_each(|v| *v /= s);
    } else {
        let n = p.len() as f32;
        p.iter_mut().for_each(|v| *v = 1.0 / n);
    }
}

/// Indices sorted by value, largest first (ties: lower index first).
pub fn ranking(p: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    idx
}

impl Defense {
    /// The spec name.
    pub fn name(&self) -> &'static str {
        match self {
            Defense::TopK { .. } => "topk",
            Defense::Label => "label",
            Defense::Round { .. } => "round",
            Defense::Cap { .. } => "cap",
            Defense::Clip { .. } => "clip",
            Defense::Temperature { .. } => "temperature",
            Defense::Gaussian { .. } => "gaussian",
            Defense::ReverseSigmoid { .. } => "reverse-sigmoid",
            Defense::DynaNoise { .. } => "dynanoise",
            Defense::Hamp => "hamp",
            Defense::MemGuard { .. } => "memguard",
            Defense::Hyga(_) => "hyga",
        }
    }

    /// Whether the released argmax always equals the model's.
    pub fn preserves_label(&self) -> bool {
        matches!(
            self,
            Defense::TopK { .. }
                | Defense::Label
                | Defense::Cap { .. }
                | Defense::Temperature { .. }
                | Defense::Hamp
                | Defense::MemGuard { .. }
        )
    }

    /// Whether the output depends on random draws.
    pub fn is_random(&self) -> bool {
        matches!(
            self,
            Defense::Gaussian { .. }
                | Defense::DynaNoise { .. }
                | Defense::Hamp
                | Defense::MemGuard { .. }
                | Defense::Hyga(_)
        )
    }

    /// The canonical spec, e.g. `dynanoise:sigma2=0.3,lambda=2,t=10,m=1`.
    pub fn spec(&self) -> String {
        let params = match self {
            Defense::TopK { k } => format!("k={k}"),
            Defense::Round { d } => format!("d={d}"),
            Defense::Cap { c } | Defense::Clip { c } => format!("c={c}"),
            Defense::Temperature { t } => format!("t={t}"),
            Defense::Gaussian { sigma } => format!("sigma={sigma}"),
            Defense::ReverseSigmoid { beta, gamma } => format!("beta={beta},gamma={gamma}"),
            Defense::DynaNoise { sigma2, lambda, t, m } => {
                format!("sigma2={sigma2},lambda={lambda},t={t},m={m}")
            }
            Defense::MemGuard { budget } => format!("budget={budget}"),
            Defense::Hyga(h) => h.spec(),
            Defense::Label | Defense::Hamp => String::new(),
        };
        if params.is_empty() {
            self.name().to_string()
        } else {
            format!("{}:{params}", self.name())
        }
    }

    /// Parses one `name[:key=value,...]`; unknown names, keys or bad values are errors.
    pub fn parse(spec: &str) -> Result<Self, CoreError> {
        let bad = |reason: String| CoreError::BadDefense { spec: spec.to_string(), reason };
        let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mut kv: Vec<(String, f64)> = Vec::new();
        for part in rest.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, v) =
                part.split_once('=').ok_or_else(|| bad(format!("`{part}` is not key=value")))?;
            let v: f64 =
                v.trim().parse().map_err(|_| bad(format!("`{}` is not a number", v.trim())))?;
            if !v.is_finite() {
                return Err(bad(format!("`{k}` must be finite")));
            }
            kv.push((k.trim().to_string(), v));
        }
        let name = name.trim();
        let entry = catalogue::find(name).ok_or_else(|| {
            bad(format!("unknown defense `{name}` (known: {})", catalogue::names()))
        })?;
        // A parameter left out takes the catalogue's default; one without a default is asked for.
        let mut take = |key: &str| -> Result<f64, CoreError> {
            match kv.iter().position(|(k, _)| k == key) {
                Some(i) => Ok(kv.remove(i).1),
                None => entry
                    .params
                    .iter()
                    .find(|p| p.key == key)
                    .and_then(|p| p.default)
                    .ok_or_else(|| bad(format!("missing parameter `{key}`"))),
            }
        };
        let d = match name {
            "topk" => Defense::TopK { k: take("k")? as usize },
            "label" => Defense::Label,
            "round" => Defense::Round { d: take("d")? as u32 },
            "cap" => Defense::Cap { c: take("c")? as f32 },
            "clip" => Defense::Clip { c: take("c")? as f32 },
            "temperature" => Defense::Temperature { t: take("t")? as f32 },
            "gaussian" => Defense::Gaussian { sigma: take("sigma")? as f32 },
            "reverse-sigmoid" => {
                Defense::ReverseSigmoid { beta: take("beta")? as f32, gamma: take("gamma")? as f32 }
            }
            "dynanoise" => Defense::DynaNoise {
                sigma2: take("sigma2")? as f32,
                lambda: take("lambda")? as f32,
                t: take("t")? as f32,
                m: take("m")? as usize,
            },
            "hamp" => Defense::Hamp,
            "memguard" => Defense::MemGuard { budget: take("budget")? as f32 },
            "hyga" => Defense::Hyga(hyga::HygaParams {
                alpha: take("alpha")? as f32,
                beta: take("beta")? as f32,
                sigma_max: take("sigma-max")? as f32,
                kappa: take("kappa")? as f32,
            }),
            other => {
                return Err(bad(format!(
                    "`{other}` is in the catalogue but cannot be built (a bug: please report it)"
                )));
            }
        };
        if let Some((k, _)) = kv.first() {
            return Err(bad(format!("`{}` takes no parameter `{k}`", d.name())));
        }
        d.validate().map_err(bad)?;
        Ok(d)
    }

    fn validate(&self) -> Result<(), String> {
        let pos = |name: &str, v: f32| {
            if v > 0.0 { Ok(()) } else { Err(format!("`{name}` must be > 0")) }
        };
        match *self {
            Defense::TopK { k: 0 } => Err("`k` must be ≥ 1".into()),
            Defense::Round { d } if d > 7 => Err("`d` must be ≤ 7 (float32)".into()),
            Defense::Cap { c } | Defense::Clip { c } if !(c > 0.0 && c <= 1.0) => {
                Err("`c` must be in (0, 1]".into())
            }
            Defense::Temperature { t } => pos("t", t),
            Defense::Gaussian { sigma } if sigma < 0.0 => Err("`sigma` must be ≥ 0".into()),
            Defense::ReverseSigmoid { beta, gamma } => pos("beta", beta).and(pos("gamma", gamma)),
            Defense::DynaNoise { sigma2, lambda, t, m } => {
                if sigma2 < 0.0 || lambda < 0.0 {
                    return Err("`sigma2` and `lambda` must be ≥ 0".into());
                }
                if m == 0 {
                    return Err("`m` must be ≥ 1".into());
                }
                pos("t", t)
            }
            Defense::MemGuard { budget } if budget < 0.0 => Err("`budget` must be ≥ 0".into()),
            Defense::Hyga(h) => h.validate(),
            _ => Ok(()),
        }
    }

    fn apply(
        &self,
        x: Carrier,
        ctx: &ModelContext,
        row: Row,
        rng: &mut ChaCha8Rng,
    ) -> Result<Carrier, CoreError> {
        Ok(match *self {
            Defense::TopK { k } => Carrier::Probs(top_k(&x.probs(), k)),
            Defense::Label => {
                let p = x.probs();
                let mut out = vec![0.0; p.len()];
                out[argmax(&p)] = 1.0;
                Carrier::Probs(out)
            }
            Defense::Round { d } => {
                let scale = 10f32.powi(d as i32);
                Carrier::Probs(x.probs().iter().map(|v| (v * scale).round() / scale).collect())
            }
            Defense::Cap { c } => Carrier::Probs(cap(&x.probs(), c)?),
            Defense::Clip { c } => {
                let mut p: Vec<f32> = x.probs().iter().map(|v| v.min(c)).collect();
                renormalise(&mut p);
                Carrier::Probs(p)
            }
            Defense::Temperature { t } => {
                Carrier::Logits(x.logits().iter().map(|z| z / t).collect())
            }
            Defense::Gaussian { sigma } => {
                let mut p: Vec<f32> =
                    x.probs().iter().map(|v| (v + sigma * normal(rng)).max(0.0)).collect();
                renormalise(&mut p);
                Carrier::Probs(p)
            }
            Defense::ReverseSigmoid { beta, gamma } => {
                Carrier::Probs(reverse_sigmoid(&x.probs(), beta, gamma))
            }
            Defense::DynaNoise { sigma2, lambda, t, m } => {
                Carrier::Probs(dynanoise(&x.logits(), sigma2, lambda, t, m, rng))
            }
            Defense::Hamp => Carrier::Probs(hamp(&x.probs(), ctx, rng)?),
            Defense::MemGuard { budget } => {
                let s = ctx.surrogate.as_ref().ok_or_else(|| {
                    CoreError::DefenseContext("memguard needs a defender-trained surrogate".into())
                })?;
                Carrier::Probs(memguard::defend(s, &x.logits(), budget, rng))
            }
            Defense::Hyga(h) => {
                let scale = ctx.gradient_scale.ok_or_else(|| {
                    CoreError::DefenseContext("hyga needs the defender's gradient scale".into())
                })?;
                let g = row.gradient_norm.ok_or_else(|| {
                    CoreError::DefenseContext("hyga needs each example's gradient norm".into())
                })?;
                Carrier::Logits(h.perturb(&x.logits(), g, scale, rng))
            }
        })
    }
}

/// Caps every posterior at `c` (the top class at exactly `c`, the others strictly below so
/// the label survives) and hands the excess to the classes below the cap in proportion to
/// their headroom. Needs `c > 1/k`.
pub fn cap(p: &[f32], c: f32) -> Result<Vec<f32>, CoreError> {
    let k = p.len();
    let top = argmax(p);
    let other = c * (1.0 - 1e-4);
    if c + other * (k - 1) as f32 <= 1.0 {
        return Err(CoreError::BadDefense {
            spec: format!("cap:c={c}"),
            reason: format!("a cap of {c} cannot hold {k} classes (it must exceed 1/{k})"),
        });
    }
    let limit = |i: usize| if i == top { c } else { other };
    let mut out: Vec<f32> = p.iter().enumerate().map(|(i, &v)| v.min(limit(i))).collect();
    let excess: f32 = 1.0 - out.iter().sum::<f32>();
    if excess > 0.0 {
        let room: Vec<f32> = out.iter().enumerate().map(|(i, &v)| limit(i) - v).collect();
        let total: f32 = room.iter().sum();
        out.iter_mut().zip(&room).for_each(|(v, r)| *v += excess * r / total);
    }
    Ok(out)
}

/// A composition of defenses, applied left to right.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Chain {
    /// The steps.
    pub steps: Vec<Defense>,
}

impl Chain {
    /// Parses `a:k=v,...+b:...`.
    pub fn parse(spec: &str) -> Result<Self, CoreError> {
        if spec.trim().is_empty() {
            return Err(CoreError::BadDefense {
                spec: spec.into(),
                reason: "empty defense".into(),
            });
        }
        Ok(Chain {
            steps: spec.split('+').map(|s| Defense::parse(s.trim())).collect::<Result<_, _>>()?,
        })
    }

    /// The canonical spec.
    pub fn spec(&self) -> String {
        self.steps.iter().map(Defense::spec).collect::<Vec<_>>().join("+")
    }

    /// True when every step keeps the label.
    pub fn preserves_label(&self) -> bool {
        self.steps.iter().all(Defense::preserves_label)
    }

    /// What the steps need besides logits.
    pub fn needs(&self) -> Needs {
        let mut n = Needs::default();
        for s in &self.steps {
            match s {
                Defense::Hamp => n.references = true,
                Defense::MemGuard { .. } => n.surrogate = true,
                Defense::Hyga(_) => n.gradients = true,
                _ => {}
            }
        }
        n
    }

    /// The released posterior for one example's logits. The same `(seed, row.id)` always gives
    /// the same output, whatever order examples come in.
    pub fn apply(
        &self,
        logits: &[f32],
        ctx: &ModelContext,
        row: Row,
        seed: u64,
    ) -> Result<Vec<f32>, CoreError> {
        let mut x = Carrier::Logits(logits.to_vec());
        for (i, step) in self.steps.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(seed, row.id), i as u64));
            x = step.apply(x, ctx, row, &mut rng)?;
        }
        Ok(x.probs())
    }
}

/// Logits an attacker reads off a released posterior: `ln max(p, FLOOR)`.
pub fn released_logits(p: &[f32]) -> Vec<f32> {
    p.iter().map(|v| v.max(FLOOR).ln()).collect()
}

#[cfg(test)]
mod tests;
