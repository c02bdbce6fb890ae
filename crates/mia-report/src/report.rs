//! Building the report: loads each run's attack results, computes the cross-run numbers
//! (privacy scores, MIDPUT against an undefended baseline), and writes `report.md`,
//! `report.html` (self-contained, plots inlined), `metrics.csv`, and every plot as SVG (and
//! PNG). Each plot gets one plain-language sentence saying what it shows.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use mia_attack::{AttackReport, AttackResult};
use mia_core::metrics::{
    self, midput_advantage, midput_published, privacy_score_fixed, privacy_score_published,
};
use mia_core::npy::{NpyArray, NpyData};

use crate::svg::{Scale, escape};
use crate::{ReportError, plots};

/// One run's attack results.
#[derive(Debug, Clone)]
pub struct RunResults {
    /// Where they came from.
    pub dir: PathBuf,
    /// `attacks.json` with scores.
    pub report: AttackReport,
    /// Ground-truth membership of the candidates.
    pub is_member: Vec<bool>,
    /// Dataset indices of the candidates (`signals/indices.npy`), when present.
    pub indices: Option<Vec<i64>>,
    /// Labels of the candidates, when present.
    pub labels: Option<Vec<i64>>,
}

impl RunResults {
    /// Reads a folder written by `mia attack`.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let (report, is_member) = AttackReport::read(dir)
            .map_err(|e| ReportError::Input { path: dir.into(), reason: e.to_string() })?;
        let ints = |name: &str| -> Option<Vec<i64>> {
            let bytes = std::fs::read(dir.join("signals").join(name)).ok()?;
            match NpyArray::from_bytes(&bytes).ok()?.data {
                NpyData::I64(v) if v.len() == is_member.len() => Some(v),
                _ => None,
            }
        };
        Ok(Self {
            dir: dir.into(),
            indices: ints("indices.npy"),
            labels: ints("labels.npy"),
            report,
            is_member,
        })
    }
}

/// Report settings.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Title.
    pub title: String,
    /// Also render PNG copies of the plots.
    pub png: bool,
    /// Rows in the most-vulnerable-examples table.
    pub vulnerable: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self { title: "MIA Lab report".into(), png: true, vulnerable: 10 }
    }
}

/// A document block, rendered to both Markdown and HTML.
enum Block {
    Heading(usize, String),
    Para(String),
    Table(Vec<String>, Vec<Vec<String>>),
    Plot { file: String, alt: String, reading: String },
    List(Vec<String>),
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

fn f4(v: f64) -> String {
    format!("{v:.4}")
}

fn tpr(a: &AttackResult, fpr: f64) -> Option<&metrics::TprAtFpr> {
    a.evaluation.tpr_at_low_fpr.iter().find(|t| (t.fpr - fpr).abs() < 1e-12)
}

fn tpr_cell(a: &AttackResult, fpr: f64) -> String {
    tpr(a, fpr)
        .map_or("–".into(), |t| format!("{} [{}, {}]", pct(t.tpr), pct(t.ci95.0), pct(t.ci95.1)))
}

/// File-name-safe version of a label.
fn slug(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if out.is_empty() { "run".into() } else { out }
}

/// The attacks drawn together in a run's ROC plots: the loss baseline, the label-only attack,
/// the best shadow classifier and the LiRA and RMIA variants.
fn roc_set(run: &RunResults) -> Vec<&AttackResult> {
    let a = &run.report.attacks;
    let mut out: Vec<&AttackResult> = Vec::new();
    for name in ["loss", "label-only"] {
        out.extend(a.iter().find(|x| x.name == name));
    }
    out.extend(
        a.iter()
            .filter(|x| x.family == "shadow-classifier")
            .max_by(|x, y| x.evaluation.auc_distance.total_cmp(&y.evaluation.auc_distance)),
    );
    for name in ["lira-online", "lira-offline", "rmia-online", "rmia-offline"] {
        out.extend(a.iter().find(|x| x.name == name));
    }
    if let Some(best) = strongest(run).filter(|b| !out.iter().any(|x| x.name == b.name)) {
        out.push(best);
    }
    out
}

/// The attack with the highest TPR at 0.1% FPR (ties: higher |AUC − 0.5|).
fn strongest(run: &RunResults) -> Option<&AttackResult> {
    run.report.attacks.iter().max_by(|x, y| {
        let t = |a: &AttackResult| tpr(a, 0.001).map_or(0.0, |t| t.tpr);
        t(x).total_cmp(&t(y)).then(x.evaluation.auc_distance.total_cmp(&y.evaluation.auc_distance))
    })
}

fn histogram_reading(a: &AttackResult) -> String {
    let e = &a.evaluation;
    let t1 = tpr(a, 0.01).map_or(0.0, |t| t.tpr);
    if e.auc_distance < 0.02 {
        format!(
            "The member and non-member distributions of `{}` overlap almost completely (AUC {:.3}): this attack cannot tell them apart.",
            a.name, e.auc
        )
    } else if e.auc < 0.5 {
        format!(
            "Members score *lower* than non-members under `{}` (AUC {:.3}): the signal is inverted, which still leaks |AUC − 0.5| = {:.3} to an attacker who flips it.",
            a.name, e.auc, e.auc_distance
        )
    } else {
        format!(
            "Members score higher than non-members under `{}` (AUC {:.3}); flagging the top scores catches {} of members at a 1% false-alarm rate.",
            a.name,
            e.auc,
            pct(t1)
        )
    }
}

fn roc_reading(run: &RunResults, log: bool) -> String {
    let Some(best) = strongest(run) else { return "No attack results.".into() };
    let t = tpr(best, 0.001).map_or(0.0, |t| t.tpr);
    if log {
        if t <= 0.001 {
            format!(
                "At low false-positive rates no attack beats chance: the strongest, `{}`, finds {} of members at 0.1% FPR, what random guessing finds.",
                best.name,
                pct(t)
            )
        } else {
            format!(
                "On log axes the low-FPR regime is visible: `{}` finds {} of members at 0.1% FPR, {:.0}× what random guessing finds there.",
                best.name,
                pct(t),
                t / 0.001
            )
        }
    } else {
        let by_auc = run
            .report
            .attacks
            .iter()
            .max_by(|x, y| x.evaluation.auc_distance.total_cmp(&y.evaluation.auc_distance));
        match by_auc {
            Some(a) => format!(
                "Curves above the dashed diagonal leak membership; `{}` is furthest from chance overall (AUC {:.3}, advantage {:.3}).",
                a.name, a.evaluation.auc, a.evaluation.advantage
            ),
            None => String::new(),
        }
    }
}

/// The undefended run each run is compared with for MIDPUT: the first run of the same
/// dataset and model trained with `erm`.
fn baseline<'a>(runs: &'a [RunResults], run: &RunResults) -> Option<&'a RunResults> {
    runs.iter().find(|b| {
        b.report.defense.as_deref() == Some("erm")
            && b.report.dataset == run.report.dataset
            && b.report.model == run.report.model
            && b.report.test_acc.is_some()
    })
}

/// MIDPUT inputs for attack `name` of run `r`: (baseline AUC, baseline advantage, baseline
/// accuracy, accuracy, baseline label). An inference-defense run is compared with its own
/// undefended pass (same rows, same attacks); any other run with the first ERM run of its
/// dataset and model.
fn midput_base(
    runs: &[RunResults],
    r: &RunResults,
    name: &str,
) -> Option<(f64, f64, f64, f64, String)> {
    if let Some(info) = &r.report.inference {
        let (_, auc, adv) = info.baseline.iter().find(|b| b.0 == name)?;
        let label = r.report.label.split(" + ").next().unwrap_or_default().to_string();
        return Some((*auc, *adv, info.accuracy_before, info.accuracy_after, label));
    }
    let b = baseline(runs, r).filter(|b| !std::ptr::eq(*b, r))?;
    let x = b.report.attacks.iter().find(|x| x.name == name)?;
    let acc = r.report.test_acc?;
    let b_acc = b.report.test_acc.unwrap_or(acc);
    Some((x.evaluation.auc, x.evaluation.advantage, b_acc, acc, b.report.label.clone()))
}

/// The inference-defense section: every defense with its naive and adaptive attacker side
/// by side.
fn inference_section(runs: &[RunResults], doc: &mut Vec<Block>) {
    // Pairs (naive, adaptive) written by one `mia attack --inference-defense` call.
    let mut groups: Vec<(String, Option<&RunResults>, Option<&RunResults>)> = Vec::new();
    for r in runs {
        let Some(info) = &r.report.inference else { continue };
        let base = r.report.label.split(" + ").next().unwrap_or_default();
        let key = format!("{base} + {}", info.spec);
        let pos = groups.iter().position(|g| g.0 == key).unwrap_or_else(|| {
            groups.push((key.clone(), None, None));
            groups.len() - 1
        });
        if info.attacker == "naive" {
            groups[pos].1 = Some(r);
        } else {
            groups[pos].2 = Some(r);
        }
    }
    if groups.is_empty() {
        return;
    }
    doc.push(Block::Heading(2, "Inference-time defenses: naive vs adaptive attacker".into()));
    doc.push(Block::Para(
        "The **naive** attacker calibrates thresholds, attack models and LiRA/RMIA reference distributions on shadows whose outputs were *not* defended (and also tries DynaNoise's fixed thresholds 0.9 and 0.5 on the top-1 posterior); the **adaptive** attacker passes its shadows' outputs through the same defense. Accuracy is that of the released outputs on the target's held-out rows (non-member candidates and population samples). A defense is only as strong as the stronger of the two columns: usually the adaptive one, not always."
 .into(),
    ));
    let cell = |r: Option<&RunResults>| -> String {
        r.and_then(strongest).map_or("–".into(), |b| {
            format!("{} / {} (`{}`)", f4(b.evaluation.auc), tpr_cell(b, 0.001), b.name)
        })
    };
    let fixed = |r: Option<&RunResults>| -> String {
        let adv = |n: &str| {
            r.and_then(|r| r.report.attacks.iter().find(|a| a.name == n))
                .map_or("–".into(), |a| f4(a.evaluation.advantage))
        };
        format!("{} / {}", adv("fixed-0.9"), adv("fixed-0.5"))
    };
    let mut rows = Vec::new();
    for (key, naive, adaptive) in &groups {
        let Some(info) = naive.or(*adaptive).and_then(|r| r.report.inference.as_ref()) else {
            continue;
        };
        rows.push(vec![
            format!("`{key}`"),
            if info.preserves_label { "yes".into() } else { "no".into() },
            format!("{:.4} → {:.4}", info.accuracy_before, info.accuracy_after),
            fixed(*naive),
            cell(*naive),
            cell(*adaptive),
        ]);
    }
    doc.push(Block::Table(
        [
            "defense",
            "keeps label",
            "held-out acc",
            "naive fixed 0.9 / 0.5 (advantage)",
            "naive: strongest AUC / TPR@0.1%FPR",
            "adaptive: strongest AUC / TPR@0.1%FPR",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    ));
    for (key, naive, adaptive) in &groups {
        let (Some(naive), Some(adaptive)) = (naive, adaptive) else { continue };
        doc.push(Block::Heading(3, format!("`{key}`")));
        let mut rows = Vec::new();
        for a in &adaptive.report.attacks {
            let n = naive.report.attacks.iter().find(|x| x.name == a.name);
            let bal = |x: Option<&AttackResult>| {
                x.and_then(|x| x.calibrated.first())
                    .map_or("–".into(), |c| f4(c.balanced_accuracy))
            };
            let mid = midput_base(std::slice::from_ref(*adaptive), adaptive, &a.name);
            rows.push(vec![
                format!("`{}`", a.name),
                n.map_or("–".into(), |x| f4(x.evaluation.auc)),
                f4(a.evaluation.auc),
                n.map_or("–".into(), |x| tpr_cell(x, 0.001)),
                tpr_cell(a, 0.001),
                bal(n),
                bal(Some(a)),
                mid.map_or("–".into(), |(b_auc, b_adv, b_acc, acc, _)| {
                    format!(
                        "{} / {}",
                        f4(midput_published(b_auc, a.evaluation.auc, b_acc, acc)),
                        f4(midput_advantage(b_adv, a.evaluation.advantage, b_acc, acc))
                    )
                }),
            ]);
        }
        doc.push(Block::Table(
            [
                "attack",
                "naive AUC",
                "adaptive AUC",
                "naive TPR@0.1%FPR",
                "adaptive TPR@0.1%FPR",
                "naive calibrated bal. acc",
                "adaptive calibrated bal. acc",
                "adaptive MIDPUT (published / advantage)",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        ));
        let best = |r: &RunResults| strongest(r).map_or(0.5, |b| b.evaluation.auc);
        let (nb, ab) = (best(naive), best(adaptive));
        doc.push(Block::Para(format!(
            "Read: against this defense the naive attacker's best AUC is {nb:.3} and the adaptive attacker's {ab:.3}; {}",
            if ab > nb + 0.01 {
                "judged by the naive attacker alone, the defense would look stronger than it is."
            } else {
                "here the naive view does not overstate the defense."
            }
        )));
    }
}

/// Writes the report for `runs` into `out` and returns the files written.
pub fn write(
    runs: &[RunResults],
    out: &Path,
    options: &ReportOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    if runs.is_empty() {
        return Err(ReportError::Input { path: out.into(), reason: "no runs given".into() });
    }
    std::fs::create_dir_all(out).map_err(|e| ReportError::io(out, e))?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut svgs: Vec<(String, String)> = Vec::new();
    let mut doc = vec![Block::Heading(1, options.title.clone())];
    let mut labels: Vec<String> = Vec::new();
    for r in runs {
        let mut l = slug(&r.report.label);
        let base = l.clone();
        let mut i = 2;
        while labels.contains(&l) {
            l = format!("{base}_{i}");
            i += 1;
        }
        labels.push(l);
    }

    // Summary across runs.
    doc.push(Block::Para(format!(
        "{} run(s). Members are the positive class; every score is oriented so that higher means \"member\". \
         Leakage is reported as |AUC − 0.5|, the two-sided advantage max |TPR − FPR| (an inverted score counts as much as its flip) and TPR at low FPR \
         with 95% Clopper–Pearson intervals; thresholds and attack models are fitted on shadow models only.",
        runs.len()
    )));
    let mut rows = Vec::new();
    for r in runs {
        let rep = &r.report;
        let best = strongest(r);
        let auc = best.map_or(f64::NAN, |b| b.evaluation.auc);
        rows.push(vec![
            rep.label.clone(),
            rep.dataset.clone().unwrap_or_else(|| "–".into()),
            rep.defense.clone().unwrap_or_else(|| "–".into()),
            rep.test_acc.map_or("–".into(), f4),
            best.map_or("–".into(), |b| format!("`{}`", b.name)),
            f4(auc),
            best.map_or("–".into(), |b| f4(b.evaluation.auc_distance)),
            best.map_or("–".into(), |b| f4(b.evaluation.advantage)),
            best.map_or("–".into(), |b| tpr_cell(b, 0.001)),
            rep.test_acc.map_or("–".into(), |acc| {
                format!(
                    "{:.4} / {:.4}",
                    privacy_score_published(acc, auc),
                    privacy_score_fixed(acc, auc)
                )
            }),
        ]);
    }
    doc.push(Block::Heading(2, "Summary".into()));
    doc.push(Block::Table(
        [
            "run",
            "dataset",
            "defense",
            "test acc",
            "strongest attack",
            "AUC",
            "|AUC−0.5|",
            "advantage",
            "TPR@0.1%FPR [95% CI]",
            "privacy score (published / fixed)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    ));
    doc.push(Block::Para(
        "The strongest attack is the one with the highest TPR at 0.1% FPR. The published MLS-Bench privacy score \
         (test acc − max(AUC − 0.5, 0)) rewards an AUC below 0.5; the fixed one (test acc − |AUC − 0.5|) does not."
            .into(),
    ));

    // Privacy-utility scatter across runs.
    let with_acc: Vec<&RunResults> = runs.iter().filter(|r| r.report.test_acc.is_some()).collect();
    if !with_acc.is_empty() {
        doc.push(Block::Heading(2, "Privacy–utility trade-off".into()));
        let mut auc_pts = Vec::new();
        let mut tpr_pts = Vec::new();
        for r in &with_acc {
            let Some(best) = strongest(r) else { continue };
            let acc = r.report.test_acc.unwrap_or(0.0);
            auc_pts.push((r.report.label.clone(), best.evaluation.auc, acc));
            tpr_pts.push((
                r.report.label.clone(),
                tpr(best, 0.001).map_or(1e-4, |t| t.tpr.max(1e-4)),
                acc,
            ));
        }
        let lo = auc_pts.iter().map(|p| p.1).fold(0.5, f64::min);
        let hi = auc_pts.iter().map(|p| p.1).fold(0.5, f64::max);
        let pad = ((hi - lo) * 0.15).max(0.02);
        svgs.push((
            "tradeoff_auc.svg".into(),
            plots::tradeoff(
                "Test accuracy vs attack AUC (strongest attack)",
                "attack AUC",
                &auc_pts,
                Scale::Linear(lo - pad, hi + pad),
            ),
        ));
        svgs.push((
            "tradeoff_tpr.svg".into(),
            plots::tradeoff(
                "Test accuracy vs TPR at 0.1% FPR (strongest attack)",
                "TPR at 0.1% FPR",
                &tpr_pts,
                Scale::Log(1e-4, 1.0),
            ),
        ));
        let best_run = auc_pts
            .iter()
            .max_by(|a, b| (a.2 - (a.1 - 0.5).abs()).total_cmp(&(b.2 - (b.1 - 0.5).abs())));
        let reading = match best_run {
            Some((label, auc, acc)) => format!(
                "Up and towards AUC 0.5 is better (more accurate, less leaky); `{label}` has the best balance here (test accuracy {acc:.3}, AUC {auc:.3})."
            ),
            None => String::new(),
        };
        doc.push(Block::Plot {
            file: "tradeoff_auc.svg".into(),
            alt: "privacy-utility scatter (AUC)".into(),
            reading,
        });
        doc.push(Block::Plot {
            file: "tradeoff_tpr.svg".into(),
            alt: "privacy-utility scatter (TPR at 0.1% FPR)".into(),
            reading: "The same runs against TPR at 0.1% FPR on a log axis: what a confident attacker recovers; 0.1% is chance.".into(),
        });
    }

    inference_section(runs, &mut doc);

    // MIDPUT against the undefended baseline.
    let mut midput_rows = Vec::new();
    for r in runs {
        for a in &r.report.attacks {
            let Some((b_auc, b_adv, b_acc, acc, b_label)) = midput_base(runs, r, &a.name) else {
                continue;
            };
            midput_rows.push(vec![
                r.report.label.clone(),
                b_label,
                format!("`{}`", a.name),
                f4(midput_published(b_auc, a.evaluation.auc, b_acc, acc)),
                f4(midput_advantage(b_adv, a.evaluation.advantage, b_acc, acc)),
            ]);
        }
    }
    if !midput_rows.is_empty() {
        doc.push(Block::Heading(2, "MIDPUT against the undefended run".into()));
        doc.push(Block::Para(
            "DynaNoise's MIDPUT: (attack success before − after) − (test accuracy before − after). As published it uses \
             AUC, so a defense that pushes an attack below 0.5 gains; the advantage column uses the two-sided max |TPR − FPR|, which an inverted attack keeps."
                .into(),
        ));
        doc.push(Block::Table(
            ["run", "baseline", "attack", "MIDPUT (published, AUC)", "MIDPUT (advantage)"]
                .map(String::from)
                .to_vec(),
            midput_rows,
        ));
    }

    // One section per run.
    for (r, label) in runs.iter().zip(&labels) {
        let rep = &r.report;
        doc.push(Block::Heading(2, format!("Run `{}`", rep.label)));
        doc.push(Block::Para(format!(
            "{} · {} · defense {} · test accuracy {} · member accuracy {} · {} candidates ({} members) · {} shadow models · {} queries per example · {} population samples. Source: `{}`.",
            rep.dataset.as_deref().unwrap_or("dataset unknown"),
            rep.model.as_deref().unwrap_or("model unknown"),
            rep.defense.as_deref().unwrap_or("unknown"),
            rep.test_acc.map_or("unknown".into(), f4),
            rep.train_acc.map_or("unknown".into(), f4),
            rep.candidates,
            rep.members,
            rep.shadows,
            rep.queries,
            rep.population,
            rep.source
        )));
        if let Some(note) = &rep.query_note {
            doc.push(Block::Para(format!("Queries: {note}.")));
        }
        let rows = rep
            .attacks
            .iter()
            .map(|a| {
                vec![
                    format!("`{}`", a.name),
                    a.family.clone(),
                    f4(a.evaluation.auc),
                    f4(a.evaluation.auc_distance),
                    f4(a.evaluation.advantage),
                    tpr_cell(a, 0.01),
                    tpr_cell(a, 0.001),
                    a.calibrated.first().map_or("–".into(), |c| {
                        format!(
                            "{:.4} (TPR {}, FPR {})",
                            c.balanced_accuracy,
                            pct(c.tpr),
                            pct(c.fpr)
                        )
                    }),
                    format!("{:.2}", a.seconds),
                ]
            })
            .collect();
        doc.push(Block::Table(
            [
                "attack",
                "family",
                "AUC",
                "|AUC−0.5|",
                "advantage",
                "TPR@1%FPR",
                "TPR@0.1%FPR",
                "calibrated on shadows: balanced acc",
                "seconds",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        ));
        if !rep.skipped.is_empty() {
            doc.push(Block::List(
                rep.skipped.iter().map(|(n, why)| format!("skipped `{n}`: {why}")).collect(),
            ));
        }

        let curves: Vec<(String, metrics::Roc)> = roc_set(r)
            .into_iter()
            .filter_map(|a| Some((a.name.clone(), metrics::roc(&a.scores, &r.is_member).ok()?)))
            .collect();
        for (log, name) in
            [(false, format!("roc_{label}.svg")), (true, format!("roc_log_{label}.svg"))]
        {
            let title = format!("ROC, {}{}", rep.label, if log { " (log-log)" } else { "" });
            svgs.push((name.clone(), plots::roc(&title, &curves, log)));
            doc.push(Block::Plot { file: name, alt: title, reading: roc_reading(r, log) });
        }

        doc.push(Block::Heading(3, "Score distributions".into()));
        // Defended views get the ROC set's histograms only (there are two per defense).
        let shown: Vec<&AttackResult> =
            if rep.inference.is_some() { roc_set(r) } else { rep.attacks.iter().collect() };
        for a in shown {
            let name = format!("hist_{label}_{}.svg", slug(&a.name));
            let title = format!("{}: {}", rep.label, a.name);
            svgs.push((name.clone(), plots::histogram(&title, &a.scores, &r.is_member)));
            doc.push(Block::Plot { file: name, alt: title, reading: histogram_reading(a) });
        }

        if let Some(best) = strongest(r) {
            let mut order: Vec<usize> = (0..best.scores.len()).collect();
            order.sort_by(|&i, &j| best.scores[j].total_cmp(&best.scores[i]));
            let rows = order
                .iter()
                .take(options.vulnerable)
                .enumerate()
                .map(|(rank, &i)| {
                    vec![
                        (rank + 1).to_string(),
                        r.indices.as_ref().map_or(format!("candidate {i}"), |v| v[i].to_string()),
                        r.labels.as_ref().map_or("–".into(), |v| v[i].to_string()),
                        if r.is_member[i] { "member" } else { "non-member" }.into(),
                        format!("{:.4}", best.scores[i]),
                    ]
                })
                .collect();
            doc.push(Block::Heading(3, "Most vulnerable examples".into()));
            doc.push(Block::Para(format!(
                "The candidates `{}` is most sure are members (dataset index, label, truth). Examples that are members and rank here are the ones the model memorised.",
                best.name
            )));
            doc.push(Block::Table(
                ["rank", "dataset index", "label", "truth", "score"].map(String::from).to_vec(),
                rows,
            ));
        }
        let warnings: Vec<String> = rep
            .attacks
            .iter()
            .flat_map(|a| a.evaluation.warnings.iter().map(move |w| format!("`{}`: {w}", a.name)))
            .collect();
        if !warnings.is_empty() {
            doc.push(Block::Heading(3, "Warnings".into()));
            doc.push(Block::List(warnings));
        }
    }

    // Files.
    for (name, svg) in &svgs {
        let path = out.join(name);
        mia_core::files::write_atomic(&path, svg.as_bytes())
            .map_err(|e| ReportError::io(&path, e))?;
        files.push(path);
        if options.png {
            let png = crate::png::render(svg, 1.5)?;
            let path = out.join(name.replace(".svg", ".png"));
            mia_core::files::write_atomic(&path, &png).map_err(|e| ReportError::io(&path, e))?;
            files.push(path);
        }
    }
    let md = markdown(&doc);
    let html = html(&doc, &options.title, &svgs);
    let csv = csv(runs);
    for (name, text) in [("report.md", md), ("report.html", html), ("metrics.csv", csv)] {
        let path = out.join(name);
        mia_core::files::write_atomic(&path, text.as_bytes())
            .map_err(|e| ReportError::io(&path, e))?;
        files.push(path);
    }
    Ok(files)
}

fn markdown(doc: &[Block]) -> String {
    let mut s = String::new();
    for b in doc {
        match b {
            Block::Heading(level, t) => {
                let _ = writeln!(s, "{} {t}\n", "#".repeat(*level));
            }
            Block::Para(t) => {
                let _ = writeln!(s, "{t}\n");
            }
            Block::Table(head, rows) => {
                // A `|` inside a cell would end it.
                let cells = |r: &[String]| {
                    r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | ")
                };
                let _ = writeln!(s, "| {} |", cells(head));
                let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
                for r in rows {
                    let _ = writeln!(s, "| {} |", cells(r));
                }
                s.push('\n');
            }
            Block::Plot { file, alt, reading } => {
                let _ = writeln!(s, "![{alt}]({file})\n\n*{reading}*\n");
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(s, "- {i}");
                }
                s.push('\n');
            }
        }
    }
    s
}

/// Inline markup of the Markdown text: `code` and *emphasis*.
fn inline(t: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    let mut em = false;
    for c in escape(t).chars() {
        match c {
            '`' => {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
            }
            '*' if !code => {
                out.push_str(if em { "</em>" } else { "<em>" });
                em = !em;
            }
            _ => out.push(c),
        }
    }
    out
}

fn html(doc: &[Block], title: &str, svgs: &[(String, String)]) -> String {
    let mut s = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:'DejaVu Sans',sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}table{{border-collapse:collapse;margin:1em 0;font-size:.9em}}td,th{{border:1px solid #ccc;padding:.3em .5em;text-align:left}}figure{{margin:1.5em 0}}figcaption{{font-style:italic}}svg{{max-width:100%;height:auto}}code{{background:#f3f3f3;padding:0 .2em}}</style></head><body>\n",
        escape(title)
    );
    for b in doc {
        match b {
            Block::Heading(level, t) => {
                let _ = writeln!(s, "<h{level}>{}</h{level}>", inline(t));
            }
            Block::Para(t) => {
                let _ = writeln!(s, "<p>{}</p>", inline(t));
            }
            Block::Table(head, rows) => {
                s.push_str("<table><tr>");
                for h in head {
                    let _ = write!(s, "<th>{}</th>", inline(h));
                }
                s.push_str("</tr>\n");
                for r in rows {
                    s.push_str("<tr>");
                    for c in r {
                        let _ = write!(s, "<td>{}</td>", inline(c));
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</table>\n");
            }
            Block::Plot { file, alt, reading } => {
                let svg = svgs.iter().find(|(n, _)| n == file).map_or("", |(_, v)| v.as_str());
                let _ = writeln!(
                    s,
                    "<figure aria-label=\"{}\">{svg}<figcaption>{}</figcaption></figure>",
                    escape(alt),
                    inline(reading)
                );
            }
            Block::List(items) => {
                s.push_str("<ul>");
                for i in items {
                    let _ = write!(s, "<li>{}</li>", inline(i));
                }
                s.push_str("</ul>\n");
            }
        }
    }
    s.push_str("</body></html>\n");
    s
}

fn csv(runs: &[RunResults]) -> String {
    let mut s = String::from(
        "run,dataset,model,defense,test_acc,attack,family,auc,auc_distance,advantage,best_balanced_accuracy,\
         tpr_at_1pct_fpr,tpr_at_1pct_ci_lo,tpr_at_1pct_ci_hi,tpr_at_0.1pct_fpr,tpr_at_0.1pct_ci_lo,tpr_at_0.1pct_ci_hi,\
         tpr_at_0.01pct_fpr,calibrated_tpr,calibrated_fpr,calibrated_balanced_accuracy,privacy_score_published,\
         privacy_score_fixed,midput_published,midput_advantage,shadows,queries,seconds,inference_defense,attacker\n",
    );
    let field = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.6}"));
    let quote = |t: &str| {
        if t.contains([',', '"']) {
            format!("\"{}\"", t.replace('"', "\"\""))
        } else {
            t.to_string()
        }
    };
    for r in runs {
        let rep = &r.report;
        for a in &rep.attacks {
            let e = &a.evaluation;
            let t = |f: f64| tpr(a, f);
            let cal = a.calibrated.first();
            let base = midput_base(runs, r, &a.name);
            let mid = |advantage: bool| {
                let (b_auc, b_adv, b_acc, acc, _) = base.clone()?;
                Some(if advantage {
                    midput_advantage(b_adv, e.advantage, b_acc, acc)
                } else {
                    midput_published(b_auc, e.auc, b_acc, acc)
                })
            };
            let cols = [
                quote(&rep.label),
                quote(rep.dataset.as_deref().unwrap_or("")),
                quote(rep.model.as_deref().unwrap_or("")),
                quote(rep.defense.as_deref().unwrap_or("")),
                field(rep.test_acc),
                a.name.clone(),
                a.family.clone(),
                field(Some(e.auc)),
                field(Some(e.auc_distance)),
                field(Some(e.advantage)),
                field(Some(e.best_balanced_accuracy)),
                field(t(0.01).map(|x| x.tpr)),
                field(t(0.01).map(|x| x.ci95.0)),
                field(t(0.01).map(|x| x.ci95.1)),
                field(t(0.001).map(|x| x.tpr)),
                field(t(0.001).map(|x| x.ci95.0)),
                field(t(0.001).map(|x| x.ci95.1)),
                field(t(0.0001).map(|x| x.tpr)),
                field(cal.map(|c| c.tpr)),
                field(cal.map(|c| c.fpr)),
                field(cal.map(|c| c.balanced_accuracy)),
                field(rep.test_acc.map(|acc| privacy_score_published(acc, e.auc))),
                field(rep.test_acc.map(|acc| privacy_score_fixed(acc, e.auc))),
                field(mid(false)),
                field(mid(true)),
                a.shadows.to_string(),
                a.queries.to_string(),
                format!("{:.4}", a.seconds),
                quote(rep.inference.as_ref().map_or("", |i| i.spec.as_str())),
                rep.inference.as_ref().map_or(String::new(), |i| i.attacker.clone()),
            ];
            let _ = writeln!(s, "{}", cols.join(","));
        }
    }
    s
}
