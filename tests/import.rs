//! `mia import` and `mia export --model` on the fixtures `bench/pytorch_paper.py --fixtures`
//! made with real PyTorch (tests/fixtures/pytorch/): a ResNet-20 state_dict (`.pt`), and a
//! small paper — a small CNN target as safetensors with the .npy contract of its 4 shadows on
//! the first 400 images of CIFAR-10's data_batch_5; and a checkpoint dictionary around a
//! state_dict (`checkpoint.pt`). The images come from the shared data
//! (`$MIA_SHARED_DATA`; the tests that need them skip, saying so, without it).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{fails, json, ok};
use mia_core::npy::NpyArray;

const CIFAR_MEAN: &str = "0.4914,0.4822,0.4465";
const CIFAR_STD: &str = "0.2470,0.2435,0.2616";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pytorch").join(name)
}

/// The first `n` images of data_batch_5 as a uint8 .npy `[n, 32, 32, 3]` in `dir`.
fn cifar_images(dir: &Path, n: usize) -> Option<PathBuf> {
    let Some(root) = std::env::var_os("MIA_SHARED_DATA") else {
        eprintln!("skipped: MIA_SHARED_DATA is not set (the images come from ../shared/data)");
        return None;
    };
    let raw =
        std::fs::read(PathBuf::from(root).join("cifar-10/cifar-10-batches-bin/data_batch_5.bin"))
            .unwrap();
    let mut hwc = Vec::with_capacity(n * 3072);
    for row in raw.chunks(3073).take(n) {
        let chw = &row[1..];
        for p in 0..1024 {
            hwc.extend((0..3).map(|c| i64::from(chw[c * 1024 + p])));
        }
    }
    let path = dir.join(format!("images{n}.npy"));
    std::fs::write(&path, NpyArray::i64(vec![n, 32, 32, 3], hwc).unwrap().to_bytes()).unwrap();
    Some(path)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `mia import` of the ResNet-20 fixture as `arch` with CIFAR-10's input and classes,
/// normalised by (`mean`, `std`), then `extra`.
fn import_resnet(arch: &str, (mean, std): (&str, &str), extra: &[&str]) -> Vec<String> {
    let pt = fixture("resnet20.pt");
    let head = ["import", s(&pt), "--arch", arch, "--input", "3x32x32", "--classes", "10"];
    let tail = ["--mean", mean, "--std", std];
    head.iter().chain(&tail).chain(extra).map(|a| a.to_string()).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_pytorch_resnet20_gives_pytorchs_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(images) = cifar_images(tmp.path(), 64) else { return };
    let out = tmp.path().join("resnet");
    let logits = fixture("resnet20.logits.npy");
    let extra = ["--check-images", s(&images), "--check-logits", s(&logits), "--out", s(&out)];
    let text = ok(&strs(&import_resnet("resnet20", (CIFAR_MEAN, CIFAR_STD), &extra)));
    assert!(text.contains("check: 64 images"), "{text}");
    assert!(text.contains("num_batches_tracked ignored"), "{text}");
    let imported = json(&out.join("imported.json"));
    assert!(imported["checked"][1].as_f64().unwrap() <= 1e-4, "{imported}");
    assert!(out.join("model.bpk").exists());
}

#[test]
fn a_pytorch_safetensors_paper_becomes_a_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(images) = cifar_images(tmp.path(), 400) else { return };
    let paper = fixture("paper");
    let model = tmp.path().join("paper-cnn");
    let npy = |f: &str| paper.join(f);
    ok(&[
        "import",
        s(&npy("target.safetensors")),
        "--arch",
        "small-cnn",
        "--preprocess",
        s(&npy("preprocess.toml")),
        "--check-images",
        s(&images),
        "--check-logits",
        s(&npy("logits.npy")),
        "--out",
        s(&model),
    ]);
    let bundle = tmp.path().join("bundle");
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "export",
            "--model",
            s(&model),
            "--logits",
            s(&npy("logits.npy")),
            "--labels",
            s(&npy("labels.npy")),
            "--membership",
            s(&npy("member.npy")),
            "--shadow-logits",
            s(&npy("shadows.npy")),
            "--shadow-keep",
            s(&npy("keep.npy")),
            "--reference",
            "200",
            "--out",
            s(&bundle),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    };
    let run = |extra: &[&'static str], images: &Path| {
        let mut v = args(extra);
        v.extend(["--images".to_string(), s(images).to_string()]);
        v
    };
    let v = run(&[], &images);
    ok(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let manifest = json(&bundle.join("manifest.json"));
    assert_eq!(manifest["dataset"], "CIFAR-10");
    assert_eq!(manifest["class_names"][9], "truck");
    let m = &manifest["models"][0];
    assert_eq!(m["id"], "paper-cnn");
    assert_eq!(m["shadows"], 4);
    assert!(m["lira"].is_object() && m["shadow_outputs"].is_object(), "{m}");
    let attacks = m["attacks"].as_array().unwrap();
    let reference_aucs = attacks.iter().filter(|a| a["reference_auc"].is_number()).count();
    assert_eq!(reference_aucs, 4, "the page's four attacks carry their reference AUC: {m}");
    assert!(attacks.iter().any(|a| a["name"] == "rmia-online"), "{m}");
    assert!(bundle.join("members.index.bin").exists());

    // The images of other rows: the weights do not reproduce --logits, and nothing is written.
    let shifted = tmp.path().join("shifted.npy");
    let bytes = std::fs::read(&images).unwrap();
    let arr = NpyArray::from_bytes(&bytes).unwrap();
    let mia_core::npy::NpyData::I64(mut px) = arr.data else { panic!() };
    px.rotate_left(3072);
    std::fs::write(&shifted, NpyArray::i64(arr.shape, px).unwrap().to_bytes()).unwrap();
    let other = tmp.path().join("other");
    let mut v = run(&[], &shifted);
    let at = v.iter().position(|a| a == s(&bundle)).unwrap();
    v[at] = s(&other).to_string();
    let err = fails(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("differ from --logits"), "{err}");
    assert!(!other.join("manifest.json").exists());
}

#[test]
fn weights_of_another_architecture_name_what_does_not_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let err =
        fails(&strs(&import_resnet("small-cnn", (CIFAR_MEAN, CIFAR_STD), &["--out", s(&out)])));
    assert!(err.contains("missing from the file (7): conv1.bias"), "{err}");
    assert!(err.contains("in the file but not in the model"), "{err}");
    assert!(err.contains("(106): bn1.bias") && err.contains("… and 94 more"), "{err}");
    assert!(err.contains("--key-map"), "{err}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn a_wrong_normalisation_fails_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(images) = cifar_images(tmp.path(), 64) else { return };
    let (logits, out) = (fixture("resnet20.logits.npy"), tmp.path().join("x"));
    let extra = ["--check-images", s(&images), "--check-logits", s(&logits), "--out", s(&out)];
    let half = "0.5,0.5,0.5";
    let err = fails(&strs(&import_resnet("resnet20", (half, half), &extra)));
    assert!(err.contains("logits differ") && err.contains("--mean"), "{err}");
}

#[test]
fn bad_import_arguments_are_errors_with_hints() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let pt = fixture("resnet20.pt");
    let base = ["import", s(&pt), "--arch", "resnet20", "--out", s(&out)];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|a| a.to_string()).collect()
    };
    let good = "--input 3x32x32 --classes 10 --mean 0,0,0 --std 1,1,1";
    let cases = [
        (String::new(), "needs the input shape"),
        ("--input 3x32 --classes 10 --mean 0 --std 1".into(), "not CxHxW"),
        ("--input 3x32x32 --classes 10 --mean 0 --std 1".into(), "3 channels"),
        ("--input 3x32x32 --classes 10 --mean 0,0,0 --std 1,0,1".into(), "positive"),
        (format!("{good} --key-map x"), "no `=`"),
        (format!("{good} --key-map (=y"), "regular expression"),
    ];
    for (extra, want) in cases {
        let extra: Vec<&str> = extra.split_whitespace().collect();
        let args = with(&extra);
        let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    let onnx = tmp.path().join("model.onnx");
    std::fs::write(&onnx, b"onnx").unwrap();
    let err = fails(&[
        "import",
        s(&onnx),
        "--arch",
        "resnet20",
        "--input",
        "3x32x32",
        "--classes",
        "10",
        "--mean",
        "0,0,0",
        "--std",
        "1,1,1",
        "--out",
        s(&out),
    ]);
    assert!(err.contains("unknown weights format") && err.contains("ONNX"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_checkpoint_dictionary_needs_its_entry_named() {
    // {"epoch": 3, "state_dict": …}, written by bench/pytorch_paper.py --checkpoint-fixture.
    let tmp = tempfile::tempdir().unwrap();
    let (ck, out) = (fixture("checkpoint.pt"), tmp.path().join("ck"));
    let args = ["import", s(&ck), "--arch", "small-cnn", "--input", "1x4x4", "--classes", "3"];
    let tail = ["--mean", "0", "--std", "1", "--out", s(&out)];
    let plain: Vec<&str> = args.iter().chain(&tail).copied().collect();
    let err = fails(&plain);
    assert!(err.contains("state_dict.conv1.weight") && err.contains("--top-level-key"), "{err}");
    assert!(!out.exists());
    let keyed: Vec<&str> = plain.iter().copied().chain(["--top-level-key", "state_dict"]).collect();
    assert!(ok(&keyed).contains("8 tensors into small-cnn"));
    assert!(out.join("model.bpk").exists());
}
