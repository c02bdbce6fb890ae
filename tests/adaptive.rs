//! One adaptive attacker: `mia attack --inference-defense` (mia-attack's `defended`) and the
//! page (mia-web's `analysis`, compiled here from its own source file) release the same
//! target and shadows through mia-core's `Defender` and give identical attack scores on the
//! same inputs, for every kind of defense: noise, a surrogate fitted per model (MemGuard),
//! references on random inputs (HAMP) and a deterministic chain. The scores agree to the bit.
//! (The page module's own unit tests run here a second time.)

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../crates/mia-web/src/analysis.rs"]
mod analysis;

use analysis::{Attacker, ModelData, display};
use mia_attack::attack::run;
use mia_attack::defended::{DefenseSignals, ModelSignals, defend};
use mia_attack::{AttackInput, AttackKind, AttackOptions, Logits, Shadow};
use mia_core::bundle::{BrowserAttack, ShadowOutputs};
use mia_core::inference::Chain;
use mia_core::inference::defender::sorted_posteriors;

const N: usize = 240;
const C: usize = 4;
const SHADOWS: usize = 8;
const SEED: u64 = 7;

/// Logits of a model that trained on `keep`: members get a larger true-class logit.
fn model(labels: &[usize], keep: &[bool], salt: usize) -> Vec<f32> {
    let mut data = Vec::with_capacity(N * C);
    for i in 0..N {
        let mut row = [0f32; C];
        let easy = ((i * 37 + 11) % 23) as f32 / 10.0;
        let noise = ((i * 13 + salt * 7) % 9) as f32 * 0.1;
        row[labels[i]] = easy + noise + if keep[i] { 2.0 } else { 0.0 };
        row[(labels[i] + 1) % C] = 1.0 + ((i + salt) % 5) as f32 * 0.2;
        data.extend(row);
    }
    data
}

struct World {
    labels: Vec<usize>,
    member: Vec<bool>,
    target: Vec<f32>,
    keep: Vec<bool>,
    shadows: Vec<f32>,
    random: Vec<f32>,
}

fn world() -> World {
    let labels: Vec<usize> = (0..N).map(|i| (i * 7) % C).collect();
    let member: Vec<bool> = (0..N).map(|i| (i * 5 + i / 3) % 2 == 0).collect();
    let target = model(&labels, &member, 0);
    let (mut keep, mut shadows) = (Vec::new(), Vec::new());
    for s in 0..SHADOWS {
        let k: Vec<bool> = (0..N).map(|i| ((i * 7 + s * 3) / 5 + s) % 2 == 0).collect();
        shadows.extend(model(&labels, &k, s + 1));
        keep.extend(k);
    }
    let random = (0..32 * C).map(|j| ((j * 29 % 17) as f32 - 8.0) / 4.0).collect();
    World { labels, member, target, keep, shadows, random }
}

/// The CLI's adaptive scores of every attack the page shows.
fn cli(w: &World, chain: &Chain) -> Vec<(BrowserAttack, Vec<f32>, f64)> {
    let shadows = (0..SHADOWS)
        .map(|s| Shadow {
            keep: w.keep[s * N..(s + 1) * N].to_vec(),
            logits: Logits::new(1, N, C, w.shadows[s * N * C..(s + 1) * N * C].to_vec()).unwrap(),
        })
        .collect();
    let target = Logits::new(1, N, C, w.target.clone()).unwrap();
    let input = AttackInput::new(target, w.labels.clone(), w.member.clone(), shadows).unwrap();
    // The page has the target's outputs on random inputs only: give every shadow the same.
    let signals = ModelSignals { random_logits: Some(w.random.clone()), gradient_norms: None };
    let signals = DefenseSignals { target: signals.clone(), shadows: vec![signals; SHADOWS] };
    let adaptive = defend(&input, chain, &signals, SEED).unwrap().adaptive;
    BrowserAttack::ALL
        .iter()
        .map(|&id| {
            let r =
                run(AttackKind::parse(id.name()).unwrap(), &adaptive, &AttackOptions::default())
                    .unwrap();
            (id, r.scores, r.evaluation.auc)
        })
        .collect()
}

/// The page's adaptive views.
fn page(w: &World, chain: &Chain) -> Vec<analysis::AttackView> {
    let references = sorted_posteriors(&w.random, C).unwrap();
    let shadows = ShadowOutputs {
        shadows: SHADOWS,
        examples: N,
        classes: C,
        keep: w.keep.clone(),
        logits: w.shadows.clone(),
    };
    let data = ModelData {
        classes: C,
        labels: &w.labels,
        is_member: &w.member,
        lira: None,
        shadows: Some(&shadows),
        thresholds: &[],
        references: &references,
    };
    let ctx = analysis::context(chain, &w.target, C, &w.member, &references, SEED).unwrap();
    let released = analysis::release(chain, &w.target, C, &ctx, SEED).unwrap();
    analysis::attacks(&data, chain, &released, Attacker::Adaptive, SEED).unwrap()
}

fn assert_same(spec: &str) {
    let w = world();
    let chain = Chain::parse(spec).unwrap();
    let page = page(&w, &chain);
    let cli = cli(&w, &chain);
    assert_eq!(page.len(), cli.len(), "{spec}: the page shows every attack");
    for (view, (id, scores, auc)) in page.iter().zip(&cli) {
        assert_eq!(view.id, *id);
        // The page shows loss and entropy on a log scale; the CLI keeps the raw score.
        let cli_shown: Vec<f32> = scores.iter().map(|&s| display(*id, s)).collect();
        for (i, (a, b)) in view.scores.iter().zip(&cli_shown).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{spec} {}: example {i}: page {a}, CLI {b}",
                id.name()
            );
        }
        assert_eq!(view.auc, *auc, "{spec} {}: AUC", id.name());
    }
}

#[test]
fn noise_gives_identical_adaptive_scores_in_the_cli_and_the_page() {
    assert_same("gaussian:sigma=0.5");
}

#[test]
fn memguard_gives_identical_adaptive_scores_in_the_cli_and_the_page() {
    assert_same("memguard");
}

#[test]
fn hamp_gives_identical_adaptive_scores_in_the_cli_and_the_page() {
    assert_same("hamp");
}

#[test]
fn a_deterministic_chain_gives_identical_adaptive_scores_in_the_cli_and_the_page() {
    assert_same("temperature:t=3+round:d=2");
}

#[test]
fn the_defense_changes_what_both_see() {
    let w = world();
    let plain = page(&w, &Chain::parse("temperature:t=1").unwrap());
    let noisy = page(&w, &Chain::parse("gaussian:sigma=0.5").unwrap());
    assert_ne!(plain[1].scores, noisy[1].scores, "the comparison is not of untouched logits");
}
