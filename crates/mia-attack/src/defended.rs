//! Attacks against an inference-time defense, from both sides of the threat model:
//!
//! - **naive** attacker: the target's outputs pass through the defense, the shadows' do not;
//!   thresholds, attack models and LiRA/RMIA reference distributions come from undefended
//!   shadows (plus DynaNoise's fixed thresholds 0.9 / 0.5, which need no shadows at all);
//! - **adaptive** attacker: every shadow's outputs pass through the same defense (with its
//!   own randomness), so calibration sees what the target releases.
//!
//! Each model is released by mia-core's [`Defender`] (the same code the page runs) with the
//! per-model context its defenses need: its sorted posteriors on random inputs (HAMP), a
//! MemGuard surrogate fitted on *its own* members against the population samples, and the
//! gradient scale of HyGA-ANI (the 95th percentile of its input-gradient norms on the
//! population samples). The randomness of each model's defense is independent (seeded by
//! model), as a real defender's is of the attacker's.

use std::path::Path;

use mia_core::inference::defender::{Defender, ModelOutputs, TARGET, shadow, sorted_posteriors};
use mia_core::inference::{Chain, Needs};
use mia_core::layout::{DefenseSignalFiles, ShadowLayout};
use mia_core::npy::{NpyArray, NpyData};
use mia_core::posterior::argmax;

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

/// One model's logits and signals as the core [`Defender`] reads them.
fn outputs<'a>(
    logits: &'a Logits,
    members: &'a [bool],
    signals: &'a ModelSignals,
    references: &'a [Vec<f32>],
) -> ModelOutputs<'a> {
    ModelOutputs {
        logits: &logits.data,
        queries: logits.queries,
        rows: logits.rows,
        classes: logits.classes,
        members,
        references,
        gradient_norms: signals.gradient_norms.as_deref(),
    }
}

/// Releases one model's logits through the chain (the core [`Defender`], shared with the
/// page): HAMP's references from its own random-input logits.
fn release(
    defender: &Defender<'_>,
    logits: &Logits,
    members: &[bool],
    signals: &ModelSignals,
    model: u64,
) -> Result<Logits, AttackError> {
    let references = match &signals.random_logits {
        Some(r) if defender.chain().needs().references => sorted_posteriors(r, logits.classes)?,
        _ => Vec::new(),
    };
    let data = defender.release_model(&outputs(logits, members, signals, &references), model)?;
    Logits::new(logits.queries, logits.rows, logits.classes, data)
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
        release(&defender, logits, members, sig, model)
    };
    let target = one(&input.target, &input.is_member, &signals.target, TARGET)?;
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
                            (i, one(&sh.logits, &sh.keep, &signals.shadows[i], shadow(i)))
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
