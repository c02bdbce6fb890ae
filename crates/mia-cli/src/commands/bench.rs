//! `mia bench`: throughput of training (per backend, against PyTorch on the same machine),
//! of shadow training (one after another against side by side) and of attack scoring
//! (LiRA, RMIA, against the NumPy reference), where a training step's time goes (forward,
//! backward, optimiser, against PyTorch's phases), all measured in one process and printed as
//! a table of ratios. Machines are noisy: the ratios, not the absolute times, are the result.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use mia_core::lira::{self, Estimator, OfflineForm, SignalShape};
use mia_core::{Architecture, InputSpec, rmia};
use mia_train::bench::{
    Strategy, epoch_throughput, shadow_wall_time, step_phases, synthetic_dataset,
};
use mia_train::{DeviceChoice, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::hinted;

/// Arguments of `mia bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Sections to run: training, shadows, attacks, and on request phases (comma-separated).
    /// `phases` is not a default: on ndarray a ResNet-20 step takes ~40 s, so its 22 steps
    /// would more than double the recorded run.
    #[arg(long, value_delimiter = ',', default_value = "training,shadows,attacks")]
    only: Vec<String>,
    /// Training backends: flex, ndarray, wgpu, cuda (unavailable ones are reported, not fatal).
    #[arg(long, value_delimiter = ',', default_value = "flex,ndarray,wgpu")]
    devices: Vec<DeviceChoice>,
    /// Architectures for the training rows.
    #[arg(long, value_delimiter = ',', default_value = "small-cnn,resnet20")]
    models: Vec<Architecture>,
    /// Mini-batch size (the same for PyTorch).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Images in the timed training epoch (CIFAR-10-sized, 3×32×32, synthetic).
    #[arg(long, default_value_t = 2048)]
    images: usize,
    /// Training steps timed phase by phase for the phase rows (CPU backends only).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Shadow models for the shadow-training rows (small CNN, one epoch each).
    #[arg(long, default_value_t = 4)]
    shadow_models: usize,
    /// Images each shadow trains on.
    #[arg(long, default_value_t = 1024)]
    shadow_images: usize,
    /// Examples of synthetic cached signals for the attack rows.
    #[arg(long, default_value_t = 50_000)]
    examples: usize,
    /// Shadow models of synthetic cached signals for the attack rows.
    #[arg(long, default_value_t = 64)]
    attack_models: usize,
    /// Python interpreter for the PyTorch and NumPy references ("" skips them).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Also write the rows as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Instead of measuring, write the browser benchmark's fixture here: the bundle's first
    /// model as raw parameters (`model.json`, `params.bin`), the normalised reference sample
    /// (`inputs.bin`) and burn's logits on it (`logits.bin`), all little-endian f32, for the
    /// TensorFlow.js reference in `bench/browser/`.
    #[arg(long)]
    browser_fixture: Option<PathBuf>,
    /// The bundle the browser fixture comes from.
    #[arg(long, default_value = "pretrained")]
    bundle: PathBuf,
}

/// The sections `--only` accepts.
const SECTIONS: [&str; 4] = ["training", "phases", "shadows", "attacks"];

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
struct Row {
    section: &'static str,
    case: String,
    /// The measured value (`unit`), or `None` when the case could not run.
    value: Option<f64>,
    unit: &'static str,
    /// What the ratio compares with, and the ratio (higher is better for MIA Lab).
    reference: Option<String>,
    ratio: Option<f64>,
    note: String,
}

impl Row {
    fn new(section: &'static str, case: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Row {
            section,
            case: case.into(),
            value: Some(value),
            unit,
            reference: None,
            ratio: None,
            note: String::new(),
        }
    }
    fn missing(
        section: &'static str,
        case: impl Into<String>,
        unit: &'static str,
        note: impl Into<String>,
    ) -> Self {
        Row {
            section,
            case: case.into(),
            value: None,
            unit,
            reference: None,
            ratio: None,
            note: note.into(),
        }
    }
    fn against(mut self, reference: impl Into<String>, ratio: f64) -> Self {
        self.reference = Some(reference.into());
        self.ratio = Some(ratio);
        self
    }
}

/// Printed before measuring in a debug build, whose numbers say little about the trainer.
const DEBUG_BUILD: &str = "warning: this `mia` is a debug build: its dependencies run with debug \
assertions and overflow checks, which made training 1.3-2.3x slower than a release build on the \
same machine (docs/benchmarks.md)
hint: measure with `cargo run --release -- bench`";

/// Runs `mia bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(out) = &args.browser_fixture {
        return browser_fixture(&args.bundle, out);
    }
    for s in &args.only {
        if !SECTIONS.contains(&s.as_str()) {
            return Err(hinted(
                format!("unknown bench section `{s}`"),
                "use training, phases, shadows or attacks",
            ));
        }
    }
    if args.batch == 0
        || args.images < args.batch
        || args.shadow_images == 0
        || args.examples < 2
        || args.steps == 0
    {
        return Err(hinted(
            "the bench needs a batch size > 0, at least one batch of images, one step and 2 examples",
            "e.g. --batch 128 --images 2048 --steps 20",
        ));
    }
    if cfg!(debug_assertions) {
        eprintln!("{DEBUG_BUILD}");
    }
    let scratch = tempfile::tempdir().context("cannot create a scratch folder")?;
    let mut rows = Vec::new();
    let want = |s: &str| args.only.iter().any(|o| o == s);
    if want("training") {
        training(&args, scratch.path(), &mut rows)?;
    }
    if want("phases") {
        phases(&args, &mut rows)?;
    }
    if want("shadows") {
        shadows(&args, scratch.path(), &mut rows)?;
    }
    if want("attacks") {
        attacks(&args, &mut rows)?;
    }
    println!("{}", table(&rows));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn train_config(model: Architecture, device: DeviceChoice, batch: usize) -> TrainConfig {
    TrainConfig { model, device, batch_size: batch, epochs: 1, ..TrainConfig::default() }
}

/// Runs a Python reference script from the repository's `bench/` folder; `Err` holds why it
/// could not (not installed, script missing, failed).
fn python_rows(
    python: &str,
    script: &str,
    args: &[String],
) -> Result<Vec<serde_json::Value>, String> {
    if python.is_empty() {
        return Err("references skipped (--python \"\")".into());
    }
    let path = bench_dir().join(script);
    if !path.exists() {
        return Err(format!("{} not found (run from the repository)", path.display()));
    }
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn bench_dir() -> PathBuf {
    let here = Path::new("bench");
    if here.is_dir() {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench")
}

/// `bench/torch_train.py` on `names` with the bench's batch and image count, plus `extra`.
fn torch_rows(
    args: &BenchArgs,
    names: &[String],
    extra: &[String],
) -> Result<Vec<serde_json::Value>, String> {
    let mut argv = vec![
        "--models".into(),
        names.join(","),
        "--batch".into(),
        args.batch.to_string(),
        "--images".into(),
        args.images.to_string(),
    ];
    argv.extend_from_slice(extra);
    python_rows(&args.python, "torch_train.py", &argv)
}

fn training(args: &BenchArgs, scratch: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let ds = synthetic_dataset(InputSpec::new(3, 32, 32), 10, args.images, 0);
    let names: Vec<String> = args.models.iter().map(ToString::to_string).collect();
    let reference =
        |torch_device: &str| torch_rows(args, &names, &["--device".into(), torch_device.into()]);
    let torch = reference("cpu");
    // GPU rows are compared with PyTorch on CUDA when any GPU backend is asked for.
    let gpu_asked =
        args.devices.iter().any(|d| matches!(d, DeviceChoice::Wgpu | DeviceChoice::Cuda));
    let torch_gpu = gpu_asked.then(|| reference("cuda"));
    let rate_in = |rows: &Result<Vec<serde_json::Value>, String>, model: &str| -> Option<f64> {
        rows.as_ref().ok()?.iter().find(|r| r["model"] == model)?["images_per_s"].as_f64()
    };
    let torch_rate = |model: &str| rate_in(&torch, model);
    let torch_gpu_rate = |model: &str| torch_gpu.as_ref().and_then(|rows| rate_in(rows, model));
    for (model, name) in args.models.iter().zip(&names) {
        let mut flex_rate = None;
        for &device in &args.devices {
            let case = format!("{name} · burn {}", device.name());
            let config = train_config(*model, device, args.batch);
            let dir = scratch.join(format!("train-{name}-{}", device.name()));
            match epoch_throughput(&config, &ds, &dir, 0) {
                Ok(t) => {
                    let rate = t.images_per_s();
                    let mut row = Row::new("training", case, rate, "images/s");
                    if device == DeviceChoice::Flex {
                        flex_rate = Some(rate);
                    }
                    let cpu = matches!(device, DeviceChoice::Flex | DeviceChoice::Ndarray);
                    let reference = if cpu { torch_rate(name) } else { torch_gpu_rate(name) };
                    row = match (cpu, reference, flex_rate) {
                        (true, Some(r), _) => row.against("PyTorch CPU", rate / r),
                        (false, Some(r), _) => row.against("PyTorch CUDA", rate / r),
                        (_, _, Some(f)) if device != DeviceChoice::Flex => {
                            row.against("burn flex", rate / f)
                        }
                        _ => row,
                    };
                    rows.push(row);
                }
                Err(e) => rows.push(Row::missing(
                    "training",
                    case,
                    "images/s",
                    format!("unavailable: {e}"),
                )),
            }
        }
        rows.push(reference_row(format!("{name} · PyTorch CPU"), &torch, torch_rate(name)));
        if let Some(gpu) = &torch_gpu {
            rows.push(reference_row(format!("{name} · PyTorch CUDA"), gpu, torch_gpu_rate(name)));
        }
    }
    Ok(())
}

/// The row of a PyTorch reference: its rate, or why there is none.
fn reference_row(
    case: String,
    reference: &Result<Vec<serde_json::Value>, String>,
    rate: Option<f64>,
) -> Row {
    match (reference, rate) {
        (_, Some(r)) => Row::new("training", case, r, "images/s"),
        (Err(why), None) => {
            Row::missing("training", case, "images/s", format!("reference unavailable: {why}"))
        }
        (Ok(_), None) => Row::missing("training", case, "images/s", "the reference printed no row"),
    }
}

/// Where a training step's time goes: ms per step of each phase on each CPU backend, against
/// PyTorch's same phases (`bench/torch_train.py --phases`); the ratio is PyTorch's time over
/// ours, so below 1 is where we are slower.
fn phases(args: &BenchArgs, rows: &mut Vec<Row>) -> Result<()> {
    let ds = synthetic_dataset(InputSpec::new(3, 32, 32), 10, args.images, 0);
    let names: Vec<String> = args.models.iter().map(ToString::to_string).collect();
    let torch = torch_rows(args, &names, &["--phases".into(), args.steps.to_string()]);
    let torch_ms = |model: &str, phase: &str| -> Option<f64> {
        torch.as_ref().ok()?.iter().find(|r| r["model"] == model)?[phase].as_f64()
    };
    let cpu =
        args.devices.iter().filter(|d| matches!(d, DeviceChoice::Flex | DeviceChoice::Ndarray));
    for (model, name) in args.models.iter().zip(&names) {
        for &device in cpu.clone() {
            let config = train_config(*model, device, args.batch);
            let p = match step_phases(&config, &ds, args.steps) {
                Ok(p) => p,
                Err(e) => {
                    let case = format!("{name} · step · burn {}", device.name());
                    rows.push(Row::missing("phases", case, "ms/step", format!("unavailable: {e}")));
                    continue;
                }
            };
            let torch_total = ["forward_ms", "backward_ms", "optimizer_ms"]
                .iter()
                .map(|k| torch_ms(name, k))
                .sum::<Option<f64>>();
            for (phase, ms, reference) in [
                ("batch", p.batch_ms, None),
                ("forward", p.forward_ms, torch_ms(name, "forward_ms")),
                ("backward", p.backward_ms, torch_ms(name, "backward_ms")),
                ("optimizer", p.optimizer_ms, torch_ms(name, "optimizer_ms")),
                ("step", p.total_ms(), torch_total),
            ] {
                let case = format!("{name} · {phase} · burn {}", device.name());
                let row = Row::new("phases", case, ms, "ms/step");
                rows.push(match reference {
                    Some(r) => row.against("PyTorch CPU", r / ms),
                    None => row,
                });
            }
        }
        for phase in ["forward", "backward", "optimizer"] {
            let case = format!("{name} · {phase} · PyTorch CPU");
            rows.push(match (&torch, torch_ms(name, &format!("{phase}_ms"))) {
                (_, Some(ms)) => Row::new("phases", case, ms, "ms/step"),
                (Err(why), None) => {
                    Row::missing("phases", case, "ms/step", format!("reference unavailable: {why}"))
                }
                (Ok(_), None) => Row::missing("phases", case, "ms/step", "no reference row"),
            });
        }
    }
    Ok(())
}

fn shadows(args: &BenchArgs, scratch: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let ds = synthetic_dataset(InputSpec::new(3, 32, 32), 10, args.shadow_images, 1);
    let device = args.devices.first().copied().unwrap_or_default();
    let config = train_config(Architecture::SmallCnn, device, args.batch);
    let n = args.shadow_models.max(1);
    let seq = shadow_wall_time(&config, &ds, n, Strategy::Sequential, &scratch.join("seq"))?;
    let par = shadow_wall_time(&config, &ds, n, Strategy::Threads, &scratch.join("par"))?;
    let label =
        format!("{n} small-cnn shadows × {} images, burn {}", args.shadow_images, device.name());
    rows.push(Row::new(
        "shadows",
        format!("{label}: one after another"),
        seq / n as f64,
        "s/model",
    ));
    rows.push(
        Row::new("shadows", format!("{label}: {n} threads at once"), par / n as f64, "s/model")
            .against("one after another", seq / par),
    );
    Ok(())
}

fn best_ms(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeat {
        let started = Instant::now();
        f()?;
        best = best.min(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

fn attacks(args: &BenchArgs, rows: &mut Vec<Row>) -> Result<()> {
    let (n, m) = (args.examples, args.attack_models.max(2));
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let keep: Vec<bool> = (0..m * n).map(|_| rng.random_bool(0.5)).collect();
    let phi: Vec<f32> =
        keep.iter().map(|&k| mia_core::rng::normal(&mut rng) + if k { 1.0 } else { 0.0 }).collect();
    let target: Vec<f32> = (0..n).map(|_| mia_core::rng::normal(&mut rng)).collect();
    let probs: Vec<f32> = (0..m * n).map(|_| rng.random::<f32>()).collect();
    let target_p: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
    let shape = SignalShape { models: m, examples: n, queries: 1 };
    let fit = |inside| lira::fit(&phi, &keep, shape, inside, Estimator::default());

    let online = best_ms(3, || {
        let (gin, gout) = (fit(true)?, fit(false)?);
        std::hint::black_box(lira::online(&target, &gin, &gout)?);
        Ok(())
    })?;
    let offline = best_ms(3, || {
        let gout = fit(false)?;
        std::hint::black_box(lira::offline(&target, &gout, OfflineForm::OneSidedCdf)?);
        Ok(())
    })?;
    let rmia_ms = best_ms(3, || {
        let mut prior = vec![0f32; n];
        for model in probs.chunks_exact(n) {
            prior.iter_mut().zip(model).for_each(|(a, p)| *a += p / m as f32);
        }
        std::hint::black_box(rmia::scores(&target_p, &prior, &target_p, &prior, 1.0)?);
        Ok(())
    })?;
    let reference = python_rows(
        &args.python,
        "attack_reference.py",
        &["--examples".into(), n.to_string(), "--models".into(), m.to_string()],
    );
    let label = format!("{n} examples × {m} models");
    for (name, ms) in [("lira-online", online), ("lira-offline", offline), ("rmia", rmia_ms)] {
        let mut row = Row::new("attacks", format!("{name}, {label} · MIA Lab"), ms, "ms");
        let numpy = reference
            .as_ref()
            .ok()
            .and_then(|r| r.iter().find(|x| x["attack"] == name)?["ms"].as_f64());
        match (&reference, numpy) {
            (_, Some(r)) => {
                row = row.against("NumPy", r / ms);
                rows.push(row);
                rows.push(Row::new("attacks", format!("{name}, {label} · NumPy"), r, "ms"));
            }
            (Err(why), None) => {
                row.note = format!("NumPy reference unavailable: {why}");
                rows.push(row);
            }
            (Ok(_), None) => {
                row.note = "no NumPy reference for this row (SciPy missing?)".into();
                rows.push(row);
            }
        }
    }
    Ok(())
}

/// Collects a module's float parameters in visiting order.
#[derive(Default)]
struct Params(Vec<(Vec<usize>, Vec<f32>)>);

impl burn::module::ModuleVisitor for Params {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::prelude::Tensor<D>>,
    ) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let values = t.into_data().try_to_vec::<f32>().unwrap_or_default();
        self.0.push((shape, values));
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn browser_fixture(bundle: &Path, out: &Path) -> Result<()> {
    use burn::module::Module;
    use mia_core::bundle::{Manifest, ReferenceSample};

    let read = |name: &str| {
        let path = bundle.join(name);
        std::fs::read(&path).map_err(|e| {
            hinted(
                format!("cannot read {}: {e}", path.display()),
                "pass --bundle with a folder written by `mia export` (the shipped one is pretrained/)",
            )
        })
    };
    let manifest = Manifest::parse(&String::from_utf8_lossy(&read("manifest.json")?))?;
    let entry = &manifest.models[0];
    if entry.config.arch != Architecture::SmallCnn {
        return Err(hinted(
            format!(
                "the browser benchmark's TensorFlow.js model is small-cnn, the bundle's first model is {}",
                entry.config.arch
            ),
            "export a bundle whose first model is small-cnn",
        ));
    }
    let weights = read(&entry.weights.path)?;
    entry.weights.verify(&weights)?;
    let reference = read(&manifest.reference.file.path)?;
    manifest.reference.file.verify(&reference)?;
    let sample = ReferenceSample::decode(&reference, manifest.input)?;
    let device = burn::prelude::Device::flex();
    let model = entry.config.load_bytes(weights, &device)?;
    let mut params = Params::default();
    model.visit(&mut params);
    let mut inputs = Vec::with_capacity(sample.len() * manifest.input.numel());
    for i in 0..sample.len() {
        manifest.normalization.push_u8(sample.image(i), manifest.input, &mut inputs);
    }
    let x =
        mia_core::preprocess::batch_tensor(inputs.clone(), sample.len(), manifest.input, &device)?;
    let logits = model
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("cannot read the logits: {e:?}"))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut offset = 0;
    let mut layout = Vec::new();
    let mut flat = Vec::new();
    for (shape, values) in &params.0 {
        layout.push(serde_json::json!({ "shape": shape, "offset": offset }));
        offset += values.len();
        flat.extend_from_slice(values);
    }
    let meta = serde_json::json!({
        "model": entry.id,
        "arch": entry.config.arch.to_string(),
        "input": [manifest.input.channels, manifest.input.height, manifest.input.width],
        "classes": entry.config.num_classes,
        "examples": sample.len(),
        "params": layout,
    });
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    write("model.json", serde_json::to_string_pretty(&meta)?.as_bytes())?;
    write("params.bin", &f32_bytes(&flat))?;
    write("inputs.bin", &f32_bytes(&inputs))?;
    write("logits.bin", &f32_bytes(&logits))?;
    println!(
        "wrote the browser fixture ({} examples, {} parameters) to {}",
        sample.len(),
        flat.len(),
        out.display()
    );
    Ok(())
}

fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| section | case | value | ratio | note |\n|---|---|---|---|---|\n");
    for r in rows {
        let value = r.value.map_or("—".into(), |v| format!("{} {}", human(v), r.unit));
        let ratio = match (&r.reference, r.ratio) {
            (Some(against), Some(x)) => format!("{x:.2}× vs {against}"),
            _ => String::new(),
        };
        out.push_str(&format!("| {} | {} | {value} | {ratio} | {} |\n", r.section, r.case, r.note));
    }
    out
}

fn human(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}
