//! Tests of the inference-time defenses on hand-made logits.

use super::*;
use crate::posterior::softmax;

/// Deterministic logits: confident, flat, near-tie and everything between.
fn cases() -> Vec<Vec<f32>> {
    let mut out = vec![
        vec![9.0, 0.5, -1.0, 0.0, 2.0],
        vec![0.1, 0.0, 0.05, -0.02, 0.03],
        vec![3.0, 2.999, -4.0, 1.0, 0.0],
        vec![30.0, -20.0, 0.0, 5.0, -3.0],
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..60 {
        let scale = 0.5 + 6.0 * rng.random::<f32>();
        out.push((0..5).map(|_| scale * normal(&mut rng)).collect());
    }
    out
}

fn context() -> ModelContext {
    let mut references = Vec::new();
    for r in [[2.0f32, 1.0, 0.5, 0.0, -1.0], [0.3, 0.2, 0.1, 0.0, -0.1]] {
        let mut p = softmax(&r);
        p.sort_by(|a, b| b.total_cmp(a));
        references.push(p);
    }
    // A surrogate that calls confident outputs members.
    let surrogate = Some(Surrogate { w: vec![8.0, -2.0, -2.0, -2.0, -2.0], b: -4.0 });
    ModelContext { references, surrogate, gradient_scale: Some(2.0) }
}

const SPECS: [&str; 14] = [
    "topk:k=2",
    "label",
    "round:d=1",
    "cap:c=0.5",
    "clip:c=0.5",
    "temperature:t=10",
    "gaussian:sigma=0.1",
    "reverse-sigmoid:beta=1,gamma=0.1",
    "dynanoise:sigma2=0.3,lambda=2,t=10,m=4",
    "hamp",
    "memguard:budget=2",
    "hyga:alpha=2,beta=0.05,sigma-max=1.5,kappa=0.1",
    "temperature:t=2+round:d=2",
    "dynanoise+topk:k=1",
];

fn row(i: usize) -> Row {
    Row { id: i as u64, gradient_norm: Some(0.5 * i as f32 % 3.0) }
}

#[test]
fn outputs_are_probability_vectors_and_labels_survive_where_claimed() {
    let ctx = context();
    for spec in SPECS {
        let chain = Chain::parse(spec).unwrap();
        assert_eq!(Chain::parse(&chain.spec()).unwrap(), chain, "{spec} round-trips");
        for (i, z) in cases().iter().enumerate() {
            let out = chain.apply(z, &ctx, row(i), 7).unwrap();
            let sum: f32 = out.iter().sum();
            // Rounding to d decimals moves each of the 5 entries by up to 0.5·10⁻ᵈ.
            let tol = if spec.contains("d=1") {
                0.25
            } else if spec.contains("round") {
                0.025
            } else {
                1e-4
            };
            assert!((sum - 1.0).abs() <= tol, "{spec} case {i}: sum {sum}");
            assert!(out.iter().all(|v| (0.0..=1.0 + 1e-6).contains(v)), "{spec}: {out:?}");
            if chain.preserves_label() {
                assert_eq!(argmax(&out), argmax(z), "{spec} case {i}: {z:?} → {out:?}");
            }
        }
    }
}

#[test]
fn label_preservation_claims_are_not_vacuous() {
    // The noisy defenses really do change labels on near-ties, so claiming otherwise would fail.
    let ctx = context();
    for spec in ["gaussian:sigma=0.3", "dynanoise", "hyga:beta=1"] {
        let chain = Chain::parse(spec).unwrap();
        assert!(!chain.preserves_label());
        let flipped = (0..200).any(|i| {
            let z = [3.0, 2.999, -4.0, 1.0, 0.0];
            argmax(&chain.apply(&z, &ctx, Row { id: i, gradient_norm: Some(2.0) }, 1).unwrap()) != 0
        });
        assert!(flipped, "{spec} never flips a near-tie");
    }
}

#[test]
fn cap_caps_and_clip_renormalise_does_not() {
    let z = [9.0, 0.5, -1.0, 0.0, 2.0];
    let p = softmax(&z);
    assert!(p[0] > 0.99);
    let capped = cap(&p, 0.5).unwrap();
    assert!((capped[0] - 0.5).abs() < 1e-6 && capped.iter().all(|v| *v <= 0.5 + 1e-6));
    assert!((capped.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    // Clip-renormalise: clipping 0.998 to 0.5 and renormalising gives the max back ≈ 0.995.
    let clip = Chain::parse("clip:c=0.5").unwrap();
    let out = clip.apply(&z, &ModelContext::default(), Row::default(), 0).unwrap();
    assert!(out[0] > 0.95, "clip-renormalise barely changes a confident output: {out:?}");
    // A cap at or below 1/k cannot hold the mass.
    assert!(cap(&p, 0.2).is_err());
}

#[test]
fn deterministic_given_seed_and_id_and_random_across_ids() {
    let ctx = context();
    let z = [1.0, 0.5, -1.0, 0.0, 2.0];
    for spec in ["gaussian:sigma=0.1", "dynanoise", "hamp", "hyga"] {
        let chain = Chain::parse(spec).unwrap();
        let a = chain.apply(&z, &ctx, row(3), 11).unwrap();
        assert_eq!(a, chain.apply(&z, &ctx, row(3), 11).unwrap(), "{spec}");
        let others: Vec<Vec<f32>> = (0..8)
            .map(|i| chain.apply(&z, &ctx, Row { id: 100 + i, ..row(3) }, 11).unwrap())
            .collect();
        assert!(others.iter().any(|o| *o != a), "{spec} ignores the id");
    }
}

#[test]
fn deterministic_defenses_match_hand_computed_values() {
    let ctx = context();
    let z = [2.0f32, 0.0, 1.0];
    let p = softmax(&z);
    let apply = |s: &str| Chain::parse(s).unwrap().apply(&z, &ctx, Row::default(), 0).unwrap();
    // top-1: the max is released, the rest spread evenly.
    let t = apply("topk:k=1");
    assert!((t[0] - p[0]).abs() < 1e-6 && (t[1] - (1.0 - p[0]) / 2.0).abs() < 1e-6);
    assert_eq!(apply("label"), vec![1.0, 0.0, 0.0]);
    let r = apply("round:d=2");
    assert_eq!(r, p.iter().map(|v| (v * 100.0).round() / 100.0).collect::<Vec<_>>());
    let tz = apply("temperature:t=2");
    let expect = softmax(&[1.0, 0.0, 0.5]);
    assert!(tz.iter().zip(&expect).all(|(a, b)| (a - b).abs() < 1e-6));
    // Reverse sigmoid, the IBM ART formula by hand for β = 1, γ = 0.1.
    let rs = apply("reverse-sigmoid:beta=1,gamma=0.1");
    let pert: Vec<f32> = p
        .iter()
        .map(|&v| {
            let r = 1.0 / (1.0 + (-0.1 * (v / (1.0 - v)).ln()).exp()) - 0.5;
            (v - r).clamp(0.0, 1.0)
        })
        .collect();
    let s: f32 = pert.iter().sum();
    assert!(rs.iter().zip(&pert).all(|(a, b)| (a - b / s).abs() < 1e-6), "{rs:?}");
}

#[test]
fn dynanoise_adds_more_noise_to_confident_outputs() {
    // Risk R is 1 − H/log k: near 1 for a confident output, near 0 for a flat one. With
    // T = 1 the spread of the released max grows with R.
    let spread = |z: &[f32]| {
        let chain = Chain::parse("dynanoise:sigma2=0.5,lambda=20,t=1").unwrap();
        let v: Vec<f32> = (0..400)
            .map(|i| {
                let out =
                    chain.apply(z, &ModelContext::default(), Row { id: i, ..Row::default() }, 3);
                let out = out.unwrap();
                released_logits(&out)[0] - released_logits(&out)[1]
            })
            .collect();
        let m = v.iter().sum::<f32>() / v.len() as f32;
        v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32
    };
    let confident = spread(&[12.0, 0.0, 0.0, 0.0, 0.0]);
    let flat = spread(&[0.01, 0.0, 0.0, 0.0, 0.0]);
    // Var of z0 − z1 noise is 2σ₀²(1 + λR): ≈ 21 vs ≈ 1.
    assert!(confident > 8.0 * flat, "confident {confident}, flat {flat}");
}

#[test]
fn hamp_releases_reference_values_in_the_example_ranking() {
    let ctx = context();
    let z = [0.0, 3.0, 1.0, -2.0, 0.5];
    let out = Chain::parse("hamp").unwrap().apply(&z, &ctx, Row::default(), 0).unwrap();
    let mut sorted = out.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    assert!(ctx.references.contains(&sorted), "values come from a reference");
    assert_eq!(ranking(&out), ranking(&z), "ranking preserved");
    let err = Chain::parse("hamp").unwrap().apply(&z, &ModelContext::default(), Row::default(), 0);
    assert!(matches!(err, Err(CoreError::DefenseContext(_))));
}

#[test]
fn memguard_drives_the_surrogate_to_a_coin_flip_within_budget() {
    let ctx = context();
    let s = ctx.surrogate.as_ref().unwrap();
    let z = [6.0f32, 0.5, -1.0, 0.0, 2.0];
    let p = softmax(&z);
    assert!(s.logit(&p) > 1.0, "the surrogate calls it a member");
    let out =
        Chain::parse("memguard:budget=2").unwrap().apply(&z, &ctx, Row::default(), 0).unwrap();
    assert!(s.logit(&out).abs() < 0.01, "{}", s.logit(&out));
    assert_eq!(argmax(&out), 0);
    // Budget 0: every release is the clean posterior.
    let clean =
        Chain::parse("memguard:budget=0").unwrap().apply(&z, &ctx, Row::default(), 0).unwrap();
    assert!(clean.iter().zip(&p).all(|(a, b)| (a - b).abs() < 1e-6));
    // The expected distortion stays within a small budget.
    let chain = Chain::parse("memguard:budget=0.1").unwrap();
    let mean: f32 = (0..400)
        .map(|i| {
            let o = chain.apply(&z, &ctx, Row { id: i, ..Row::default() }, 0).unwrap();
            o.iter().zip(&p).map(|(a, b)| (a - b).abs()).sum::<f32>()
        })
        .sum::<f32>()
        / 400.0;
    assert!(mean < 0.13, "mean L1 distortion {mean}");
}

#[test]
fn hyga_keeps_kl_within_kappa_and_scales_noise_with_sensitivity() {
    let ctx = context();
    let h = hyga::HygaParams { alpha: 4.0, beta: 0.1, sigma_max: 3.0, kappa: 0.05 };
    let chain = Chain { steps: vec![Defense::Hyga(h)] };
    let mut hit_bound = 0;
    for (i, z) in cases().iter().enumerate() {
        for g in [0.0f32, 1.0, 5.0] {
            let out =
                chain.apply(z, &ctx, Row { id: i as u64, gradient_norm: Some(g) }, 2).unwrap();
            let k = hyga::kl(&softmax(z), &out);
            assert!(k <= 0.05 + 1e-4, "KL {k} above κ for {z:?}");
            hit_bound += usize::from(k > 0.04);
        }
    }
    assert!(hit_bound > 0, "the bound is active somewhere");
    assert!(h.sigma(0.0, 2.0) < h.sigma(1.0, 2.0) && h.sigma(1.0, 2.0) < h.sigma(9.0, 2.0));
    assert_eq!(h.sigma(100.0, 2.0), 3.0_f32.min(4.0 + 0.1));
}

#[test]
fn specs_reject_bad_input_with_reasons() {
    for (spec, needle) in [
        ("", "empty"),
        ("nope", "unknown defense"),
        ("topk:k=0", "≥ 1"),
        ("cap", "missing parameter `c`"),
        ("cap:c=1.5", "(0, 1]"),
        ("temperature:t=0", "> 0"),
        ("temperature:t=abc", "not a number"),
        ("temperature:t=2,x=1", "no parameter `x`"),
        ("round:d", "key=value"),
        ("dynanoise:m=0", "`m`"),
        ("gaussian:sigma=inf", "finite"),
    ] {
        let err = Chain::parse(spec).unwrap_err().to_string();
        assert!(err.contains(needle), "{spec}: {err}");
    }
}

#[test]
fn input_gradient_norms_match_finite_differences() {
    use crate::models::ModelConfig;
    use crate::{Architecture, InputSpec};
    use burn::prelude::*;
    let device = Device::flex();
    device.seed(3);
    let config = ModelConfig::new(Architecture::Mlp, InputSpec::new(1, 1, 6), 3);
    let model = config.init(&device).unwrap();
    let values: Vec<f32> = (0..12).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [2, 1, 1, 6]), &device);
    let frozen = hyga::for_gradients(model.clone(), &device);
    let norms: Vec<f32> = hyga::input_gradient_norms(&frozen, x).into_data().try_to_vec().unwrap();
    let valid = model.valid();
    let loss = |v: &[f32]| -> f32 {
        let x = Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, 1, 6]), &device);
        let z: Vec<f32> = valid.forward(x).into_data().try_to_vec().unwrap();
        crate::posterior::cross_entropy(&z, argmax(&z))
    };
    for (b, norm) in norms.iter().enumerate() {
        let row = &values[b * 6..(b + 1) * 6];
        let eps = 1e-2;
        let mut sq = 0f32;
        for j in 0..6 {
            let (mut up, mut down) = (row.to_vec(), row.to_vec());
            up[j] += eps;
            down[j] -= eps;
            sq += ((loss(&up) - loss(&down)) / (2.0 * eps)).powi(2);
        }
        assert!((sq.sqrt() - norm).abs() < 2e-2 * (1.0 + norm), "{} vs {norm}", sq.sqrt());
        assert!(*norm > 0.0);
    }
}
