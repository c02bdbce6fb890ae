//! Fuzzing of every reader of untrusted bytes: dataset files (IDX with gzip, CIFAR records,
//! CSV, PNG/JPEG), the `.npy` reader, the web bundle (manifest, reference sample, LiRA and
//! shadow files, weights), the TOML training config and `attacks.json` with its score files.
//!
//! A small mutation fuzzer (seeded, so a failure reproduces): each target starts from valid
//! files made by MIA Lab's own writers and mutates them (bit flips, interesting integers in
//! header fields, truncation, insertion, splicing). An execution passes when the reader returns
//! `Ok` or `Err`; a panic fails the test and the input is saved next to the crashers below.
//! Unbounded allocation is excluded by construction (every reader checks a declared size
//! against the bytes it actually has, or against a fixed cap, before allocating), and checked:
//! the fuzzing process runs under an address-space limit, where such an allocation aborts it.
//!
//! - `cargo test --test fuzz`: every target for a fixed number of executions (the same inputs
//!   on every machine, about a second each), or for `MIA_FUZZ_SECONDS` seconds when set
//!   (`bench/fuzz.sh`); the saved crashers in `tests/fuzz/crashers/TARGET/` are replayed too.
//! - It prints one line per target: executions, executions per second, share accepted. The
//!   fuzzing runs in a child process under an 8 GiB address-space limit (`ulimit -v`), so an
//!   unbounded allocation fails the test instead of exhausting the machine.

#![allow(clippy::unwrap_used)]

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mia_attack::AttackReport;
use mia_core::bundle::{LiraStats, Manifest, ReferenceSample, ShadowOutputs};
use mia_core::lab::file as lab_file;
use mia_core::lab::{Head, HeadConfig, LabNet, NetShape};
use mia_core::npy::NpyArray;
use mia_core::{Architecture, InputSpec, ModelConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A reader call that must not panic; `true` when it accepted the input.
type Reader = Box<dyn Fn(&[u8]) -> bool>;

/// One reader under test and its seeds.
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    run: Reader,
}

const INTERESTING: [u64; 10] =
    [0, 1, 0x7f, 0xff, 0x7fff_ffff, 0xffff_ffff, 20_000, 1 << 31, 1 << 40, u64::MAX];

/// One random mutation of `input` (with `other` for splicing).
fn mutate(input: &[u8], other: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = input.to_vec();
    let rounds = 1 + rng.random_range(0..4);
    for _ in 0..rounds {
        let len = b.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] = [0u8, 0xff, 0x7f, 0x80, b'(', b',', b'0', b'9'][rng.random_range(0..8)];
            }
            2 if len >= 4 => {
                // An interesting integer over a header-like field, either byte order.
                let width = [2usize, 4, 8][rng.random_range(0..3)].min(len);
                let at = rng
                    .random_range(0..=len - width)
                    .min(rng.random_range(0..=64.min(len - width)));
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let bytes = if rng.random_bool(0.5) { v.to_le_bytes() } else { v.to_be_bytes() };
                b[at..at + width].copy_from_slice(&bytes[8 - width..]);
            }
            3 if len > 0 => b.truncate(rng.random_range(0..len)),
            4 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..64);
                let fill: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                b.splice(i..i, fill);
            }
            5 if len > 1 => {
                let i = rng.random_range(0..len);
                let j = (i + rng.random_range(1..64)).min(len);
                b.drain(i..j);
            }
            _ if !other.is_empty() => {
                let cut = rng.random_range(0..=b.len());
                let from = rng.random_range(0..other.len());
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
    b
}

fn crasher_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/crashers").join(target)
}

/// Runs `input` through the target, returning the panic message if it panicked.
fn execute(t: &Target, input: &[u8]) -> Result<bool, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| (t.run)(input))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// How long each target is fuzzed.
#[derive(Clone, Copy)]
enum Budget {
    /// A fixed number of executions: the same inputs on every machine (the test command).
    Executions(u64),
    /// Wall-clock time (long runs).
    Time(Duration),
}

/// Fuzzes one target; returns (executions, accepted) or the first crash.
fn fuzz(t: &Target, budget: Budget, seed: u64) -> Result<(u64, u64), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let (mut runs, mut accepted) = (0u64, 0u64);
    while match budget {
        Budget::Executions(n) => runs < n,
        Budget::Time(d) => started.elapsed() < d,
    } {
        let a = &t.seeds[rng.random_range(0..t.seeds.len())];
        let b = &t.seeds[rng.random_range(0..t.seeds.len())];
        let input = mutate(a, b, &mut rng);
        match execute(t, &input) {
            Ok(ok) => accepted += u64::from(ok),
            Err(message) => {
                let dir = crasher_dir(t.name);
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join(format!("crash-{seed}-{runs}.bin"));
                std::fs::write(&path, &input).unwrap();
                return Err(format!(
                    "{}: panicked ({message}); input saved to {}",
                    t.name,
                    path.display()
                ));
            }
        }
        runs += 1;
    }
    Ok((runs, accepted))
}

// ---- seeds ---------------------------------------------------------------------------------

fn npy_seeds() -> Vec<Vec<u8>> {
    vec![
        NpyArray::f32(vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-8, 7.0]).unwrap().to_bytes(),
        NpyArray::i64(vec![3], vec![-1, 0, 1 << 40]).unwrap().to_bytes(),
        NpyArray::bool(vec![2, 2], vec![true, false, true, true]).unwrap().to_bytes(),
    ]
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_seeds(images: bool) -> Vec<Vec<u8>> {
    let (img, lbl) = mia_data::idx::encode(&[7u8; 3 * 4 * 5], &[1, 2, 3], 4, 5);
    let raw = if images { img } else { lbl };
    vec![gz(&raw), raw]
}

fn image_seeds() -> Vec<Vec<u8>> {
    let img = image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 90]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let mut jpg = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg).unwrap();
    vec![png, jpg]
}

fn report_seed() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let logits =
        mia_attack::Logits::new(1, 4, 2, vec![2.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.2]).unwrap();
    let input = mia_attack::AttackInput::new(
        logits,
        vec![0, 1, 0, 1],
        vec![true, true, false, false],
        vec![],
    )
    .unwrap();
    let kind = mia_attack::AttackKind::parse("loss").unwrap();
    let result =
        mia_attack::attack::run(kind, &input, &mia_attack::AttackOptions::default()).unwrap();
    let report = AttackReport {
        version: 1,
        source: "fuzz".into(),
        label: "fuzz".into(),
        dataset: None,
        model: None,
        defense: None,
        test_acc: Some(0.5),
        train_acc: None,
        candidates: 4,
        members: 2,
        shadows: 0,
        queries: 1,
        query_note: None,
        population: 0,
        skipped: vec![],
        attacks: vec![result],
        inference: None,
    };
    report.write(dir.path(), &input.is_member).unwrap();
    let read = |n: &str| std::fs::read(dir.path().join(n)).unwrap();
    (read("attacks.json"), read("attack_scores.npy"), read("attack_membership.npy"))
}

const TOML_SEED: &str = "dataset = \"cifar10\"\ndata_dir = \"data\"\nmodel = \"small-cnn\"\n\
    epochs = 30\naugment = true\n[split]\nmembers = 5000\n[defense]\nname = \"relaxloss\"\n\
    alpha = 1.0\n[optimizer]\nkind = \"sgd\"\nlr = 0.05\nmomentum = 0.9\nweight_decay = 0.0005\n";

/// A lab network's weights (a 4 → 3 → 2 head) and a lab file of 1 × 2 × 2 images holding it.
fn lab_seeds() -> (Vec<u8>, Vec<u8>) {
    let device = burn::prelude::Device::flex();
    let cfg = HeadConfig { hidden: 3, ..HeadConfig::default() };
    let net = LabNet::head(Head::new(4, 2, &cfg, &device)).to_bytes().unwrap();
    let file = lab_file::LabFile {
        format: lab_file::FORMAT.into(),
        version: lab_file::VERSION,
        input: [1, 2, 2],
        classes: vec!["cats".into(), "dogs".into()],
        split_seed: 7,
        settings: lab_file::FileSettings {
            defense: "dp-sgd".into(),
            strength: 1.0,
            hidden: 3,
            early_stopping: Some(4),
            ..lab_file::FileSettings::default()
        },
        images: (0..4)
            .map(|i| lab_file::FileImage {
                class: i % 2,
                member: i < 2,
                pixels: lab_file::hex(&[i as u8, 2, 3, 4]),
            })
            .collect(),
        network: Some(lab_file::FileNet {
            shape: NetShape { dim: 4, hidden: 3, classes: 2, fine_tuned: false },
            weights: lab_file::hex(&net),
        }),
        result: Some(lab_file::FileResult {
            images: vec![0, 1, 2, 3],
            member: vec![true, false, true, false],
            labels: vec![0, 1, 0, 1],
            classes: 2,
            target: vec![1.0, -1.0, 0.5, 0.25, -2.0, 3.0, 0.0, 0.125],
            shadows: vec![0.5; 16],
            keep: vec![true, false, false, true, false, true, true, false],
            validation: vec![2],
            epsilon: Some((3.5, 1e-5)),
            kept_epoch: (40, 60),
            ms: 900.0,
            recipe: "DP-SGD σ = 1".into(),
            smoothing: None,
            pairing: 5,
            stale: false,
        }),
        history: Vec::new(),
        instructions: Some(lab_file::FileInstructions {
            title: "A prepared lab".into(),
            text: "Train it twice.".into(),
            questions: vec!["What changed?".into()],
        }),
    };
    (net, serde_json::to_vec(&file).unwrap())
}

fn targets() -> Vec<Target> {
    let input = InputSpec::new(3, 4, 4);
    let reference = ReferenceSample {
        input,
        labels: vec![1, 2, 0],
        is_member: vec![true, false, true],
        pixels: (0..3 * 48).map(|i| i as u8).collect(),
    };
    let lira = LiraStats { rows: vec![[1.0, 0.5, -1.0, 0.7], [0.0, 1.0, 0.0, 1.0]] };
    let shadows = ShadowOutputs {
        shadows: 2,
        examples: 2,
        classes: 3,
        keep: vec![true, false, false, true],
        logits: (0..12).map(|v| v as f32 / 3.0).collect(),
    };
    // The smallest model of the zoo (a small CNN on 4 × 4 images, 9 k parameters): the
    // format is the same for every architecture, and each execution builds and loads one.
    let small = ModelConfig::new(Architecture::SmallCnn, InputSpec::new(1, 4, 4), 3);
    let device = burn::prelude::Device::flex();
    let weights = {
        use burn::module::Module;
        let model = small.init(&device).unwrap();
        model.into_record().into_bytes().unwrap().to_vec()
    };
    let (net, lab_text) = lab_seeds();
    let head_shape = NetShape { dim: 4, hidden: 3, classes: 2, fine_tuned: false };
    let lab_input = InputSpec::new(1, 2, 2);
    let device_lab = device.clone();
    let device_net = device.clone();
    let (json, scores, members) = report_seed();
    let manifest = include_bytes!("../pretrained/manifest.json").to_vec();
    let utf8 = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let path = Path::new("fuzz-input");
    let cifar_record = |label: u8| {
        let mut r = vec![label];
        r.extend((0..3072).map(|i| (i % 251) as u8));
        r
    };
    vec![
        Target {
            name: "npy",
            seeds: npy_seeds(),
            run: Box::new(|b| NpyArray::from_bytes(b).is_ok()),
        },
        Target {
            name: "idx-images",
            seeds: idx_seeds(true),
            run: Box::new(move |b| {
                mia_data::idx::decompress(b.to_vec(), path)
                    .and_then(|raw| mia_data::idx::parse_images(&raw, path))
                    .is_ok()
            }),
        },
        Target {
            name: "idx-labels",
            seeds: idx_seeds(false),
            run: Box::new(move |b| {
                mia_data::idx::decompress(b.to_vec(), path)
                    .and_then(|raw| mia_data::idx::parse_labels(&raw, path))
                    .is_ok()
            }),
        },
        Target {
            name: "cifar",
            seeds: vec![
                [cifar_record(3), cifar_record(9)].concat(),
                [[0u8].as_slice(), &cifar_record(99)].concat(),
            ],
            run: Box::new(move |b| {
                let ten = mia_data::cifar::parse_records(b, 1, 10, path).is_ok();
                let hundred = mia_data::cifar::parse_records(b, 2, 100, path).is_ok();
                ten || hundred
            }),
        },
        Target {
            name: "csv",
            seeds: vec![
                b"label,f1,f2\n1,0,1\n0,1,1\n2,0.5,0\n".to_vec(),
                b"0,1,1\n1,0,0\n1e3,-2,1\n".to_vec(),
            ],
            run: Box::new(move |b| mia_data::tabular::parse(b, path, None).is_ok()),
        },
        Target {
            name: "image",
            seeds: image_seeds(),
            run: Box::new(|b| mia_data::folder::decode_image(b, 8, false).is_ok()),
        },
        Target {
            name: "bundle-manifest",
            seeds: vec![manifest],
            run: Box::new(move |b| Manifest::parse(&utf8(b)).is_ok()),
        },
        Target {
            name: "bundle-binaries",
            seeds: vec![reference.encode(), lira.encode(), shadows.encode()],
            run: Box::new(move |b| {
                let r = ReferenceSample::decode(b, input).is_ok();
                let l = LiraStats::decode(b, 2).is_ok();
                let s = ShadowOutputs::decode(b, 2, 3).is_ok();
                r || l || s
            }),
        },
        Target {
            name: "weights",
            seeds: vec![weights],
            // Checked, then read by burn, with no panic catching of its own (mia_core::weights).
            run: Box::new(move |b| small.load_bytes(b.to_vec(), &device).is_ok()),
        },
        Target {
            name: "lab-file",
            seeds: vec![lab_text],
            // A classmate's lab file: read, and its network loaded as the page loads it.
            run: Box::new(move |b| {
                let Ok(c) = lab_file::read(&utf8(b), lab_input) else { return false };
                c.network.is_none_or(|(shape, bytes)| {
                    LabNet::from_bytes(bytes, shape, None, &device_lab).is_ok()
                })
            }),
        },
        Target {
            name: "lab-network",
            seeds: vec![net],
            run: Box::new(move |b| {
                LabNet::from_bytes(b.to_vec(), head_shape, None, &device_net).is_ok()
            }),
        },
        Target {
            name: "toml-config",
            seeds: vec![TOML_SEED.as_bytes().to_vec()],
            run: Box::new(move |b| mia_train::TrainConfig::from_toml(&utf8(b)).is_ok()),
        },
        Target {
            name: "attacks-json",
            seeds: vec![json.clone()],
            run: {
                let (scores, members) = (scores.clone(), members.clone());
                Box::new(move |b| AttackReport::parse(b, &scores, &members).is_ok())
            },
        },
        Target {
            name: "attack-scores",
            seeds: vec![scores],
            run: Box::new(move |b| AttackReport::parse(&json, b, &members).is_ok()),
        },
    ]
}

#[test]
fn seeds_are_accepted() {
    // A target whose seeds are all rejected fuzzes only the error paths: the seeds must be
    // valid files.
    for t in targets() {
        for (i, s) in t.seeds.iter().enumerate() {
            assert_eq!(execute(&t, s), Ok(true), "{} seed {i} should be accepted", t.name);
        }
    }
}

#[test]
fn saved_crashers_stay_fixed() {
    for t in targets() {
        let Ok(entries) = std::fs::read_dir(crasher_dir(t.name)) else { continue };
        for e in entries.flatten() {
            let input = std::fs::read(e.path()).unwrap();
            assert!(
                execute(&t, &input).is_ok(),
                "{} panics again on {}",
                t.name,
                e.path().display()
            );
        }
    }
}

#[test]
fn a_png_claiming_20000_by_20000_pixels_is_refused_before_decoding() {
    // A valid 1×1 PNG whose IHDR is rewritten to 20 000 × 20 000 (CRC fixed up): decoding it
    // would need 1.2 GB.
    let mut png = image_seeds().remove(0);
    png[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let started = Instant::now();
    let e = mia_data::folder::decode_image(&png, 8, false).unwrap_err();
    assert!(e.to_lowercase().contains("limit") || e.contains("dimensions"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "refused from the header");
}

/// CRC-32 (PNG chunk checksum).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Address-space limit of the fuzzing process: an unbounded allocation then fails (and the
/// process aborts, naming the target) instead of exhausting the machine's memory.
const FUZZ_ADDRESS_SPACE_KIB: u64 = 8 * 1024 * 1024;

#[test]
fn no_reader_panics_on_mutated_input() {
    if std::env::var_os("MIA_FUZZ_CHILD").is_some() {
        return fuzz_every_target();
    }
    // Re-run this test in a child process of the same binary under `ulimit -v`.
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "ulimit -v {FUZZ_ADDRESS_SPACE_KIB} && exec \"$0\" no_reader_panics_on_mutated_input \
         --exact --nocapture --test-threads 1"
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .arg(&exe)
        .env("MIA_FUZZ_CHILD", "1")
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(out.status.success(), "the fuzzing process failed ({}):\n{stderr}", out.status);
}

fn fuzz_every_target() {
    let seconds: Option<f64> = std::env::var("MIA_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok());
    let seed: u64 = std::env::var("MIA_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    // Panics are caught and reported below; keep their messages off the test output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    println!("{:<16} {:>10} {:>10} {:>9}", "target", "execs", "execs/s", "accepted");
    // `MIA_FUZZ_TARGETS=a,b` fuzzes only those (a long run of some readers).
    let only: Option<Vec<String>> =
        std::env::var("MIA_FUZZ_TARGETS").ok().map(|v| v.split(',').map(str::to_string).collect());
    for t in targets() {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == t.name)) {
            continue;
        }
        // Named before it runs, so a run that aborts (an allocation past the address-space
        // limit) shows which target did it.
        eprintln!("fuzzing {}", t.name);
        let budget = match seconds {
            Some(s) => Budget::Time(Duration::from_secs_f64(s)),
            // About a second each in the test command; loading weights is the slow reader.
            None => Budget::Executions(match t.name {
                "weights" | "lab-network" => 2_000,
                "lab-file" => 5_000,
                _ => 40_000,
            }),
        };
        let started = Instant::now();
        match fuzz(&t, budget, seed) {
            Ok((runs, accepted)) => println!(
                "{:<16} {:>10} {:>10.0} {:>8.1}%",
                t.name,
                runs,
                runs as f64 / started.elapsed().as_secs_f64(),
                100.0 * accepted as f64 / runs.max(1) as f64
            ),
            Err(e) => failures.push(e),
        }
    }
    std::panic::set_hook(hook);
    assert!(failures.is_empty(), "{failures:#?}");
}
