//! One shared fixture for the inference-time defenses, checked natively (`cargo test`) and in
//! wasm32 (`wasm-bindgen-test-runner` under Node, see `tests/run-all.sh`): the same logits,
//! seeds and per-model context must give the same released posteriors on both, and the
//! input-gradient norms HyGA-ANI needs (burn autodiff on the flex CPU backend) must agree too.
//! Lab mode's head training is checked the same way: the same seed must give the same trained
//! heads (ERM, and label smoothing with a hidden layer, dropout and DP-SGD) natively and in
//! the browser.
//! Regenerate natively with `UPDATE_FIXTURE=1 cargo test -p mia-core --test inference_fixture`.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use mia_core::inference::{Chain, ModelContext, Row, Surrogate, hyga};
use mia_core::models::ModelConfig;
use mia_core::{Architecture, InputSpec};
use serde_json::{Value, json};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const FIXTURE: &str = include_str!("fixtures/inference.json");
const LAB_FIXTURE: &str = include_str!("fixtures/lab_heads.json");
const WEIGHTS: &[u8] = include_bytes!("fixtures/tiny_cnn.bpk");

const SPECS: [&str; 13] = [
    "topk:k=2",
    "label",
    "round:d=2",
    "cap:c=0.5",
    "clip:c=0.5",
    "temperature:t=10",
    "gaussian:sigma=0.1",
    "reverse-sigmoid",
    "dynanoise:sigma2=0.3,lambda=2,t=10,m=3",
    "hamp",
    "memguard:budget=1",
    "hyga",
    "temperature:t=2+dynanoise+topk:k=3",
];

fn cases() -> Vec<Vec<f32>> {
    (0..24)
        .map(|i| {
            (0..5)
                .map(|j| (((i * 13 + j * 7) % 17) as f32 - 8.0) * (1.0 + (i % 4) as f32) / 3.0)
                .collect()
        })
        .collect()
}

fn context() -> ModelContext {
    ModelContext {
        references: vec![vec![0.4, 0.3, 0.15, 0.1, 0.05], vec![0.9, 0.04, 0.03, 0.02, 0.01]],
        surrogate: Some(Surrogate { w: vec![6.0, -1.0, -1.0, -2.0, -2.0], b: -3.0 }),
        gradient_scale: Some(1.5),
    }
}

fn released() -> Value {
    let ctx = context();
    let mut out = serde_json::Map::new();
    for spec in SPECS {
        let chain = Chain::parse(spec).unwrap();
        let rows: Vec<Vec<f32>> = cases()
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let row = Row { id: i as u64, gradient_norm: Some(0.4 * (i % 5) as f32) };
                chain.apply(z, &ctx, row, 42).unwrap()
            })
            .collect();
        out.insert(spec.to_string(), json!(rows));
    }
    Value::Object(out)
}

fn config() -> ModelConfig {
    ModelConfig::new(Architecture::SmallCnn, InputSpec::new(1, 4, 4), 3)
}

fn gradient_input() -> Vec<f32> {
    (0..3 * 16).map(|i| ((i * 5 % 13) as f32 - 6.0) / 3.0).collect()
}

fn gradient_norms(weights: Vec<u8>) -> Vec<f32> {
    let device = Device::flex();
    let model = config().load_bytes(weights, &device).unwrap();
    let frozen = hyga::for_gradients(model, &device);
    let x = Tensor::<4>::from_data(TensorData::new(gradient_input(), [3, 1, 4, 4]), &device);
    hyga::input_gradient_norms(&frozen, x).into_data().try_to_vec().unwrap()
}

fn close(a: &Value, b: &Value, tol: f64, path: &str) {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                close(u, v, tol, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: keys");
            for (k, u) in x {
                close(u, &y[k], tol, &format!("{path}.{k}"));
            }
        }
        _ => {
            let (u, v) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((u - v).abs() <= tol, "{path}: {u} vs {v}");
        }
    }
}

/// Logits of heads trained on a fixed toy set of 24 examples (6 features, 3 classes).
fn lab_heads() -> Value {
    use mia_core::defense::{DefenseConfig, SmoothingForm};
    use mia_core::lab::{DpSgd, HeadConfig, HeadTrainer, TrainSet, lab_logits};
    let x: Vec<f32> = (0..24 * 6).map(|i| (((i * 7) % 11) as f32 - 5.0) / 4.0).collect();
    let labels: Vec<usize> = (0..24).map(|i| i % 3).collect();
    let configs = [
        HeadConfig { epochs: 5, batch_size: 8, seed: 3, ..HeadConfig::default() },
        HeadConfig {
            hidden: 8,
            epochs: 4,
            batch_size: 8,
            dropout: 0.25,
            defense: DefenseConfig::LabelSmoothing { epsilon: 0.1, form: SmoothingForm::Uniform },
            dp: Some(DpSgd { clip: 1.0, noise_multiplier: 1.0, delta: 1e-5 }),
            seed: 4,
            ..HeadConfig::default()
        },
    ];
    let device = Device::flex();
    let train = |cfg: HeadConfig| {
        let data = TrainSet { features: &x, dim: 6, labels: &labels, classes: 3 };
        let mut t = HeadTrainer::new(cfg, data, &device).unwrap();
        while !t.finished() {
            t.epoch().unwrap();
        }
        t.finish()
    };
    let mut nets: Vec<_> = configs.into_iter().map(train).collect();
    // Early stopping: 16 examples trained on, 8 validated on, the loss read back each epoch.
    let cfg = HeadConfig { epochs: 40, early_stopping: Some(2), seed: 5, ..HeadConfig::default() };
    let fit = TrainSet { features: &x[..16 * 6], dim: 6, labels: &labels[..16], classes: 3 };
    let val = TrainSet { features: &x[16 * 6..], dim: 6, labels: &labels[16..], classes: 3 };
    let mut t = HeadTrainer::new(cfg, fit, &device).unwrap().with_validation(val).unwrap();
    while !t.finished() {
        t.epoch().unwrap();
        let loss = t.validation_loss().unwrap().into_data().try_to_vec::<f32>().unwrap()[0];
        t.observe_validation(f64::from(loss));
    }
    nets.push(t.finish());
    let out: Vec<Vec<f32>> = nets
        .iter()
        .map(|net| lab_logits(net, &x, 6, &device).unwrap().into_data().try_to_vec().unwrap())
        .collect();
    json!(out)
}

#[cfg(not(target_arch = "wasm32"))]
fn update_if_asked() -> bool {
    if std::env::var_os("UPDATE_FIXTURE").is_none() {
        return false;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let device = Device::flex();
    device.seed(9);
    let weights = config().init(&device).unwrap().into_record().into_bytes().unwrap().to_vec();
    std::fs::write(dir.join("tiny_cnn.bpk"), &weights).unwrap();
    let fixture = json!({ "released": released(), "gradient_norms": gradient_norms(weights) });
    std::fs::write(dir.join("inference.json"), serde_json::to_string_pretty(&fixture).unwrap())
        .unwrap();
    let lab = serde_json::to_string_pretty(&lab_heads()).unwrap();
    std::fs::write(dir.join("lab_heads.json"), lab).unwrap();
    true
}

#[cfg(target_arch = "wasm32")]
fn update_if_asked() -> bool {
    false
}

#[test]
fn released_posteriors_match_the_shared_fixture() {
    if update_if_asked() {
        return;
    }
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    // Transcendentals (exp, ln, cos) may differ in the last bit between platforms' libms.
    close(&released(), &fixture["released"], 1e-4, "released");
}

#[test]
fn input_gradient_norms_match_the_shared_fixture() {
    if cfg!(not(target_arch = "wasm32")) && std::env::var_os("UPDATE_FIXTURE").is_some() {
        return; // written by the other test
    }
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let norms = json!(gradient_norms(WEIGHTS.to_vec()));
    close(&norms, &fixture["gradient_norms"], 1e-4, "gradient_norms");
    assert!(norms.as_array().unwrap().iter().all(|v| v.as_f64().unwrap() > 0.0));
}

#[test]
fn lab_heads_match_the_shared_fixture() {
    if cfg!(not(target_arch = "wasm32")) && std::env::var_os("UPDATE_FIXTURE").is_some() {
        return; // written by the first test
    }
    let fixture: Value = serde_json::from_str(LAB_FIXTURE).unwrap();
    close(&lab_heads(), &fixture, 1e-4, "lab_heads");
}

/// Values with ties, NaN, ±0 and negatives, from a fixed sequence.
fn awkward_values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match (i * 7 + 3) % 11 {
            0 => f32::NAN,
            1 => -0.0,
            2 => 0.0,
            k => ((i * 37 % 13) as f32 - 6.0) * 0.5 + (k % 2) as f32 * 0.25,
        })
        .collect()
}

fn same_bits(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// ReLU as the page's CPU path runs it (in place, four lanes at a time in wasm32): `x` where it
/// is positive or NaN, +0 elsewhere, on a length that leaves a remainder.
#[test]
fn relu_keeps_positives_and_nan_and_zeroes_the_rest() {
    let x = awkward_values(4 * 25 + 3);
    let device = Device::flex();
    let t = Tensor::<1>::from_data(TensorData::new(x.clone(), [x.len()]), &device);
    let y: Vec<f32> = burn::tensor::activation::relu(t).into_data().try_to_vec().unwrap();
    for (i, (&a, &b)) in x.iter().zip(&y).enumerate() {
        let want = if a.is_nan() || a > 0.0 { a } else { 0.0 };
        assert!(same_bits(b, want), "relu({a}) at {i}: {b}, want {want}");
    }
}

/// 2×2 max-pooling without indices (inference; four windows at a time in wasm32): each
/// window's maximum in row-major order, a NaN or a later greater value replacing the best,
/// ties keeping the first (so the sign of a zero is the first's); odd edges dropped.
#[test]
fn max_pool_2x2_values_follow_the_window_rule() {
    let (b, c, h, w) = (2, 3, 7, 19);
    let x = awkward_values(b * c * h * w);
    let device = Device::flex();
    let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [b, c, h, w]), &device);
    let opts = burn::tensor::ops::MaxPoolOptions::new([2, 2]).with_stride([2, 2]);
    let y: Vec<f32> = burn::tensor::module::max_pool2d(t, opts).into_data().try_to_vec().unwrap();
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(y.len(), b * c * oh * ow);
    for p in 0..b * c {
        for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
            let at = |dy: usize, dx: usize| x[p * h * w + (2 * oy + dy) * w + 2 * ox + dx];
            let mut best = at(0, 0);
            for v in [at(0, 1), at(1, 0), at(1, 1)] {
                if v > best || v.is_nan() {
                    best = v;
                }
            }
            let got = y[(p * oh + oy) * ow + ox];
            assert!(same_bits(got, best), "plane {p} window ({oy}, {ox}): {got}, want {best}");
        }
    }
}

/// The convolution as the page's CPU path runs it (in wasm32: the 4 × 8 simd128 GEMM on a
/// shifted-copy im2col) against a direct sum, with channels and positions that leave
/// remainders and both a "same" (padding 1) and a "valid" (padding 0) convolution.
#[test]
fn conv2d_forward_is_the_direct_sum() {
    let (b, cin, h, w, cout, k) = (2, 3, 7, 9, 6, 3);
    let x = awkward_values(b * cin * h * w)
        .iter()
        .map(|v| if v.is_nan() { 0.5 } else { *v })
        .collect::<Vec<_>>();
    let wt: Vec<f32> =
        (0..cout * cin * k * k).map(|i| ((i * 29 % 17) as f32 - 8.0) / 16.0).collect();
    let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1 - 0.2).collect();
    let device = Device::flex();
    for pad in [1usize, 0] {
        let opts = burn::tensor::ops::ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        let y = burn::tensor::module::conv2d(
            Tensor::<4>::from_data(TensorData::new(x.clone(), [b, cin, h, w]), &device),
            Tensor::<4>::from_data(TensorData::new(wt.clone(), [cout, cin, k, k]), &device),
            Some(Tensor::<1>::from_data(TensorData::new(bias.clone(), [cout]), &device)),
            opts,
        );
        let (oh, ow) = (h + 2 * pad - k + 1, w + 2 * pad - k + 1);
        assert_eq!(y.dims(), [b, cout, oh, ow]);
        let y: Vec<f32> = y.into_data().try_to_vec().unwrap();
        for (i, got) in y.iter().enumerate() {
            let (n, o, oy, ox) = (i / (cout * oh * ow), i / (oh * ow) % cout, i / ow % oh, i % ow);
            let mut want = f64::from(bias[o]);
            for (c, ky, kx) in
                (0..cin).flat_map(|c| (0..k).flat_map(move |ky| (0..k).map(move |kx| (c, ky, kx))))
            {
                let (iy, ix) =
                    ((oy + ky) as isize - pad as isize, (ox + kx) as isize - pad as isize);
                if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                    let v = x[((n * cin + c) * h + iy as usize) * w + ix as usize];
                    want += f64::from(v) * f64::from(wt[((o * cin + c) * k + ky) * k + kx]);
                }
            }
            assert!(
                (f64::from(*got) - want).abs() < 1e-5,
                "pad {pad}, output {i}: {got}, want {want}"
            );
        }
    }
}
