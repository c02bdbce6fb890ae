//! Golden outputs: the plots for a fixed input must match the files in `tests/golden/`
//! byte for byte (regenerate with `UPDATE_GOLDEN=1 cargo test -p mia-report` after an
//! intended change, and look at them). Also checks that PNGs carry text drawn with the
//! bundled font and that a whole report is written.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use mia_attack::attack::run;
use mia_attack::{AttackInput, AttackKind, AttackOptions, AttackReport, Logits, Shadow};
use mia_core::metrics::roc;
use mia_report::svg::Scale;
use mia_report::{ReportOptions, RunResults, plots};

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} differs from its golden file (UPDATE_GOLDEN=1 to regenerate)"
    );
}

/// Scores where members sit higher: 200 examples, deterministic.
fn fixed_scores() -> (Vec<f32>, Vec<bool>) {
    let member: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
    let scores = (0..200)
        .map(|i| ((i * 37 % 101) as f32 / 101.0) + if member[i] { 0.35 } else { 0.0 })
        .collect();
    (scores, member)
}

#[test]
fn plots_match_their_golden_files() {
    let (s, m) = fixed_scores();
    golden("histogram.svg", &plots::histogram("fixed: loss", &s, &m));
    let curve = roc(&s, &m).unwrap();
    let flipped: Vec<f32> = s.iter().map(|x| -x).collect();
    let curves =
        vec![("fixed".to_string(), curve), ("flipped".to_string(), roc(&flipped, &m).unwrap())];
    golden("roc.svg", &plots::roc("ROC, fixed", &curves, false));
    golden("roc_log.svg", &plots::roc("ROC, fixed (log-log)", &curves, true));
    let pts = vec![("erm".to_string(), 0.78, 0.56), ("relaxloss".to_string(), 0.66, 0.55)];
    golden(
        "tradeoff.svg",
        &plots::tradeoff("trade-off", "attack AUC", &pts, Scale::Linear(0.45, 0.85)),
    );
}

#[test]
fn png_text_uses_the_bundled_font() {
    let text = r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><text x="5" y="28" font-size="24" font-family="DejaVu Sans">Mia</text></svg>"#;
    let empty = r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"></svg>"#;
    let a = mia_report::png::render(text, 1.0).unwrap();
    let b = mia_report::png::render(empty, 1.0).unwrap();
    assert_eq!(&a[..8], b"\x89PNG\r\n\x1a\n");
    assert!(a.len() > b.len() + 100, "text was drawn: {} vs {} bytes", a.len(), b.len());
    assert!(mia_report::png::render("not svg", 1.0).is_err());
}

/// A synthetic leaky world (as in mia-attack's tests) run through real attacks.
fn results(label: &str, defense: &str, signal: f32, acc: f64, train_s: f64) -> RunResults {
    let n = 300;
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let easy: Vec<f32> = (0..n).map(|i| (i * 53 % 97) as f32 / 20.0).collect();
    let model = |keep: &[bool], salt: usize| {
        let mut data = Vec::new();
        for i in 0..n {
            let mut row = [0f32; 3];
            row[labels[i]] =
                easy[i] + if keep[i] { signal } else { 0.0 } + ((i * 7 + salt) % 11) as f32 * 0.05;
            data.extend(row);
        }
        Logits::new(1, n, 3, data).unwrap()
    };
    let is_member: Vec<bool> = (0..n).map(|i| i < n / 2).collect();
    let shadows = (0..4)
        .map(|s| {
            let keep: Vec<bool> = (0..n).map(|i| (i * 31 + s * 17) % 4 < 2).collect();
            Shadow { logits: model(&keep, s), keep }
        })
        .collect();
    let input = AttackInput::new(model(&is_member, 9), labels.to_vec(), is_member.clone(), shadows)
        .unwrap();
    let attacks = ["loss", "confidence", "lira-online", "rmia-offline"]
        .iter()
        .map(|a| run(AttackKind::parse(a).unwrap(), &input, &AttackOptions::default()).unwrap())
        .collect();
    RunResults {
        dir: label.into(),
        report: AttackReport {
            version: 1,
            source: "synthetic".into(),
            label: label.into(),
            dataset: Some("toy".into()),
            model: Some("mlp".into()),
            defense: Some(defense.into()),
            test_acc: Some(acc),
            train_acc: Some(1.0),
            candidates: n,
            members: n / 2,
            shadows: 4,
            queries: 1,
            query_note: None,
            population: 0,
            skipped: vec![],
            attacks,
            inference: None,
        },
        is_member,
        indices: None,
        labels: None,
        train_seconds: Some(train_s),
        synthetic_grid: None,
    }
}

#[test]
fn a_report_compares_runs_and_reads_each_plot() {
    let mut synth = results("synth", "erm+prune50-ft-synthetic", 0.5, 0.70, 40.0);
    let grid = mia_report::png::render(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>"#,
        1.0,
    )
    .unwrap();
    synth.synthetic_grid = Some(grid.clone());
    let runs = vec![
        results("erm", "erm", 2.0, 0.80, 20.0),
        results("relax", "relaxloss", 0.3, 0.78, 30.0),
        synth,
    ];
    let dir = tempfile::tempdir().unwrap();
    let files = mia_report::write(&runs, dir.path(), &ReportOptions::default()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let plots_in_md = md.matches("](").count();
    let readings = md.lines().filter(|l| l.starts_with('*') && l.ends_with('*')).count();
    assert_eq!(plots_in_md, readings, "one reading under every plot");
    assert!(md.contains("MIDPUT"), "relax is compared with the erm baseline");
    assert!(md.contains("tradeoff_auc.svg"));
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12);
    assert!(md.contains("](synthetic_synth.png)"), "the synthetic images are shown");
    assert_eq!(std::fs::read(dir.path().join("synthetic_synth.png")).unwrap(), grid);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(header[25..27], ["train_seconds", "train_cost_vs_erm"]);
    let relax_loss = csv.lines().find(|l| l.starts_with("relax,") && l.contains(",loss,")).unwrap();
    assert!(relax_loss.contains(",30.000000,1.500000,"), "{relax_loss}");
    let relax_midput =
        csv.lines().find(|l| l.starts_with("relax,") && l.contains(",loss,")).unwrap();
    assert!(
        relax_midput.split(',').nth(23).unwrap().parse::<f64>().unwrap() > 0.0,
        "{relax_midput}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(md.contains("| 30 (1.5×) |"), "relax's training cost against erm's");
    assert!(html.contains("<svg") && html.contains("<figcaption>"));
    assert!(html.contains("src=\"data:image/png;base64,iVBORw0KGgo"), "PNG inlined");
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "png")));
    assert!(mia_report::write(&[], dir.path(), &ReportOptions::default()).is_err());
    assert!(RunResults::load(Path::new("/nonexistent")).is_err());
}
