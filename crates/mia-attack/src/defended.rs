//! Attacks against an inference-time defense, from both sides of the threat model:
//!
//! - **naive** attacker: the target's outputs pass through the defense, the shadows' do not;
//!   thresholds, attack models and LiRA/RMIA reference distributions come from undefended
//!   shadows (plus DynaNoise's fixed thresholds 0.9 / 0.5, which need no shadows at all);
//! - **adaptive** attacker: every shadow's outputs pass through the same defense (with its
//!   own randomness), so calibration sees what the target releases.
//!
//! Each model gets the per-model context its defenses need ([`ModelContext`]): its sorted
//! posteriors on random inputs (HAMP), a MemGuard surrogate fitted on *its own* members
//! against the population samples, and the gradient scale of HyGA-ANI (the 95th percentile of
//! its input-gradient norms on the population samples). The randomness of each model's
//! defense is independent (seeded by model), as a real defender's is of the attacker's.

use std::path::Path;

use mia_core::inference::{Chain, ModelContext, Needs, Row, Surrogate, released_logits};
use mia_core::layout::{DefenseSignalFiles, ShadowLayout};
use mia_core::npy::{NpyArray, NpyData};
use mia_core::posterior::{argmax, softmax};
use mia_core::rng::mix;

use crate::{AttackError, AttackInput, Logits, Shadow};

/// What one model's defenses need besides its logits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelSignals {
    /// Logits on random inputs, `[R × C]` (HAMP).
    pub random_logits: Option<Vec<f32>>,
    /// ‖∇ₓ CE(f(x), ŷ)‖ for every query and row, `[K × rows]` (HyGA-ANI).
    pub gradient_norms: Option<Vec<f32>>,
}

/// The target's and every shadow's signals, in the attack input's shadow order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DefenseSignals {
    /// The target's.
    pub target: ModelSignals,
    /// Each shadow's.
    pub shadows: Vec<ModelSignals>,
}

impl DefenseSignals {
    /// Reads what `needs` asks for from a shadow folder written by `mia shadows` and completed
    /// by the trainer's defense-signal pass; `shadows` are the finished shadow indices in order.
    pub fn read(dir: &Path, shadows: &[usize], needs: Needs) -> Result<Self, AttackError> {
        let pool = ShadowLayout::new(dir);
        let load = |files: DefenseSignalFiles| -> Result<ModelSignals, AttackError> {
            let f32s = |path: &Path| -> Result<Vec<f32>, AttackError> {
                let bytes = std::fs::read(path).map_err(|e| AttackError::io(path, e))?;
                match NpyArray::from_bytes(&bytes).map_err(|e| AttackError::io(path, e))?.data {
                    NpyData::F32(v) => Ok(v),
                    _ => Err(AttackError::Shape(format!("{} must be float32", path.display()))),
                }
            };
            Ok(ModelSignals {
                random_logits: if needs.references {
                    Some(f32s(&files.random_logits)?)
                } else {
                    None
                },
                gradient_norms: if needs.gradients {
                    Some(f32s(&files.gradient_norms)?)
                } else {
                    None
                },
            })
        };
        Ok(Self {
            target: load(pool.target_defense_signals())?,
            shadows: shadows
                .iter()
                .map(|&i| load(pool.shadow(i).defense_signals()))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Applies `chain` to every query and row of one model's logits.
pub struct Defender<'a> {
    chain: &'a Chain,
    seed: u64,
}

impl<'a> Defender<'a> {
    /// A defender with its seed.
    pub fn new(chain: &'a Chain, seed: u64) -> Self {
        Self { chain, seed }
    }

    /// The context of one model: `members` are the candidate rows it trained on; the rows
    /// after the candidates are the population (its held-out data).
    pub fn context(
        &self,
        logits: &Logits,
        members: &[bool],
        signals: &ModelSignals,
        model: u64,
    ) -> Result<ModelContext, AttackError> {
        let needs = self.chain.needs();
        let c = logits.classes;
        let n = members.len();
        let mut ctx = ModelContext::default();
        if needs.references {
            let r = signals.random_logits.as_ref().ok_or_else(|| missing("random-input logits"))?;
            if r.is_empty() || r.len() % c != 0 {
                return Err(AttackError::Shape(format!(
                    "{} random-input logits for {c} classes",
                    r.len()
                )));
            }
            ctx.references = r
                .chunks(c)
                .map(|z| {
                    let mut p = softmax(z);
                    p.sort_by(|a, b| b.total_cmp(a));
                    p
                })
                .collect();
        }
        // Held-out rows: the population, or the candidates the model did not train on.
        let held_out: Vec<usize> = if logits.rows > n {
            (n..logits.rows).collect()
        } else {
            (0..n).filter(|&i| !members[i]).collect()
        };
        if needs.surrogate {
            let rows: Vec<usize> = (0..n).filter(|&i| members[i]).chain(held_out.clone()).collect();
            let mut x = Vec::with_capacity(rows.len() * c);
            let y: Vec<bool> = rows.iter().map(|&i| i < n && members[i]).collect();
            rows.iter().for_each(|&i| x.extend(softmax(logits.row(0, i))));
            ctx.surrogate = Some(Surrogate::fit(&x, c, &y, mix(self.seed, model)));
        }
        if needs.gradients {
            let g = gradients(signals, logits)?;
            let mut h: Vec<f32> = held_out.iter().map(|&i| g[i]).collect();
            h.sort_by(f32::total_cmp);
            let q = h.get(((h.len() as f64 * 0.95) as usize).min(h.len().saturating_sub(1)));
            ctx.gradient_scale = Some(q.copied().unwrap_or(1.0).max(1e-12));
        }
        Ok(ctx)
    }

    /// The released logits (`ln` of the released posteriors) of one model.
    pub fn release(
        &self,
        logits: &Logits,
        ctx: &ModelContext,
        signals: &ModelSignals,
        model: u64,
    ) -> Result<Logits, AttackError> {
        let grads =
            if self.chain.needs().gradients { Some(gradients(signals, logits)?) } else { None };
        let seed = mix(self.seed, model);
        let mut data = Vec::with_capacity(logits.data.len());
        for q in 0..logits.queries {
            for i in 0..logits.rows {
                let id = (q * logits.rows + i) as u64;
                let row = Row { id, gradient_norm: grads.map(|g| g[id as usize]) };
                data.extend(released_logits(&self.chain.apply(
                    logits.row(q, i),
                    ctx,
                    row,
                    seed,
                )?));
            }
        }
        Logits::new(logits.queries, logits.rows, logits.classes, data)
    }
}

fn missing(what: &str) -> AttackError {
    AttackError::Io {
        path: "shadows".into(),
        reason: format!("the defense needs {what}, which were not computed"),
    }
}

fn gradients<'s>(signals: &'s ModelSignals, logits: &Logits) -> Result<&'s [f32], AttackError> {
    let g = signals.gradient_norms.as_ref().ok_or_else(|| missing("input-gradient norms"))?;
    // Norms are cached query-major for every cached query; an attack on the first K queries
    // (`--queries`) uses the first K blocks.
    let need = logits.queries * logits.rows;
    if g.len() < need || logits.rows == 0 || g.len() % logits.rows != 0 {
        return Err(AttackError::Shape(format!(
            "{} gradient norms for {} queries × {} rows",
            g.len(),
            logits.queries,
            logits.rows
        )));
    }
    Ok(&g[..need])
}

/// The defended views of one attack input.
#[derive(Debug, Clone)]
pub struct DefendedInputs {
    /// Target defended, shadows as trained.
    pub naive: AttackInput,
    /// Target and shadows defended.
    pub adaptive: AttackInput,
    /// Accuracy of the undefended target on its held-out rows (identity query).
    pub accuracy_before: f64,
    /// Accuracy of the released outputs on the same rows.
    pub accuracy_after: f64,
    /// How many held-out rows those accuracies count.
    pub accuracy_rows: usize,
}

/// Runs the defense over the target and every shadow (shadows in parallel threads).
pub fn defend(
    input: &AttackInput,
    chain: &Chain,
    signals: &DefenseSignals,
    seed: u64,
) -> Result<DefendedInputs, AttackError> {
    if signals.shadows.len() != input.shadows.len() {
        return Err(AttackError::Shape(format!(
            "defense signals for {} shadows, {} shadows loaded",
            signals.shadows.len(),
            input.shadows.len()
        )));
    }
    let defender = Defender::new(chain, seed);
    let one = |logits: &Logits, members: &[bool], sig: &ModelSignals, model: u64| {
        let ctx = defender.context(logits, members, sig, model)?;
        defender.release(logits, &ctx, sig, model)
    };
    let target = one(&input.target, &input.is_member, &signals.target, 0)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
    let jobs: Vec<(usize, &Shadow)> = input.shadows.iter().enumerate().collect();
    let mut shadows: Vec<Option<Result<Logits, AttackError>>> = Vec::new();
    shadows.resize_with(jobs.len(), || None);
    std::thread::scope(|scope| {
        let chunks: Vec<Vec<(usize, &Shadow)>> = (0..threads)
            .map(|t| jobs.iter().filter(|(i, _)| i % threads == t).copied().collect())
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let one = &one;
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(i, sh)| {
                            (i, one(&sh.logits, &sh.keep, &signals.shadows[i], i as u64 + 1))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            if let Ok(done) = h.join() {
                for (i, r) in done {
                    shadows[i] = Some(r);
                }
            }
        }
    });
    let mut defended = Vec::with_capacity(input.shadows.len());
    for (sh, r) in input.shadows.iter().zip(shadows) {
        let logits = r.ok_or_else(|| AttackError::Shape("a defense thread failed".into()))??;
        defended.push(Shadow { keep: sh.keep.clone(), logits });
    }
    let n = input.candidates();
    let held: Vec<usize> =
        (0..n).filter(|&i| !input.is_member[i]).chain(n..input.target.rows).collect();
    let acc = |l: &Logits| {
        held.iter().filter(|&&i| argmax(l.row(0, i)) == input.labels[i]).count() as f64
            / held.len().max(1) as f64
    };
    let (accuracy_before, accuracy_after) = (acc(&input.target), acc(&target));
    let naive = AttackInput::new(
        target.clone(),
        input.labels.clone(),
        input.is_member.clone(),
        input.shadows.clone(),
    )?;
    let adaptive =
        AttackInput::new(target, input.labels.clone(), input.is_member.clone(), defended)?;
    Ok(DefendedInputs {
        naive,
        adaptive,
        accuracy_before,
        accuracy_after,
        accuracy_rows: held.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{AttackKind, AttackOptions, run};

    /// A world where members have a larger true-class logit; 8 paired shadows.
    fn world() -> AttackInput {
        let (n, z, c) = (400usize, 100usize, 4usize);
        let labels: Vec<usize> = (0..n + z).map(|i| i % c).collect();
        let member: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let model = |keep: &[bool], salt: usize| {
            let mut data = Vec::new();
            for i in 0..n + z {
                let mut row = vec![0f32; c];
                let easy = ((i * 37 + 11) % 23) as f32 / 10.0;
                let noise = ((i * 13 + salt * 7) % 9) as f32 * 0.1;
                row[labels[i]] = easy + noise + if i < n && keep[i] { 3.0 } else { 0.0 };
                row[(labels[i] + 1) % c] = 1.0;
                data.extend(row);
            }
            Logits::new(1, n + z, c, data).unwrap()
        };
        let shadows = (0..8)
            .map(|s| {
                let keep: Vec<bool> = (0..n).map(|i| ((i * 7 + s * 3) / 5 + s) % 2 == 0).collect();
                Shadow { logits: model(&keep, s + 1), keep }
            })
            .collect();
        AttackInput::new(model(&member, 0), labels, member, shadows).unwrap()
    }

    fn auc(input: &AttackInput, name: &str) -> f64 {
        run(AttackKind::parse(name).unwrap(), input, &AttackOptions::default())
            .unwrap()
            .evaluation
            .auc
    }

    #[test]
    fn label_only_release_defeats_score_attacks_but_not_the_gap_attack() {
        let input = world();
        let chain = Chain::parse("label").unwrap();
        let d = defend(
            &input,
            &chain,
            &DefenseSignals { shadows: vec![Default::default(); 8], ..Default::default() },
            0,
        )
        .unwrap();
        assert_eq!(d.accuracy_before, d.accuracy_after, "label-only keeps the label");
        assert!(auc(&input, "loss") > 0.8);
        // Every score collapses to correct / incorrect: the loss attack is the gap attack.
        let loss = auc(&d.adaptive, "loss");
        let gap = auc(&d.adaptive, "correctness");
        assert!((loss - gap).abs() < 1e-9, "{loss} vs {gap}");
    }

    #[test]
    fn temperature_fools_the_naive_fixed_threshold_but_not_the_adaptive_lira() {
        let input = world();
        let chain = Chain::parse("temperature:t=20").unwrap();
        let signals = DefenseSignals { shadows: vec![Default::default(); 8], ..Default::default() };
        let d = defend(&input, &chain, &signals, 0).unwrap();
        // With T = 20 no released posterior reaches 0.9: the fixed attacker calls no one a member.
        let fixed =
            run(AttackKind::parse("fixed-0.9").unwrap(), &d.naive, &AttackOptions::default())
                .unwrap();
        assert_eq!(fixed.calibrated[0].tpr, 0.0);
        assert!((fixed.evaluation.auc - 0.5).abs() < 1e-9);
        // Temperature is monotone in the logit gap: the adaptive LiRA still sees everything.
        let adaptive = auc(&d.adaptive, "lira-online-fixed");
        assert!(adaptive > 0.8, "adaptive LiRA AUC {adaptive}");
        // The naive LiRA compares tempered outputs with untempered shadows and loses ground.
        let naive =
            run(AttackKind::parse("lira-online").unwrap(), &d.naive, &AttackOptions::default())
                .unwrap();
        let adaptive_tpr =
            run(AttackKind::parse("lira-online").unwrap(), &d.adaptive, &AttackOptions::default())
                .unwrap();
        assert!(
            naive.calibrated.is_empty()
                && adaptive_tpr.evaluation.auc >= naive.evaluation.auc - 1e-9,
            "naive {} adaptive {}",
            naive.evaluation.auc,
            adaptive_tpr.evaluation.auc
        );
    }

    #[test]
    fn missing_signals_are_clear_errors() {
        let input = world();
        let chain = Chain::parse("hamp").unwrap();
        let signals = DefenseSignals { shadows: vec![Default::default(); 8], ..Default::default() };
        let err = defend(&input, &chain, &signals, 0).unwrap_err().to_string();
        assert!(err.contains("random-input logits"), "{err}");
        let err = defend(&input, &chain, &DefenseSignals::default(), 0).unwrap_err().to_string();
        assert!(err.contains("defense signals for 0 shadows"), "{err}");
    }
}
