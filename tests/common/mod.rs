//! Helpers shared by the integration tests: running the `mia` binary and writing tiny
//! datasets in the real file formats.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mia_core::npy::NpyArray;

pub fn mia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mia")).args(args).output().expect("run mia")
}

pub fn ok(args: &[&str]) -> String {
    let out = mia(args);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let status = out.status;
    assert!(status.success(), "mia {args:?} failed ({status})\nstdout: {stdout}\nstderr: {stderr}");
    stdout.into_owned()
}

/// Runs a command that must fail cleanly: exit 1, `error:` and `hint:`, no panic.
pub fn fails(args: &[&str]) -> String {
    let out = mia(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "mia {args:?} should fail with 1: {stderr}");
    assert!(stderr.contains("error:") && stderr.contains("hint:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A learnable 10-class Fashion-MNIST-format dataset: class k lights a 4×4 block at a
/// class-specific place, plus noise.
pub fn tiny_idx(dir: &Path, n: usize) {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let mut state = 12345u32;
    for i in 0..n {
        let k = i % 10;
        labels.push(k as u8);
        for y in 0..28 {
            for x in 0..28 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let noise = (state >> 24) as u8 / 4;
                let on = (y / 7 == k / 4 + 1) && (x / 7 == k % 4);
                images.push(if on { 200 + noise / 2 } else { noise });
            }
        }
    }
    let (img, lbl) = mia_data::idx::encode(&images, &labels, 28, 28);
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz(&img)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gz(&lbl)).unwrap();
}

/// A temporary folder with a tiny dataset of `n` images in its `data/` (see [`tiny_idx`]).
pub fn tiny_dataset(n: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_idx(&data, n);
    (tmp, data)
}

pub fn train_args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        data,
        "--model",
        "small-cnn",
        "--members",
        "200",
        "--test",
        "100",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--seed",
        "3",
        "--out",
        out,
    ];
    a.extend_from_slice(extra);
    a
}

pub fn read(path: PathBuf) -> NpyArray {
    NpyArray::from_bytes(&std::fs::read(&path).unwrap()).unwrap()
}
