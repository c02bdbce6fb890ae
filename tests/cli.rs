//! Workspace integration tests: the `mia` binary end to end on tiny datasets written in the
//! real file formats, plus runs on the real datasets in `$MIA_SHARED_DATA` (skipped, with a
//! message, when it is unset).

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use common::{fails, gz, json, mia, ok, read, tiny_dataset, tiny_idx, train_args};
use mia_core::npy::NpyData;
use mia_train::{EpochMetrics, Observer, Summary, TrainConfig};

// ---- harness -------------------------------------------------------------------------------

/// Held by every test that trains or builds a model in this process: burn's random draws
/// (dropout, weight initialisation) come from one process-wide generator per backend, which
/// the trainer seeds at each epoch, so two trainings on the test harness's threads would draw
/// from each other's stream and a bit-exact comparison would fail by chance (tests that run
/// the `mia` binary are separate processes and need no lock).
static IN_PROCESS_TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn in_process_training() -> std::sync::MutexGuard<'static, ()> {
    // A test that panicked while holding the lock leaves nothing shared in a bad state.
    IN_PROCESS_TRAINING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn summary(out: &Path) -> Summary {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// Member accuracy recomputed from the saved signals: ties the summary to the saved weights.
fn member_accuracy_from_signals(out: &Path) -> f32 {
    let NpyData::F32(logits) = read(out.join("signals/logits.npy")).data else { panic!("f32") };
    let NpyData::I64(labels) = read(out.join("signals/labels.npy")).data else { panic!("i64") };
    let NpyData::Bool(member) = read(out.join("signals/is_member.npy")).data else {
        panic!("bool")
    };
    let c = logits.len() / labels.len();
    let (mut right, mut total) = (0, 0);
    for ((row, &y), &m) in logits.chunks(c).zip(&labels).zip(&member) {
        if m {
            total += 1;
            right += usize::from(mia_core::posterior::argmax(row) as i64 == y);
        }
    }
    right as f32 / total as f32
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn train_one_epoch_end_to_end_writes_a_complete_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_idx(&data, 600);
    let out = tmp.path().join("run");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let run = mia(&train_args(d, o, &["--epochs", "3"]));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success() && stdout.contains("test acc"), "{stdout}{stderr}");
    // No terminal here, so the progress bar is hidden; the epoch lines must still appear.
    assert!(stderr.contains("epoch   1") && stderr.contains("epoch   3"), "{stderr}");
    for f in
        ["config.json", "model.json", "split.json", "model.bpk", "metrics.jsonl", "summary.json"]
    {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let s = summary(&out);
    assert_eq!(s.train_acc, member_accuracy_from_signals(&out));
    assert!(s.train_acc > 0.5 && s.test_acc > 0.5, "the model learned nothing: {s:?}");
    assert_eq!(s.counts, [200, 200, 100]);
    assert_eq!(std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().count(), 3);
    let logits = read(out.join("signals/logits.npy"));
    assert_eq!(logits.shape, vec![400, 10]);
    let NpyData::Bool(member) = read(out.join("signals/is_member.npy")).data else {
        panic!("bool")
    };
    assert_eq!(member.iter().filter(|m| **m).count(), 200);
    // Refuses to overwrite a run; --resume of a finished run is a no-op that keeps the result.
    fails(&train_args(d, o, &["--epochs", "3"]));
    let before = std::fs::read(out.join("model.bpk")).unwrap();
    ok(&train_args(d, o, &["--epochs", "3", "--resume"]));
    assert_eq!(std::fs::read(out.join("model.bpk")).unwrap(), before);
}

#[test]
fn same_seed_gives_bit_identical_weights_and_other_seed_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_idx(&data, 500);
    let d = data.to_str().unwrap();
    let runs: Vec<Vec<u8>> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let out = tmp.path().join(name);
            let seed = if *name == "c" { "4" } else { "3" };
            ok(&train_args(
                d,
                out.to_str().unwrap(),
                &["--seed", seed, "--dropout", "0.3", "--augment"],
            ));
            // model.bpk also holds random parameter ids; the logits depend on the weights only.
            std::fs::read(out.join("signals/logits.npy")).unwrap()
        })
        .collect();
    assert!(runs[0] == runs[1], "same seed, different weights");
    assert!(runs[0] != runs[2], "different seeds, same weights");
}

struct StopAfter(usize);
impl Observer for StopAfter {
    fn on_epoch(&mut self, m: &EpochMetrics) -> ControlFlow<()> {
        if m.epoch >= self.0 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }
}

/// Interrupts a run after `epoch` of the phase named `phase` (distillation's `teacher` or
/// `student`).
struct StopInPhase {
    phase: &'static str,
    epoch: usize,
    current: String,
}
impl Observer for StopInPhase {
    fn on_phase(&mut self, name: &str) {
        self.current = name.to_string();
    }
    fn on_epoch(&mut self, m: &EpochMetrics) -> ControlFlow<()> {
        if self.current == self.phase && m.epoch >= self.epoch {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// Trains `toml` (over a tiny dataset) whole, and again interrupted by `stop` then resumed;
/// returns both runs' signal logits.
fn whole_and_resumed(toml: &str, stop: &mut dyn Observer) -> (Vec<u8>, Vec<u8>) {
    let _training = in_process_training();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_idx(&data, 400);
    let config = TrainConfig::from_toml(&format!(
        "dataset = \"fashion-mnist\"\ndata_dir = {:?}\nbatch_size = 32\nseed = 5\n{toml}",
        data.to_str().unwrap()
    ))
    .unwrap();
    let full = tmp.path().join("full");
    mia_train::train(&config, &full, false, &mut mia_train::trainer::Silent).unwrap();
    let cut = tmp.path().join("cut");
    let err = mia_train::train(&config, &cut, false, stop).unwrap_err();
    assert!(matches!(err, mia_train::TrainError::Interrupted { .. }), "{err}");
    mia_train::train(&config, &cut, true, &mut mia_train::trainer::Silent).unwrap();
    let logits = |d: &Path| std::fs::read(d.join("signals/logits.npy")).unwrap();
    (logits(&full), logits(&cut))
}

/// Interrupts `toml`'s run after the first epoch of each of `phases` in turn; every resumed
/// run must reach the uninterrupted run's weights.
fn resumes_in_each_phase(toml: &str, phases: &[&'static str]) {
    for &phase in phases {
        let mut stop = StopInPhase { phase, epoch: 1, current: String::new() };
        let (whole, resumed) = whole_and_resumed(toml, &mut stop);
        assert!(whole == resumed, "interrupted in the {phase} phase, the resumed run differs");
    }
}

/// The training seconds a `metrics.jsonl` records, summed over its epochs.
fn epoch_seconds(path: &Path) -> f64 {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<EpochMetrics>(l).unwrap().train_seconds)
        .sum()
}

#[test]
fn advreg_resumes_its_inference_model_and_reaches_the_same_weights() {
    let toml = "epochs = 3\n[advreg]\nlambda = 1.0\nwarmup = 1\n[split]\nmembers = 100\ntest = 50\nvalidation = 60\n";
    let (whole, resumed) = whole_and_resumed(toml, &mut StopAfter(2));
    assert!(whole == resumed, "the resumed AdvReg run differs");
}

#[test]
fn distillation_resumes_in_either_phase_and_reaches_the_same_weights() {
    let toml = "epochs = 2\n[distill]\ntemperature = 4.0\n[split]\nmembers = 100\ntest = 50\nvalidation = 100\n";
    resumes_in_each_phase(toml, &["teacher", "student"]);
}

#[test]
fn selena_resumes_in_a_sub_model_or_the_distillation_and_reaches_the_same_weights() {
    let toml =
        "epochs = 2\n[selena]\nmodels = 3\nexcluded = 1\n[split]\nmembers = 120\ntest = 50\n";
    resumes_in_each_phase(toml, &["split-ai 2/3", "self-distillation"]);
}

#[test]
fn a_selena_run_keeps_its_sub_models_and_counts_every_models_time() {
    let (tmp, data) = tiny_dataset(700);
    let (d, out) = (data.to_str().unwrap(), tmp.path().join("selena"));
    let stdout = ok(&train_args(d, out.to_str().unwrap(), &["--selena", "3"]));
    assert!(stdout.contains("erm+selena"), "{stdout}");
    let mut total = epoch_seconds(&out.join("metrics.jsonl"));
    for k in ["00", "01", "02"] {
        let sub = out.join("checkpoint/split-ai").join(k);
        assert!(sub.join("e0001/state.json").exists(), "sub-model {k} has no checkpoint");
        total += epoch_seconds(&sub.join("metrics.jsonl"));
    }
    assert!(!out.join("checkpoint/split-ai/03").exists());
    assert!((summary(&out).wall_seconds - total).abs() < 1e-6);
    // L must leave every member at least one sub-model that saw it.
    let bad = tmp.path().join("bad");
    let err =
        fails(&train_args(d, bad.to_str().unwrap(), &["--selena", "3", "--selena-excluded", "3"]));
    assert!(err.contains("1 ≤ L < K"), "{err}");
}

#[test]
fn pruning_resumes_in_the_dense_phase_or_the_fine_tuning_and_reaches_the_same_weights() {
    let toml = "epochs = 2\n[prune]\nsparsity = 0.5\nepochs = 2\nsource = \"members\"\n[split]\nmembers = 100\ntest = 50\n";
    resumes_in_each_phase(toml, &["dense", "fine-tune"]);
}

#[test]
fn a_pruned_run_reports_its_sparsity_and_keeps_its_dense_model() {
    let (tmp, data) = tiny_dataset(700);
    let d = data.to_str().unwrap();
    // Structured pruning zeroes half the convolutions' filters, and the small CNN's weights
    // are mostly in its dense layers: a small overall sparsity.
    for (name, extra, range) in [
        ("global", vec!["--prune", "0.5", "--finetune-epochs", "1"], 0.5..0.51),
        ("filters", vec!["--prune", "0.5", "--structured", "--finetune-epochs", "1"], 0.001..0.1),
    ] {
        let out = tmp.path().join(name);
        let stdout = ok(&train_args(d, out.to_str().unwrap(), &extra));
        assert!(stdout.contains("pruned: "), "{stdout}");
        let s = summary(&out);
        let sparsity = s.sparsity.unwrap();
        assert!(range.contains(&sparsity), "{name}: {sparsity}");
        assert!(s.defense.contains("prune50-ft-members"), "{}", s.defense);
        assert!(out.join("checkpoint/dense/e0001/state.json").exists(), "{name}");
        assert!(out.join("checkpoint/dense/metrics.jsonl").exists(), "{name}");
        // The fine-tuning's epochs are the run's metrics.
        let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 1, "{name}");
    }
}

#[test]
fn pruned_models_fine_tune_on_a_folder_of_images_named_by_class() {
    let (tmp, data) = tiny_dataset(700);
    let d = data.to_str().unwrap();
    let synthetic = tmp.path().join("synthetic");
    for class in ["0", "1", "Trouser"] {
        let dir = synthetic.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for k in 0..3u8 {
            let img =
                image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x as u8) * k + y as u8]));
            img.save(dir.join(format!("{k}.png"))).unwrap();
        }
    }
    let out = tmp.path().join("synth");
    let extra = [
        "--prune",
        "0.5",
        "--finetune-epochs",
        "1",
        "--synthetic-dir",
        synthetic.to_str().unwrap(),
    ];
    ok(&train_args(d, out.to_str().unwrap(), &extra));
    assert!(summary(&out).defense.contains("prune50-ft-synthetic"));
    // A sub-folder that names no class is refused with the classes it could have been.
    std::fs::create_dir_all(synthetic.join("zebra")).unwrap();
    let bad = tmp.path().join("bad");
    let err = fails(&train_args(d, bad.to_str().unwrap(), &extra));
    assert!(err.contains("zebra") && err.contains("Trouser"), "{err}");
}

#[test]
fn generate_writes_class_folders_a_grid_and_resumes_and_pruning_fine_tunes_on_them() {
    let (tmp, data) = tiny_dataset(700);
    let d = data.to_str().unwrap();
    let run = tmp.path().join("erm");
    let r = run.to_str().unwrap();
    ok(&train_args(d, r, &[]));
    let out = tmp.path().join("synthetic");
    let o = out.to_str().unwrap();
    let generate = |epochs: &'static str| {
        let args = ["generate", "--run", r, "--out", o, "--images", "64", "--batch-size", "16"];
        ok(&[&args[..], &["--epochs", epochs, "--per-class", "2"]].concat())
    };
    let stdout = generate("1");
    assert!(stdout.contains("2 images per class"), "{stdout}");
    for class in 0..10 {
        let files = std::fs::read_dir(out.join(class.to_string())).unwrap().count();
        assert_eq!(files, 2, "class {class}");
    }
    let grid = image::open(out.join("grid.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (28 * 2, 28 * 10), "ten rows, up to ten columns");
    let record = |p: &Path| json(&p.join("generator.json"));
    assert_eq!(record(&out)["losses"].as_array().unwrap().len(), 1);
    // A later call with more epochs continues from the checkpoint.
    generate("2");
    assert_eq!(record(&out)["losses"].as_array().unwrap().len(), 2);
    // The pruned run fine-tunes on the numbered class folders.
    let pruned = tmp.path().join("pruned");
    let extra = ["--prune", "0.5", "--finetune-epochs", "1", "--synthetic-dir", o];
    ok(&train_args(d, pruned.to_str().unwrap(), &extra));
    let err = fails(&["generate", "--run", r, "--out", o, "--per-class", "0"]);
    assert!(err.contains("--per-class"), "{err}");
    let err = fails(&["generate", "--run", r, "--out", o, "--epochs", "0"]);
    assert!(err.contains("1 to 500 epochs") && err.contains("mia generate --help"), "{err}");
}

#[test]
fn a_distilled_run_keeps_its_teacher_and_counts_both_models_time() {
    let (tmp, data) = tiny_dataset(700);
    let (d, out) = (data.to_str().unwrap(), tmp.path().join("distilled"));
    let stdout = ok(&train_args(d, out.to_str().unwrap(), &["--distill", "4", "--val", "100"]));
    assert!(stdout.contains("erm+distillation"), "{stdout}");
    let teacher = out.join("checkpoint/teacher");
    assert!(teacher.join("metrics.jsonl").exists() && teacher.join("e0001/state.json").exists());
    let teacher_seconds = epoch_seconds(&teacher.join("metrics.jsonl"));
    let student_seconds = epoch_seconds(&out.join("metrics.jsonl"));
    let s = summary(&out);
    assert!((s.wall_seconds - teacher_seconds - student_seconds).abs() < 1e-6);
    // Without a transfer set there is nothing to distil on.
    let none = tmp.path().join("none");
    assert!(fails(&train_args(d, none.to_str().unwrap(), &["--distill", "4"])).contains("--val"));
}

/// A Fashion-MNIST-format dataset of `n` noise images with random labels: a model can only
/// memorise it, so its members' posteriors differ from everyone else's.
fn noise_dataset(n: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut state = 777u32;
    let mut next = || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (state >> 16) as u8
    };
    let labels: Vec<u8> = (0..n).map(|_| next() % 10).collect();
    let images: Vec<u8> = (0..n * 28 * 28).map(|_| next()).collect();
    let (img, lbl) = mia_data::idx::encode(&images, &labels, 28, 28);
    std::fs::write(data.join("train-images-idx3-ubyte.gz"), gz(&img)).unwrap();
    std::fs::write(data.join("train-labels-idx1-ubyte.gz"), gz(&lbl)).unwrap();
    (tmp, data)
}

/// Mean MMD² of every epoch of an MMD run at weight `lambda` (the gap check off) that, without
/// the term, memorises its 40 members.
fn mmd_per_epoch(d: &str, out: &Path, lambda: &str) -> Vec<f64> {
    let out = out.to_str().unwrap();
    ok(&[
        "train",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        d,
        "--model",
        "small-cnn",
        "--members",
        "40",
        "--val",
        "100",
        "--test",
        "100",
        "--epochs",
        "24",
        "--batch-size",
        "8",
        "--lr",
        "0.003",
        "--seed",
        "3",
        "--mmd",
        lambda,
        "--mmd-gap",
        "0",
        "--out",
        out,
    ]);
    std::fs::read_to_string(Path::new(out).join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<EpochMetrics>(l).unwrap().mmd)
        .collect()
}

#[test]
fn the_mmd_term_pulls_the_members_posteriors_towards_the_reference_sets() {
    // At λ = 1e-6 the term is measured but does not train: the members are memorised and
    // their posteriors move away from the held-out reference set's. At λ = 30 they stay close.
    let (tmp, data) = noise_dataset(700);
    let d = data.to_str().unwrap();
    let measured = mmd_per_epoch(d, &tmp.path().join("off"), "0.000001");
    let trained = mmd_per_epoch(d, &tmp.path().join("on"), "30");
    assert_eq!((measured.len(), trained.len()), (23, 23));
    let late = |v: &[f64]| v[17..].iter().sum::<f64>();
    assert!(
        late(&trained) < 0.5 * late(&measured),
        "MMD² with the term {trained:?}, without {measured:?}"
    );
}

#[test]
fn mixup_mmd_records_each_epochs_mmd_and_skips_the_last_epoch() {
    let (tmp, data) = tiny_dataset(700);
    let (d, out) = (data.to_str().unwrap(), tmp.path().join("mmd"));
    let extra = ["--mixup", "1", "--mmd", "3", "--mmd-gap", "0", "--val", "60", "--epochs", "3"];
    ok(&train_args(d, out.to_str().unwrap(), &extra));
    let mmd: Vec<Option<f64>> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<EpochMetrics>(l).unwrap().mmd)
        .collect();
    assert!(mmd[0].is_some_and(|v| v >= 0.0) && mmd[1].is_some(), "{mmd:?}");
    assert_eq!(mmd[2], None, "the last epoch has no MMD term");
    assert_eq!(summary(&out).defense, "erm+mixup+mmd");
    // A gap no run reaches skips every MMD pass.
    let never = tmp.path().join("never");
    let extra = ["--mmd", "3", "--mmd-gap", "1", "--val", "60", "--epochs", "2"];
    ok(&train_args(d, never.to_str().unwrap(), &extra));
    let metrics = std::fs::read_to_string(never.join("metrics.jsonl")).unwrap();
    assert!(!metrics.contains("\"mmd\""), "{metrics}");
}

#[test]
fn resume_after_an_interruption_equals_an_uninterrupted_run() {
    let _training = in_process_training();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_idx(&data, 500);
    let mut config = TrainConfig::from_toml(&format!(
        "dataset = \"fashion-mnist\"\ndata_dir = {:?}\nepochs = 3\nbatch_size = 32\ndropout = 0.2\naugment = true\n\
         [split]\nmembers = 150\ntest = 50\n[optimizer]\nkind = \"sgd\"\nlr = 0.05\n[schedule]\nkind = \"cosine\"\n",
        data.to_str().unwrap()
    ))
    .unwrap();
    config.seed = 11;
    let full = tmp.path().join("full");
    let s1 = mia_train::train(&config, &full, false, &mut mia_train::trainer::Silent).unwrap();
    let cut = tmp.path().join("cut");
    let err = mia_train::train(&config, &cut, false, &mut StopAfter(1)).unwrap_err();
    assert!(matches!(err, mia_train::TrainError::Interrupted { epoch: 1 }), "{err}");
    assert!(!cut.join("model.bpk").exists());
    let s2 = mia_train::train(&config, &cut, true, &mut mia_train::trainer::Silent).unwrap();
    // model.bpk also holds random parameter ids; the logits depend on the weights only.
    let logits = |d: &Path| std::fs::read(d.join("signals/logits.npy")).unwrap();
    assert!(logits(&full) == logits(&cut), "resumed run differs from the uninterrupted one");
    assert_eq!((s1.train_acc, s1.test_acc), (s2.train_acc, s2.test_acc));
    // A different configuration cannot resume the run.
    config.epochs = 5;
    assert!(mia_train::train(&config, &cut, true, &mut mia_train::trainer::Silent).is_err());
}

#[test]
fn dp_sgd_reaches_its_target_epsilon_and_reports_it_every_epoch() {
    let (tmp, data) = tiny_dataset(300);
    let (d, out) = (data.to_str().unwrap(), tmp.path().join("dp"));
    let extra = ["--epochs", "3", "--members", "64", "--test", "32", "--dp-clip", "1.0"];
    let mut args = train_args(d, out.to_str().unwrap(), &extra);
    args.extend(["--target-epsilon", "8", "--dp-delta", "1e-4"]);
    let stdout = ok(&args);
    assert!(stdout.contains("DP-SGD: ε ="), "{stdout}");
    let s = summary(&out);
    let dp = s.dp.expect("summary.json reports DP-SGD");
    assert!(dp.epsilon <= 8.0 && dp.epsilon > 7.5, "ε {} for a target of 8", dp.epsilon);
    assert_eq!((dp.delta, dp.clip, dp.sampling_rate), (1e-4, 1.0, 0.5));
    assert_eq!(s.defense, "erm+dp-sgd");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let eps: Vec<f64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["epsilon"].as_f64().unwrap())
        .collect();
    assert_eq!(eps.len(), 3);
    assert!(eps.windows(2).all(|w| w[0] < w[1]) && (eps[2] - dp.epsilon).abs() < 1e-9, "{eps:?}");
    // Batch normalisation mixes a batch's examples: refused with a hint, as is RelaxLoss.
    let bn = tmp.path().join("bn");
    let mut args = train_args(d, bn.to_str().unwrap(), &["--dp-clip", "1", "--dp-noise", "1"]);
    args.extend(["--model", "resnet20"]);
    assert!(fails(&args).contains("batch normalisation"));
    let mut args = train_args(d, bn.to_str().unwrap(), &["--dp-clip", "1", "--dp-noise", "1"]);
    args.extend(["--defense", "relaxloss"]);
    fails(&args);
}

#[test]
fn dp_sgd_without_noise_is_refused_and_a_delta_above_one_over_n_is_flagged() {
    let (tmp, data) = tiny_dataset(300);
    let (d, out) = (data.to_str().unwrap(), tmp.path().join("dp0"));
    let base = ["--epochs", "1", "--members", "64", "--test", "32", "--dp-clip", "1"];
    let mut args = train_args(d, out.to_str().unwrap(), &base);
    args.extend(["--dp-noise", "0"]);
    let stderr = fails(&args);
    assert!(stderr.contains("no noise") && stderr.contains("--dp-noise σ > 0"), "{stderr}");
    assert!(!out.join("summary.json").exists(), "nothing trained");
    // δ = 0.05 ≥ 1/64: trained, with a warning; stdout says what the ε means.
    let mut args = train_args(d, out.to_str().unwrap(), &base);
    args.extend(["--dp-noise", "1", "--dp-delta", "0.05"]);
    let run = mia(&args);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("warning: δ = ") && stderr.contains("1/N"), "{stderr}");
    assert!(stdout.contains("guarantee"), "{stdout}");
}

#[test]
fn mia_lab_runs_the_pages_lab_natively_and_explains_bad_input() {
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pretrained");
    let b = bundle.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("study.json");
    let args = ["lab", "--bundle", b, "--runs", "2", "--per-class", "6", "--shadows", "6"];
    let mut with_out = args.to_vec();
    with_out.extend(["--out", out.to_str().unwrap()]);
    let stdout = ok(&with_out);
    assert!(stdout.contains("2 runs × 7 draws") && stdout.contains("| lira-online |"), "{stdout}");
    let study = json(&out);
    let lira = study.as_array().unwrap().iter().find(|a| a["attack"] == "lira-online").unwrap();
    assert_eq!(lira["aucs"].as_array().unwrap().len(), 2, "one row of draws per run");
    assert_eq!(lira["aucs"][0].as_array().unwrap().len(), 7, "the target and 6 shadows");
    fails(&["lab", "--bundle", "/nonexistent"]);
    fails(&["lab", "--bundle", b, "--shadows", "5"]);
    fails(&["lab", "--bundle", b, "--defense", "label-smoothing"]);
    fails(&["lab", "--bundle", b, "--classes", "3"]);
}

#[test]
fn every_defense_trains_from_the_command_line_and_from_a_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_idx(&data, 600);
    let d = data.to_str().unwrap();
    for (i, extra) in [
        vec!["--defense", "label-smoothing", "--epsilon", "0.2", "--smoothing-form", "other"],
        vec!["--defense", "confidence-penalty", "--beta", "0.5"],
        vec!["--defense", "relaxloss", "--alpha", "0.8", "--epochs", "2"],
        vec!["--defense", "ppb", "--lambda", "4"],
        vec!["--defense", "hamp", "--hamp-gamma", "0.9", "--alpha", "0.01"],
        vec!["--mixup", "1.0"],
        vec!["--adamixup", "0.4", "--epochs", "2"],
        vec!["--dp-clip", "1.0", "--dp-noise", "1.0", "--members", "64", "--test", "32"],
        vec!["--mixup", "1.0", "--mmd", "3", "--mmd-gap", "0", "--val", "50", "--epochs", "2"],
        vec!["--distill", "4", "--val", "100"],
        vec!["--advreg", "1", "--advreg-warmup", "0", "--val", "50"],
        vec!["--selena", "3", "--epochs", "2"],
        vec!["--prune", "0.5", "--finetune-epochs", "1", "--epochs", "2"],
        vec![
            "--weight-decay",
            "0.0005",
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--schedule",
            "step",
            "--step-size",
            "1",
        ],
        vec!["--val", "50", "--early-stopping", "1", "--epochs", "3"],
        vec!["--device", "ndarray", "--members", "64", "--test", "32"],
    ]
    .into_iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("run{i}"));
        ok(&train_args(d, out.to_str().unwrap(), &extra));
        // The summary describes the saved weights (the best epoch's after early stopping).
        assert_eq!(summary(&out).train_acc, member_accuracy_from_signals(&out), "{extra:?}");
    }
    let cfg = tmp.path().join("relax.toml");
    std::fs::write(
        &cfg,
        format!(
            "dataset = \"fashion-mnist\"\ndata_dir = {d:?}\nepochs = 1\n[split]\nmembers = 100\ntest = 50\n\
             [defense]\nname = \"relaxloss\"\nalpha = 1.0\nvariant = \"tabular\"\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("from-config");
    ok(&["train", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let saved: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved.defense.name(), "relaxloss");
}

#[test]
fn tabular_csv_trains_an_mlp_with_tabular_relaxloss() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("purchase.csv");
    // 4 classes, 12 binary features; the class sets features 3k..3k+2 (plus label noise-free
    // random bits elsewhere).
    let mut text = String::from("f0,f1,f2,f3,f4,f5,f6,f7,f8,f9,f10,f11,label\n");
    let mut state = 7u32;
    for i in 0..400 {
        let k = i % 4;
        for f in 0..12 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let bit = if f / 3 == k { 1 } else { (state >> 30) & 1 };
            text.push_str(&format!("{bit},"));
        }
        text.push_str(&format!("{k}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let out = tmp.path().join("run");
    ok(&[
        "train",
        "--dataset",
        "csv",
        "--data-dir",
        csv.to_str().unwrap(),
        "--model",
        "mlp",
        "--members",
        "100",
        "--test",
        "100",
        "--epochs",
        "5",
        "--defense",
        "relaxloss",
        "--alpha",
        "0.5",
        "--relax-variant",
        "tabular",
        "--out",
        out.to_str().unwrap(),
    ]);
    let s = summary(&out);
    assert!(s.test_acc > 0.6, "{s:?}");
    assert_eq!(read(out.join("signals/logits.npy")).shape, vec![200, 4]);
}

#[test]
fn bad_input_gives_error_and_hint_never_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let d = data.to_str().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    // Missing dataset files.
    let e = fails(&train_args(d, o, &[]));
    assert!(e.contains("mia data fetch"), "{e}");
    // Truncated image file.
    tiny_idx(&data, 100);
    let p = data.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 3]).unwrap();
    fails(&train_args(d, o, &[]));
    tiny_idx(&data, 100);
    // Too many members for the pool, unknown model, dataset, device, bad numbers, bad config.
    fails(&train_args(d, o, &["--members", "5000"]));
    assert!(!out.exists(), "a split that cannot be drawn leaves no run folder behind");
    fails(&train_args(d, o, &["--model", "transformer"]));
    fails(&train_args(d, o, &["--model", "ml-leaks-cnn", "--dataset", "csv"]));
    fails(&train_args(d, o, &["--device", "tpu"]));
    fails(&train_args(d, o, &["--defense", "label-smoothing", "--epsilon", "2"]));
    fails(&train_args(d, o, &["--lr=-1"]));
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "epochs = \"many\"").unwrap();
    fails(&["train", "--config", cfg.to_str().unwrap(), "--out", o]);
    fails(&["train", "--config", "/nonexistent.toml", "--out", o]);
    fails(&["train", "--data-dir", d, "--dataset", "fashion-mnist", "--out", o, "--resume"]);
    fails(&["data", "info", "--dataset", "imagenet", "--data-dir", d]);
    fails(&["data", "fetch", "folder", "--dir", d]);
    // Info works on the tiny set.
    let info = ok(&["data", "info", "--dataset", "fashion-mnist", "--data-dir", d]);
    assert!(info.contains("examples: 100") && info.contains("Ankle boot"), "{info}");
}

// ---- real datasets (../shared/data through $MIA_SHARED_DATA) ------------------------------

fn shared(sub: &str) -> Option<PathBuf> {
    match std::env::var_os("MIA_SHARED_DATA") {
        Some(root) => Some(PathBuf::from(root).join(sub)),
        None => {
            eprintln!(
                "skipped: MIA_SHARED_DATA is not set (the real-data tests need ../shared/data)"
            );
            None
        }
    }
}

/// Checks `mia data info`, trains the small CNN for 2 epochs and returns the summary.
fn real_run(dataset: &str, dir: &Path, info_has: &[&str], members: &str) -> Summary {
    let d = dir.to_str().unwrap();
    let info = ok(&["data", "info", "--dataset", dataset, "--data-dir", d]);
    assert!(info_has.iter().all(|want| info.contains(want)), "{info}");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    ok(&[
        "train",
        "--dataset",
        dataset,
        "--data-dir",
        d,
        "--model",
        "small-cnn",
        "--members",
        members,
        "--test",
        "1000",
        "--epochs",
        "2",
        "--out",
        o,
    ]);
    summary(&out)
}

#[test]
fn real_fashion_mnist_small_cnn_learns() {
    let Some(dir) = shared("fashion-mnist") else { return };
    let s = real_run("fashion-mnist", &dir, &["examples: 70000", "1x28x28"], "3000");
    assert!(s.test_acc > 0.75, "Fashion-MNIST test accuracy {s:?}");
}

#[test]
fn real_cifar10_without_its_test_file_loads_and_trains() {
    let Some(dir) = shared("cifar-10") else { return };
    let s = real_run("cifar10", &dir, &["examples: 50000", "3x32x32", "airplane"], "2000");
    assert!(s.test_acc > 0.25, "CIFAR-10 test accuracy {s:?}");
}

/// The shipped bundle must match its manifest and every weights file must decode into its
/// architecture, so a stale `pretrained/` fails CI.
#[test]
fn shipped_bundle_is_consistent_and_its_weights_decode() {
    use mia_core::bundle::{LiraStats, Manifest, ReferenceSample, ShadowOutputs};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pretrained");
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
    let manifest = Manifest::parse(&String::from_utf8(read("manifest.json")).unwrap()).unwrap();
    manifest.reference.file.verify(&read(&manifest.reference.file.path)).unwrap();
    let reference =
        ReferenceSample::decode(&read(&manifest.reference.file.path), manifest.input).unwrap();
    assert_eq!(reference.len(), manifest.reference.members + manifest.reference.non_members);
    // Loading a model initialises its parameters from the process-wide generator first.
    let _training = in_process_training();
    let device = mia_train::DeviceChoice::Flex.device().unwrap();
    let mut total = 0u64;
    for m in &manifest.models {
        let weights = read(&m.weights.path);
        m.weights.verify(&weights).unwrap();
        let model = m.config.load_bytes(weights, &device).unwrap();
        total += m.weights.bytes;
        // The weights must still produce the attack numbers the manifest shows.
        let logits = reference.logits(&model, &manifest.normalization, &device).unwrap();
        let [auc, _] = reference.threshold_aucs(&logits, m.config.num_classes).unwrap();
        let shipped = m.attacks.iter().find(|a| a.name == "loss").and_then(|a| a.reference_auc);
        assert!((auc - shipped.unwrap()).abs() < 0.002, "{}: loss AUC {auc} vs {shipped:?}", m.id);
        if let Some(f) = &m.lira {
            f.verify(&read(&f.path)).unwrap();
            LiraStats::decode(&read(&f.path), reference.len()).unwrap();
            total += f.bytes;
        }
        if let Some(f) = &m.shadow_outputs {
            f.verify(&read(&f.path)).unwrap();
            ShadowOutputs::decode(&read(&f.path), reference.len(), manifest.class_names.len())
                .unwrap();
            total += f.bytes;
        }
        let loss = m.attacks.iter().find(|a| a.name == "loss").unwrap();
        assert!(loss.reference_auc.is_some() && loss.threshold.is_some(), "{}", m.id);
    }
    total += manifest.reference.file.bytes;
    assert!(total <= 25_000_000, "the bundle is {total} bytes, over 25 MB");
}

/// The shipped index of the model's training images verifies, holds every member of the split
/// (20 000) and finds each reference member exactly, with the label it was trained with.
#[test]
fn shipped_members_index_finds_every_reference_member_exactly() {
    use mia_core::bundle::{Manifest, ReferenceSample};
    use mia_core::recognise::MembersIndex;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pretrained");
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
    let manifest = Manifest::parse(&String::from_utf8(read("manifest.json")).unwrap()).unwrap();
    let entry = manifest.members_index.as_ref().expect("the shipped bundle has an index");
    entry.file.verify(&read(&entry.file.path)).unwrap();
    let index = MembersIndex::decode(&read(&entry.file.path)).unwrap();
    assert_eq!((index.len(), entry.members), (20_000, 20_000));
    let r = ReferenceSample::decode(&read(&manifest.reference.file.path), manifest.input).unwrap();
    for i in (0..r.len()).filter(|&i| r.is_member[i]) {
        let m = index.find(r.image(i), r.input).unwrap().expect("a member is found");
        assert_eq!((m.distance, m.label), (0, r.labels[i]), "reference member {i}");
    }
}

/// `mia index` draws the bundle's split again from its seed, checks it against the reference
/// sample and writes the very index that ships; a wrong seed is refused with a hint.
#[test]
fn real_mia_index_rebuilds_the_shipped_index_and_refuses_a_wrong_split() {
    let Some(data) = shared("cifar-10") else { return };
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pretrained");
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("bundle");
    std::fs::create_dir(&copy).unwrap();
    for f in ["manifest.json", "reference.02.bin"] {
        std::fs::copy(shipped.join(f), copy.join(f)).unwrap();
    }
    let (b, d) = (copy.to_str().unwrap(), data.to_str().unwrap());
    let err =
        fails(&["index", "--bundle", b, "--data-dir", d, "--members", "20000", "--seed", "1"]);
    assert!(err.contains("does not match the bundle") && err.contains("hint:"), "{err}");
    let out = ok(&["index", "--bundle", b, "--data-dir", d, "--members", "20000", "--seed", "0"]);
    assert!(out.contains("20000 members") && out.contains("1 of its 1000 non-members"), "{out}");
    let built = std::fs::read(copy.join("members.index.bin")).unwrap();
    assert!(
        built == std::fs::read(shipped.join("members.index.bin")).unwrap(),
        "not the shipped index"
    );
    let text = std::fs::read_to_string(copy.join("manifest.json")).unwrap();
    assert_eq!(text, std::fs::read_to_string(shipped.join("manifest.json")).unwrap());
}

#[test]
fn bench_phases_time_every_phase_of_a_step_on_cpu_backends_only() {
    let table = ok(&[
        "bench",
        "--only",
        "phases",
        "--devices",
        "flex,wgpu",
        "--models",
        "small-cnn",
        "--images",
        "8",
        "--batch",
        "8",
        "--steps",
        "2",
        "--python",
        "",
    ]);
    for phase in ["batch", "forward", "backward", "optimizer", "step"] {
        assert!(
            table.contains(&format!("| phases | small-cnn · {phase} · burn flex |")),
            "{table}"
        );
    }
    assert!(!table.contains("burn wgpu"), "GPU backends queue work: no phase rows\n{table}");
    assert!(table.contains("forward · PyTorch CPU | — |  | reference unavailable"), "{table}");
    let stderr = fails(&["bench", "--only", "phases", "--steps", "0"]);
    assert!(!stderr.contains("debug build"), "bad arguments fail before the warning: {stderr}");
    assert!(stderr.contains("one step") && stderr.contains("hint:"), "{stderr}");
}

#[test]
fn bench_warns_when_the_binary_is_a_debug_build() {
    let out = mia(&[
        "bench",
        "--only",
        "attacks",
        "--examples",
        "200",
        "--attack-models",
        "2",
        "--python",
        "",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warned = stderr.contains("warning: this `mia` is a debug build")
        && stderr.contains("hint: measure with `cargo run --release -- bench`");
    assert_eq!(warned, cfg!(debug_assertions), "{stderr}");
}

#[test]
fn bench_scores_attacks_and_writes_the_browser_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let table = ok(&[
        "bench",
        "--only",
        "attacks",
        "--examples",
        "3000",
        "--attack-models",
        "8",
        "--python",
        "",
        "--json",
        json.to_str().unwrap(),
    ]);
    for name in ["lira-online", "lira-offline", "rmia"] {
        assert!(
            table.contains(&format!("| attacks | {name}, 3000 examples × 8 models · MIA Lab |")),
            "{table}"
        );
    }
    assert!(table.contains("NumPy reference unavailable"), "{table}");
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["value"].as_f64().is_some_and(|ms| ms > 0.0)));

    // Training rows: a GPU backend brings the PyTorch CUDA reference row; a backend or a
    // reference that is missing is a row saying why, never a failure.
    let train = |devices: &str| {
        ok(&[
            "bench",
            "--only",
            "training",
            "--devices",
            devices,
            "--models",
            "small-cnn",
            "--images",
            "8",
            "--batch",
            "8",
            "--python",
            "",
        ])
    };
    let cpu = train("flex");
    assert!(cpu.contains("| training | small-cnn · burn flex |"), "{cpu}");
    assert!(cpu.contains("small-cnn · PyTorch CPU | — |  | reference unavailable"), "{cpu}");
    assert!(!cpu.contains("PyTorch CUDA"), "{cpu}");
    let gpu = train("cuda");
    assert!(gpu.contains("| training | small-cnn · burn cuda |"), "{gpu}");
    assert!(gpu.contains("small-cnn · PyTorch CUDA | — |  | reference unavailable"), "{gpu}");

    let stderr = fails(&["bench", "--only", "everything"]);
    assert!(stderr.contains("unknown bench section"), "{stderr}");

    // The TF.js fixture: the shipped model's parameters, inputs and burn's own logits.
    let bundle = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pretrained");
    let fixture = dir.path().join("fixture");
    ok(&[
        "bench",
        "--browser-fixture",
        fixture.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.join("model.json")).unwrap()).unwrap();
    let shapes: Vec<Vec<u64>> = meta["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect())
        .collect();
    assert_eq!(shapes[0], [16, 3, 3, 3]);
    assert_eq!(shapes.len(), 8);
    let n = meta["examples"].as_u64().unwrap() as usize;
    let floats = |f: &str| std::fs::metadata(fixture.join(f)).unwrap().len() as usize / 4;
    assert_eq!(floats("inputs.bin"), n * 3 * 32 * 32);
    assert_eq!(floats("logits.bin"), n * 10);
    let total: usize = shapes.iter().map(|s| s.iter().product::<u64>() as usize).sum();
    assert_eq!(floats("params.bin"), total);
    let stderr = fails(&[
        "bench",
        "--browser-fixture",
        fixture.to_str().unwrap(),
        "--bundle",
        "/nonexistent",
    ]);
    assert!(stderr.contains("manifest.json"), "{stderr}");
}

#[test]
fn real_dp_sgd_under_early_stopping_reports_the_epsilon_of_every_epoch_run() {
    // The run that under-reported ε: 4 epochs run, epoch 3 kept, ε of 3 epochs reported.
    let Some(dir) = shared("fashion-mnist") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (d, o) = (dir.to_str().unwrap(), out.to_str().unwrap());
    let extra = [
        "--members",
        "300",
        "--val",
        "300",
        "--epochs",
        "15",
        "--early-stopping",
        "1",
        "--dp-clip",
        "1",
        "--dp-noise",
        "2",
        "--lr",
        "0.02",
        "--batch-size",
        "64",
        "--seed",
        "3",
    ];
    let mut args = train_args(d, o, &extra);
    args.extend(["--test", "300"]);
    ok(&args);
    let s = summary(&out);
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let eps: Vec<f64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["epsilon"].as_f64().unwrap())
        .collect();
    let dp = s.dp.unwrap();
    assert_eq!(eps.len(), s.epochs);
    assert_eq!(dp.epsilon, *eps.last().unwrap(), "ε of every epoch run ({eps:?})");
    if s.kept_epoch < s.epochs {
        assert!(dp.epsilon > eps[s.kept_epoch - 1], "more than the kept epoch's {eps:?}");
    }
}

/// Every repository path the docs name in backticks (`crates/…`, `tests/…`, `web/…`, …)
/// exists, so docs/architecture.md and the guides cannot point a newcomer at a file that
/// moved. Paths with a placeholder (`<id>`, `*`, `{…}`) and build outputs git ignores are
/// not checked.
#[test]
fn paths_the_docs_name_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let docs = markdown_docs(&root);
    let tops = ["crates/", "tests/", "web/", "bench/", "docs/", "pretrained/", ".ci/"];
    let ignored = ["bench/browser/out", "tests/e2e/out", "web/site/pretrained"];
    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for span in text.split('`').skip(1).step_by(2) {
            let path = span.split(':').next().unwrap_or("").trim_end_matches('/');
            let named =
                tops.iter().any(|t| path.starts_with(t)) && !path.contains(char::is_whitespace);
            let pattern =
                path.contains(['<', '*', '{']) || ignored.iter().any(|i| path.starts_with(i));
            if named && !pattern && !root.join(path).exists() {
                missing.push(format!("{}: {path}", doc.file_name().unwrap().to_string_lossy()));
            }
        }
    }
    assert!(docs.len() >= 5, "read {} docs", docs.len());
    assert!(missing.is_empty(), "the docs name paths that do not exist: {missing:#?}");
}

/// README.md and every Markdown file in docs/.
fn markdown_docs(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut docs = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    docs
}

/// GitHub's anchors of a Markdown file's headings (outside code blocks): lower case, spaces
/// to hyphens, punctuation other than `-` and `_` dropped.
fn heading_anchors(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        let Some(title) = line.strip_prefix('#').filter(|_| !fenced) else { continue };
        let title = title.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug = title.trim().chars().filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        });
        out.push(slug.collect::<String>().to_lowercase());
    }
    out
}

/// Every relative link in README.md and docs/ (`[text](path#anchor)`, images too) reaches a
/// file, and its anchor one of that file's headings: the docs are reorganised by topic from
/// time to time, and a moved section must not leave a dead link behind.
#[test]
fn links_in_the_docs_reach_their_file_and_heading() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dead = Vec::new();
    let mut checked = 0;
    for doc in markdown_docs(&root) {
        let text = std::fs::read_to_string(&doc).unwrap();
        let dir = doc.parent().unwrap();
        for target in text.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if path.is_empty() { doc.clone() } else { dir.join(path) };
            let name = doc.file_name().unwrap().to_string_lossy().to_string();
            checked += 1;
            if !file.exists() {
                dead.push(format!("{name}: {target} (no such file)"));
            } else if !anchor.is_empty() {
                let anchors = heading_anchors(&std::fs::read_to_string(&file).unwrap());
                if !anchors.iter().any(|a| a == anchor) {
                    dead.push(format!("{name}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(checked >= 20, "checked only {checked} links");
    assert!(dead.is_empty(), "dead links in the docs: {dead:#?}");
}

/// The CLI reference's table of inference-time defenses and `mia attack --help` are the
/// catalogue's:
/// one row per defense, with its defaults and whether it keeps the label.
#[test]
fn the_readme_table_and_the_help_list_the_defense_catalogue() {
    use mia_core::inference::catalogue::CATALOGUE;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reference = std::fs::read_to_string(root.join("docs/cli.md")).unwrap();
    let section =
        reference.split("| spec (defaults) |").nth(1).expect("docs/cli.md's defense table");
    let rows: Vec<Vec<&str>> = section
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(rows.len(), CATALOGUE.len(), "one row per defense");
    for (row, e) in rows.iter().zip(&CATALOGUE) {
        assert_eq!(row[0], format!("`{}`", e.spec_with_defaults()), "{}", e.name);
        assert_eq!(row[row.len() - 1], e.keeps_label, "{}: keeps label", e.name);
    }
    let help = ok(&["attack", "--help"]);
    for e in &CATALOGUE {
        assert!(help.contains(&e.spec_with_defaults()), "--help lacks {}", e.name);
    }
}

/// Runs `mia prepare-lab SPEC --bundle pretrained --out OUT EXTRA…`: its stdout when `works`,
/// else its stderr (which must hold `error:` and `hint:`).
fn prepare_lab(spec: &Path, out: &Path, extra: &[&str], works: bool) -> String {
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pretrained");
    let (spec, bundle, out) =
        (spec.to_str().unwrap(), bundle.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["prepare-lab", spec, "--bundle", bundle, "--out", out];
    args.extend(extra);
    if works { ok(&args) } else { fails(&args) }
}

/// The prepared labs the page ships are what `mia prepare-lab` makes of their specs today
/// (web/labs/make.sh rebuilds them), and each reads back as a lab with instructions.
#[test]
fn the_shipped_prepared_labs_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let labs = root.join("web/labs");
    let tmp = tempfile::tempdir().unwrap();
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&labs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    specs.sort();
    assert!((2..=4).contains(&specs.len()), "ship two to four prepared labs: {specs:?}");
    for spec in specs {
        let name = spec.file_stem().unwrap().to_string_lossy().into_owned();
        let out = tmp.path().join(format!("{name}.json"));
        prepare_lab(&spec, &out, &[], true);
        let made = std::fs::read_to_string(&out).unwrap();
        let shipped =
            std::fs::read_to_string(labs.join(format!("{name}.json"))).unwrap_or_default();
        assert!(made == shipped, "web/labs/{name}.json is stale: bash web/labs/make.sh");
        let lab = mia_core::lab::file::read(&made, mia_core::InputSpec::new(3, 32, 32)).unwrap();
        let doc = root.join(format!("docs/teaching/{name}.md"));
        assert!(lab.instructions.is_some() && doc.exists(), "{name}: instructions and a worksheet");
    }
}

#[test]
fn a_prepared_lab_with_a_bad_spec_is_refused_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("one-class.toml");
    std::fs::write(
        &spec,
        "title = \"t\"\ntext = \"x\"\n[images]\nclasses = [3]\nnames = [\"cat\"]\nper_class = 10\nseed = 1\n\
         [recipe]\ndefense = \"erm\"\nstrength = 0.0\nhidden = 0\nepochs = 5\nlr = 0.1\n\
         weight_decay = 0.0\ndropout = 0.0\nshadows = 16\ndelta = 1e-5\n",
    )
    .unwrap();
    let out = tmp.path().join("lab.json");
    assert!(prepare_lab(&spec, &out, &[], false).contains("2–10 classes"));
    std::fs::write(&spec, "title = \"t\"\n").unwrap();
    assert!(prepare_lab(&spec, &out, &[], false).contains("missing field `text`"));
    assert!(!out.exists(), "nothing written");
}

/// A teacher's own photos: a lab exported from the page gets instructions from a spec.
#[test]
fn a_prepared_lab_takes_its_images_from_an_exported_lab_with_from() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let spec = tmp.path().join("own.toml");
    std::fs::write(&spec, "title = \"Our photos\"\ntext = \"Train it.\"\nquestions = [\"Why?\"]\n")
        .unwrap();
    let exported = root.join("web/labs/backfire.json");
    let out = tmp.path().join("own.json");
    prepare_lab(&spec, &out, &["--from", exported.to_str().unwrap()], true);
    let input = mia_core::InputSpec::new(3, 32, 32);
    let made = mia_core::lab::file::read(&std::fs::read_to_string(&out).unwrap(), input).unwrap();
    let source =
        mia_core::lab::file::read(&std::fs::read_to_string(&exported).unwrap(), input).unwrap();
    assert_eq!((made.images, made.classes), (source.images, source.classes));
    assert_eq!(made.instructions.unwrap().title, "Our photos");
    // Images from both the spec and --from, or from neither, are refused.
    std::fs::write(&spec, "title = \"t\"\ntext = \"x\"\n").unwrap();
    let neither = prepare_lab(&spec, &out, &[], false);
    assert!(neither.contains("either in the spec's [images] or with --from"), "{neither}");
}
