//! `mia attack`: runs the attacks on a run directory (target signals plus its shadows) or on
//! plain `.npy` files, prints a table and writes `attacks.json` + score files for `mia report`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use mia_attack::attack::run as run_attack;
use mia_attack::defended::{DefenseSignals, defend};
use mia_attack::network::NetworkSettings;
use mia_attack::{
    AttackInput, AttackKind, AttackOptions, AttackReport, InferenceInfo, QueryChoice, QueryInfo,
    Sensitivity,
};
use mia_core::inference::Chain;
use mia_core::layout::{ATTACKERS, ATTACKS, RunLayout};
use mia_core::lira::{Center, OfflineForm};
use mia_train::{SignalRequest, Summary};

use super::train::Progress;
use super::{decimal, hinted};

#[derive(Clone, Copy, ValueEnum)]
enum CenterArg {
    Median,
    Mean,
}

#[derive(Clone, Copy, ValueEnum)]
enum OfflineArg {
    /// One-sided test P(Z ≤ φ) (the paper).
    Cdf,
    /// −log N(φ; μ_out, σ_out) (the authors' code).
    NegLogpdf,
}

/// Arguments of `mia attack`.
#[derive(Args)]
pub struct AttackArgs {
    /// Target run directory (reads signals/ and shadows/).
    #[arg(long, required_unless_present = "logits")]
    run: Option<PathBuf>,
    /// Shadow folder (default RUN/shadows when it exists).
    #[arg(long)]
    shadow_dir: Option<PathBuf>,
    /// Target logits .npy, [N, C] or [K, N, C] float32 (instead of --run).
    #[arg(long, requires_all = ["labels", "membership", "out"], conflicts_with = "run")]
    logits: Option<PathBuf>,
    /// Labels .npy, [N] int64 (with --logits).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Ground-truth membership .npy, [N] bool (with --logits).
    #[arg(long)]
    membership: Option<PathBuf>,
    /// Shadow logits .npy, [S, N, C] or [S, K, N, C] float32 (with --logits).
    #[arg(long, requires = "shadow_keep")]
    shadow_logits: Option<PathBuf>,
    /// Shadow keep-masks .npy, [S, N] bool (with --shadow-logits).
    #[arg(long, requires = "shadow_logits")]
    shadow_keep: Option<PathBuf>,
    /// Comma-separated attack names, or `all` (those that need shadows are skipped when there
    /// are none). Names: confidence, loss, entropy, modified-entropy, top1, correctness,
    /// label-only, shadow-{lr,mlp}-{top3,posterior,posterior-label}, nn, nn-top3, nn-cls,
    /// samia, lira-{online,offline}[-fixed|-global], rmia-{online,offline}.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    attacks: Vec<String>,
    /// RMIA γ (> 0).
    #[arg(long, default_value_t = 1.0)]
    gamma: f32,
    /// RMIA offline `a`, in [0, 1] (default: tuned on the shadows).
    #[arg(long)]
    rmia_a: Option<f32>,
    /// LiRA centre estimator.
    #[arg(long, value_enum, default_value = "median")]
    lira_center: CenterArg,
    /// LiRA per-example deviation floor, as a fraction of the pooled deviation, in [0, 1].
    #[arg(long, default_value_t = mia_core::lira::DEFAULT_STD_FLOOR)]
    lira_std_floor: f32,
    /// Which cached augmented queries to use: `auto` (those the target's own training
    /// augmentation produces: only the identity when it trained without augmentation), `all`,
    /// or a number K (the first K).
    #[arg(long, default_value = "auto")]
    queries: String,
    /// LiRA offline statistic.
    #[arg(long, value_enum, default_value = "cdf")]
    offline_form: OfflineArg,
    /// Seed of the attack models.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Epochs of the neural attack models (nn*, samia; mia_prune trains 100), 1..=10000.
    #[arg(long, default_value_t = 100)]
    network_epochs: usize,
    /// At most this many shadow rows train a neural attack model (a random subset beyond).
    #[arg(long, default_value_t = 20_000)]
    max_network_rows: usize,
    /// Output folder (default: the run directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Label for reports (default: the run folder's name).
    #[arg(long)]
    label: Option<String>,
    /// Also attack through an inference-time defense (naive and adaptive attacker);
    /// repeatable. `--help` lists the defenses. Results go to OUT/inference/SPEC/{naive,adaptive}.
    #[arg(
        long = "inference-defense",
        value_name = "SPEC",
        long_help = mia_core::inference::catalogue::help()
            + "\nResults go to OUT/inference/SPEC/{naive,adaptive}."
    )]
    inference_defense: Vec<String>,
    /// Device for the signals HAMP and HyGA-ANI need (default: the target's).
    #[arg(long)]
    device: Option<String>,
    /// Dataset folder, when it moved since the target was trained (HAMP, HyGA-ANI).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn folder_name(p: &Path) -> String {
    p.canonicalize()
        .ok()
        .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| p.display().to_string())
}

/// Runs `mia attack`.
pub fn run(args: AttackArgs) -> Result<()> {
    let (input, source, out) = match (&args.run, &args.logits) {
        (Some(run), _) => (
            AttackInput::from_run(run, args.shadow_dir.as_deref())?,
            run.display().to_string(),
            args.out.clone().unwrap_or_else(|| run.clone()),
        ),
        (None, Some(logits)) => {
            let need = |p: &Option<PathBuf>, flag: &str| {
                p.clone().ok_or_else(|| {
                    hinted(format!("{flag} is required with --logits"), "see `mia attack --help`")
                })
            };
            let input = AttackInput::from_npy(
                logits,
                &need(&args.labels, "--labels")?,
                &need(&args.membership, "--membership")?,
                args.shadow_logits.as_deref(),
                args.shadow_keep.as_deref(),
            )?;
            (input, logits.display().to_string(), need(&args.out, "--out")?)
        }
        (None, None) => return Err(hinted("give --run or --logits", "see `mia attack --help`")),
    };
    let all = args.attacks.iter().any(|a| a == "all");
    let kinds: Vec<AttackKind> = if all {
        AttackKind::all()
    } else {
        args.attacks.iter().map(|a| AttackKind::parse(a.trim())).collect::<Result<_, _>>()?
    };
    let options = attack_options(&args)?;
    let (input, query_note) = select_queries(&args, input)?;
    let input = with_sensitivity(&args, &kinds, input)?;

    let summary = run_summary(args.run.as_deref())?;
    let text = |f: fn(&Summary) -> &String| summary.as_ref().map(|s| f(s).clone());
    let number = |f: fn(&Summary) -> f32| summary.as_ref().map(|s| decimal(f(s)));

    let template = AttackReport {
        version: 1,
        source,
        label: args
            .label
            .clone()
            .unwrap_or_else(|| folder_name(args.run.as_deref().unwrap_or(&out))),
        dataset: text(|s| &s.dataset),
        model: text(|s| &s.model),
        defense: text(|s| &s.defense),
        test_acc: number(|s| s.test_acc),
        train_acc: number(|s| s.train_acc),
        candidates: input.candidates(),
        members: input.is_member.iter().filter(|m| **m).count(),
        shadows: input.shadows.len(),
        queries: input.target.queries,
        query_note: Some(query_note.clone()),
        population: input.population(),
        skipped: Vec::new(),
        attacks: Vec::new(),
        inference: None,
    };
    // Parse every defense before the (long) undefended pass.
    let chains: Vec<Chain> =
        args.inference_defense.iter().map(|s| Chain::parse(s)).collect::<Result<_, _>>()?;
    println!(
        "{} candidates ({} members), {} shadows, {} queries, {} population samples",
        template.candidates,
        template.members,
        template.shadows,
        template.queries,
        template.population
    );
    println!("queries: {query_note}");
    let base = attack_set(&input, &kinds, all, &options, template.clone())?;
    base.write(&out, &input.is_member)?;
    println!("wrote {}", out.join(ATTACKS).display());

    for chain in &chains {
        attack_through(
            &args,
            chain,
            &input,
            &base,
            &Plan { kinds: &kinds, all, options: &options, out: &out },
            &template,
        )?;
    }
    Ok(())
}

/// What every attack pass shares.
struct Plan<'a> {
    kinds: &'a [AttackKind],
    all: bool,
    options: &'a AttackOptions,
    out: &'a Path,
}

/// Attacks through one inference-time defense as a naive and as an adaptive attacker, writing
/// `OUT/inference/SPEC/{naive,adaptive}`.
fn attack_through(
    args: &AttackArgs,
    chain: &Chain,
    input: &AttackInput,
    base: &AttackReport,
    plan: &Plan<'_>,
    template: &AttackReport,
) -> Result<()> {
    let spec = chain.spec();
    println!("\ninference defense {spec}");
    let signals = defense_signals(args, chain, input.shadows.len())?;
    let d = defend(input, chain, &signals, args.seed)?;
    println!(
        "held-out accuracy {:.4} → {:.4} ({} rows); label {}",
        d.accuracy_before,
        d.accuracy_after,
        d.accuracy_rows,
        if chain.preserves_label() { "preserved" } else { "may change" }
    );
    let baseline: Vec<(String, f64, f64)> = base
        .attacks
        .iter()
        .map(|a| (a.name.clone(), a.evaluation.auc, a.evaluation.advantage))
        .collect();
    let (layout, chain_slug) = (RunLayout::new(plan.out), slug(&spec));
    for (attacker, view) in ATTACKERS.into_iter().zip([&d.naive, &d.adaptive]) {
        println!("{attacker} attacker");
        let mut t = template.clone();
        t.label = format!("{} + {spec} ({attacker})", template.label);
        t.test_acc = Some(d.accuracy_after);
        t.inference = Some(InferenceInfo {
            spec: spec.clone(),
            attacker: attacker.into(),
            preserves_label: chain.preserves_label(),
            accuracy_before: d.accuracy_before,
            accuracy_after: d.accuracy_after,
            accuracy_rows: d.accuracy_rows,
            baseline: baseline.clone(),
        });
        let mut set = plan.kinds.to_vec();
        if attacker == "naive" {
            set.extend(AttackKind::fixed_thresholds());
        }
        // SAMIA's sensitivity is of the model's raw outputs; through the defense it is not
        // measured, so the attack is left out with its reason.
        let samia = set.contains(&AttackKind::Samia);
        set.retain(|k| *k != AttackKind::Samia);
        let mut report = attack_set(view, &set, plan.all, plan.options, t)?;
        if samia {
            report.skipped.push((
                AttackKind::Samia.name(),
                "the sensitivity is measured on the undefended outputs only".into(),
            ));
        }
        let dir = layout.defended(&chain_slug, attacker);
        report.write(&dir, &input.is_member)?;
        println!("wrote {}", dir.join(ATTACKS).display());
    }
    Ok(())
}

/// The run's `summary.json` (`None` for plain `.npy` input); a summary that exists but does
/// not parse is an error, not missing metadata.
fn run_summary(run: Option<&Path>) -> Result<Option<Summary>> {
    let Some(run) = run else { return Ok(None) };
    let path = RunLayout::new(run).summary();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        hinted(
            format!("{} does not parse: {e}", path.display()),
            "it was written by another version of mia, or damaged: retrain the run with `mia train`",
        )
    })
}

/// The attack settings from the flags, range-checked.
fn attack_options(args: &AttackArgs) -> Result<AttackOptions> {
    let options = AttackOptions {
        gamma: args.gamma,
        rmia_a: args.rmia_a,
        lira_center: match args.lira_center {
            CenterArg::Median => Center::Median,
            CenterArg::Mean => Center::Mean,
        },
        offline_form: match args.offline_form {
            OfflineArg::Cdf => OfflineForm::OneSidedCdf,
            OfflineArg::NegLogpdf => OfflineForm::NegLogPdf,
        },
        seed: args.seed,
        lira_std_floor: args.lira_std_floor,
        network: NetworkSettings { epochs: args.network_epochs, ..NetworkSettings::default() },
        max_network_rows: args.max_network_rows,
        ..AttackOptions::default()
    };
    options.validate()?;
    Ok(options)
}

/// Keeps the cached queries `--queries` asks for; returns the input and why those queries.
fn select_queries(args: &AttackArgs, input: AttackInput) -> Result<(AttackInput, String)> {
    let choice: QueryChoice = args.queries.parse()?;
    let info = match &args.run {
        Some(run) => QueryInfo::from_run(run, args.shadow_dir.as_deref()),
        None => QueryInfo::default(),
    };
    let (k, note) = info.resolve(choice, input.target.queries)?;
    let input = if k < input.target.queries { input.first_queries(k)? } else { input };
    Ok((input, note))
}

/// A folder name for a defense spec.
fn slug(spec: &str) -> String {
    spec.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
            '+' => '+',
            _ => '_',
        })
        .collect()
}

/// Computes (or reuses) SAMIA's sensitivity of the target and every shadow when `samia` is
/// among the attacks and the input is a run with shadows; otherwise SAMIA runs without it and
/// says what it needs.
fn with_sensitivity(
    args: &AttackArgs,
    kinds: &[AttackKind],
    input: AttackInput,
) -> Result<AttackInput> {
    let Some(run) = &args.run else { return Ok(input) };
    if !kinds.contains(&AttackKind::Samia) || input.shadows.is_empty() {
        return Ok(input);
    }
    let dir = RunLayout::new(run).shadows(args.shadow_dir.as_deref()).root;
    // SAMIA trains on at most --max-network-rows rows: the first shadows that fill them.
    let needed = args.max_network_rows.div_ceil(input.candidates()).clamp(1, input.shadows.len());
    let request = SignalRequest { sensitivity_shadows: needed, ..SignalRequest::default() };
    let finished = model_signals(args, &dir, request, input.shadows.len(), "SAMIA sensitivity ")?;
    Ok(input.with_sensitivity(Sensitivity::read(&dir, &finished[..needed])?)?)
}

/// Runs the trainer's signal pass over the target and the finished shadows of `dir`, with a
/// progress bar; returns the finished shadow indices, which must be the `shadows` the attack
/// loaded.
fn model_signals(
    args: &AttackArgs,
    dir: &Path,
    request: SignalRequest,
    shadows: usize,
    prefix: &'static str,
) -> Result<Vec<usize>> {
    let Some(run) = &args.run else {
        return Err(hinted("model signals need --run", "see `mia attack --help`"));
    };
    let device = args.device.as_deref().map(str::parse).transpose()?;
    let bar = Progress::new(false);
    bar.bar.set_prefix(prefix);
    let mut tick = |done: usize, total: usize| {
        bar.bar.set_length(total as u64);
        bar.bar.set_position(done as u64);
    };
    let finished =
        mia_train::defense_signals(run, dir, request, device, args.data_dir.as_deref(), &mut tick)?;
    bar.bar.finish_and_clear();
    if finished.len() != shadows {
        return Err(hinted(
            format!("{} finished shadows now, {shadows} when the attack started", finished.len()),
            "wait for running `mia shadows` jobs to finish, then attack again",
        ));
    }
    Ok(finished)
}

/// Computes (or reuses) and reads the per-model signals a chain needs.
fn defense_signals(args: &AttackArgs, chain: &Chain, shadows: usize) -> Result<DefenseSignals> {
    let needs = chain.needs();
    if !needs.references && !needs.gradients {
        return Ok(DefenseSignals {
            shadows: vec![Default::default(); shadows],
            ..Default::default()
        });
    }
    let Some(run) = &args.run else {
        return Err(hinted(
            format!("`{}` needs the model itself, not only its logits", chain.spec()),
            "HAMP and HyGA-ANI query the model (random inputs, input gradients): use --run",
        ));
    };
    let pool = RunLayout::new(run).shadows(args.shadow_dir.as_deref());
    let dir = pool.root.clone();
    if !pool.spec().exists() {
        return Err(hinted(
            format!("no shadow folder at {}", dir.display()),
            "train shadow models first: `mia shadows --run RUN --count 16`",
        ));
    }
    let request = SignalRequest {
        random_logits: needs.references,
        gradient_norms: needs.gradients,
        ..SignalRequest::default()
    };
    let finished = model_signals(args, &dir, request, shadows, "defense signals ")?;
    Ok(DefenseSignals::read(&dir, &finished, needs)?)
}

/// Runs `kinds` on one input, printing a table; under `all`, attacks the shadows cannot
/// support are skipped with their reason.
pub(super) fn attack_set(
    input: &AttackInput,
    kinds: &[AttackKind],
    all: bool,
    options: &AttackOptions,
    mut report: AttackReport,
) -> Result<AttackReport> {
    println!(
        "{:<28} {:>7} {:>9} {:>7} {:>9} {:>10} {:>8}",
        "attack", "AUC", "|AUC-.5|", "adv", "TPR@1%", "TPR@0.1%", "seconds"
    );
    for &kind in kinds {
        if all && kind.needs_shadows() && input.shadows.is_empty() {
            report.skipped.push((kind.name(), "needs shadow models".into()));
            continue;
        }
        let r = match run_attack(kind, input, options) {
            Ok(r) => r,
            // Under `all`, an attack the shadows cannot support is skipped, not fatal.
            Err(e) if all && kind.needs_shadows() => {
                report.skipped.push((kind.name(), e.to_string()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let e = &r.evaluation;
        let tpr = |i: usize| e.tpr_at_low_fpr.get(i).map_or(f64::NAN, |t| t.tpr);
        println!(
            "{:<28} {:>7.4} {:>9.4} {:>7.4} {:>9.4} {:>10.4} {:>8.2}",
            r.name,
            e.auc,
            e.auc_distance,
            e.advantage,
            tpr(0),
            tpr(1),
            r.seconds
        );
        report.attacks.push(r);
    }
    println!("{}", fpr_resolution(input.is_member.iter().filter(|m| !**m).count()));
    for (name, why) in &report.skipped {
        println!("skipped {name}: {why}");
    }
    Ok(report)
}

/// The smallest FPR step the non-members allow, said next to the TPR@low-FPR columns.
fn fpr_resolution(non_members: usize) -> String {
    if non_members == 0 {
        return "no non-members: FPR cannot be measured".into();
    }
    let step = 100.0 / non_members as f64;
    let unresolved = if step > 0.1 { " (TPR@0.1% cannot be resolved: too few)" } else { "" };
    format!("{non_members} non-members: FPR moves in steps of {step:.3}%{unresolved}")
}
