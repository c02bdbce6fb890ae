//! The whole pipeline on a tiny dataset, one behaviour per test: train a target, shadows in
//! two shards, every attack, the same audit from `.npy` files, reports, inference-time
//! defenses and the web bundle. The expensive part (target, shadows, one full attack) is
//! built once, by whichever test needs it first; every test then checks its own stage, so the
//! first failure hides nothing.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{fails, json, ok, read, tiny_idx, train_args};
use mia_core::npy::{NpyArray, NpyData};

/// The run every test shares, and what building it printed.
struct Pipeline {
    root: PathBuf,
    data: String,
    run: String,
    /// `mia shadows` output of shard 0/2, shard 1/2, then a call for all four.
    shards: [String; 3],
}

impl Pipeline {
    fn run_dir(&self) -> &Path {
        Path::new(&self.run)
    }
    /// A fresh folder for one test's output.
    fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
    fn attacks(&self) -> serde_json::Value {
        json(&self.run_dir().join("attacks.json"))
    }
}

fn shadow_args<'a>(run: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a =
        vec!["shadows", "--run", run, "--count", "4", "--queries", "2", "--population", "50"];
    a.extend_from_slice(extra);
    a
}

/// Trains the target (2 epochs), its 4 shadows in two shards as a job array would, and runs
/// every attack: once per test process.
fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline");
        let _ = std::fs::remove_dir_all(&root);
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        tiny_idx(&data, 700);
        let run = root.join("run");
        let (d, r) = (data.to_str().unwrap().to_string(), run.to_str().unwrap().to_string());
        ok(&train_args(&d, &r, &["--epochs", "2"]));
        let shards = [
            ok(&shadow_args(&r, &["--shard", "0/2", "--jobs", "1"])),
            ok(&shadow_args(&r, &["--shard", "1/2", "--jobs", "1"])),
            ok(&shadow_args(&r, &[])),
        ];
        // The neural attack models at 5 epochs: this checks the plumbing, not their strength.
        let out = ok(&["attack", "--run", &r, "--network-epochs", "5"]);
        assert!(out.contains("lira-online") && out.contains("rmia-offline"), "{out}");
        // The TPR@low-FPR columns come with the FPR step the non-members allow.
        let resolution = "200 non-members: FPR moves in steps of 0.500% (TPR@0.1% cannot be";
        assert!(out.contains(resolution), "{out}");
        Pipeline { root, data: d, run: r, shards }
    })
}

fn keep(run: &Path, i: usize) -> Vec<bool> {
    let NpyData::Bool(k) = read(run.join(format!("shadows/{i:03}/keep.npy"))).data else {
        panic!("keep.npy is not bool")
    };
    k
}

fn auc(v: &serde_json::Value, name: &str) -> f64 {
    let attacks = v["attacks"].as_array().unwrap();
    attacks.iter().find(|a| a["name"] == name).unwrap()["evaluation"]["auc"].as_f64().unwrap()
}

/// The run's shadows stacked into the `.npy` files a PyTorch user would bring, and the
/// `mia attack` arguments for them (`keep` replaces the keep-mask file when given).
fn npy_audit_args(p: &Pipeline, dir: &Path, keep_file: Option<&str>) -> Vec<String> {
    let run = p.run_dir();
    std::fs::create_dir_all(dir).unwrap();
    let (mut stacked, mut keeps) = (Vec::new(), Vec::new());
    for i in 0..4 {
        let NpyData::F32(v) = read(run.join(format!("shadows/{i:03}/logits.npy"))).data else {
            panic!("logits.npy is not f32")
        };
        stacked.extend(v);
        keeps.extend(keep(run, i));
    }
    let write = |name: &str, a: NpyArray| std::fs::write(dir.join(name), a.to_bytes()).unwrap();
    write("shadow_logits.npy", NpyArray::f32(vec![4, 2, 450, 10], stacked).unwrap());
    write("shadow_keep.npy", NpyArray::bool(vec![4, 400], keeps).unwrap());
    let path = |p: PathBuf| p.to_str().unwrap().to_string();
    let keep = keep_file.map_or_else(|| path(dir.join("shadow_keep.npy")), str::to_string);
    [
        "attack",
        "--logits",
        &path(run.join("shadows/target_logits.npy")),
        "--labels",
        &path(run.join("shadows/labels.npy")),
        "--membership",
        &path(run.join("signals/is_member.npy")),
        "--shadow-logits",
        &path(dir.join("shadow_logits.npy")),
        "--shadow-keep",
        &keep,
        "--out",
        &path(dir.join("out")),
    ]
    .map(String::from)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn shards_train_their_own_shadows_and_a_later_call_reuses_them_all() {
    let p = pipeline();
    assert!(
        p.shards[0].contains("2 trained, 0 already done, 2 left to other shards"),
        "{}",
        p.shards[0]
    );
    assert!(p.shards[1].contains("2 trained, 0 already done, 2 left"), "{}", p.shards[1]);
    assert!(p.shards[2].contains("0 trained, 4 already done"), "{}", p.shards[2]);
}

#[test]
fn shadows_side_by_side_on_threads_equal_one_after_another() {
    let p = pipeline();
    let side = p.scratch("side-by-side");
    let out = ok(&shadow_args(&p.run, &["--jobs", "3", "--dir", side.to_str().unwrap()]));
    assert!(out.contains("4 trained, 0 already done"), "{out}");
    for i in 0..4 {
        let f = format!("{i:03}/logits.npy");
        let (a, b) = (p.run_dir().join("shadows").join(&f), side.join(&f));
        assert!(std::fs::read(a).unwrap() == std::fs::read(b).unwrap(), "shadow {i} differs");
    }
}

#[test]
fn shadows_come_in_complementary_pairs_queried_on_candidates_and_population() {
    let p = pipeline();
    let run = p.run_dir();
    assert_eq!(keep(run, 0).len(), 400);
    assert!(keep(run, 0).iter().zip(keep(run, 1)).all(|(a, b)| *a != b));
    // 2 queries × (400 candidates + 50 population) × 10 classes.
    assert_eq!(read(run.join("shadows/002/logits.npy")).shape, vec![2, 450, 10]);
}

#[test]
fn shadows_refuse_other_options_for_an_existing_pool() {
    let p = pipeline();
    let args = ["shadows", "--run", &p.run, "--count", "4", "--queries", "3", "--population", "50"];
    let err = fails(&args);
    assert!(err.contains("other options"), "{err}");
}

#[test]
fn shadows_refuse_to_continue_a_folder_of_another_format_version() {
    // Version-1 folders drew their keep-masks with another seed mixer: mixing the two would
    // split complementary pairs.
    let p = pipeline();
    let old = p.scratch("old-pool");
    std::fs::create_dir_all(&old).unwrap();
    let mut spec = json(&p.run_dir().join("shadows/pool.json"));
    assert_eq!(spec["version"], mia_train::shadows::POOL_VERSION);
    spec["version"] = 1.into();
    std::fs::write(old.join("pool.json"), spec.to_string()).unwrap();
    let err = fails(&shadow_args(&p.run, &["--dir", old.to_str().unwrap()]));
    assert!(err.contains("another version of mia") && err.contains("hint:"), "{err}");
}

#[test]
fn shadows_with_dropout_never_train_side_by_side() {
    // Dropout draws from burn's process-wide RNG.
    let p = pipeline();
    let drop = p.scratch("dropout");
    let dr = drop.to_str().unwrap();
    ok(&train_args(&p.data, dr, &["--epochs", "1", "--dropout", "0.5"]));
    let err = fails(&["shadows", "--run", dr, "--count", "2", "--jobs", "2"]);
    assert!(err.contains("dropout") && err.contains("--jobs 1"), "{err}");
}

#[test]
fn attack_writes_every_attack_on_the_identity_query_of_a_target_without_augmentation() {
    let p = pipeline();
    let json = p.attacks();
    assert_eq!(json["attacks"].as_array().unwrap().len(), 25);
    assert_eq!(json["queries"], 1);
    assert!(json["query_note"].as_str().unwrap().contains("without augmentation"), "{json}");
    assert_eq!(json["shadows"], 4);
    assert_eq!(read(p.run_dir().join("attack_scores.npy")).shape, vec![25, 400]);
}

#[test]
fn samia_reads_a_sensitivity_computed_for_the_target_and_every_shadow() {
    let p = pipeline();
    let names: Vec<String> = attack_names(&p.attacks());
    for name in ["nn", "nn-top3", "nn-cls", "samia"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }
    let shadows = p.run_dir().join("shadows");
    let files = std::iter::once(shadows.join("target_sensitivity.npy"))
        .chain((0..4).map(|i| shadows.join(format!("{i:03}/sensitivity.npy"))));
    for f in files {
        let a = read(f.clone());
        assert_eq!(a.shape, vec![400, 10], "{}", f.display());
        let NpyData::F32(v) = a.data else { panic!("{} is not f32", f.display()) };
        assert!(v.iter().all(|x| x.is_finite() && *x >= 0.0), "{}", f.display());
        assert!(v.iter().any(|x| *x > 0.0), "{} is all zero", f.display());
    }
}

#[test]
fn samia_trains_on_the_first_shadows_that_fill_its_row_budget() {
    let p = pipeline();
    let out = p.scratch("samia-budget");
    let o = out.to_str().unwrap();
    let a = ["attack", "--run", &p.run, "--attacks", "samia", "--network-epochs", "1"];
    ok(&[&a[..], &["--max-network-rows", "800", "--out", o]].concat());
    let v = json(&out.join("attacks.json"));
    let rule = v["attacks"][0]["calibrated"][0]["rule"].as_str().unwrap();
    // 800 rows of 400 candidates: the first 2 of the 4 shadows.
    assert!(rule.contains("800 rows from 2 shadows"), "{rule}");
}

#[test]
fn samia_from_npy_files_says_it_needs_the_models() {
    let p = pipeline();
    let dir = p.scratch("npy-samia");
    let mut args = npy_audit_args(p, &dir, None);
    args.extend(["--attacks", "samia", "--queries", "1"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = fails(&args);
    assert!(err.contains("sensitivity") && err.contains("hint:"), "{err}");
}

#[test]
fn an_audit_from_npy_files_gives_the_run_s_numbers() {
    let p = pipeline();
    let dir = p.scratch("npy");
    let mut args = npy_audit_args(p, &dir, None);
    // .npy input says nothing about the target's augmentation: ask for the identity query.
    args.extend(["--attacks", "loss,lira-online", "--queries", "1"].map(String::from));
    ok(&strs(&args));
    let from_npy = json(&dir.join("out/attacks.json"));
    assert_eq!(auc(&from_npy, "lira-online"), auc(&p.attacks(), "lira-online"));
}

#[test]
fn npy_audits_check_shapes_and_need_a_run_for_model_queries() {
    let p = pipeline();
    let dir = p.scratch("npy-bad");
    let membership = p.run_dir().join("signals/is_member.npy");
    let args = npy_audit_args(p, &dir, Some(membership.to_str().unwrap()));
    assert!(fails(&strs(&args)).contains("--shadow-keep has shape"));
    let mut args = npy_audit_args(p, &dir, None);
    args.extend(["--inference-defense".to_string(), "hamp".to_string()]);
    let err = fails(&strs(&args));
    assert!(err.contains("needs the model itself") && err.contains("use --run"), "{err}");
}

#[test]
fn attack_refuses_a_summary_it_cannot_parse() {
    // The run's signals without shadows, and a damaged summary.json beside them.
    let p = pipeline();
    let run = p.scratch("bad-summary");
    std::fs::create_dir_all(run.join("signals")).unwrap();
    for f in ["logits.npy", "labels.npy", "is_member.npy", "indices.npy"] {
        std::fs::copy(p.run_dir().join("signals").join(f), run.join("signals").join(f)).unwrap();
    }
    std::fs::write(run.join("summary.json"), "{\"dataset\": ").unwrap();
    let err = fails(&["attack", "--run", run.to_str().unwrap(), "--attacks", "loss"]);
    assert!(err.contains("does not parse") && err.contains("hint:"), "{err}");
}

#[test]
fn attack_options_are_range_checked_before_any_work() {
    let p = pipeline();
    assert!(fails(&["attack", "--run", &p.run, "--attacks", "nope"]).contains("unknown attack"));
    for (flag, value, says) in [
        ("--rmia-a", "5", "between 0 and 1"),
        ("--gamma", "0", "positive"),
        ("--lira-std-floor", "2", "between 0 and 1"),
        ("--queries", "7", "only 2 queries are cached"),
        ("--queries", "0", "at least 1"),
    ] {
        let err = fails(&["attack", "--run", &p.run, "--attacks", "rmia-offline", flag, value]);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
    let err = fails(&["attack", "--run", &p.run, "--inference-defense", "cap:c=2"]);
    assert!(err.contains("bad inference defense `cap:c=2`") && err.contains("hint:"), "{err}");
}

#[test]
fn report_writes_markdown_html_csv_and_plots() {
    let p = pipeline();
    let report = p.scratch("report");
    let rep = report.to_str().unwrap();
    ok(&["report", &p.run, "--out", rep]);
    for f in [
        "report.md",
        "report.html",
        "metrics.csv",
        "roc_run.svg",
        "roc_log_run.png",
        "hist_run_lira-online.svg",
    ] {
        assert!(report.join(f).exists(), "{f} is missing");
    }
    let csv = std::fs::read_to_string(report.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 25);
    assert!(fails(&["report", &p.data, "--out", rep]).contains("mia attack"));
}

/// `mia attack` through HAMP, HyGA-ANI and a chain, into `out`.
fn defended(p: &Pipeline, out: &Path, specs: &[&str]) -> String {
    let mut a = vec!["attack", "--run", &p.run, "--attacks", "loss,label-only,lira-online"];
    for s in specs {
        a.extend(["--inference-defense", s]);
    }
    a.extend(["--out", out.to_str().unwrap()]);
    ok(&a)
}

fn attack_names(v: &serde_json::Value) -> Vec<String> {
    v["attacks"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().into()).collect()
}

#[test]
fn inference_defenses_run_for_a_naive_and_an_adaptive_attacker() {
    let p = pipeline();
    let inf = p.scratch("inf");
    let out = defended(p, &inf, &["hamp", "hyga:kappa=0.05", "temperature:t=3+round:d=2"]);
    assert!(out.contains("naive attacker") && out.contains("adaptive attacker"), "{out}");
    // HAMP and HyGA-ANI need per-model signals, computed once and cached with the shadows.
    let shadows = p.run_dir().join("shadows");
    for f in ["target_random_logits.npy", "000/random_logits.npy", "003/gradient_norms.npy"] {
        assert!(shadows.join(f).exists(), "{f} is missing");
    }
    assert_eq!(read(shadows.join("target_gradient_norms.npy")).shape, vec![2, 450]);
    let load = |spec: &str, who: &str| {
        json(&inf.join("inference").join(spec).join(who).join("attacks.json"))
    };
    let (naive, adaptive) = (load("hamp", "naive"), load("hamp", "adaptive"));
    assert!(attack_names(&naive).contains(&"fixed-0.9".to_string()));
    assert!(!attack_names(&adaptive).contains(&"fixed-0.9".to_string()));
    assert_eq!(adaptive["inference"]["attacker"], "adaptive");
    assert_eq!(adaptive["inference"]["preserves_label"], true);
    let acc = &adaptive["inference"];
    assert_eq!(acc["accuracy_before"], acc["accuracy_after"], "HAMP keeps every label");
    let chain = load("temperature_t_3+round_d_2", "naive");
    assert_eq!(chain["inference"]["spec"], "temperature:t=3+round:d=2");
    let hyga = load("hyga_alpha_2_beta_0.05_sigma-max_1.5_kappa_0.05", "adaptive");
    assert_eq!(hyga["inference"]["preserves_label"], false);

    // A second call reuses the cached signals and gives the same numbers (seeded defenses).
    defended(p, &inf, &["hamp"]);
    let aucs = |v: &serde_json::Value| -> Vec<f64> {
        let attacks = v["attacks"].as_array().unwrap();
        attacks.iter().map(|a| a["evaluation"]["auc"].as_f64().unwrap()).collect()
    };
    assert_eq!(aucs(&load("hamp", "adaptive")), aucs(&adaptive));

    // The report picks the defended views up from the folder and puts them side by side.
    let rep = p.scratch("inf-report");
    ok(&["report", inf.to_str().unwrap(), "--out", rep.to_str().unwrap(), "--no-png"]);
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(md.contains("naive vs adaptive") && md.contains("hyga:alpha=2"), "{md}");
    let csv = std::fs::read_to_string(rep.join("metrics.csv")).unwrap();
    assert!(csv.lines().any(|l| l.ends_with(",hamp,adaptive")), "{csv}");
}

#[test]
fn export_can_hold_more_non_members_than_members() {
    let p = pipeline();
    let bundle = p.scratch("bundle-skewed");
    let b = bundle.to_str().unwrap();
    ok(&["export", "--run", &p.run, "--out", b, "--reference", "30", "--reference-members", "10"]);
    let text = std::fs::read_to_string(bundle.join("manifest.json")).unwrap();
    let manifest = mia_core::bundle::Manifest::parse(&text).unwrap();
    assert_eq!((manifest.reference.members, manifest.reference.non_members), (10, 20));
    let bytes = std::fs::read(bundle.join(&manifest.reference.file.path)).unwrap();
    let sample = mia_core::bundle::ReferenceSample::decode(&bytes, manifest.input).unwrap();
    assert_eq!(sample.is_member.len(), 30);
    assert!(
        sample.is_member[..10].iter().all(|m| *m) && !sample.is_member[10..].iter().any(|m| *m)
    );
    let lira = manifest.models[0].lira.as_ref().unwrap();
    assert_eq!(lira.bytes, 12 + 30 * 16, "LiRA statistics for every reference example");
    for (reference, members) in [("21", None), ("20", Some("20")), ("20", Some("0"))] {
        let mut args = vec!["export", "--run", &p.run, "--out", b, "--reference", reference];
        if let Some(m) = members {
            args.extend(["--reference-members", m]);
        }
        assert!(fails(&args).contains("--reference"), "{args:?}");
    }
}

#[test]
fn export_writes_a_verified_web_bundle() {
    let p = pipeline();
    let bundle = p.scratch("bundle");
    let b = bundle.to_str().unwrap();
    let out = ok(&["export", "--run", &p.run, "--out", b, "--reference", "20"]);
    assert!(out.contains("wrote 1 models and 20 reference examples"), "{out}");
    let text = std::fs::read_to_string(bundle.join("manifest.json")).unwrap();
    let manifest = mia_core::bundle::Manifest::parse(&text).unwrap();
    let model = &manifest.models[0];
    assert_eq!((model.id.as_str(), model.shadows), ("run", 4));
    let index = manifest.members_index.as_ref().expect("an index of the training images");
    for f in [&model.weights, model.lira.as_ref().unwrap(), &manifest.reference.file, &index.file] {
        f.verify(&std::fs::read(bundle.join(&f.path)).unwrap()).unwrap();
    }
    // f16 weights unless that moved an AUC (then said); the names `mia shrink` writes too.
    assert_eq!(model.weights.path.ends_with(".f16.bpk"), !out.contains("kept f32"), "{out}");
    assert_eq!(manifest.reference.file.path, "reference.02.bin");
    let bytes = std::fs::read(bundle.join(&manifest.reference.file.path)).unwrap();
    let sample = mia_core::bundle::ReferenceSample::decode(&bytes, manifest.input).unwrap();
    assert_eq!(sample.is_member.iter().filter(|m| **m).count(), 10);
    // Every member of the split is in the index; the reference members are found exactly.
    let split = json(&p.run_dir().join("split.json"));
    assert_eq!(Some(index.members as u64), split["counts"]["members"].as_u64());
    let bytes = std::fs::read(bundle.join(&index.file.path)).unwrap();
    let members = mia_core::recognise::MembersIndex::decode(&bytes).unwrap();
    for i in (0..sample.len()).filter(|&i| sample.is_member[i]) {
        let m = members.find(sample.image(i), sample.input).unwrap().expect("found");
        assert_eq!((m.distance, m.label), (0, sample.labels[i]));
    }
    let loss = model.attacks.iter().find(|a| a.name == "loss").unwrap();
    assert!(loss.reference_auc.is_some() && loss.threshold.is_some());
    let lira = model.attacks.iter().find(|a| a.name == "lira-online-fixed").unwrap();
    assert_eq!(lira.threshold, Some(0.0));
    // The summary's accuracies, as summary.json shows them.
    let summary = json(&p.run_dir().join("summary.json"));
    assert_eq!(Some(model.test_acc), summary["test_acc"].as_f64());
    let err = fails(&["export", "--run", &p.data, "--out", b]);
    assert!(err.contains("hint:"), "{err}");

    // f32 weights, then `mia shrink`: f16 where the AUCs do not move, the sample unchanged.
    let full = p.scratch("full");
    let f = full.to_str().unwrap();
    ok(&["export", "--run", &p.run, "--out", f, "--reference", "20", "--weights", "f32"]);
    let read = |d: &std::path::Path| {
        let m = std::fs::read_to_string(d.join("manifest.json")).unwrap();
        mia_core::bundle::Manifest::parse(&m).unwrap()
    };
    let before = read(&full);
    let out = ok(&["shrink", "--bundle", f]);
    let after = read(&full);
    let (w0, w1) = (&before.models[0].weights, &after.models[0].weights);
    if out.contains("(f16)") {
        assert!(w1.bytes < w0.bytes * 6 / 10, "{w0:?} → {w1:?}");
        assert!(!full.join(&w0.path).exists(), "the f32 file is removed once replaced");
    } else {
        assert_eq!(w0, w1, "{out}");
    }
    let weights = std::fs::read(full.join(&w1.path)).unwrap();
    w1.verify(&weights).unwrap();
    let cpu = mia_train::DeviceChoice::Flex.device().unwrap();
    after.models[0].config.load_bytes(weights, &cpu).unwrap();
    assert_eq!(after.reference, before.reference, "the sample was already in the current format");
}
