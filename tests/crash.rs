//! Files that survive a crash: `mia train` killed with SIGKILL at many moments never leaves a
//! truncated file behind and `--resume` reaches the same weights; two `mia shadows` shards
//! writing one folder at once give what one process gives; an unreadable checkpoint makes
//! `--resume` fall back to the previous one, saying which file.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, tiny_dataset, train_args};
use mia_core::npy::NpyArray;

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mia"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every file under `dir` that a later command could read is complete: JSON parses, every
/// `.jsonl` line parses, `.npy` arrays decode, burnpack files decode. Temporaries of the atomic
/// writer are skipped (nothing reads them).
fn assert_complete(dir: &Path) {
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if mia_core::files::is_temporary(&name) {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap();
        let what = entry.display();
        match entry.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{what} is not complete JSON: {e}"));
            }
            Some("jsonl") => {
                for line in String::from_utf8(bytes).unwrap().lines() {
                    serde_json::from_str::<serde_json::Value>(line)
                        .unwrap_or_else(|e| panic!("{what} has a partial line: {e}"));
                }
            }
            Some("npy") => {
                NpyArray::from_bytes(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            Some("bpk") => {
                let parsed = std::panic::catch_unwind(|| {
                    burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(
                        bytes,
                    ))
                    .is_ok()
                });
                assert!(parsed.unwrap_or(false), "{what} is not a complete burnpack file");
            }
            _ => {}
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn training_killed_at_any_moment_leaves_complete_files_and_resumes_to_the_same_weights() {
    let (tmp, data) = tiny_dataset(400);
    let d = data.to_str().unwrap();
    let full = tmp.path().join("full");
    let epochs = ["--epochs", "8", "--members", "120", "--test", "60"];
    let started = Instant::now();
    ok(&train_args(d, full.to_str().unwrap(), &epochs));
    let whole = started.elapsed();

    // Kill the same run again and again at moments spread over a whole run (setup, epochs,
    // checkpoints, the final files), each time checking what is on disk, then resume.
    let cut = tmp.path().join("cut");
    let c = cut.to_str().unwrap();
    let mut kills = 0;
    for step in 0.. {
        let mut args = train_args(d, c, &epochs);
        if cut.join("config.json").exists() {
            args.push("--resume");
        }
        let mut child = spawn(&args);
        let delay = whole.mul_f64(0.07 + 0.11 * f64::from(step % 9));
        let deadline = Instant::now() + delay;
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match finished {
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "resumed run failed: {err}");
                break;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                assert_complete(&cut);
            }
        }
        assert!(step < 60, "the run never finished");
    }
    assert!(kills >= 3, "only {kills} kills: the run was too fast to interrupt");
    let logits = |p: &Path| std::fs::read(p.join("signals/logits.npy")).unwrap();
    assert!(logits(&full) == logits(&cut), "after {kills} kills the weights differ");
}

#[test]
fn a_crash_at_every_write_of_a_run_leaves_complete_files_and_resumes_to_the_same_weights() {
    // Deterministic companion of the SIGKILL test above: the crash hook aborts the process at
    // crash point k (before and after every rename), for every k of a whole run.
    let (tmp, data) = tiny_dataset(200);
    let d = data.to_str().unwrap();
    let small = ["--epochs", "3", "--members", "60", "--test", "30"];
    let full = tmp.path().join("full");
    ok(&train_args(d, full.to_str().unwrap(), &small));
    let logits = |p: &Path| std::fs::read(p.join("signals/logits.npy")).unwrap();
    for k in 1.. {
        let cut = tmp.path().join(format!("cut{k}"));
        let c = cut.to_str().unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_mia"))
            .args(train_args(d, c, &small))
            .env(mia_core::files::CRASH_AT_VAR, k.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if status.success() {
            assert!(k > 20, "only {k} crash points in a whole run");
            break;
        }
        assert_complete(&cut);
        let mut args = train_args(d, c, &small);
        if cut.join("config.json").exists() {
            args.push("--resume");
        }
        ok(&args);
        assert!(logits(&full) == logits(&cut), "crash at point {k}: the resumed weights differ");
        std::fs::remove_dir_all(&cut).unwrap();
    }
}

#[test]
fn two_shard_processes_writing_one_folder_at_once_match_one_process() {
    let (tmp, data) = tiny_dataset(400);
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    ok(&train_args(data.to_str().unwrap(), r, &["--members", "100", "--test", "50"]));
    let base = ["shadows", "--run", r, "--count", "4", "--population", "30", "--jobs", "1"];
    // Both shards start together, so both find no pool.json, labels or target logits and
    // write them at the same time.
    let shards: Vec<Child> =
        ["0/2", "1/2"].iter().map(|s| spawn(&[&base[..], &["--shard", s]].concat())).collect();
    for mut child in shards {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "a shard failed: {err}");
    }
    let one = tmp.path().join("one");
    ok(&[&base[..], &["--dir", one.to_str().unwrap()]].concat());
    let shared = run.join("shadows");
    assert_complete(&shared);
    // No --queries and a target trained without augmentation: the identity query only.
    let pool: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared.join("pool.json")).unwrap()).unwrap();
    assert_eq!(pool["queries"].as_array().unwrap().len(), 1, "{pool}");
    for f in ["pool.json", "labels.npy", "target_logits.npy"] {
        let (a, b) = (std::fs::read(shared.join(f)).unwrap(), std::fs::read(one.join(f)).unwrap());
        assert!(a == b, "{f} differs");
    }
    for i in 0..4 {
        let f = format!("{i:03}/logits.npy");
        let (a, b) =
            (std::fs::read(shared.join(&f)).unwrap(), std::fs::read(one.join(&f)).unwrap());
        assert!(a == b, "{f} differs");
    }
    // No temporaries are left behind by either process.
    let stray: Vec<_> = walk(&shared)
        .into_iter()
        .filter(|p| mia_core::files::is_temporary(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// Stops training after `n` epochs and collects warnings.
struct StopAfter(usize, Vec<String>);

impl mia_train::Observer for StopAfter {
    fn on_epoch(&mut self, m: &mia_train::EpochMetrics) -> std::ops::ControlFlow<()> {
        if m.epoch >= self.0 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }
    fn on_warning(&mut self, message: &str) {
        self.1.push(message.to_string());
    }
}

#[test]
fn an_unreadable_checkpoint_falls_back_to_the_previous_one_and_says_which_file() {
    let (tmp, data) = tiny_dataset(300);
    let config = mia_train::TrainConfig::from_toml(&format!(
        "dataset = \"fashion-mnist\"\ndata_dir = {:?}\nepochs = 4\nseed = 5\naugment = true\n\
         [split]\nmembers = 100\ntest = 50\n[optimizer]\nkind = \"sgd\"\nlr = 0.05\n",
        data.to_str().unwrap()
    ))
    .unwrap();
    let full = tmp.path().join("full");
    mia_train::train(&config, &full, false, &mut StopAfter(usize::MAX, vec![])).unwrap();
    let cut = tmp.path().join("cut");
    assert!(mia_train::train(&config, &cut, false, &mut StopAfter(3, vec![])).is_err());
    // Checkpoints after epochs 2 and 3 are kept; spoil the newest one's weights.
    let ckpt = cut.join("checkpoint");
    assert!(ckpt.join("e0002/state.json").exists() && !ckpt.join("e0001").exists());
    let newest = ckpt.join("e0003/model.bpk");
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let mut observer = StopAfter(usize::MAX, vec![]);
    mia_train::train(&config, &cut, true, &mut observer).unwrap();
    assert!(
        observer.1.iter().any(|w| w.contains("e0003") && w.contains("model.bpk")),
        "{:?}",
        observer.1
    );
    let logits = |p: &Path| std::fs::read(p.join("signals/logits.npy")).unwrap();
    assert!(logits(&full) == logits(&cut), "the fallback run reached other weights");

    // With every checkpoint spoiled, resuming is an error that names the problem.
    let again = tmp.path().join("again");
    assert!(mia_train::train(&config, &again, false, &mut StopAfter(2, vec![])).is_err());
    for g in ["e0001", "e0002"] {
        std::fs::write(again.join("checkpoint").join(g).join("state.json"), "{").unwrap();
    }
    let err = mia_train::train(&config, &again, true, &mut StopAfter(usize::MAX, vec![]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no readable checkpoint") && err.contains("state.json"), "{err}");
}
