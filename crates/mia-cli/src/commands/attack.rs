//! `mia attack`: runs the attacks on a run directory (target signals plus its shadows) or on
//! plain `.npy` files, prints a table and writes `attacks.json` + score files for `mia report`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use mia_attack::attack::run as run_attack;
use mia_attack::{AttackInput, AttackKind, AttackOptions, AttackReport};
use mia_core::lira::{Center, OfflineForm};

use super::hinted;

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
    /// label-only, shadow-{lr,mlp}-{top3,posterior,posterior-label},
    /// lira-{online,offline}[-fixed], rmia-{online,offline}.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    attacks: Vec<String>,
    /// RMIA γ.
    #[arg(long, default_value_t = 1.0)]
    gamma: f32,
    /// RMIA offline `a` (default: tuned on the shadows).
    #[arg(long)]
    rmia_a: Option<f32>,
    /// LiRA centre estimator.
    #[arg(long, value_enum, default_value = "median")]
    lira_center: CenterArg,
    /// LiRA offline statistic.
    #[arg(long, value_enum, default_value = "cdf")]
    offline_form: OfflineArg,
    /// Seed of the attack models.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (default: the run directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Label for reports (default: the run folder's name).
    #[arg(long)]
    label: Option<String>,
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
        ..AttackOptions::default()
    };
    if !(options.gamma > 0.0 && options.gamma.is_finite()) {
        return Err(hinted(
            format!("--gamma {} must be positive", args.gamma),
            "RMIA's γ is usually 1 or 2",
        ));
    }

    // Run metadata, when the run directory has it.
    let summary: Option<serde_json::Value> = args
        .run
        .as_ref()
        .and_then(|r| std::fs::read_to_string(r.join("summary.json")).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let field = |k: &str| summary.as_ref().and_then(|s| s.get(k).cloned());
    let text = |k: &str| field(k).and_then(|v| v.as_str().map(str::to_string));
    let number = |k: &str| field(k).and_then(|v| v.as_f64());

    let mut report = AttackReport {
        version: 1,
        source,
        label: args
            .label
            .clone()
            .unwrap_or_else(|| folder_name(args.run.as_deref().unwrap_or(&out))),
        dataset: text("dataset"),
        model: text("model"),
        defense: text("defense"),
        test_acc: number("test_acc"),
        train_acc: number("train_acc"),
        candidates: input.candidates(),
        members: input.is_member.iter().filter(|m| **m).count(),
        shadows: input.shadows.len(),
        queries: input.target.queries,
        population: input.population(),
        skipped: Vec::new(),
        attacks: Vec::new(),
    };
    println!(
        "{} candidates ({} members), {} shadows, {} queries, {} population samples",
        report.candidates, report.members, report.shadows, report.queries, report.population
    );
    println!(
        "{:<28} {:>7} {:>9} {:>7} {:>9} {:>10} {:>8}",
        "attack", "AUC", "|AUC-.5|", "adv", "TPR@1%", "TPR@0.1%", "seconds"
    );
    for kind in kinds {
        if all && kind.needs_shadows() && input.shadows.is_empty() {
            report.skipped.push((kind.name(), "needs shadow models".into()));
            continue;
        }
        let r = match run_attack(kind, &input, &options) {
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
    for (name, why) in &report.skipped {
        println!("skipped {name}: {why}");
    }
    report.write(&out, &input.is_member)?;
    println!("wrote {}", out.join("attacks.json").display());
    Ok(())
}
