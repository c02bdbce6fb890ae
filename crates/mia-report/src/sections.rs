//! The report's sections, as [`Block`]s and the plots they show: the summary across runs, the
//! privacy–utility trade-off, inference-time defenses (naive vs adaptive attacker), MIDPUT
//! against the undefended run, and one section per run. Each plot gets one plain-language
//! sentence saying what it shows.

use mia_attack::AttackResult;
use mia_core::metrics::{
    self, midput_advantage, midput_published, privacy_score_fixed, privacy_score_published,
};

use crate::plots;
use crate::runs::{ReportOptions, RunResults};
use crate::svg::Scale;

/// A document block, rendered to both Markdown and HTML.
pub(crate) enum Block {
    Heading(usize, String),
    Para(String),
    Table(Vec<String>, Vec<Vec<String>>),
    Plot {
        file: String,
        alt: String,
        reading: String,
    },
    /// A PNG copied into the report (`file`), with its alt text and one sentence of reading.
    Image {
        file: String,
        alt: String,
        reading: String,
    },
    List(Vec<String>),
}

/// The report being built: its blocks, and the SVG plots they refer to by file name.
#[derive(Default)]
pub(crate) struct Doc {
    pub blocks: Vec<Block>,
    pub svgs: Vec<(String, String)>,
    /// PNG files by name, shown by [`Block::Image`].
    pub pngs: Vec<(String, Vec<u8>)>,
}

impl Doc {
    fn push(&mut self, b: Block) {
        self.blocks.push(b);
    }
    fn table(&mut self, head: &[&str], rows: Vec<Vec<String>>) {
        self.push(Block::Table(head.iter().map(|h| h.to_string()).collect(), rows));
    }
    /// Adds the SVG `svg` as `file`, shown with its alt text and one sentence of reading.
    fn plot(&mut self, file: String, svg: String, alt: String, reading: String) {
        self.svgs.push((file.clone(), svg));
        self.push(Block::Plot { file, alt, reading });
    }
}

/// The whole document for `runs`; `labels` are the runs' unique file-name slugs.
pub(crate) fn document(runs: &[RunResults], labels: &[String], options: &ReportOptions) -> Doc {
    let mut doc = Doc::default();
    doc.push(Block::Heading(1, options.title.clone()));
    summary_section(runs, &mut doc);
    tradeoff_section(runs, &mut doc);
    inference_section(runs, &mut doc);
    midput_section(runs, &mut doc);
    for (r, label) in runs.iter().zip(labels) {
        run_section(r, label, options, &mut doc);
    }
    doc
}

/// Unique file-name-safe labels of the runs (`erm`, `erm_2`, …).
pub(crate) fn unique_labels(runs: &[RunResults]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for r in runs {
        let base = slug(&r.report.label);
        let mut l = base.clone();
        let mut i = 2;
        while labels.contains(&l) {
            l = format!("{base}_{i}");
            i += 1;
        }
        labels.push(l);
    }
    labels
}

/// The strongest attack of every run in one table.
fn summary_section(runs: &[RunResults], doc: &mut Doc) {
    doc.push(Block::Para(format!(
        "{} run(s). Members are the positive class; every score is oriented so that higher means \"member\". \
         Leakage is reported as |AUC − 0.5|, the two-sided advantage max |TPR − FPR| (an inverted score counts as much as its flip) and TPR at low FPR \
         with 95% Clopper–Pearson intervals; thresholds and attack models are fitted on shadow models only.",
        runs.len()
    )));
    let rows = runs.iter().map(|r| summary_row(runs, r)).collect();
    doc.push(Block::Heading(2, "Summary".into()));
    doc.table(
        &[
            "run",
            "dataset",
            "defense",
            "test acc",
            "train s (× ERM)",
            "strongest attack",
            "AUC",
            "|AUC−0.5|",
            "advantage",
            "TPR@0.1%FPR [95% CI]",
            "privacy score (published / fixed)",
        ],
        rows,
    );
    doc.push(Block::Para(
        "The strongest attack is the one with the highest TPR at 0.1% FPR. The published MLS-Bench privacy score \
         (test acc − max(AUC − 0.5, 0)) rewards an AUC below 0.5; the fixed one (test acc − |AUC − 0.5|) does not. \
         Training seconds are the target's own (`wall_seconds` in its summary.json), relative to the ERM run of the \
         same dataset and model; they compare recipes only when the runs were trained on the same machine under the same load."
            .into(),
    ));
}

fn summary_row(runs: &[RunResults], r: &RunResults) -> Vec<String> {
    let rep = &r.report;
    let best = strongest(r);
    let auc = best.map_or(f64::NAN, |b| b.evaluation.auc);
    let cost = match (r.train_seconds, train_cost(runs, r)) {
        (Some(s), Some(x)) => format!("{s:.0} ({x:.1}×)"),
        (Some(s), None) => format!("{s:.0}"),
        (None, _) => "–".into(),
    };
    vec![
        rep.label.clone(),
        rep.dataset.clone().unwrap_or_else(|| "–".into()),
        rep.defense.clone().unwrap_or_else(|| "–".into()),
        rep.test_acc.map_or("–".into(), f4),
        cost,
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
    ]
}

/// Test accuracy against the strongest attack's AUC and TPR at 0.1% FPR, across runs.
fn tradeoff_section(runs: &[RunResults], doc: &mut Doc) {
    let (mut auc_pts, mut tpr_pts) = (Vec::new(), Vec::new());
    for r in runs {
        let (Some(acc), Some(best)) = (r.report.test_acc, strongest(r)) else { continue };
        auc_pts.push((r.report.label.clone(), best.evaluation.auc, acc));
        let t = tpr(best, 0.001).map_or(1e-4, |t| t.tpr.max(1e-4));
        tpr_pts.push((r.report.label.clone(), t, acc));
    }
    if auc_pts.is_empty() {
        return;
    }
    doc.push(Block::Heading(2, "Privacy–utility trade-off".into()));
    let lo = auc_pts.iter().map(|p| p.1).fold(0.5, f64::min);
    let hi = auc_pts.iter().map(|p| p.1).fold(0.5, f64::max);
    let pad = ((hi - lo) * 0.15).max(0.02);
    let best_run = auc_pts
        .iter()
        .max_by(|a, b| (a.2 - (a.1 - 0.5).abs()).total_cmp(&(b.2 - (b.1 - 0.5).abs())));
    let reading = match best_run {
        Some((label, auc, acc)) => format!(
            "Up and towards AUC 0.5 is better (more accurate, less leaky); `{label}` has the best balance here (test accuracy {acc:.3}, AUC {auc:.3})."
        ),
        None => String::new(),
    };
    doc.plot(
        "tradeoff_auc.svg".into(),
        plots::tradeoff(
            "Test accuracy vs attack AUC (strongest attack)",
            "attack AUC",
            &auc_pts,
            Scale::Linear(lo - pad, hi + pad),
        ),
        "privacy-utility scatter (AUC)".into(),
        reading,
    );
    doc.plot(
        "tradeoff_tpr.svg".into(),
        plots::tradeoff(
            "Test accuracy vs TPR at 0.1% FPR (strongest attack)",
            "TPR at 0.1% FPR",
            &tpr_pts,
            Scale::Log(1e-4, 1.0),
        ),
        "privacy-utility scatter (TPR at 0.1% FPR)".into(),
        "The same runs against TPR at 0.1% FPR on a log axis: what a confident attacker recovers; 0.1% is chance.".into(),
    );
}

/// MIDPUT of every attack of every run against its undefended baseline.
fn midput_section(runs: &[RunResults], doc: &mut Doc) {
    let mut rows = Vec::new();
    for r in runs {
        for a in &r.report.attacks {
            let Some(base) = midput_base(runs, r, &a.name) else { continue };
            rows.push(vec![
                r.report.label.clone(),
                base.label.clone(),
                format!("`{}`", a.name),
                f4(base.published(a)),
                f4(base.advantage(a)),
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    doc.push(Block::Heading(2, "MIDPUT against the undefended run".into()));
    doc.push(Block::Para(
        "DynaNoise's MIDPUT: (attack success before − after) − (test accuracy before − after). As published it uses \
         AUC, so a defense that pushes an attack below 0.5 gains; the advantage column uses the two-sided max |TPR − FPR|, which an inverted attack keeps."
            .into(),
    ));
    doc.table(
        &["run", "baseline", "attack", "MIDPUT (published, AUC)", "MIDPUT (advantage)"],
        rows,
    );
}

/// One run: what it is, every attack's numbers, ROC curves, score histograms, the most
/// vulnerable examples and the warnings.
fn run_section(r: &RunResults, label: &str, options: &ReportOptions, doc: &mut Doc) {
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
    attack_table(r, doc);
    run_plots(r, label, doc);
    if let Some(png) = &r.synthetic_grid {
        let file = format!("synthetic_{label}.png");
        doc.pngs.push((file.clone(), png.clone()));
        doc.push(Block::Image {
            file,
            alt: format!("synthetic fine-tuning images of {}", rep.label),
            reading: "The synthetic images this run was fine-tuned on (`grid.png` of its synthetic \
                      folder: a row per class). Fine-tuning on them can only make the model forget its \
                      members if they look like the task's images."
                .into(),
        });
    }
    vulnerable_examples(r, options.vulnerable, doc);
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

/// Every attack of a run, one row each, and what was skipped.
fn attack_table(r: &RunResults, doc: &mut Doc) {
    let rows = r
        .report
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
                    format!("{:.4} (TPR {}, FPR {})", c.balanced_accuracy, pct(c.tpr), pct(c.fpr))
                }),
                format!("{:.2}", a.seconds),
            ]
        })
        .collect();
    doc.table(
        &[
            "attack",
            "family",
            "AUC",
            "|AUC−0.5|",
            "advantage",
            "TPR@1%FPR",
            "TPR@0.1%FPR",
            "calibrated on shadows: balanced acc",
            "seconds",
        ],
        rows,
    );
    if !r.report.skipped.is_empty() {
        doc.push(Block::List(
            r.report.skipped.iter().map(|(n, why)| format!("skipped `{n}`: {why}")).collect(),
        ));
    }
}

/// A run's ROC curves (linear and log-log) and score histograms.
fn run_plots(r: &RunResults, label: &str, doc: &mut Doc) {
    let rep = &r.report;
    let curves: Vec<(String, metrics::Roc)> = roc_set(r)
        .into_iter()
        .filter_map(|a| Some((a.name.clone(), metrics::roc(&a.scores, &r.is_member).ok()?)))
        .collect();
    for (log, name) in [(false, format!("roc_{label}.svg")), (true, format!("roc_log_{label}.svg"))]
    {
        let title = format!("ROC, {}{}", rep.label, if log { " (log-log)" } else { "" });
        let svg = plots::roc(&title, &curves, log);
        doc.plot(name, svg, title, roc_reading(r, log));
    }
    doc.push(Block::Heading(3, "Score distributions".into()));
    // Defended views get the ROC set's histograms only (there are two per defense).
    let shown: Vec<&AttackResult> =
        if rep.inference.is_some() { roc_set(r) } else { rep.attacks.iter().collect() };
    for a in shown {
        let name = format!("hist_{label}_{}.svg", slug(&a.name));
        let title = format!("{}: {}", rep.label, a.name);
        let svg = plots::histogram(&title, &a.scores, &r.is_member);
        doc.plot(name, svg, title, histogram_reading(a));
    }
}

/// The `count` candidates the strongest attack is surest are members.
fn vulnerable_examples(r: &RunResults, count: usize, doc: &mut Doc) {
    let Some(best) = strongest(r) else { return };
    let mut order: Vec<usize> = (0..best.scores.len()).collect();
    order.sort_by(|&i, &j| best.scores[j].total_cmp(&best.scores[i]));
    let rows = order
        .iter()
        .take(count)
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
    doc.table(&["rank", "dataset index", "label", "truth", "score"], rows);
}

/// The inference-defense section: every defense with its naive and adaptive attacker side
/// by side.
pub(crate) fn inference_section(runs: &[RunResults], doc: &mut Doc) {
    let groups = defended_pairs(runs);
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
    for g in &groups {
        let Some(info) = g.naive.or(g.adaptive).and_then(|r| r.report.inference.as_ref()) else {
            continue;
        };
        rows.push(vec![
            format!("`{}`", g.key),
            if info.preserves_label { "yes".into() } else { "no".into() },
            format!("{:.4} → {:.4}", info.accuracy_before, info.accuracy_after),
            fixed(g.naive),
            cell(g.naive),
            cell(g.adaptive),
        ]);
    }
    doc.table(
        &[
            "defense",
            "keeps label",
            "held-out acc",
            "naive fixed 0.9 / 0.5 (advantage)",
            "naive: strongest AUC / TPR@0.1%FPR",
            "adaptive: strongest AUC / TPR@0.1%FPR",
        ],
        rows,
    );
    for g in &groups {
        if let (Some(naive), Some(adaptive)) = (g.naive, g.adaptive) {
            defended_detail(&g.key, naive, adaptive, doc);
        }
    }
}

/// One defense's table: every attack, naive and adaptive side by side.
fn defended_detail(key: &str, naive: &RunResults, adaptive: &RunResults, doc: &mut Doc) {
    doc.push(Block::Heading(3, format!("`{key}`")));
    let mut rows = Vec::new();
    for a in &adaptive.report.attacks {
        let n = naive.report.attacks.iter().find(|x| x.name == a.name);
        let bal = |x: Option<&AttackResult>| {
            x.and_then(|x| x.calibrated.first()).map_or("–".into(), |c| f4(c.balanced_accuracy))
        };
        let mid = midput_base(std::slice::from_ref(adaptive), adaptive, &a.name);
        rows.push(vec![
            format!("`{}`", a.name),
            n.map_or("–".into(), |x| f4(x.evaluation.auc)),
            f4(a.evaluation.auc),
            n.map_or("–".into(), |x| tpr_cell(x, 0.001)),
            tpr_cell(a, 0.001),
            bal(n),
            bal(Some(a)),
            mid.map_or("–".into(), |m| {
                format!("{} / {}", f4(m.published(a)), f4(m.advantage(a)))
            }),
        ]);
    }
    doc.table(
        &[
            "attack",
            "naive AUC",
            "adaptive AUC",
            "naive TPR@0.1%FPR",
            "adaptive TPR@0.1%FPR",
            "naive calibrated bal. acc",
            "adaptive calibrated bal. acc",
            "adaptive MIDPUT (published / advantage)",
        ],
        rows,
    );
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

/// The (naive, adaptive) pair written by one `mia attack --inference-defense` call.
struct DefendedPair<'a> {
    /// `<run> + <defense spec>`.
    key: String,
    naive: Option<&'a RunResults>,
    adaptive: Option<&'a RunResults>,
}

/// The defended runs grouped by (run, defense), in order of appearance.
fn defended_pairs(runs: &[RunResults]) -> Vec<DefendedPair<'_>> {
    let mut groups: Vec<DefendedPair<'_>> = Vec::new();
    for r in runs {
        let Some(info) = &r.report.inference else { continue };
        let base = r.report.label.split(" + ").next().unwrap_or_default();
        let key = format!("{base} + {}", info.spec);
        let pos = groups.iter().position(|g| g.key == key).unwrap_or_else(|| {
            groups.push(DefendedPair { key: key.clone(), naive: None, adaptive: None });
            groups.len() - 1
        });
        if info.attacker == "naive" {
            groups[pos].naive = Some(r);
        } else {
            groups[pos].adaptive = Some(r);
        }
    }
    groups
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

fn f4(v: f64) -> String {
    format!("{v:.4}")
}

pub(crate) fn tpr(a: &AttackResult, fpr: f64) -> Option<&metrics::TprAtFpr> {
    a.evaluation.tpr_at_low_fpr.iter().find(|t| (t.fpr - fpr).abs() < 1e-12)
}

fn tpr_cell(a: &AttackResult, fpr: f64) -> String {
    tpr(a, fpr)
        .map_or("–".into(), |t| format!("{} [{}, {}]", pct(t.tpr), pct(t.ci95.0), pct(t.ci95.1)))
}

/// File-name-safe version of a label.
pub(crate) fn slug(s: &str) -> String {
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
/// A run's training seconds over those of its ERM baseline (see [`baseline`]), when both
/// are known.
pub(crate) fn train_cost(runs: &[RunResults], run: &RunResults) -> Option<f64> {
    let own = run.train_seconds?;
    let base = runs.iter().find(|b| {
        b.report.defense.as_deref() == Some("erm")
            && b.report.dataset == run.report.dataset
            && b.report.model == run.report.model
            && b.train_seconds.is_some()
    })?;
    Some(own / base.train_seconds?)
}

fn baseline<'a>(runs: &'a [RunResults], run: &RunResults) -> Option<&'a RunResults> {
    runs.iter().find(|b| {
        b.report.defense.as_deref() == Some("erm")
            && b.report.dataset == run.report.dataset
            && b.report.model == run.report.model
            && b.report.test_acc.is_some()
    })
}

/// What MIDPUT compares an attack's result with: the baseline's AUC and advantage on the
/// same attack, the accuracy before and after, and the baseline's label.
#[derive(Debug, Clone)]
pub(crate) struct MidputBase {
    /// The baseline's AUC.
    pub auc: f64,
    /// The baseline's two-sided advantage.
    pub advantage: f64,
    /// The baseline's test accuracy.
    pub accuracy_before: f64,
    /// This run's test accuracy.
    pub accuracy_after: f64,
    /// The baseline's label.
    pub label: String,
}

impl MidputBase {
    /// DynaNoise's MIDPUT as published (on AUC) for `a`.
    pub fn published(&self, a: &AttackResult) -> f64 {
        midput_published(self.auc, a.evaluation.auc, self.accuracy_before, self.accuracy_after)
    }
    /// MIDPUT on the two-sided advantage for `a`.
    pub fn advantage(&self, a: &AttackResult) -> f64 {
        midput_advantage(
            self.advantage,
            a.evaluation.advantage,
            self.accuracy_before,
            self.accuracy_after,
        )
    }
}

/// MIDPUT's baseline for attack `name` of run `r`. An inference-defense run is compared with
/// its own undefended pass (same rows, same attacks); any other run with the first ERM run of
/// its dataset and model.
pub(crate) fn midput_base(runs: &[RunResults], r: &RunResults, name: &str) -> Option<MidputBase> {
    if let Some(info) = &r.report.inference {
        let (_, auc, adv) = info.baseline.iter().find(|b| b.0 == name)?;
        let label = r.report.label.split(" + ").next().unwrap_or_default().to_string();
        return Some(MidputBase {
            auc: *auc,
            advantage: *adv,
            accuracy_before: info.accuracy_before,
            accuracy_after: info.accuracy_after,
            label,
        });
    }
    let b = baseline(runs, r).filter(|b| !std::ptr::eq(*b, r))?;
    let x = b.report.attacks.iter().find(|x| x.name == name)?;
    let acc = r.report.test_acc?;
    Some(MidputBase {
        auc: x.evaluation.auc,
        advantage: x.evaluation.advantage,
        accuracy_before: b.report.test_acc.unwrap_or(acc),
        accuracy_after: acc,
        label: b.report.label.clone(),
    })
}
